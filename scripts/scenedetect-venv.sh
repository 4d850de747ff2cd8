#!/usr/bin/env bash
# The PySceneDetect reference the cut-detection parity test (tests/highlights_cuts.rs) compares
# against: a venv at ${REELSMITH_SCENEDETECT_VENV:-$HOME/.cache/reelsmith/scenedetect-venv} with
#   scenedetect==0.6.7.1 (BSD-3; ContentDetector with the "merge" flash filter, AdaptiveDetector)
#   opencv-python-headless==4.10.0.84, numpy==1.26.4
# from PyPI. Idempotent: a stamp file names the pinned set; a changed pin rebuilds the venv.
set -euo pipefail

venv="${REELSMITH_SCENEDETECT_VENV:-$HOME/.cache/reelsmith/scenedetect-venv}"
PINS=(scenedetect==0.6.7.1 opencv-python-headless==4.10.0.84 numpy==1.26.4)
stamp="$venv/.reelsmith-stamp"
want="${PINS[*]}"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/python" ]]; then
  exit 0
fi

py="${PYTHON:-python3}"
command -v "$py" >/dev/null || { echo "scenedetect-venv: $py not found (install Python 3.9+)" >&2; exit 1; }
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "${PINS[@]}"
"$venv/bin/python" -c 'import scenedetect, cv2; assert scenedetect.__version__ == "0.6.7.1", scenedetect.__version__' \
  || { echo "scenedetect-venv: the installed scenedetect is not 0.6.7.1" >&2; exit 1; }
printf '%s' "$want" > "$stamp"
echo "scenedetect reference venv ready: $venv"

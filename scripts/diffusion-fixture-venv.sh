#!/usr/bin/env bash
# Installs the Python reference stack that scripts/make-diffusion-fixture.py runs on
# (PyTorch, diffusers, transformers, peft from PyPI) into a private venv outside the repo.
#
# Used ONLY to regenerate tests/fixtures/diffusion/, never by tests or CI.
#
#   venv: ${REELSMITH_FIXTURE_VENV:-$HOME/.cache/reelsmith/fixture-venv}
#
# Idempotent: when the venv already holds the pinned versions nothing is done.
# The PyPI torch wheel pulls its nvidia CUDA wheels (it does not import without
# them), so the venv is about 5.4 GB; everything runs on the CPU. The last line of
# stdout is the venv's python; `touch $venv/.ready` marks a finished install.
set -euo pipefail

TORCH_VERSION="2.15.0"
DIFFUSERS_VERSION="0.42.1"
TRANSFORMERS_VERSION="5.23.0"
PEFT_VERSION="0.21.2"
SAFETENSORS_VERSION="0.8.0"

venv="${REELSMITH_FIXTURE_VENV:-$HOME/.cache/reelsmith/fixture-venv}"
py="$venv/bin/python"

log() { echo "diffusion-fixture-venv: $*" >&2; }
die() { log "error: $*"; exit 1; }

# True when the venv's python imports the stack at the pinned versions.
have_pinned() {
    [[ -x "$py" ]] || return 1
    "$py" - "$TORCH_VERSION" "$DIFFUSERS_VERSION" "$TRANSFORMERS_VERSION" "$PEFT_VERSION" "$SAFETENSORS_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
want = dict(zip(["torch", "diffusers", "transformers", "peft", "safetensors"], sys.argv[1:]))
if any(version(p) != v for p, v in want.items()):
    sys.exit(1)
import torch, diffusers, transformers, peft, safetensors, numpy  # noqa: F401  (must load, too)
EOF
}

if have_pinned; then
    log "pinned stack already installed in $venv"
    touch "$venv/.ready"
    echo "$py"
    exit 0
fi

command -v python3 >/dev/null || die "python3 not found"

# python3 -m venv needs ensurepip, which Debian ships in python3-venv.
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    log "installing python3-venv"
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || die "need root or sudo to apt-get install python3-venv"
        SUDO="sudo"
    fi
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >&2
fi

if [[ ! -x "$py" ]] || ! "$py" -c 'import pip' 2>/dev/null; then
    log "creating venv $venv"
    rm -rf "$venv"
    python3 -m venv "$venv" >&2 || die "python3 -m venv $venv failed"
fi

start=$(date +%s)
log "installing torch==$TORCH_VERSION diffusers==$DIFFUSERS_VERSION transformers==$TRANSFORMERS_VERSION peft==$PEFT_VERSION"
"$py" -m pip install --disable-pip-version-check \
    "torch==$TORCH_VERSION" "diffusers==$DIFFUSERS_VERSION" "transformers==$TRANSFORMERS_VERSION" \
    "peft==$PEFT_VERSION" "safetensors==$SAFETENSORS_VERSION" numpy >&2 \
    || die "pip install failed (see the log above)"

have_pinned || die "installed, but the stack does not import at the pinned versions"
touch "$venv/.ready"
log "done in $(( $(date +%s) - start )) s"
echo "$py"

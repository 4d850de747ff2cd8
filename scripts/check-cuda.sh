#!/usr/bin/env bash
# The GPU build can't rot: type-checks the whole workspace (every crate's `cuda` code paths,
# tests included) with `--features cuda`, candle's CUDA kernels compiled to PTX by nvcc, on a
# machine without a GPU. The toolkit comes from PyPI (scripts/install-cuda.sh), cached outside
# the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-cuda.sh
source <(bash scripts/install-cuda.sh --env)
echo "check-cuda: cargo check --workspace --all-targets --features cuda (CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP)" >&2
exec ${CARGO:-cargo} check --workspace --all-targets --features cuda "$@"

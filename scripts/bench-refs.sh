#!/usr/bin/env bash
# Installs the reference engines that `reelsmith bench llm|asr|tts` compares against
# (llama.cpp through llama-cpp-python, faster-whisper, and onnxruntime for Piper voices)
# into a private venv.
#
# Used ONLY by the benchmark, never by tests or CI.
#
#   venv: ${REELSMITH_BENCH_VENV:-$HOME/.cache/reelsmith/bench-venv}
#
# Idempotent: when the venv already holds the pinned versions nothing is done.
# llama-cpp-python has no Linux CPU wheel on PyPI, so it builds from source
# (about 6 minutes on 2 cores). The last line of stdout is the venv's python.
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION="0.3.36"   # bundles llama.cpp (ggml) sources
FASTER_WHISPER_VERSION="1.2.1"
CTRANSLATE2_VERSION="4.8.5"         # faster-whisper's inference engine
ONNXRUNTIME_VERSION="1.31.1"        # Piper's runtime

venv="${REELSMITH_BENCH_VENV:-$HOME/.cache/reelsmith/bench-venv}"
py="$venv/bin/python"

# Portable x86-64 build with AVX2/FMA/F16C and without AVX-512/AMX: no
# -march=native (the build host's AMX is not usable here), so the library does
# not depend on which CPU built it. LLAVA_BUILD=OFF skips the multimodal
# library, which the benchmark does not use. Override with REELSMITH_BENCH_CMAKE_ARGS.
default_cmake_args="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAVA_BUILD=OFF"
cmake_args="${REELSMITH_BENCH_CMAKE_ARGS:-$default_cmake_args}"

log() { echo "bench-refs: $*" >&2; }
die() { log "error: $*"; exit 1; }

# True when the venv's python imports both engines at the pinned versions.
have_pinned() {
    [[ -x "$py" ]] || return 1
    "$py" - "$LLAMA_CPP_PYTHON_VERSION" "$FASTER_WHISPER_VERSION" "$CTRANSLATE2_VERSION" "$ONNXRUNTIME_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
want = dict(zip(["llama_cpp_python", "faster-whisper", "ctranslate2", "onnxruntime"], sys.argv[1:]))
if any(version(p) != v for p, v in want.items()):
    sys.exit(1)
import llama_cpp, faster_whisper, onnxruntime  # noqa: F401  (the libraries must load, too)
EOF
}

if have_pinned; then
    log "pinned engines already installed in $venv"
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
log "installing llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION (source build) and faster-whisper==$FASTER_WHISPER_VERSION"
log "CMAKE_ARGS=$cmake_args"
# --no-cache-dir for llama-cpp-python: a cached wheel could carry other CMAKE_ARGS.
CMAKE_ARGS="$cmake_args" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
    "$py" -m pip install --disable-pip-version-check --no-cache-dir \
    "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" >&2 \
    || die "pip install llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION failed (needs gcc/g++; see the log above)"
"$py" -m pip install --disable-pip-version-check \
    "faster-whisper==$FASTER_WHISPER_VERSION" "ctranslate2==$CTRANSLATE2_VERSION" \
    "onnxruntime==$ONNXRUNTIME_VERSION" >&2 \
    || die "pip install faster-whisper==$FASTER_WHISPER_VERSION onnxruntime==$ONNXRUNTIME_VERSION failed"

have_pinned || die "installed, but the engines do not import at the pinned versions"
log "done in $(( $(date +%s) - start )) s"
echo "$py"

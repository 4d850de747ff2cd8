#!/usr/bin/env bash
# One GPU check: on a machine with an NVIDIA GPU, a driver and a CUDA toolkit (nvcc), proves the
# GPU path in one command and prints one table of figures (aim: ≤ 8 minutes on an H100).
#
#   scripts/gpu-check.sh --prepare   on a connected machine, before: vendors every crate into
#                                    target/gpu-check/vendor and copies the test models into
#                                    target/gpu-check/models (carry both to the GPU machine)
#   scripts/gpu-check.sh             on the GPU machine: needs nothing from the internet when
#                                    the prepared folder is there (cargo runs --offline)
#
# Steps: CUDA build (release, every model crate's tests and the binary, kernels for this GPU's
# compute capability); the model crates' tests on the GPU in f32 and in the production dtype
# (REELSMITH_TEST_DEVICE / REELSMITH_TEST_DTYPE, read by reelsmith_kit::testing, which states
# each tolerance); doctor (driver, CUDA versions, compute capability against the kernels); the
# NVML path through the scheduler's GPU monitor with CUDA_VISIBLE_DEVICES by index and by UUID;
# `bench image --device cuda` against diffusers when torch+diffusers import offline, and the CPU
# benches of the other engines for comparison.
set -uo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
prep="$root/target/gpu-check"

if [[ "${1:-}" == "--prepare" ]]; then
    set -e
    mkdir -p "$prep"
    cargo vendor --versioned-dirs --quiet "$prep/vendor" > "$prep/cargo-vendor.toml"
    models="${REELSMITH_TEST_MODELS:-$HOME/.cache/reelsmith/test-models}"
    if [[ -d "$models" ]]; then
        rm -rf "$prep/models" && cp -a "$models" "$prep/models"
    fi
    du -sh "$prep"/* >&2
    exit 0
fi

rows=()
row() { rows+=("$(printf '%-34s %-6s %8s  %s' "$1" "$2" "$3" "$4")"); }
timed() { # name, command…: runs it, records pass/fail and seconds; output in $prep/logs/name.log
    local name="$1"; shift
    local log="$prep/logs/${name//[^A-Za-z0-9_.-]/_}.log"
    local t0=$SECONDS
    if "$@" >"$log" 2>&1; then status=ok; else status=FAIL; fi
    last_secs=$((SECONDS - t0))
    last_log="$log"
}
mkdir -p "$prep/logs"

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu-check: no NVIDIA GPU here (nvidia-smi fails); run it on a GPU machine" >&2
    exit 2
fi
command -v nvcc >/dev/null || [[ -n "${CUDA_ROOT:-}" ]] || {
    echo "gpu-check: nvcc not found: put the CUDA toolkit's bin on PATH or set CUDA_ROOT" >&2
    exit 2
}
cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n1 | tr -d ' .')"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-$cap}"
gpu="$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -n1)"
offline=()
if [[ -d "$prep/vendor" ]]; then
    offline=(--offline --config "source.crates-io.replace-with=\"vendored\""
        --config "source.vendored.directory=\"$prep/vendor\"")
fi
if [[ -d "$prep/models" ]]; then export REELSMITH_TEST_MODELS="$prep/models"; fi
export HF_HUB_OFFLINE=1
crates=(-p reelsmith-kit -p reelsmith-llm -p reelsmith-diffusion -p reelsmith-whisper -p reelsmith-vits -p reelsmith-video -p reelsmith-post)

timed build cargo "${offline[@]}" build --release --features cuda --bin reelsmith
row "cuda build (release, sm_$CUDA_COMPUTE_CAP)" "$status" "${last_secs}s" "$(tail -n1 "$last_log")"
timed build-tests cargo "${offline[@]}" test --release --features cuda --no-run "${crates[@]}"
row "cuda build of the model crates' tests" "$status" "${last_secs}s" ""
bin="$root/target/release/reelsmith"

for dtype in f32 production; do
    timed "parity-$dtype" env REELSMITH_TEST_DEVICE=cuda REELSMITH_TEST_DTYPE="$dtype" \
        cargo "${offline[@]}" test --release --features cuda "${crates[@]}" -- --test-threads=1
    summary="$(grep -E '^test result:' "$last_log" | awk '{p+=$4; f+=$6} END {print p" passed, "f" failed"}')"
    row "model crates' tests on cuda ($dtype)" "$status" "${last_secs}s" "$summary"
done
# Real weights (test models): Whisper base and the Piper voice on the GPU (f16), with their
# reference comparisons (WER, faster-whisper twin, onnxruntime samples).
timed real-weights env REELSMITH_TEST_DEVICE=cuda cargo "${offline[@]}" test --release \
    --features cuda --test asr --test piper_voice -- --test-threads=1
summary="$(grep -E '^test result:' "$last_log" | awk '{p+=$4; f+=$6} END {print p" passed, "f" failed"}')"
row "whisper + piper real weights on cuda" "$status" "${last_secs}s" "$summary"

if [[ -x "$bin" ]]; then
    timed doctor "$bin" doctor
    row "doctor (CUDA section)" "$(grep -q 'MISS.*\(CUDA\|driver\|compute\)' "$last_log" && echo FAIL || echo ok)" \
        "${last_secs}s" "$(grep -E 'built with CUDA|driver ' "$last_log" | head -n2 | tr -s ' ' | paste -sd';')"
    data="$(mktemp -d)"
    uuid="$(nvidia-smi --query-gpu=uuid --format=csv,noheader | head -n1 | tr -d ' ')"
    for vis in "" 0 "$uuid" none; do
        label="${vis:-all}"
        timed "nvml-$label" env ${vis:+CUDA_VISIBLE_DEVICES=$vis} REELSMITH_DATA_DIR="$data" \
            REELSMITH_CONFIG_DIR="$data/cfg" "$bin" run --exit-when-idle --no-inbox
        seen="$(grep -o 'GPUs: .*' "$last_log" | head -n1)"
        want_gpu=1; [[ "$vis" == none ]] && want_gpu=0
        ok=FAIL
        if [[ $want_gpu == 1 ]] && grep -q 'GPUs: .*[0-9]' "$last_log" && ! grep -qi 'cpu-only\|hidden' <<<"$seen"; then ok=ok; fi
        if [[ $want_gpu == 0 ]] && grep -qi 'cpu\|hidden\|no gpu' <<<"$seen"; then ok=ok; fi
        row "NVML, CUDA_VISIBLE_DEVICES=$label" "$ok" "${last_secs}s" "$seen"
    done
    rm -rf "$data"
    py="${REELSMITH_BENCH_PYTHON:-python3}"
    ref=(--no-reference)
    if "$py" -c 'import torch, diffusers; assert torch.cuda.is_available()' 2>/dev/null; then
        ref=(--python "$(command -v "$py")")
    fi
    for model in sd15 sdxl flux; do
        timed "bench-image-$model" "$bin" bench image --model "$model" --size 512x512 --steps 3 \
            --device cuda "${ref[@]}"
        row "bench image $model 512² cuda" "$status" "${last_secs}s" "$(grep -iE 'ratio|s/step' "$last_log" | tail -n2 | tr -s ' ' | paste -sd';')"
    done
    # LTX-Video 2B at its reference size (5 s of 768×512 at 24 fps) against diffusers eager on
    # the same GPU: s/step (goal ≤ 1.5×) and decode memory (goal ≤ diffusers').
    timed bench-video-ltxv-2b "$bin" bench video --model ltxv-2b --size 768x512 --frames 121 \
        --steps 3 --device cuda "${ref[@]}"
    row "bench video ltxv-2b 768x512x121" "$status" "${last_secs}s" "$(grep -iE 'ratio' "$last_log" | tail -n3 | tr -s ' ' | paste -sd';')"
    # Real-ESRGAN x4 (compact, RRDBNet) at 480p and RIFE 2x at 720p/1080p against the PyTorch
    # reference networks on the same GPU (frames per second, as ratios; goal >= 1).
    timed bench-post-cuda "$bin" bench post --device cuda --rounds 3
    row "bench post (cuda)" "$status" "${last_secs}s" "$(grep -iE 'ratio|fps' "$last_log" | tail -n4 | tr -s ' ' | paste -sd';')"
    # Whisper on the GPU against faster-whisper (ctranslate2, f16) on the same GPU, when its
    # wheel is installed; the CPU-only engines (Piper's host kernels, the GGUF LLM) for scale.
    timed bench-asr-cuda "$bin" bench asr --device cuda --rounds 2
    row "bench asr (cuda, f16)" "$status" "${last_secs}s" "$(grep -iE 'ratio|RTF' "$last_log" | tail -n2 | tr -s ' ' | paste -sd';')"
    for what in tts llm; do
        timed "bench-$what" "$bin" bench "$what" --threads 8 --rounds 1
        row "bench $what (cpu, 8 threads)" "$status" "${last_secs}s" "$(grep -iE 'ratio' "$last_log" | tail -n1 | tr -s ' ')"
    done
fi

echo
echo "gpu-check on $gpu (kernels sm_$CUDA_COMPUTE_CAP), logs in $prep/logs"
printf '%-34s %-6s %8s  %s\n' step result time figures
for r in "${rows[@]}"; do echo "$r"; done
grep -q ' FAIL ' <(printf '%s\n' "${rows[@]}") && exit 1
exit 0

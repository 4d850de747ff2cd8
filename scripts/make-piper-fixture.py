#!/usr/bin/env python3
"""Makes the VITS parity fixture: a Piper voice run by the reference runtime (onnxruntime)
on fixed phoneme ids with the noise off (noise_scale = noise_w = 0), so the output is
deterministic. `tests/piper_voice.rs` requires our candle engine to match it.

    python3 scripts/make-piper-fixture.py VOICE.onnx tests/fixtures/piper

Needs `onnxruntime` and `numpy` (e.g. the bench venv from scripts/bench-refs.sh). Writes
`NAME.json` (ids, scales, sample count, peak, runtime version) and `NAME.i16`
(the samples as little-endian int16, ×32767: 16-bit precision, half the size of float32)
per case. The ids are written out in the script, so the
fixture does not depend on the espeak-ng version that phonemized them.
"""
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

# Piper's ids for en_US-joe-medium: ^ _ p1 _ p2 _ … pn _ $ (^ = 1, _ = 0, $ = 2).
CASES = {
    # "həloʊ"
    "hello": [1, 0, 20, 0, 59, 0, 24, 0, 27, 0, 100, 0, 2],
    # "The quick brown fox, jumps over the lazy dog." as espeak-ng en-us IPA
    # (ðə kwˈɪk bɹˈaʊn fˈɑːks, dʒˈʌmps ˌoʊvɚ ðə lˈeɪzi dˈɑːɡ.)
    "fox": None,
}
FOX_IPA = "ðə kwˈɪk bɹˈaʊn fˈɑːks, dʒˈʌmps ˌoʊvɚ ðə lˈeɪzi dˈɑːɡ."


def ids_of(ipa, phoneme_map):
    ids = [phoneme_map["^"][0], phoneme_map["_"][0]]
    for ch in ipa:
        for i in phoneme_map[ch]:
            ids.append(i)
        ids.append(phoneme_map["_"][0])
    ids.append(phoneme_map["$"][0])
    return ids


def main():
    onnx, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    config = json.loads(Path(str(onnx) + ".json").read_text())
    CASES["fox"] = ids_of(FOX_IPA, config["phoneme_id_map"])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx), opts, providers=["CPUExecutionProvider"])
    for name, ids in CASES.items():
        scales = np.array([0.0, 1.0, 0.0], dtype=np.float32)
        audio = sess.run(
            None,
            {
                "input": np.array([ids], dtype=np.int64),
                "input_lengths": np.array([len(ids)], dtype=np.int64),
                "scales": scales,
            },
        )[0].astype("<f4").reshape(-1)
        pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2")
        (out / f"{name}.i16").write_bytes(pcm.tobytes())
        meta = {
            "voice": onnx.name,
            "ids": ids,
            "scales": scales.tolist(),
            "samples": int(audio.size),
            "peak": float(np.abs(audio).max()),
            "onnxruntime": ort.__version__,
        }
        (out / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
        print(f"{name}: {len(ids)} ids → {audio.size} samples, peak {meta['peak']:.3f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Makes the text-tokenizer parity fixtures of `reelsmith-diffusion` (crates/diffusion/src/tokenizer.rs)
in tests/fixtures/diffusion/tokenizer/.

Two private venvs outside the repo (no torch needed) and OpenAI's CLIP merges from PyPI:

    python3 -m venv /tmp/tokvenv && /tmp/tokvenv/bin/pip install transformers==5.23.0 \
        tokenizers==0.23.3 sentencepiece==0.2.3 protobuf==7.36.2
    python3 -m venv /tmp/tokvenv4 && /tmp/tokvenv4/bin/pip install transformers==4.57.3 \
        tokenizers==0.22.2 sentencepiece==0.2.3 protobuf==7.36.2      # must NOT have ftfy
    /tmp/tokvenv/bin/pip download open_clip_torch==3.3.0 --no-deps -d /tmp/tokdl
    (cd /tmp/tokdl && unzip -o open_clip_torch-3.3.0-py3-none-any.whl open_clip/bpe_simple_vocab_16e6.txt.gz)

    /tmp/tokvenv/bin/python scripts/make-tokenizer-fixture.py \
        --bpe /tmp/tokdl/open_clip/bpe_simple_vocab_16e6.txt.gz --py4 /tmp/tokvenv4/bin/python [--train-t5]

Why two transformers versions: transformers 4.x's `CLIPTokenizer` is the slow Python tokenizer
(BasicTokenizer clean-up when ftfy is missing) that diffusers used for years; in transformers 5.x
`CLIPTokenizer` is backed by the `tokenizers` library and differs on CJK, control/format
characters, final sigma and uppercase special tokens. The fixture holds the ids of both.

What it writes (the Rust tests assert exact id equality with `expected.json`):
- clip/bpe_simple_vocab_16e6.head.txt.gz: OpenAI's merges file cut to the lines CLIP uses (header +
  48894 merges, byte-identical to the first lines of the open_clip file, MIT licence).
- clip/vocab.json.gz, clip/merges.txt.gz: the same vocabulary as the files diffusers repos ship
  (`tokenizer/`), written by transformers 4's `save_pretrained`;
  clip/sd15/*.json and clip/sd2/*.json: that call's special_tokens_map.json and tokenizer_config.json
  with pad "<|endoftext|>" (SD 1.5, CLIP-L) and pad "!" (SD 2.x, SDXL's tokenizer_2).
- t5/spiece.model: a tiny SentencePiece unigram model (nmt_nfkc, T5 ids: pad 0, eos 1, unk 2) trained
  on generated English prompts (only retrained with --train-t5); t5/tokenizer.json.gz: transformers 5's
  T5Tokenizer conversion of it, as saved by `save_pretrained`.
- expected.json: per string the ids without special tokens, and the padded/truncated model input
  (CLIP: 77, T5: 256 as FLUX.1-schnell) from each reference.
"""
import argparse
import gzip
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "diffusion" / "tokenizer"
CLIP_MERGES = 49152 - 256 - 2  # 48894: the merges OpenAI's SimpleTokenizer (and HF) use
CLIP_MAX = 77
T5_MAX = 256

LONG_CLIP = (
    "a breathtaking panoramic landscape of an ancient elven city built into giant glowing trees, "
    "waterfalls cascading between crystal bridges, tiny lanterns floating in the misty air, a lone "
    "traveler in a red cloak standing on a cliff in the foreground, golden hour light, volumetric "
    "fog, ultra detailed matte painting, by greg rutkowski and alphonse mucha, octane render, 8k, "
    "sharp focus, award winning, trending on artstation, cinematic composition, rich colors"
)

CLIP_PROMPTS = [
    "a photo of a cat",
    "A Photo Of A CAT",
    "",
    "   ",
    "astronaut riding a horse on mars, highly detailed, 8k, trending on artstation",
    "a cat's toy isn't there, we're sure they've I'm you'll he'd",
    "IT'S ITS It'S DON'T",
    "don't can't won't shouldn't y'all",
    "'s 's's ''s 'S",
    "1234567890 3.14 -42 1,000,000",
    "hello!!! what??? ...  --- ((masterpiece)), [best quality], {tag:1.2}",
    "a, b; c: d! e? f.",
    "x^2 + y_1 = z * 3 / 4 % 5 & 6 | 7 @ 8 # 9 $ 10 ~ `",
    "email@example.com https://example.com/path?q=1&b=2",
    "quote \"double\" and \u2018smart\u2019 \u201cquotes\u201d \u2014 dash \u2013 en \u2026",
    "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e na\u00efve fa\u00e7ade",
    "\u00c5ngstr\u00f6m \u00c6r\u00f8sk\u00f8bing Stra\u00dfe \u00c9COLE",
    "e\u0301 cafe\u0301 a\u0300\u0301",
    "ma\u00f1ana el ni\u00f1o",
    "\u65e5\u672c\u306e\u732b",
    "\u4e00\u53ea\u53ef\u7231\u7684\u732b\u5728\u82b1\u56ed\u91cc",
    "\ud55c\uad6d\uc5b4 \uace0\uc591\uc774",
    "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "hindi \u0928\u092e\u0938\u094d\u0924\u0947",
    "thai \u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
    "\u03a3 \u039f\u0394\u039f\u03a3 \u03c3\u03bf\u03c6\u03cc\u03c2 \u03a3\u0391\u03a3",
    "\u0130stanbul \u00df \ufb01",
    "a cat \U0001f431 with a hat \U0001f3a9 \U0001f600\U0001f600",
    "family \U0001f468\u200d\U0001f469\u200d\U0001f467 emoji with ZWJ",
    "flag \U0001f1ef\U0001f1f5 and thumbs \U0001f44d\U0001f3fd",
    "tabs\tand\nnewlines\r\n  and   multiple     spaces",
    "  leading and trailing spaces   ",
    "zero\u200bwidth space and soft\u00adhyphen",
    "control\x07chars\x00and\ufffdreplacement",
    "non\u00a0breaking\u3000ideographic space",
    "line\u2028separator\u2029para",
    "\x85 NEL and \x1c file sep",
    "\uff46\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 \uff21\uff22\uff23\uff11\uff12\uff13",
    "\u00bd \u00b2 \u2103 \u2116 \u2122 \u00a9",
    "unicode digits \u0663 \u096a \u0e55",
    "CamelCaseWordsAndMIXEDcase",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "snake_case-and-kebab-case.and.dots",
    "<|startoftext|> hello <|endoftext|>",
    "a<|endoftext|>b",
    "<|ENDOFTEXT|> x <|endoftext|>!!",
    "wow!!! \u2014 so bright!",
    LONG_CLIP,
    " ".join(["a"] * 75),
    " ".join(["a"] * 76),
]

T5_STRINGS = [
    "a photo of a cat",
    "",
    "   ",
    "Hello World",
    "  leading   and trailing  ",
    "tabs\tand\nnewlines\r\nhere",
    "A cozy cabin in the snowy mountains at night, warm light in the window, highly detailed",
    "\uff46\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 \uff21\uff22\uff23\uff11\uff12\uff13",
    "\ufb01ne ligature \u00bd \u00b2 \u2103 \u2122",
    "caf\u00e9 cafe\u0301",
    "\uff5e fullwidth tilde ~",
    "zero\u200bwidth\u200cnon-joiner\u200djoiner",
    "control\x07\x1bchars",
    "unknown \u2603 snowman and \u65e5\u672c\u8a9e",
    "emoji \U0001f431\U0001f431 run",
    "\u2581 lower one eighth \u2581\u2581x",
    "\ufeffBOM start",
    "non\u00a0breaking\u3000space",
    "</s> <pad> <unk> <extra_id_0> specials",
    "\uff1cpad\uff1e \uff1c/s\uff1e fullwidth specials",
    "x\u2028y\u2029z",
    "\x85next line",
    "\u0130stanbul \u01c5 \u216b \u337b",
    "a\u0300\u0301 q\u0323\u0307",
    "\u1100\u1161 \ud55c\uad6d\uc5b4",
    "double  space",
    "quotes \u201csmart\u201d \u2018single\u2019 \u2014 em dash \u2026",
    "I'm sure it's 3.14 o'clock, isn't it?",
    "x\u00ady",
    "\ufffd replacement",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u03a3",
    "\x00nul",
    "UPPERCASE lowercase MiXeD Numbers 0123456789 1,000,000",
    " ".join(["The quick brown fox jumps over the lazy dog."] * 30),
]

# ---------------------------------------------------------------------------------------------
# transformers 4 (slow CLIPTokenizer): run as a child process under --py4.


def slow_clip_child(workdir):
    import transformers
    from transformers import CLIPTokenizer

    assert transformers.__version__.startswith("4."), transformers.__version__
    prompts = json.load(sys.stdin)
    res = {"transformers": transformers.__version__}
    for name, pad in (("sd15", "<|endoftext|>"), ("sd2", "!")):
        tok = CLIPTokenizer(f"{workdir}/vocab.json", f"{workdir}/merges.txt", pad_token=pad)
        assert tok.fix_text is None, "ftfy is installed in the transformers 4 venv; remove it"
        tok.save_pretrained(f"{workdir}/save_{name}")
        res[name] = [
            {
                "ids": tok(p, add_special_tokens=False).input_ids,
                "padded": tok(p, padding="max_length", max_length=CLIP_MAX, truncation=True).input_ids,
            }
            for p in prompts
        ]
    json.dump(res, sys.stdout)


# ---------------------------------------------------------------------------------------------


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1))
    bs += list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def build_clip_files(bpe_gz, workdir):
    """vocab.json + merges.txt exactly as OpenAI's SimpleTokenizer builds its vocabulary."""
    lines = gzip.open(bpe_gz).read().decode("utf-8").split("\n")
    merges = lines[1 : CLIP_MERGES + 1]
    assert len(merges) == CLIP_MERGES, len(merges)
    vocab = bytes_to_unicode()
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m.split(" ")) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408 and len(set(vocab)) == 49408
    with open(f"{workdir}/vocab.json", "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(f"{workdir}/merges.txt", "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(m + "\n" for m in merges))
    return lines[: CLIP_MERGES + 1]


def gz_write(path, data):
    # mtime=0 and no file name: the same input gives the same bytes.
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as f:
        f.write(data)


def make_t5_corpus():
    random.seed(7)
    nouns = """cat dog fox owl horse dragon robot astronaut wizard knight princess farmer sailor child woman
    man girl boy city village castle tower bridge river lake ocean mountain valley forest desert island
    garden field street market library kitchen bedroom window door table chair lamp candle book letter
    map clock mirror painting portrait statue ship boat train car bicycle airplane rocket balloon umbrella
    hat coat dress shoe glove scarf ring necklace crown apple orange lemon cherry bread cheese coffee tea
    soup cake flower rose tulip tree leaf branch stone sand snow rain storm cloud sky sun moon star
    planet galaxy nebula fire smoke light shadow night morning evening sunset sunrise winter summer
    autumn spring festival party wedding concert museum theater stadium harbor lighthouse cathedral
    temple""".split()
    adjs = """red blue green yellow purple orange golden silver black white gray pink brown bright dark pale
    vivid soft warm cold ancient modern futuristic vintage rustic elegant tiny huge tall short old young
    happy sad quiet noisy mysterious magical peaceful dramatic cinematic detailed realistic abstract
    surreal colorful misty foggy sunny rainy snowy frozen burning glowing shiny wooden metallic glass
    crystal velvet silk cozy lonely crowded empty""".split()
    verbs = """sitting standing walking running flying swimming dancing reading painting sleeping looking
    waiting hiding climbing floating falling shining burning singing playing holding carrying watching
    dreaming""".split()
    preps = "on in under over near behind beside above across through inside around".split()
    styles = ["highly detailed", "oil painting", "digital art", "photorealistic", "cinematic lighting",
              "watercolor", "8k resolution", "studio photo", "soft focus", "dramatic shadows",
              "trending on artstation", "by Claude Monet", "35mm film", "golden hour", "isometric view",
              "concept art", "unreal engine", "pencil sketch", "anime style"]
    extra = ["Hello World!", "The quick brown fox jumps over the lazy dog.",
             "It's 3.14 o'clock, isn't it? We're sure they've gone.",
             "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 2024 1,000,000.",
             "Cr\u00e8me br\u00fbl\u00e9e, jalape\u00f1o, fa\u00e7ade, Stra\u00dfe, \u00c5ngstr\u00f6m.",
             "E-mail me at someone@example.com or visit https://example.com/page?id=42&x=1.",
             "Quotes \"double\" and 'single' (parentheses) [brackets] {braces} <angles> #hash $dollar "
             "%percent ^caret *star +plus =equals |bar ~tilde `tick.",
             "UPPERCASE WORDS AND lowercase words And Title Case Words.",
             "Punctuation: commas, periods. semicolons; colons: dashes - and underscores_here! Questions? Yes!",
             "\u00dcber na\u00efve co\u00f6peration r\u00e9sum\u00e9 d\u00e9j\u00e0 vu pi\u00f1ata se\u00f1or.",
             "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u03b3\u03c1\u03ac\u03bc\u03bc\u03b1\u03c4\u03b1 "
             "\u03ba\u03b1\u03b9 \u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442.",
             "Tabs and\tnewlines\nare whitespace.", "Fractions like 1/2 and 3/4, powers x^2, sums a+b=c."]

    def a(word):
        return ("an " if word[0] in "aeiou" else "a ") + word

    lines = []
    for _ in range(6000):
        s = (f"{a(random.choice(adjs))} {random.choice(nouns)} {random.choice(verbs)} "
             f"{random.choice(preps)} the {random.choice(adjs)} {random.choice(nouns)}")
        for _ in range(random.randint(0, 3)):
            s += ", " + random.choice(styles)
        r = random.random()
        if r < 0.3:
            s = s[0].upper() + s[1:] + "."
        elif r < 0.35:
            s = s.upper()
        lines.append(s)
    lines += extra * 30
    random.shuffle(lines)
    return "\n".join(lines) + "\n"


def train_t5(path):
    import sentencepiece as spm

    with tempfile.TemporaryDirectory() as d:
        corpus = f"{d}/corpus.txt"
        Path(corpus).write_text(make_t5_corpus(), encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=corpus, model_prefix=f"{d}/m", vocab_size=800, model_type="unigram",
            normalization_rule_name="nmt_nfkc", character_coverage=1.0, pad_id=0, eos_id=1, unk_id=2,
            bos_id=-1, num_threads=1, minloglevel=2,
        )
        shutil.copy(f"{d}/m.model", path)


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bpe", help="open_clip's bpe_simple_vocab_16e6.txt.gz")
    ap.add_argument("--py4", help="python of the transformers 4.x venv (slow CLIPTokenizer)")
    ap.add_argument("--train-t5", action="store_true", help="retrain t5/spiece.model")
    ap.add_argument("--slow-clip-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.slow_clip_child:
        return slow_clip_child(args.slow_clip_child)
    if not args.bpe or not args.py4:
        ap.error("--bpe and --py4 are required")

    import sentencepiece as spm
    import tokenizers
    import transformers
    from transformers import CLIPTokenizer, T5Tokenizer

    assert transformers.__version__.startswith("5."), transformers.__version__
    (OUT / "clip" / "sd15").mkdir(parents=True, exist_ok=True)
    (OUT / "clip" / "sd2").mkdir(parents=True, exist_ok=True)
    (OUT / "t5").mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as work:
        # --- CLIP -----------------------------------------------------------------------------
        head = build_clip_files(args.bpe, work)
        gz_write(OUT / "clip" / "bpe_simple_vocab_16e6.head.txt.gz", ("\n".join(head) + "\n").encode("utf-8"))
        child = subprocess.run(
            [args.py4, __file__, "--slow-clip-child", work],
            input=json.dumps(CLIP_PROMPTS), capture_output=True, text=True, check=True,
        )
        slow = json.loads(child.stdout)
        for name in ("sd15", "sd2"):
            saved = Path(work) / f"save_{name}"
            for f in ("special_tokens_map.json", "tokenizer_config.json"):
                shutil.copy(saved / f, OUT / "clip" / name / f)
        saved = Path(work) / "save_sd2"
        gz_write(OUT / "clip" / "vocab.json.gz", (saved / "vocab.json").read_bytes())
        gz_write(OUT / "clip" / "merges.txt.gz", (saved / "merges.txt").read_bytes())
        assert json.loads((saved / "vocab.json").read_text()) == json.loads(Path(f"{work}/vocab.json").read_text())

        fast = {}
        for name, pad in (("sd15", "<|endoftext|>"), ("sd2", "!")):
            tok = CLIPTokenizer(f"{work}/vocab.json", f"{work}/merges.txt", pad_token=pad)
            fast[name] = [
                {
                    "ids": tok(p, add_special_tokens=False).input_ids,
                    "padded": tok(p, padding="max_length", max_length=CLIP_MAX, truncation=True).input_ids,
                }
                for p in CLIP_PROMPTS
            ]
        # Known ids of the real CLIP vocabulary (SD prompts everyone has seen).
        assert slow["sd15"][0]["padded"][:7] == [49406, 320, 1125, 539, 320, 2368, 49407]

        clip_cases = []
        for i, p in enumerate(CLIP_PROMPTS):
            clip_cases.append({
                "text": p,
                "slow": slow["sd15"][i]["ids"], "slow_padded": slow["sd15"][i]["padded"],
                "slow_sd2": slow["sd2"][i]["ids"], "slow_sd2_padded": slow["sd2"][i]["padded"],
                "fast": fast["sd15"][i]["ids"], "fast_padded": fast["sd15"][i]["padded"],
                "fast_sd2": fast["sd2"][i]["ids"], "fast_sd2_padded": fast["sd2"][i]["padded"],
            })

        # --- T5 -------------------------------------------------------------------------------
        model = OUT / "t5" / "spiece.model"
        if args.train_t5 or not model.exists():
            train_t5(model)
        sp = spm.SentencePieceProcessor(model_file=str(model))
        t5dir = Path(work) / "t5"
        t5dir.mkdir()
        shutil.copy(model, t5dir / "spiece.model")
        hf = T5Tokenizer.from_pretrained(str(t5dir))
        hf.save_pretrained(str(t5dir / "saved"))
        gz_write(OUT / "t5" / "tokenizer.json.gz", (t5dir / "saved" / "tokenizer.json").read_bytes())
        t5_cases = []
        for s in T5_STRINGS:
            t5_cases.append({
                "text": s,
                "spm": sp.encode(s),
                "hf": hf(s, add_special_tokens=False).input_ids,
                "hf_padded": hf(s, padding="max_length", max_length=T5_MAX, truncation=True).input_ids,
            })

    expected = {
        "made_by": "scripts/make-tokenizer-fixture.py",
        "versions": {
            "transformers_slow": slow["transformers"], "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__, "sentencepiece": spm.__version__,
        },
        "clip": {
            "source": {"file": "open_clip_torch 3.3.0: open_clip/bpe_simple_vocab_16e6.txt.gz", "sha256": sha256(args.bpe)},
            "max_length": CLIP_MAX,
            "cases": clip_cases,
        },
        "t5": {"max_length": T5_MAX, "cases": t5_cases},
    }
    # One case per line: reviewable diffs, small file.
    with open(OUT / "expected.json", "w", encoding="utf-8") as f:
        f.write("{\n")
        for k in ("made_by", "versions"):
            f.write(f"  {json.dumps(k)}: {json.dumps(expected[k], ensure_ascii=False)},\n")
        for fam, last in (("clip", False), ("t5", True)):
            body = expected[fam]
            f.write(f'  "{fam}": {{\n')
            for k, v in body.items():
                if k != "cases":
                    f.write(f"    {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)},\n")
            f.write('    "cases": [\n')
            rows = [json.dumps(c, ensure_ascii=False, separators=(",", ":")) for c in body["cases"]]
            f.write(",\n".join("      " + r for r in rows) + "\n    ]\n")
            f.write("  }\n" if last else "  },\n")
        f.write("}\n")
    json.loads((OUT / "expected.json").read_text(encoding="utf-8"))  # well-formed
    n_diff = sum(c["slow"] != c["fast"] for c in clip_cases)
    t_diff = sum(c["spm"] != c["hf"] for c in t5_cases)
    print(f"clip: {len(clip_cases)} prompts ({n_diff} differ between transformers 4 and 5); "
          f"t5: {len(t5_cases)} strings ({t_diff} differ between sentencepiece and transformers 5)")


if __name__ == "__main__":
    main()

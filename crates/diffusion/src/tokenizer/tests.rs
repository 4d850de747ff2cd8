use super::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/diffusion/tokenizer")
}

fn expected() -> Value {
    let path = fixtures().join("expected.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn gunzip_to(src: &Path, dst: &Path) {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(src).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    std::fs::write(dst, out).unwrap();
}

/// A diffusers-style `tokenizer/` folder: the HF-written vocab.json/merges.txt plus the
/// config files of `variant` (sd15: pad eos, sd2: pad "!").
fn clip_repo_dir(variant: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let clip = fixtures().join("clip");
    gunzip_to(&clip.join("vocab.json.gz"), &dir.path().join("vocab.json"));
    gunzip_to(&clip.join("merges.txt.gz"), &dir.path().join("merges.txt"));
    for f in ["special_tokens_map.json", "tokenizer_config.json"] {
        std::fs::copy(clip.join(variant).join(f), dir.path().join(f)).unwrap();
    }
    dir
}

fn short(text: &str) -> String {
    let s: String = text.chars().take(50).collect();
    format!("{s:?}")
}

/// Every CLIP case: `field` = ids without specials, `field_padded` = the 77-long input.
fn check_clip(tok: &ClipTokenizer, field: &str) -> usize {
    let exp = expected();
    let max_len = exp["clip"]["max_length"].as_u64().unwrap() as usize;
    let cases = exp["clip"]["cases"].as_array().unwrap();
    let mut bad = Vec::new();
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want = ids(&c[field]);
        let got = tok.encode(text);
        if got != want {
            bad.push(format!(
                "{} {field}: got {got:?}, want {want:?}",
                short(text)
            ));
        }
        let want = ids(&c[format!("{field}_padded")]);
        let got = tok.encode_padded(text, max_len, Pad::Configured);
        if got != want {
            bad.push(format!(
                "{} {field}_padded: got {got:?}, want {want:?}",
                short(text)
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
    cases.len()
}

#[test]
fn clip_openai_merges_give_the_hf_vocabulary() {
    let openai =
        ClipTokenizer::from_openai_bpe(fixtures().join("clip/bpe_simple_vocab_16e6.head.txt.gz"))
            .unwrap();
    let dir = clip_repo_dir("sd15");
    let hf = ClipTokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(openai.vocab_size(), 49408);
    assert_eq!(hf.vocab_size(), 49408);
    assert_eq!(openai.merges.len(), CLIP_MERGES);
    assert!(
        openai.vocab == hf.vocab,
        "vocab.json differs from the merges-built vocabulary"
    );
    assert!(
        openai.merges == hf.merges,
        "merges.txt differs from OpenAI's merges"
    );
    assert_eq!(
        (openai.bos_id(), openai.eos_id(), openai.pad_id()),
        (49406, 49407, 49407)
    );
    assert_eq!(
        (hf.bos_id(), hf.eos_id(), hf.pad_id()),
        (49406, 49407, 49407)
    );
    assert_eq!(hf.token_to_id("a</w>"), Some(320));
    assert_eq!(
        hf.encode_padded("a photo of a cat", 9, Pad::Eos),
        [49406, 320, 1125, 539, 320, 2368, 49407, 49407, 49407]
    );
}

#[test]
fn clip_matches_transformers_4_slow_tokenizer() {
    let sd15 = ClipTokenizer::from_dir(clip_repo_dir("sd15").path()).unwrap();
    assert_eq!(sd15.flavor(), ClipFlavor::TransformersSlow);
    assert!(check_clip(&sd15, "slow") >= 40);
    let sd2 = ClipTokenizer::from_dir(clip_repo_dir("sd2").path()).unwrap();
    assert_eq!(sd2.pad_id(), 0);
    check_clip(&sd2, "slow_sd2");
    // Older repos: only special_tokens_map.json names the pad token "!" (no
    // added_tokens_decoder); it must still be cut out of prompts.
    let old = clip_repo_dir("sd2");
    std::fs::remove_file(old.path().join("tokenizer_config.json")).unwrap();
    check_clip(&ClipTokenizer::from_dir(old.path()).unwrap(), "slow_sd2");
    // The OpenAI merges file gives the same ids.
    let openai =
        ClipTokenizer::from_openai_bpe(fixtures().join("clip/bpe_simple_vocab_16e6.head.txt.gz"))
            .unwrap();
    check_clip(&openai, "slow");
    check_clip(&openai.with_pad_token("!").unwrap(), "slow_sd2");
}

#[test]
fn clip_matches_transformers_5_tokenizers() {
    let sd15 = ClipTokenizer::from_dir(clip_repo_dir("sd15").path())
        .unwrap()
        .with_flavor(ClipFlavor::Tokenizers);
    check_clip(&sd15, "fast");
    let sd2 = ClipTokenizer::from_dir(clip_repo_dir("sd2").path())
        .unwrap()
        .with_flavor(ClipFlavor::Tokenizers);
    check_clip(&sd2, "fast_sd2");
}

/// The prompts on which transformers 4 (slow) and 5 (tokenizers) disagree: the cases listed
/// in the module docs, nothing else.
#[test]
fn clip_flavors_differ_where_documented() {
    let exp = expected();
    let differ: Vec<&str> = exp["clip"]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["slow"] != c["fast"])
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    let documented = [
            "\u{65e5}\u{672c}\u{306e}\u{732b}",
            "\u{4e00}\u{53ea}\u{53ef}\u{7231}\u{7684}\u{732b}\u{5728}\u{82b1}\u{56ed}\u{91cc}",
            "\u{3a3} \u{39f}\u{394}\u{39f}\u{3a3} \u{3c3}\u{3bf}\u{3c6}\u{3cc}\u{3c2} \u{3a3}\u{391}\u{3a3}",
            "family \u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467} emoji with ZWJ",
            "zero\u{200b}width space and soft\u{ad}hyphen",
            "control\u{7}chars\u{0}and\u{fffd}replacement",
            "\u{85} NEL and \u{1c} file sep",
            "<|ENDOFTEXT|> x <|endoftext|>!!",
        ];
    assert_eq!(differ, documented);
}

#[test]
fn clip_truncation_is_reported() {
    let tok = ClipTokenizer::from_dir(clip_repo_dir("sd15").path()).unwrap();
    let exp = expected();
    let mut seen_cut = false;
    for c in exp["clip"]["cases"].as_array().unwrap() {
        let text = c["text"].as_str().unwrap();
        let n = ids(&c["slow"]).len();
        let r = tok.encode_padded_report(text, 77, Pad::Configured);
        assert_eq!(r.ids.len(), 77);
        assert_eq!(r.truncated, n.saturating_sub(75), "{}", short(text));
        assert_eq!(r.len, n.min(75) + 2);
        assert_eq!(r.ids[r.len - 1], tok.eos_id());
        seen_cut |= r.truncated > 0;
    }
    assert!(seen_cut, "the fixture has a prompt longer than 77 tokens");
    let a75 = vec!["a"; 75].join(" ");
    assert_eq!(tok.encode_padded_report(&a75, 77, Pad::Eos).truncated, 0);
    let a76 = vec!["a"; 76].join(" ");
    let r = tok.encode_padded_report(&a76, 77, Pad::Eos);
    assert_eq!((r.truncated, r.len, r.ids[76]), (1, 77, 49407));
    let r = tok.encode_padded_report("a cat", 6, Pad::Id(0));
    assert_eq!(r.ids, [49406, 320, 2368, 49407, 0, 0]);
    assert_eq!(
        tok.encode_padded("", 3, Pad::Configured),
        [49406, 49407, 49407]
    );
}

fn t5_check(tok: &T5Tokenizer, field: &str, padded: Option<&str>) -> usize {
    let exp = expected();
    let max_len = exp["t5"]["max_length"].as_u64().unwrap() as usize;
    let cases = exp["t5"]["cases"].as_array().unwrap();
    let mut bad = Vec::new();
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want = ids(&c[field]);
        let got = tok.encode(text);
        if got != want {
            bad.push(format!(
                "{} {field}: got {got:?}, want {want:?}",
                short(text)
            ));
        }
        let want = match padded {
            Some(f) => ids(&c[f]),
            None => pad_ids(None, &want, 1, 0, max_len).ids,
        };
        let got = tok.encode_padded(text, max_len);
        if got != want {
            bad.push(format!(
                "{} padded: got {got:?}, want {want:?}",
                short(text)
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
    cases.len()
}

#[test]
fn t5_spiece_model_fields() {
    let path = fixtures().join("t5/spiece.model");
    let m = parse_spm_model(&std::fs::read(&path).unwrap(), &path).unwrap();
    assert_eq!(m.pieces.len(), 800);
    assert_eq!(m.model_type, 1);
    assert_eq!((m.pad_id, m.eos_id, m.unk_id), (0, 1, 2));
    assert_eq!(m.normalizer_name, "nmt_nfkc");
    assert!(m.add_dummy_prefix && m.remove_extra_whitespaces && m.escape_whitespaces);
    assert!(!m.charsmap.is_empty());
    assert_eq!(m.pieces[1].piece, "</s>");
    assert_eq!(m.pieces[1].kind, PieceKind::Control);
    assert_eq!(m.pieces[2].kind, PieceKind::Unknown);
    assert!(m.pieces[5].score < 0.0);
    let tok = T5Tokenizer::from_spiece_model(&path).unwrap();
    assert_eq!((tok.pad_id(), tok.eos_id(), tok.unk_id()), (0, 1, 2));
    assert_eq!(tok.vocab_size(), 900);
    assert_eq!(tok.token_to_id("<extra_id_0>"), Some(899));
    assert_eq!(tok.token_to_id("<extra_id_99>"), Some(800));
}

#[test]
fn t5_matches_sentencepiece() {
    let tok = T5Tokenizer::from_spiece_model(fixtures().join("t5/spiece.model"))
        .unwrap()
        .with_flavor(T5Flavor::SentencePiece);
    assert!(t5_check(&tok, "spm", None) >= 30);
}

#[test]
fn t5_matches_transformers() {
    let tok = T5Tokenizer::from_spiece_model(fixtures().join("t5/spiece.model")).unwrap();
    assert_eq!(tok.flavor(), T5Flavor::Tokenizers);
    t5_check(&tok, "hf", Some("hf_padded"));
    let dir = tempfile::tempdir().unwrap();
    gunzip_to(
        &fixtures().join("t5/tokenizer.json.gz"),
        &dir.path().join("tokenizer.json"),
    );
    let tok = T5Tokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(tok.vocab_size(), 900);
    t5_check(&tok, "hf", Some("hf_padded"));
}

/// Equal scores: the first candidate found for an end position stays (`▁ab` = -2 against
/// `▁a` + `b` = -1 + -1); runs of unknown characters are one `<unk>`. Expected ids from
/// `tokenizers` 0.23.3 with this vocabulary.
#[test]
fn t5_viterbi_keeps_the_first_best_on_ties() {
    let dir = tempfile::tempdir().unwrap();
    let json = r#"{"added_tokens": [], "normalizer": null,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"},
                {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": true}]},
            "model": {"type": "Unigram", "unk_id": 2, "byte_fallback": false, "vocab": [
                ["<pad>", 0.0], ["</s>", 0.0], ["<unk>", 0.0], ["\u2581", -3.0], ["\u2581a", -1.0],
                ["b", -1.0], ["\u2581ab", -2.0], ["a", -4.0], ["c", -4.0]]}}"#;
    std::fs::write(dir.path().join("tokenizer.json"), json).unwrap();
    let tok = T5Tokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(tok.encode("ab"), [6]);
    assert_eq!(tok.encode("ab ab"), [6, 6]);
    assert_eq!(tok.encode("abc"), [6, 8]);
    assert_eq!(tok.encode("xyz ab"), [3, 2, 6]);
    assert_eq!(tok.encode("a\u{2603}\u{2603}b"), [4, 2, 5]);
}

#[test]
fn t5_truncation_is_reported() {
    let tok = T5Tokenizer::from_spiece_model(fixtures().join("t5/spiece.model")).unwrap();
    let exp = expected();
    let long = exp["t5"]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| ids(&c["hf"]).len() > 256)
        .expect("a string longer than 256 tokens");
    let n = ids(&long["hf"]).len();
    let r = tok.encode_padded_report(long["text"].as_str().unwrap(), 256);
    assert_eq!((r.ids.len(), r.len, r.truncated), (256, 256, n - 255));
    assert_eq!(r.ids[255], 1);
    let r = tok.encode_padded_report("a photo of a cat", 10);
    assert_eq!(r.ids, [6, 79, 5, 51, 6, 300, 1, 0, 0, 0]);
    assert_eq!((r.len, r.truncated), (7, 0));
}

/// The examples of the T5 docs: charsmap (sentencepiece), charsmap (tokenizers), rules.
#[test]
fn t5_charsmap_versus_rules_examples() {
    let path = fixtures().join("t5/spiece.model");
    let m = parse_spm_model(&std::fs::read(&path).unwrap(), &path).unwrap();
    let table = CharsMap::parse(&m.charsmap, &path).unwrap();
    let spm = |s: &str| {
        let mut out = String::new();
        let mut rest = s;
        while !rest.is_empty() {
            let (rep, used) = table.spm_prefix(rest);
            out.push_str(rep);
            rest = &rest[used..];
        }
        out
    };
    let cases = [
        // input, sentencepiece, tokenizers, rules
        (
            "A\u{30a} \u{212b}",
            "\u{c5} \u{c5}",
            "\u{c5} \u{c5}",
            "\u{c5} \u{c5}",
        ),
        ("\u{ff21}\u{2460}\u{fb01}", "A1fi", "A1fi", "A1fi"),
        ("\u{ff5e}\t\u{7}x", "\u{ff5e} x", "\u{ff5e} x", "\u{ff5e} x"),
        (
            "a\u{300}\u{301}",
            "\u{e0}\u{301}",
            "\u{e0}",
            "\u{e0}\u{301}",
        ),
        ("a\u{308}\u{304}", "\u{1df}", "\u{e4}", "\u{1df}"),
        (
            "\u{3b1}\u{313}\u{301}\u{345}",
            "\u{1f84}",
            "\u{3b1}\u{313}\u{301}\u{345}",
            "\u{1f84}",
        ),
        (
            "q\u{307}\u{323}",
            "q\u{307}\u{323}",
            "q\u{307}\u{323}",
            "q\u{323}\u{307}",
        ),
        ("\u{fb01}\u{301}", "fi\u{301}", "fi", "f\u{ed}"),
        ("\u{1e9b}\u{323}", "\u{1e61}\u{323}", "\u{1e61}", "\u{1e69}"),
        ("\u{61c}", " ", " ", "\u{61c}"),
        ("\u{209d}", "\u{209d}", "\u{209d}", "w"),
    ];
    for (input, want_spm, want_hf, want_rules) in cases {
        let got = (spm(input), table.hf_normalize(input), nmt_nfkc_rules(input));
        assert_eq!(
            got,
            (
                want_spm.to_string(),
                want_hf.to_string(),
                want_rules.to_string()
            ),
            "{input:?}"
        );
    }
}

/// NFKC + NMT rules instead of the charsmap: equal except where documented.
#[test]
fn t5_rule_normalizer_differs_only_where_documented() {
    let exp = expected();
    let path = fixtures().join("t5/spiece.model");
    let hf = T5Tokenizer::from_spiece_model(&path)
        .unwrap()
        .with_rule_normalizer();
    let spm = T5Tokenizer::from_spiece_model(&path)
        .unwrap()
        .with_rule_normalizer()
        .with_flavor(T5Flavor::SentencePiece);
    let mut differ = Vec::new();
    for c in exp["t5"]["cases"].as_array().unwrap() {
        let text = c["text"].as_str().unwrap();
        if hf.encode(text) != ids(&c["hf"]) {
            differ.push(format!("hf {text:?}"));
        }
        if spm.encode(text) != ids(&c["spm"]) {
            differ.push(format!("spm {text:?}"));
        }
    }
    // The one fixture string hit by the grapheme rule of `tokenizers` (see the T5 docs).
    assert_eq!(differ, ["hf \"a\\u{300}\\u{301} q\\u{323}\\u{307}\""]);
}

#[test]
fn errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Missing file.
    let err = ClipTokenizer::from_dir(d).unwrap_err();
    assert!(matches!(err, TokenizerError::Io { .. }), "{err}");
    assert!(err.to_string().contains("vocab.json"), "{err}");
    // Bad JSON.
    std::fs::write(d.join("vocab.json"), "{\"a\": 1,").unwrap();
    std::fs::write(d.join("merges.txt"), "#version: 0.2\n").unwrap();
    let err = ClipTokenizer::from_dir(d).unwrap_err();
    assert!(matches!(err, TokenizerError::Json { .. }), "{err}");
    assert!(err.to_string().contains("vocab.json: bad JSON"), "{err}");
    // Bad merges line 3 (1-based, the header is line 1).
    let vocab = r#"{"a": 0, "b": 1, "ab": 2, "<|startoftext|>": 3, "<|endoftext|>": 4}"#;
    std::fs::write(d.join("vocab.json"), vocab).unwrap();
    std::fs::write(d.join("merges.txt"), "#version: 0.2\na b\nab\n").unwrap();
    let err = ClipTokenizer::from_dir(d).unwrap_err();
    assert!(
        matches!(err, TokenizerError::MergesLine { line: 3, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("merges.txt: bad merges line 3"),
        "{err}"
    );
    std::fs::write(d.join("merges.txt"), "#version: 0.2\na b\nb c\n").unwrap();
    let err = ClipTokenizer::from_dir(d).unwrap_err();
    assert!(
        err.to_string()
            .contains("line 3: \"c\" is not in the vocabulary"),
        "{err}"
    );
    // A pad token that is not in the vocabulary.
    std::fs::write(d.join("merges.txt"), "#version: 0.2\na b\n").unwrap();
    std::fs::write(d.join("special_tokens_map.json"), r#"{"pad_token": "!"}"#).unwrap();
    let err = ClipTokenizer::from_dir(d).unwrap_err();
    assert!(
        err.to_string()
            .contains("pad_token \"!\" is not in the vocabulary"),
        "{err}"
    );
    // A pad token that is not in the vocabulary, set by hand.
    let tok =
        ClipTokenizer::from_openai_bpe(fixtures().join("clip/bpe_simple_vocab_16e6.head.txt.gz"))
            .unwrap();
    let err = tok.with_pad_token("no such token").unwrap_err();
    assert!(matches!(err, TokenizerError::UnknownToken { .. }), "{err}");
    // Truncated protobuf.
    let model = std::fs::read(fixtures().join("t5/spiece.model")).unwrap();
    let cut = d.join("cut.model");
    std::fs::write(&cut, &model[..model.len() / 2]).unwrap();
    let err = T5Tokenizer::from_spiece_model(&cut).unwrap_err();
    assert!(matches!(err, TokenizerError::Protobuf { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("cut.model: truncated or malformed protobuf"),
        "{err}"
    );
    let err = T5Tokenizer::from_spiece_model(d.join("none.model")).unwrap_err();
    assert!(err.to_string().contains("none.model"), "{err}");
    // Bad tokenizer.json.
    std::fs::write(d.join("tokenizer.json"), r#"{"model": {"type": "BPE"}}"#).unwrap();
    let err = T5Tokenizer::from_dir(d).unwrap_err();
    assert!(err.to_string().contains("model type \"BPE\""), "{err}");
}

#[test]
fn special_tokens_split_leftmost_longest_and_strip() {
    let sp = |c: &str, id, lstrip, rstrip| SpecialToken {
        content: c.to_string(),
        id,
        lstrip,
        rstrip,
    };
    let specials = [
        sp("<a>", 1, false, false),
        sp("<a><b>", 2, false, false),
        sp("!", 3, true, true),
    ];
    let show = |t: &str| -> Vec<String> {
        split_specials(t, &specials)
            .into_iter()
            .map(|s| match s {
                Segment::Text(t) => format!("{t:?}"),
                Segment::Special(id) => id.to_string(),
            })
            .collect()
    };
    assert_eq!(
        show("x<a><b>y<a> z"),
        ["\"x\"", "2", "\"y\"", "1", "\" z\""]
    );
    assert_eq!(show("x  !  y!"), ["\"x\"", "3", "\"y\"", "3"]);
    assert_eq!(show(""), Vec::<String>::new());
}

#[test]
fn base64_round_trip() {
    assert_eq!(base64_decode("aGVsbG8gd29ybGQ=").unwrap(), b"hello world");
    assert_eq!(base64_decode("AAEC/w==").unwrap(), [0, 1, 2, 255]);
    assert!(base64_decode("a*b").is_none());
}

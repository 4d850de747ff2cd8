use super::*;

const W: usize = DEFAULT_MAX_WIDTH;
const L: usize = DEFAULT_MAX_LINES;

/// Every chunk has 1..=max_lines non-empty, trimmed lines of width <= max_width.
fn assert_layout(chunks: &[Vec<String>], max_width: usize, max_lines: usize) {
    assert!(!chunks.is_empty());
    for chunk in chunks {
        assert!(
            (1..=max_lines).contains(&chunk.len()),
            "bad line count: {chunk:?}"
        );
        for line in chunk {
            assert!(!line.is_empty(), "empty line in {chunk:?}");
            assert_eq!(line.trim(), line, "untrimmed line {line:?}");
            assert!(
                display_width(line) <= max_width,
                "line {line:?} is {} wide (max {max_width})",
                display_width(line)
            );
            let first = line.chars().next().unwrap();
            assert!(
                char_width(first) > 0,
                "line {line:?} starts with a combining mark"
            );
        }
    }
}

fn strip_ws(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// No text lost, duplicated or reordered.
fn assert_same_text(chunks: &[Vec<String>], text: &str) {
    let joined: String = chunks.iter().flatten().map(|l| strip_ws(l)).collect();
    assert_eq!(joined, strip_ws(text));
}

fn lines(chunks: &[Vec<String>]) -> Vec<&str> {
    chunks.iter().flatten().map(String::as_str).collect()
}

// ---------------------------------------------------------------- width

#[test]
fn width_latin_and_cyrillic() {
    assert_eq!(display_width("Hello, world!"), 13);
    assert_eq!(display_width("café"), 4);
    assert_eq!(display_width("cafe\u{301}"), 4, "combining acute counts 0");
    assert_eq!(display_width("Привет"), 6);
    assert_eq!(display_width(""), 0);
}

#[test]
fn width_japanese() {
    assert_eq!(display_width("日本語"), 6);
    assert_eq!(display_width("ひらがなカタカナ"), 16);
    assert_eq!(display_width("、。「」ー"), 10);
    assert_eq!(display_width("ＡＢＣ"), 6, "fullwidth forms");
    assert_eq!(display_width("ｶﾀｶﾅ"), 4, "halfwidth katakana");
    assert_eq!(display_width("か\u{3099}"), 2, "combining dakuten");
    assert_eq!(display_width("iPhone で"), 9);
}

#[test]
fn width_chinese_and_hangul() {
    assert_eq!(display_width("中文，标点。"), 12);
    assert_eq!(display_width("你好！"), 6);
    assert_eq!(display_width("한국어"), 6);
}

#[test]
fn width_hindi() {
    // न म स ् त े: virama and vowel sign are zero width.
    assert_eq!(display_width("नमस्ते"), 4);
    assert_eq!(display_width("हिन्दी"), 3);
    assert_eq!(display_width("कि।"), 2);
}

#[test]
fn width_bengali() {
    // ব া ং ল া: vowel signs and anusvara are zero width.
    assert_eq!(display_width("বাংলা"), 2);
    assert_eq!(display_width("আমি"), 2);
}

#[test]
fn width_arabic() {
    assert_eq!(display_width("مرحبا"), 5);
    assert_eq!(display_width("مَرْحَبًا"), 5, "harakat are zero width");
    assert_eq!(display_width("؟،"), 2);
}

#[test]
fn width_emoji_and_controls() {
    assert_eq!(display_width("👍"), 2);
    assert_eq!(display_width("👨\u{200D}👩\u{200D}👧"), 2);
    assert_eq!(display_width("a\u{200F}b\u{FE0F}"), 2);
}

// ---------------------------------------------------------------- chunking

#[test]
fn empty_text_has_no_chunks() {
    assert!(chunk_text("", "en", W, L).is_empty());
    assert!(chunk_text(" \n\t  ", "en", W, L).is_empty());
    assert!(chunk_text("\u{3000}", "ja", W, L).is_empty());
}

#[test]
fn short_text_is_one_line() {
    assert_eq!(
        chunk_text("  Hello   there.  ", "en", W, L),
        vec![vec!["Hello there.".to_string()]]
    );
}

const ENGLISH: &str = "Welcome back to the channel. Today we are going to look at how \
    rivers shape the landscape over thousands of years, and why some of them carve deep \
    canyons while others meander slowly across wide plains. Along the way we will meet \
    the geologists who spent their lives measuring sediment, one bucket at a time. \
    Let's begin.";

#[test]
fn long_english_fits() {
    let chunks = chunk_text(ENGLISH, "en", W, L);
    assert_layout(&chunks, W, L);
    assert_same_text(&chunks, ENGLISH);
    // Words are never split: every line is made of whole source words.
    let words: Vec<&str> = ENGLISH.split_whitespace().collect();
    for line in lines(&chunks) {
        for w in line.split(' ') {
            assert!(words.contains(&w), "{w:?} is not a source word");
        }
    }
    assert!(chunks.len() >= 4);
}

#[test]
fn lines_are_balanced() {
    let text = "The quick brown fox jumps over the lazy dog again.";
    assert_eq!(text.len(), 50);
    let chunks = chunk_text(text, "en", W, L);
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].len(), 2);
    let (a, b) = (display_width(&chunks[0][0]), display_width(&chunks[0][1]));
    assert!(a.abs_diff(b) <= 10, "unbalanced: {chunks:?}");
}

#[test]
fn prefers_sentence_then_clause_breaks() {
    let chunks = chunk_text(
        "The storm arrived at dawn. Everyone in the village ran for shelter.",
        "en",
        W,
        L,
    );
    assert_eq!(
        chunks,
        vec![vec![
            "The storm arrived at dawn.".to_string(),
            "Everyone in the village ran for shelter.".to_string()
        ]]
    );
    let chunks = chunk_text(
        "When the rain finally stopped, the children ran outside to play.",
        "en",
        W,
        L,
    );
    assert_eq!(chunks[0][0], "When the rain finally stopped,");
}

#[test]
fn chunks_are_balanced() {
    // ~90 columns, no punctuation: must not leave a one-word last chunk.
    let text = "one two three four five six seven eight nine ten eleven twelve \
                thirteen fourteen fifteen";
    let chunks = chunk_text(text, "en", W, L);
    assert_layout(&chunks, W, L);
    assert_eq!(chunks.len(), 2);
    let widths: Vec<usize> = chunks
        .iter()
        .map(|c| c.iter().map(|l| display_width(l)).sum())
        .collect();
    assert!(widths[1] >= 25, "short last chunk: {chunks:?}");
    assert!(widths[0].abs_diff(widths[1]) <= 30, "{chunks:?}");
}

#[test]
fn short_sentences_share_a_chunk() {
    assert_eq!(chunk_text("Hi. How are you?", "en", W, L).len(), 1);
}

#[test]
fn blank_line_starts_a_new_chunk() {
    let chunks = chunk_text("First part\n\nsecond part", "en", W, L);
    assert_eq!(chunks.len(), 2);
    // A single newline is just a space.
    assert_eq!(chunk_text("First part\nsecond part", "en", W, L).len(), 1);
}

#[test]
fn german_long_compound_is_hard_broken() {
    let word = "Donaudampfschifffahrtsgesellschaftskapitänsmützenherstellungsbetriebsleitung";
    assert!(display_width(word) > W);
    let text = format!("Die {word} hat heute entschieden, dass alles so bleibt.");
    let chunks = chunk_text(&text, "de", W, L);
    assert_layout(&chunks, W, L);
    assert_same_text(&chunks, &text);
    // The pieces of the word, in order, rebuild it.
    let all: String = lines(&chunks).concat();
    assert!(all.replace(' ', "").contains(word));
    // Other words stay whole.
    for w in ["entschieden,", "bleibt."] {
        assert!(lines(&chunks).iter().any(|l| l.split(' ').any(|x| x == w)));
    }
}

#[test]
fn over_long_word_prefers_hyphen() {
    let word = "state-of-the-art-semiconductor-manufacturing-processes";
    let chunks = chunk_text(word, "en", W, L);
    assert_layout(&chunks, W, L);
    assert_eq!(chunks.len(), 1);
    assert!(chunks[0][0].ends_with('-'), "{chunks:?}");
}

const JAPANESE: &str = "今日は、東京の新しいカフェ「ブルーボトル」に行ってきました。\
    コーヒーはとても美味しかったです！また行きたいと思います。\
    iPhoneで写真をたくさん撮ったので、あとでみんなに見せますね。\
    ちょっと待ってください、もう一つ話したいことがあります。";

fn assert_kinsoku(chunks: &[Vec<String>]) {
    const NO_START: &str = "、。，．！？」』）】〉》ーっゃゅょッャュョァィゥェォぁぃぅぇぉ";
    const NO_END: &str = "「『（【〈《";
    for line in lines(chunks) {
        let first = line.chars().next().unwrap();
        let last = line.chars().next_back().unwrap();
        assert!(
            !NO_START.contains(first),
            "line starts with {first}: {line}"
        );
        assert!(!NO_END.contains(last), "line ends with {last}: {line}");
    }
}

#[test]
fn long_japanese_fits_with_kinsoku() {
    let chunks = chunk_text(JAPANESE, "ja", W, L);
    assert_layout(&chunks, W, L);
    assert_same_text(&chunks, JAPANESE);
    assert_kinsoku(&chunks);
    assert!(
        lines(&chunks).iter().any(|l| l.contains("iPhone")),
        "Latin word split: {chunks:?}"
    );
    // 21 fullwidth characters per line at most.
    for line in lines(&chunks) {
        if !line.is_ascii() && !line.contains("iPhone") {
            assert!(line.chars().count() <= 21);
        }
    }
}

#[test]
fn japanese_kinsoku_forced_cases() {
    // Greedy 21-character lines would start a line with 。, ッ and ー, and
    // end one with 「.
    let cases = [
        format!("{}。{}", "あ".repeat(21), "い".repeat(10)),
        format!("{}ッ{}", "カ".repeat(21), "タ".repeat(10)),
        format!("{}ーヒー{}", "コ".repeat(21), "は".repeat(10)),
        format!("{}「引用」です", "な".repeat(20)),
        format!("{}」と言った", "ね".repeat(21)),
    ];
    for text in &cases {
        for width in [42, 20, 10] {
            let chunks = chunk_text(text, "ja", width, 1);
            assert_layout(&chunks, width, 1);
            assert_same_text(&chunks, text);
            assert_kinsoku(&chunks);
        }
    }
}

#[test]
fn long_chinese_fits_with_kinsoku() {
    let text = "今天我们来聊一聊人工智能的发展历史，以及它在未来可能给我们的生活带来哪些变化。\
        你准备好了吗？“机器学习”这个词，最早出现在一九五九年（当时还没有互联网）。";
    let chunks = chunk_text(text, "zh", W, L);
    assert_layout(&chunks, W, L);
    assert_same_text(&chunks, text);
    assert_kinsoku(&chunks);
    for line in lines(&chunks) {
        assert!(!line.starts_with('”') && !line.ends_with('“'), "{line}");
    }
}

const HINDI: &str = "नमस्ते दोस्तों, आज हम बात करेंगे कि नदियाँ हज़ारों वर्षों में परिदृश्य को कैसे आकार \
    देती हैं। यह एक बहुत ही रोचक विषय है, और इसमें भूगोल, इतिहास और विज्ञान तीनों शामिल हैं। चलिए शुरू करते हैं।";

#[test]
fn long_hindi_fits() {
    let chunks = chunk_text(HINDI, "hi", W, L);
    assert_layout(&chunks, W, L);
    assert_same_text(&chunks, HINDI);
    // The danda stays with its word and sentence ends are used as breaks.
    for line in lines(&chunks) {
        assert!(!line.starts_with('।'));
    }
    assert!(lines(&chunks).iter().any(|l| l.ends_with("हैं।")));
}

#[test]
fn hard_break_never_splits_graphemes() {
    // A long Devanagari "word" forced into tiny lines: no line may start with
    // a vowel sign or virama, and conjuncts (क्ष) stay together.
    let word = "क्षत्रियोंकीपरिदृश्यविज्ञानशास्त्रीयअध्ययनक्षेत्र".repeat(2);
    for width in [3, 5, 8] {
        let chunks = chunk_text(&word, "hi", width, 1);
        assert_layout(&chunks, width, 1);
        assert_same_text(&chunks, &word);
        for line in lines(&chunks) {
            assert!(!line.ends_with('\u{094D}'), "line ends in a virama: {line}");
        }
    }
    let bengali = "আন্তর্জাতিকভাবেস্বীকৃতবিশ্ববিদ্যালয়েরশিক্ষার্থীরা";
    let chunks = chunk_text(bengali, "bn", 6, 1);
    assert_layout(&chunks, 6, 1);
    assert_same_text(&chunks, bengali);
    let arabic = "وَسَيَكْفِيكَهُمُاللَّهُوَهُوَالسَّمِيعُالْعَلِيمُ";
    let chunks = chunk_text(arabic, "ar", 4, 1);
    assert_layout(&chunks, 4, 1);
    assert_same_text(&chunks, arabic);
}

const ARABIC: &str = "مرحبا بكم في قناتنا، اليوم سنتحدث عن كيفية تشكيل الأنهار للمناظر الطبيعية \
    عبر آلاف السنين. هل أنتم مستعدون؟ لنبدأ رحلتنا من منابع النيل العظيم حتى مصبه في البحر.";

#[test]
fn long_arabic_fits_in_reading_order() {
    let chunks = chunk_text(ARABIC, "ar", W, L);
    assert_layout(&chunks, W, L);
    assert_same_text(&chunks, ARABIC);
    // Logical order is kept: the first line holds the first words.
    assert!(chunks[0][0].starts_with("مرحبا بكم"));
    assert!(lines(&chunks).last().unwrap().ends_with("البحر."));
    assert!(lines(&chunks).iter().all(|l| !l.starts_with('؟')));
}

#[test]
fn bengali_and_russian_fit() {
    let bn = "আজ আমরা আলোচনা করব কীভাবে নদী হাজার হাজার বছর ধরে ভূদৃশ্য গঠন করে। এটি একটি খুব \
              আকর্ষণীয় বিষয়, এবং এতে ভূগোল, ইতিহাস ও বিজ্ঞান সবই আছে।";
    let chunks = chunk_text(bn, "bn", W, L);
    assert_layout(&chunks, W, L);
    assert_same_text(&chunks, bn);
    let ru = "Сегодня мы поговорим о том, как реки формируют ландшафт на протяжении тысяч лет, \
              и почему некоторые из них прорезают глубокие каньоны.";
    let chunks = chunk_text(ru, "ru", W, L);
    assert_layout(&chunks, W, L);
    assert_same_text(&chunks, ru);
}

#[test]
fn french_spaced_punctuation_stays_attached() {
    let text = "« Bonjour ! » dit-il ; puis : « Au revoir ? »";
    for width in [14, 16, 20, 30] {
        let chunks = chunk_text(text, "fr", width, 2);
        assert_same_text(&chunks, text);
        for line in lines(&chunks) {
            for p in ['!', '?', ';', ':', '»'] {
                assert!(!line.starts_with(p), "{line:?} starts with {p}");
            }
            assert!(!line.ends_with('«'), "{line:?}");
        }
    }
}

#[test]
fn max_lines_and_width_are_respected() {
    for (w, l) in [(20, 1), (30, 3), (10, 2)] {
        let chunks = chunk_text(ENGLISH, "en", w, l);
        assert_layout(&chunks, w, l);
        assert_same_text(&chunks, ENGLISH);
        let chunks = chunk_text(JAPANESE, "ja", w, l);
        assert_layout(&chunks, w, l);
        assert_same_text(&chunks, JAPANESE);
    }
}

// ---------------------------------------------------------------- timing

fn assert_tiling(cues: &[Cue], start: f64, end: f64) {
    assert_eq!(cues.first().unwrap().start, start);
    assert_eq!(cues.last().unwrap().end, end);
    for c in cues {
        assert!(c.start <= c.end, "{c:?}");
        for t in [c.start, c.end] {
            assert_eq!((t * 1000.0).round() / 1000.0, t, "not ms-rounded: {t}");
        }
    }
    for pair in cues.windows(2) {
        assert_eq!(pair[0].end, pair[1].start);
    }
}

fn chunk(width: usize) -> Vec<String> {
    vec!["x".repeat(width)]
}

#[test]
fn timing_is_proportional_and_exact() {
    let cues = time_chunks(&[chunk(10), chunk(30)], 0.0, 8.0);
    assert_tiling(&cues, 0.0, 8.0);
    assert_eq!(cues[0].end, 2.0);
    assert_eq!(cues[0].lines, chunk(10));

    let chunks = chunk_text(ENGLISH, "en", W, L);
    let cues = time_chunks(&chunks, 1.25, 31.5);
    assert_eq!(cues.len(), chunks.len());
    assert_tiling(&cues, 1.25, 31.5);
    // Duration per column is roughly constant.
    let rates: Vec<f64> = cues
        .iter()
        .map(|c| (c.end - c.start) / c.lines.iter().map(|l| display_width(l)).sum::<usize>() as f64)
        .collect();
    let (lo, hi) = rates
        .iter()
        .fold((f64::MAX, 0.0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    assert!(hi - lo < 0.002, "{rates:?}");

    let cues = time_chunks(&[chunk(5), chunk(5), chunk(5)], 0.0, 10.0);
    assert_tiling(&cues, 0.0, 10.0);
    assert_eq!(cues[0].end, 3.333);
    assert_eq!(cues[1].end, 6.667);
}

#[test]
fn timing_floor_for_short_chunks() {
    let cues = time_chunks(&[chunk(1), chunk(99)], 2.0, 12.0);
    assert_tiling(&cues, 2.0, 12.0);
    assert!((cues[0].end - cues[0].start - MIN_CUE_SECONDS).abs() < 1e-9);
    // Not enough time for the floor: still proportional and exact.
    let cues = time_chunks(&[chunk(1), chunk(3)], 0.0, 1.0);
    assert_tiling(&cues, 0.0, 1.0);
    assert_eq!(cues[0].end, 0.25);
}

#[test]
fn timing_edge_cases() {
    assert!(time_chunks(&[], 0.0, 5.0).is_empty());
    let cues = time_chunks(&[chunk(3), chunk(3)], 5.0, 5.0);
    assert_tiling(&cues, 5.0, 5.0);
    let cues = time_chunks(&[chunk(3)], 5.0, 4.0);
    assert_tiling(&cues, 5.0, 5.0);
}

// ---------------------------------------------------------------- SRT / VTT

fn sample_cues() -> Vec<Cue> {
    vec![
        Cue {
            start: 0.0,
            end: 1.5,
            lines: vec!["Hello there.".into(), "Second line".into()],
        },
        Cue {
            start: 1.5,
            end: 3723.004,
            lines: vec!["日本語 <b> & more".into()],
        },
    ]
}

#[test]
fn srt_format() {
    assert_eq!(
        to_srt(&sample_cues()),
        "1\n00:00:00,000 --> 00:00:01,500\nHello there.\nSecond line\n\n\
         2\n00:00:01,500 --> 01:02:03,004\n日本語 <b> & more\n\n"
    );
}

#[test]
fn srt_round_trip() {
    assert_eq!(parse_srt(&to_srt(&sample_cues())).unwrap(), sample_cues());
    for (text, lang) in [
        (ENGLISH, "en"),
        (JAPANESE, "ja"),
        (HINDI, "hi"),
        (ARABIC, "ar"),
    ] {
        let cues = time_chunks(&chunk_text(text, lang, W, L), 0.123, 47.891);
        let parsed = parse_srt(&to_srt(&cues)).unwrap();
        assert_eq!(parsed, cues, "exact round trip for {lang}");
        for (a, b) in parsed.iter().zip(&cues) {
            assert!((a.start - b.start).abs() < 0.001 && (a.end - b.end).abs() < 0.001);
        }
    }
}

#[test]
fn srt_parse_is_lenient_about_layout() {
    let s = "\u{FEFF}1\r\n00:00:01,000 --> 00:00:02,500  \r\nHello  \r\nworld\r\n\r\n\r\n\
             2\r\n00:00:03,000 --> 00:00:04,000 X1:10 X2:20\r\nBye";
    let cues = parse_srt(s).unwrap();
    assert_eq!(cues.len(), 2);
    assert_eq!(cues[0].start, 1.0);
    assert_eq!(cues[0].end, 2.5);
    assert_eq!(cues[0].lines, vec!["Hello", "world"]);
    assert_eq!(cues[1].lines, vec!["Bye"]);
    assert!(parse_srt("").unwrap().is_empty());
    assert!(parse_srt("\u{FEFF}\n\n").unwrap().is_empty());
}

#[test]
fn srt_parse_errors() {
    let good = "1\n00:00:00,000 --> 00:00:01,000\nok\n\n";
    let err = parse_srt(&format!("{good}2\n00:00:0x,000 --> 00:00:02,000\nbad\n")).unwrap_err();
    assert!(
        matches!(
            err,
            SrtError::BadTiming {
                cue: 2,
                line: 6,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("cue 2") && msg.contains("line 6"), "{msg}");

    let err = parse_srt(&format!("{good}2\n00:00:03,000 --> 00:00:02,000\nbad\n")).unwrap_err();
    assert!(
        matches!(
            err,
            SrtError::EndBeforeStart {
                cue: 2,
                line: 6,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("before"));

    let err = parse_srt("1\r\n00:61:00,000 --> 01:00:00,000\r\nx").unwrap_err();
    assert!(matches!(
        err,
        SrtError::BadTiming {
            cue: 1,
            line: 2,
            ..
        }
    ));
    let err = parse_srt("1\n00:00:00,00 --> 00:00:01,000\nx").unwrap_err();
    assert_eq!((err.cue(), err.line()), (1, 2));
    let err = parse_srt("one\n00:00:00,000 --> 00:00:01,000\nx").unwrap_err();
    assert!(matches!(
        err,
        SrtError::BadIndex {
            cue: 1,
            line: 1,
            ..
        }
    ));
    let err = parse_srt(&format!("{good}\n\n2\nno timing here\n")).unwrap_err();
    assert!(
        matches!(err, SrtError::MissingTiming { cue: 2, line: 8 }),
        "{err:?}"
    );
    let err = parse_srt("1\n").unwrap_err();
    assert!(matches!(err, SrtError::MissingTiming { cue: 1, .. }));
}

#[test]
fn vtt_format() {
    let vtt = to_vtt(&sample_cues());
    assert!(vtt.starts_with("WEBVTT\n\n"));
    assert!(vtt.contains("00:00:00.000 --> 00:00:01.500\nHello there.\nSecond line\n\n"));
    assert!(vtt.contains("00:00:01.500 --> 01:02:03.004\n日本語 &lt;b&gt; &amp; more\n"));
}

// ---------------------------------------------------------------- ASS

/// Tokenises ASS event text the way libass does: returns the override
/// blocks and the literal text (`\N` as '\n').
fn libass_scan(text: &str) -> (Vec<String>, String) {
    let chars: Vec<char> = text.chars().collect();
    let (mut overrides, mut literal) = (Vec::new(), String::new());
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '{' => {
                let close = chars[i..].iter().position(|&c| c == '}').map(|p| i + p);
                let end = close.unwrap_or(chars.len());
                overrides.push(chars[i..end].iter().collect());
                i = end + 1;
            }
            '\\' if i + 1 < chars.len() && matches!(chars[i + 1], 'N' | 'n' | 'h') => {
                literal.push(if chars[i + 1] == 'N' { '\n' } else { ' ' });
                i += 2;
            }
            '\\' if i + 1 < chars.len() && matches!(chars[i + 1], '{' | '}') => {
                literal.push(chars[i + 1]);
                i += 2;
            }
            c => {
                literal.push(c);
                i += 1;
            }
        }
    }
    (overrides, literal)
}

fn dialogue_texts(ass: &str) -> Vec<&str> {
    ass.lines()
        .filter_map(|l| l.strip_prefix("Dialogue: "))
        .map(|l| l.splitn(10, ',').nth(9).unwrap())
        .collect()
}

#[test]
fn ass_structure() {
    let layout = AssLayout::default();
    let ass = to_ass(&sample_cues(), &layout, "en");
    for needle in [
        "[Script Info]\n",
        "ScriptType: v4.00+\n",
        "PlayResX: 1920\n",
        "PlayResY: 1080\n",
        "WrapStyle: 2\n",
        "ScaledBorderAndShadow: yes\n",
        "YCbCr Matrix: TV.709\n",
        "[V4+ Styles]\n",
        "[Events]\n",
        "Dialogue: 0,0:00:00.00,0:00:01.50,Default,,0,0,0,,Hello there.\\NSecond line\n",
    ] {
        assert!(ass.contains(needle), "missing {needle:?} in\n{ass}");
    }
    assert_eq!(ass.lines().filter(|l| l.starts_with("Style: ")).count(), 1);
    assert_eq!(dialogue_texts(&ass).len(), 2);
    let style = ass.lines().find(|l| l.starts_with("Style: ")).unwrap();
    let fields: Vec<&str> = style["Style: ".len()..].split(',').collect();
    assert_eq!(fields.len(), 23, "{style}");
    assert_eq!(fields[1], "Noto Sans");
    assert_eq!(fields[3], "&H00FFFFFF");
    assert_eq!(fields[15], "1", "BorderStyle");
    assert_eq!(fields[18], "2", "Alignment");
    assert_eq!(fields[22], "1", "Encoding");
}

#[test]
fn ass_boxed_style_and_colours() {
    let layout = AssLayout {
        boxed: true,
        box_colour: [16, 32, 48, 128],
        primary: [255, 200, 0],
        bold: true,
        alignment: 8,
        ..AssLayout::default()
    };
    let ass = to_ass(&sample_cues(), &layout, "en");
    let style = ass.lines().find(|l| l.starts_with("Style: ")).unwrap();
    let fields: Vec<&str> = style["Style: ".len()..].split(',').collect();
    assert_eq!(fields[3], "&H0000C8FF", "primary is &HAABBGGRR");
    assert_eq!(fields[5], "&H7F302010", "box colour in OutlineColour");
    assert_eq!(fields[7], "-1", "bold");
    assert_eq!(fields[15], "3", "opaque box");
    assert_eq!(fields[18], "8");
}

#[test]
fn ass_escapes_override_tags() {
    let cues = vec![Cue {
        start: 0.0,
        end: 1.0,
        lines: vec!["{\\an8}moved?".into(), "back\\Nslash \\h {braces}".into()],
    }];
    let ass = to_ass(&cues, &AssLayout::default(), "en");
    let texts = dialogue_texts(&ass);
    let (overrides, literal) = libass_scan(texts[0]);
    assert!(overrides.is_empty(), "override injected: {overrides:?}");
    assert_eq!(
        literal.replace('\u{2060}', ""),
        "{\\an8}moved?\nback\\Nslash \\h {braces}"
    );
    assert_eq!(texts[0].matches("\\N").count(), 1, "only our line join");
}

#[test]
fn ass_rtl_keeps_line_order() {
    let cues = time_chunks(&chunk_text(ARABIC, "ar", W, L), 0.0, 20.0);
    let ass = to_ass(&cues, &AssLayout::for_video(1080, 1920, "ar"), "ar");
    assert!(ass.contains("PlayResX: 1080\nPlayResY: 1920\n"));
    let style = ass.lines().find(|l| l.starts_with("Style: ")).unwrap();
    assert!(style.contains("Noto Sans Arabic"));
    assert!(style.ends_with(",-1"), "auto base direction: {style}");
    let texts = dialogue_texts(&ass);
    assert_eq!(texts.len(), cues.len());
    for (text, cue) in texts.iter().zip(&cues) {
        let (_, literal) = libass_scan(text);
        let shown: Vec<String> = literal
            .split('\n')
            .map(|l| l.trim_start_matches('\u{200F}').to_string())
            .collect();
        assert_eq!(&shown, &cue.lines, "line order must be logical, top first");
        assert!(literal.split('\n').all(|l| l.starts_with('\u{200F}')));
    }
}

#[test]
fn ass_time_format() {
    assert_eq!(ass_time(0.0), "0:00:00.00");
    assert_eq!(ass_time(1.5), "0:00:01.50");
    assert_eq!(ass_time(3661.257), "1:01:01.26");
    assert_eq!(ass_time(59.999), "0:01:00.00");
    assert_eq!(ass_time(-3.0), "0:00:00.00");
}

#[test]
fn languages() {
    let expect = [
        ("en", "Noto Sans", false),
        ("ja", "Noto Sans CJK JP", false),
        ("es", "Noto Sans", false),
        ("zh", "Noto Sans CJK SC", false),
        ("hi", "Noto Sans Devanagari", false),
        ("ar", "Noto Sans Arabic", true),
        ("bn", "Noto Sans Bengali", false),
        ("pt", "Noto Sans", false),
        ("ru", "Noto Sans", false),
        ("fr", "Noto Sans", false),
        ("de", "Noto Sans", false),
        ("zh-CN", "Noto Sans CJK SC", false),
        ("AR_eg", "Noto Sans Arabic", true),
    ];
    for (lang, font, rtl) in expect {
        assert_eq!(font_for_language(lang), font, "{lang}");
        assert_eq!(is_rtl(lang), rtl, "{lang}");
    }
}

#[test]
fn word_timed_boundaries_follow_the_voice() {
    let chunks = vec![vec!["one two".to_string()], vec!["three four".to_string()]];
    let w = |t: &str, a: f64, b: f64| (t.to_string(), a, b);
    // "three" starts late: the second cue starts with it, not halfway.
    let words = [
        w("one", 1.0, 1.2),
        w("two", 1.2, 1.4),
        w("three", 2.5, 2.8),
        w("four", 2.8, 3.0),
    ];
    let cues = time_chunks_to_words(&chunks, &words, 1.0, 3.0);
    assert_eq!(cues.len(), 2);
    assert_eq!((cues[0].start, cues[0].end), (1.0, 2.5));
    assert_eq!((cues[1].start, cues[1].end), (2.5, 3.0));
    // Words of other text, or out of order: proportional timing.
    let other = [w("x", 1.0, 3.0)];
    assert_eq!(
        time_chunks_to_words(&chunks, &other, 1.0, 3.0),
        time_chunks(&chunks, 1.0, 3.0)
    );
    let late = [
        w("one", 1.0, 1.2),
        w("two", 1.2, 1.4),
        w("three", 3.5, 3.8),
        w("four", 3.8, 4.0),
    ];
    assert_eq!(
        time_chunks_to_words(&chunks, &late, 1.0, 3.0),
        time_chunks(&chunks, 1.0, 3.0)
    );
}

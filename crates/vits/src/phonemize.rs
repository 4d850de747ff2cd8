//! Text → IPA phonemes the way Piper does it: espeak-ng's library phonemizes clause by clause
//! (`espeak_TextToPhonemes`), each clause's punctuation is kept (`,` `;` `:` followed by a space
//! and `.` `?` `!` ending a sentence), because the voices learned their pauses and intonation
//! from it; the plain `espeak-ng --ipa` program drops it and runs sentences together.
//!
//! The library is opened at run time (`libespeak-ng.so.1`, shipped with the `espeak-ng`
//! package), so building needs no espeak-ng headers. espeak-ng keeps global state, so every
//! call goes through one lock.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::Mutex;

use unicode_normalization::UnicodeNormalization;

/// Why text could not be phonemized.
#[derive(Debug, thiserror::Error)]
pub enum PhonemizeError {
    #[error(
        "the espeak-ng library (libespeak-ng.so.1) could not be loaded: {0}; install espeak-ng \
         (apt install espeak-ng)"
    )]
    Library(String),
    #[error("espeak-ng has no voice {0:?} (see `espeak-ng --voices`)")]
    Voice(String),
}

type InitFn = unsafe extern "C" fn(c_int, c_int, *const c_char, c_int) -> c_int;
type SetVoiceFn = unsafe extern "C" fn(*const c_char) -> c_int;
type ToPhonemesFn = unsafe extern "C" fn(*mut *const c_void, c_int, c_int) -> *const c_char;

struct Library {
    set_voice: SetVoiceFn,
    to_phonemes: ToPhonemesFn,
    voice: Option<String>,
}

// The function pointers stay valid for the life of the process (the library is never closed).
unsafe impl Send for Library {}

static ESPEAK: Mutex<Option<Result<Library, String>>> = Mutex::new(None);

const AUDIO_OUTPUT_SYNCHRONOUS: c_int = 2;
const ESPEAK_CHARS_UTF8: c_int = 1;
const ESPEAK_PHONEMES_IPA: c_int = 0x02;

fn open_library() -> Result<Library, String> {
    let name = CString::new("libespeak-ng.so.1").expect("no NUL");
    // SAFETY: dlopen/dlsym with valid C strings; the symbols have the C signatures of
    // espeak-ng's speak_lib.h, and the handle is never closed.
    unsafe {
        let handle = libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        if handle.is_null() {
            let e = libc::dlerror();
            return Err(if e.is_null() {
                "dlopen failed".into()
            } else {
                CStr::from_ptr(e).to_string_lossy().into_owned()
            });
        }
        let sym = |s: &str| -> Result<*mut c_void, String> {
            let c = CString::new(s).expect("no NUL");
            let p = libc::dlsym(handle, c.as_ptr());
            if p.is_null() {
                Err(format!("it has no {s}"))
            } else {
                Ok(p)
            }
        };
        let init: InitFn = std::mem::transmute::<*mut c_void, InitFn>(sym("espeak_Initialize")?);
        let set_voice: SetVoiceFn =
            std::mem::transmute::<*mut c_void, SetVoiceFn>(sym("espeak_SetVoiceByName")?);
        let to_phonemes: ToPhonemesFn =
            std::mem::transmute::<*mut c_void, ToPhonemesFn>(sym("espeak_TextToPhonemes")?);
        let rate = init(AUDIO_OUTPUT_SYNCHRONOUS, 0, std::ptr::null(), 0);
        if rate <= 0 {
            return Err("espeak_Initialize failed (is espeak-ng-data installed?)".into());
        }
        Ok(Library {
            set_voice,
            to_phonemes,
            voice: None,
        })
    }
}

/// One sentence: IPA phonemes including the punctuation espeak-ng read.
#[derive(Debug, Clone, PartialEq)]
pub struct Sentence {
    pub phonemes: String,
}

/// Which punctuation ended a clause (ASCII; full-width and Arabic/Devanagari marks map onto it).
fn terminator(c: char) -> Option<char> {
    Some(match c {
        '.' | '。' | '।' | '…' => '.',
        ',' | '，' | '、' | '،' => ',',
        '?' | '？' | '؟' => '?',
        '!' | '！' => '!',
        ';' | '；' | '؛' => ';',
        ':' | '：' => ':',
        _ => return None,
    })
}

/// The punctuation at the end of a consumed clause. espeak-ng reads one character past the
/// clause (`lookahead`), and closing quotes or brackets may follow the mark.
fn clause_end(consumed: &str, lookahead: bool) -> Option<char> {
    let mut s = consumed;
    if lookahead {
        if let Some((i, _)) = s.char_indices().next_back() {
            s = &s[..i];
        }
    }
    let s = s.trim_end_matches(|c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '"' | '\'' | '”' | '’' | '»' | ')' | ']' | '}' | '」' | '』' | '）'
            )
    });
    s.chars().next_back().and_then(terminator)
}

/// Removes espeak-ng's language-switch marks (`(en)`, `(fr)`) from a clause's phonemes.
fn strip_language_switches(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    let mut rest = p;
    while let Some(open) = rest.find('(') {
        out.push_str(&rest[..open]);
        match rest[open..].find(')') {
            Some(close) => rest = &rest[open + close + 1..],
            None => {
                rest = &rest[open..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Phonemizes `text` with espeak-ng voice `voice` into sentences.
pub fn phonemize(text: &str, voice: &str) -> Result<Vec<Sentence>, PhonemizeError> {
    let mut guard = ESPEAK.lock().unwrap_or_else(|e| e.into_inner());
    let lib = match guard.get_or_insert_with(open_library) {
        Ok(lib) => lib,
        Err(e) => return Err(PhonemizeError::Library(e.clone())),
    };
    if lib.voice.as_deref() != Some(voice) {
        let c = CString::new(voice).map_err(|_| PhonemizeError::Voice(voice.into()))?;
        // SAFETY: a valid C string; espeak-ng copies what it needs.
        if unsafe { (lib.set_voice)(c.as_ptr()) } != 0 {
            lib.voice = None;
            return Err(PhonemizeError::Voice(voice.into()));
        }
        lib.voice = Some(voice.to_string());
    }
    let mut sentences = Vec::new();
    let mut current = String::new();
    // espeak-ng reads a NUL-terminated buffer; interior NULs would end the text early.
    let cleaned: String = text.chars().filter(|&c| c != '\0').collect();
    let c_text = CString::new(cleaned).expect("NULs removed");
    let bytes = c_text.as_bytes();
    let start = c_text.as_ptr() as *const c_void;
    let mut ptr: *const c_void = start;
    let mut consumed_to = 0usize;
    while !ptr.is_null() {
        // SAFETY: `ptr` points into `c_text` (or is null, ending the loop); espeak-ng advances
        // it to the next clause or sets it to null at the end. The returned string is owned by
        // espeak-ng and copied before the next call.
        let (phonemes, next) = unsafe {
            let out = (lib.to_phonemes)(&mut ptr, ESPEAK_CHARS_UTF8, ESPEAK_PHONEMES_IPA);
            let p = if out.is_null() {
                String::new()
            } else {
                CStr::from_ptr(out).to_string_lossy().into_owned()
            };
            let next = if ptr.is_null() {
                bytes.len()
            } else {
                (ptr as usize - start as usize).min(bytes.len())
            };
            (p, next)
        };
        let consumed = String::from_utf8_lossy(&bytes[consumed_to.min(next)..next]).into_owned();
        consumed_to = next;
        let clause = strip_language_switches(phonemes.trim());
        if !clause.is_empty() {
            if !current.is_empty() && !current.ends_with(' ') {
                current.push(' ');
            }
            current.push_str(&clause);
        }
        match clause_end(&consumed, !ptr.is_null()) {
            Some(p @ ('.' | '?' | '!')) if !current.is_empty() => {
                current.push(p);
                sentences.push(Sentence {
                    phonemes: std::mem::take(&mut current),
                });
            }
            Some(p) if !current.is_empty() && !matches!(p, '.' | '?' | '!') => {
                current.push(p);
                current.push(' ');
            }
            _ => {}
        }
    }
    let rest = current.trim_end().to_string();
    if !rest.is_empty() {
        sentences.push(Sentence { phonemes: rest });
    }
    Ok(sentences)
}

/// Piper's id sequence for a phoneme string: `^ _ p₁ _ p₂ _ … pₙ _ $`, phonemes taken one
/// Unicode scalar at a time after canonical decomposition (NFD). Returns the ids and the
/// phonemes the voice does not know (left out, as Piper does).
pub fn phoneme_ids(phonemes: &str, map: &BTreeMap<String, Vec<i64>>) -> (Vec<i64>, Vec<char>) {
    let pad = map.get("_").map(|v| v.as_slice()).unwrap_or(&[]);
    let mut ids: Vec<i64> = Vec::with_capacity(phonemes.len() * 2 + 4);
    ids.extend(map.get("^").map(|v| v.as_slice()).unwrap_or(&[]));
    ids.extend(pad);
    let mut missing = Vec::new();
    let mut buf = [0u8; 4];
    for c in phonemes.nfd() {
        match map.get(c.encode_utf8(&mut buf) as &str) {
            Some(v) => {
                ids.extend(v);
                ids.extend(pad);
            }
            None => {
                if !missing.contains(&c) {
                    missing.push(c);
                }
            }
        }
    }
    ids.extend(map.get("$").map(|v| v.as_slice()).unwrap_or(&[]));
    (ids, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clause_ends_are_found_past_espeaks_lookahead_and_closing_quotes() {
        assert_eq!(clause_end("Hello, w", true), Some(','));
        assert_eq!(clause_end("orld. H", true), Some('.'));
        assert_eq!(clause_end("“Quoted!”", true), Some('!'));
        assert_eq!(clause_end("mith paid $3.50 for it... R", true), Some('.'));
        assert_eq!(clause_end("eally", false), None);
        assert_eq!(clause_end("done?", false), Some('?'));
        assert_eq!(clause_end("你好。世", true), Some('.'));
        assert_eq!(clause_end("U.S. army", false), None);
    }

    #[test]
    fn language_switch_marks_are_removed() {
        assert_eq!(
            strip_language_switches("(en)hˈɛloʊ(fr) bɔ̃ʒuʁ"),
            "hˈɛloʊ bɔ̃ʒuʁ"
        );
        assert_eq!(strip_language_switches("a(b"), "a(b");
    }

    #[test]
    fn ids_are_padded_and_unknown_phonemes_left_out() {
        let map: BTreeMap<String, Vec<i64>> = [("^", 1), ("$", 2), ("_", 0), ("a", 5), ("b", 6)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), vec![v]))
            .collect();
        let (ids, missing) = phoneme_ids("abx", &map);
        assert_eq!(ids, [1, 0, 5, 0, 6, 0, 2]);
        assert_eq!(missing, ['x']);
    }

    #[test]
    fn espeak_phonemizes_clauses_with_their_punctuation_into_sentences() {
        let s = phonemize("Hello, world. How are you? Fine", "en-us").unwrap();
        let p: Vec<&str> = s.iter().map(|s| s.phonemes.as_str()).collect();
        assert_eq!(p, ["həlˈoʊ, wˈɜːld.", "hˈaʊ ɑːɹ juː?", "fˈaɪn"]);
        assert!(matches!(
            phonemize("x", "no-such-voice"),
            Err(PhonemizeError::Voice(_))
        ));
    }
}

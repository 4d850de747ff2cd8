//! Key specifications for user-configurable keymaps.
//!
//! A [`KeySpec`] is one key with its modifiers, written in config files as
//! text such as `q`, `?`, `G`, `ctrl-c`, `C-c`, `alt+x`, `shift-tab`, `pgdn`
//! or `f5`, and shown on help screens in a short canonical form such as
//! `C-c`, `S-Tab`, `PgDn` or `↑` (see the [`Display`](fmt::Display) impl).
//!
//! # Syntax
//!
//! ```text
//! spec      = modifier* key
//! modifier  = ("ctrl" | "control" | "c" | "alt" | "a" | "shift" | "s"
//!             | "super" | "hyper" | "meta") ("-" | "+")
//! key       = any single character            q  ?  /  +  -  G  ↑
//!           | enter | esc | tab | backtab | space | backspace | delete
//!           | insert | up | down | left | right | home | end
//!           | pageup | pagedown | f1 ... f12
//! ```
//!
//! Names and modifiers ignore case, but a single character is taken as
//! written: `G` is the capital letter (Shift is implied) and `g` the small
//! one. `-` and `+` on their own are keys, so `ctrl--` and `ctrl++` work.
//! Aliases: `return`, `escape`, `shift-tab`/`s-tab` (= `backtab`),
//! `bksp`, `del`, `ins`, `pgup`, `pgdn`, and the arrows `↑ ↓ ← →`.
//!
//! # Canonical form
//!
//! Terminals disagree about Shift: some report `?` with the SHIFT flag,
//! some without, and Shift+Tab arrives as `BackTab`, with or without SHIFT.
//! Key specs are therefore kept canonical: for characters Shift is folded
//! into the character (`shift-g` is `G`) and otherwise dropped (`shift-/`
//! is `/`), and Shift+Tab is `BackTab` without SHIFT. [`KeySpec::matches`]
//! canonicalises incoming events the same way before comparing.

use std::fmt;
use std::str::FromStr;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// One key plus modifiers, as bound in a keymap.
///
/// Values made by [`KeySpec::new`], parsing or [`KeySpec::from_event`] are
/// canonical (see the [module docs](self)), so equal keys compare and hash
/// equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeySpec {
    /// The key.
    pub code: KeyCode,
    /// Held modifiers.
    pub mods: KeyModifiers,
}

/// Summary of the accepted syntax, appended to every parse error.
const VALID_FORMS: &str = "write a single character (q, ?, /, +, -, G), or one of enter, esc, \
     tab, backtab, space, backspace, delete, insert, up, down, left, right, home, end, \
     pageup, pagedown, f1-f12; optionally prefixed by ctrl-, alt- or shift- \
     (short: c-, a-, s-; \"+\" also separates, as in ctrl+c)";

/// A key specification that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid key \"{input}\": {problem}; {}", VALID_FORMS)]
pub struct KeySpecError {
    input: String,
    problem: String,
}

impl KeySpecError {
    fn new(input: &str, problem: impl Into<String>) -> Self {
        KeySpecError {
            input: input.to_owned(),
            problem: problem.into(),
        }
    }

    /// The text that failed to parse.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// What is wrong with it.
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

/// Modifier prefixes, each followed by `-` or `+` in a spec.
const MODIFIER_PREFIXES: [(&str, KeyModifiers); 10] = [
    ("control", KeyModifiers::CONTROL),
    ("ctrl", KeyModifiers::CONTROL),
    ("c", KeyModifiers::CONTROL),
    ("alt", KeyModifiers::ALT),
    ("a", KeyModifiers::ALT),
    ("shift", KeyModifiers::SHIFT),
    ("s", KeyModifiers::SHIFT),
    ("super", KeyModifiers::SUPER),
    ("hyper", KeyModifiers::HYPER),
    ("meta", KeyModifiers::META),
];

/// Modifier prefixes used by [`Display`](fmt::Display), in output order.
const MODIFIER_LABELS: [(KeyModifiers, &str); 6] = [
    (KeyModifiers::CONTROL, "C-"),
    (KeyModifiers::ALT, "A-"),
    (KeyModifiers::SHIFT, "S-"),
    (KeyModifiers::SUPER, "Super-"),
    (KeyModifiers::HYPER, "Hyper-"),
    (KeyModifiers::META, "Meta-"),
];

/// `s` without its first `prefix.len()` bytes, if they equal `prefix`
/// ignoring ASCII case.
fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Splits leading modifier prefixes off `text`. A prefix is only taken when
/// something follows its separator, so `-`, `+`, `c` and `s` stay keys.
fn split_modifiers(text: &str) -> (KeyModifiers, &str) {
    let mut mods = KeyModifiers::NONE;
    let mut rest = text;
    'next: loop {
        for (name, modifier) in MODIFIER_PREFIXES {
            let after = strip_prefix_ignore_case(rest, name)
                .and_then(|after| after.strip_prefix(['-', '+']));
            if let Some(after) = after.filter(|after| !after.is_empty()) {
                mods |= modifier;
                rest = after;
                continue 'next;
            }
        }
        return (mods, rest);
    }
}

/// Parses the key part of a spec (after the modifiers).
fn parse_key_name(name: &str) -> Result<KeyCode, String> {
    let mut chars = name.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return Ok(match c {
            '↑' => KeyCode::Up,
            '↓' => KeyCode::Down,
            '←' => KeyCode::Left,
            '→' => KeyCode::Right,
            c => KeyCode::Char(c),
        });
    }
    let lower = name.to_ascii_lowercase();
    let code = match lower.as_str() {
        "enter" | "return" => KeyCode::Enter,
        "esc" | "escape" => KeyCode::Esc,
        "tab" => KeyCode::Tab,
        "backtab" => KeyCode::BackTab,
        "space" => KeyCode::Char(' '),
        "backspace" | "bksp" => KeyCode::Backspace,
        "delete" | "del" => KeyCode::Delete,
        "insert" | "ins" => KeyCode::Insert,
        "up" => KeyCode::Up,
        "down" => KeyCode::Down,
        "left" => KeyCode::Left,
        "right" => KeyCode::Right,
        "home" => KeyCode::Home,
        "end" => KeyCode::End,
        "pageup" | "pgup" => KeyCode::PageUp,
        "pagedown" | "pgdn" => KeyCode::PageDown,
        _ => return parse_function_key(&lower, name),
    };
    Ok(code)
}

/// Parses `f1` … `f12` (already lowercased in `lower`).
fn parse_function_key(lower: &str, original: &str) -> Result<KeyCode, String> {
    let digits = lower
        .strip_prefix('f')
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
    let Some(digits) = digits else {
        if MODIFIER_PREFIXES
            .iter()
            .any(|(modifier, _)| lower.strip_suffix(['-', '+']) == Some(*modifier))
        {
            return Err(format!("\"{original}\" is a modifier without a key"));
        }
        return Err(format!("unknown key name \"{original}\""));
    };
    match digits.parse::<u8>() {
        Ok(n @ 1..=12) => Ok(KeyCode::F(n)),
        _ => Err(format!(
            "\"{original}\" is not a function key (they go from f1 to f12)"
        )),
    }
}

/// The single-character uppercase form of `c`, or `c` itself.
fn to_single_uppercase(c: char) -> char {
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// Brings a key and modifiers into canonical form: Shift is folded into
/// characters (and dropped), Shift+Tab becomes `BackTab` without SHIFT.
fn canonical(code: KeyCode, mut mods: KeyModifiers) -> (KeyCode, KeyModifiers) {
    let shift = mods.contains(KeyModifiers::SHIFT);
    let code = match code {
        KeyCode::Char(c) => {
            mods.remove(KeyModifiers::SHIFT);
            KeyCode::Char(if shift { to_single_uppercase(c) } else { c })
        }
        KeyCode::BackTab => {
            mods.remove(KeyModifiers::SHIFT);
            KeyCode::BackTab
        }
        KeyCode::Tab if shift => {
            mods.remove(KeyModifiers::SHIFT);
            KeyCode::BackTab
        }
        other => other,
    };
    (code, mods)
}

impl KeySpec {
    /// A canonical key spec for `code` with `mods`.
    pub fn new(code: KeyCode, mods: KeyModifiers) -> Self {
        let (code, mods) = canonical(code, mods);
        KeySpec { code, mods }
    }

    /// A key without modifiers.
    pub fn plain(code: KeyCode) -> Self {
        KeySpec::new(code, KeyModifiers::NONE)
    }

    /// A character key without modifiers.
    pub fn char(c: char) -> Self {
        KeySpec::plain(KeyCode::Char(c))
    }

    /// Control plus a character, e.g. `KeySpec::ctrl('c')`.
    pub fn ctrl(c: char) -> Self {
        KeySpec::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    /// Parses a key spec; the same as [`str::parse`].
    ///
    /// # Errors
    ///
    /// [`KeySpecError`] naming the bad text and listing the valid forms.
    pub fn parse(text: &str) -> Result<Self, KeySpecError> {
        text.parse()
    }

    /// The canonical key spec of a terminal event (ignoring its kind), e.g.
    /// for "press the key to bind" prompts.
    pub fn from_event(event: &KeyEvent) -> Self {
        KeySpec::new(event.code, event.modifiers)
    }

    /// Whether `event` is a press (or auto-repeat) of this key.
    ///
    /// Tolerant of how terminals report Shift: a character matches whether
    /// or not SHIFT is set (`?` often arrives with SHIFT; `G` may arrive as
    /// `G` or as `g` with SHIFT), and `BackTab` matches with or without
    /// SHIFT. Other modifiers must match exactly, so `ctrl-c` matches only
    /// `c` with CONTROL. Release events never match.
    pub fn matches(&self, event: &KeyEvent) -> bool {
        matches!(event.kind, KeyEventKind::Press | KeyEventKind::Repeat)
            && canonical(self.code, self.mods) == canonical(event.code, event.modifiers)
    }
}

impl From<KeyCode> for KeySpec {
    fn from(code: KeyCode) -> Self {
        KeySpec::plain(code)
    }
}

impl FromStr for KeySpec {
    type Err = KeySpecError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let text = input.trim();
        if text.is_empty() {
            return Err(KeySpecError::new(input, "the key is empty"));
        }
        let (mods, name) = split_modifiers(text);
        let code = parse_key_name(name).map_err(|problem| KeySpecError::new(input, problem))?;
        Ok(KeySpec::new(code, mods))
    }
}

impl fmt::Display for KeySpec {
    /// The short form used on help screens: `q`, `?`, `G`, `Enter`, `Esc`,
    /// `Tab`, `S-Tab`, `Space`, `↑`, `PgUp`, `F1`, `C-c`, `A-x`, `Del`,
    /// `Bksp`. It parses back to the same key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (code, mods) = canonical(self.code, self.mods);
        for (modifier, label) in MODIFIER_LABELS {
            if mods.contains(modifier) {
                f.write_str(label)?;
            }
        }
        let name = match code {
            KeyCode::Char(' ') => "Space",
            KeyCode::Char(c) => return write!(f, "{c}"),
            KeyCode::F(n) => return write!(f, "F{n}"),
            KeyCode::Enter => "Enter",
            KeyCode::Esc => "Esc",
            KeyCode::Tab => "Tab",
            KeyCode::BackTab => "S-Tab",
            KeyCode::Backspace => "Bksp",
            KeyCode::Delete => "Del",
            KeyCode::Insert => "Ins",
            KeyCode::Up => "↑",
            KeyCode::Down => "↓",
            KeyCode::Left => "←",
            KeyCode::Right => "→",
            KeyCode::Home => "Home",
            KeyCode::End => "End",
            KeyCode::PageUp => "PgUp",
            KeyCode::PageDown => "PgDn",
            other => return write!(f, "{other:?}"),
        };
        f.write_str(name)
    }
}

impl serde::Serialize for KeySpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for KeySpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyEventState;

    const NONE: KeyModifiers = KeyModifiers::NONE;
    const SHIFT: KeyModifiers = KeyModifiers::SHIFT;
    const CTRL: KeyModifiers = KeyModifiers::CONTROL;
    const ALT: KeyModifiers = KeyModifiers::ALT;

    fn key(code: KeyCode, mods: KeyModifiers) -> KeySpec {
        KeySpec { code, mods }
    }

    fn event(code: KeyCode, mods: KeyModifiers, kind: KeyEventKind) -> KeyEvent {
        KeyEvent {
            code,
            modifiers: mods,
            kind,
            state: KeyEventState::NONE,
        }
    }

    fn press(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        event(code, mods, KeyEventKind::Press)
    }

    fn spec(text: &str) -> KeySpec {
        text.parse()
            .unwrap_or_else(|err| panic!("{text:?} should parse: {err}"))
    }

    #[test]
    fn parses_characters() {
        use KeyCode::Char;
        assert_eq!(spec("q"), key(Char('q'), NONE));
        assert_eq!(spec("?"), key(Char('?'), NONE));
        assert_eq!(spec("/"), key(Char('/'), NONE));
        assert_eq!(spec("+"), key(Char('+'), NONE));
        assert_eq!(spec("-"), key(Char('-'), NONE));
        assert_eq!(spec("G"), key(Char('G'), NONE));
        assert_eq!(spec("c"), key(Char('c'), NONE));
        assert_eq!(spec("s"), key(Char('s'), NONE));
        assert_eq!(spec(" q "), key(Char('q'), NONE));
        assert_eq!(spec("é"), key(Char('é'), NONE));
        assert_eq!(spec("shift-g"), key(Char('G'), NONE));
        assert_eq!(spec("S-g"), spec("G"));
        assert_eq!(spec("shift-/"), key(Char('/'), NONE));
    }

    #[test]
    fn parses_named_keys_ignoring_case() {
        use KeyCode::*;
        let cases = [
            ("enter", Enter),
            ("Return", Enter),
            ("ESC", Esc),
            ("escape", Esc),
            ("tab", Tab),
            ("backtab", BackTab),
            ("shift-tab", BackTab),
            ("S-Tab", BackTab),
            ("space", Char(' ')),
            ("Space", Char(' ')),
            ("backspace", Backspace),
            ("bksp", Backspace),
            ("delete", Delete),
            ("del", Delete),
            ("insert", Insert),
            ("up", Up),
            ("DOWN", Down),
            ("left", Left),
            ("right", Right),
            ("↑", Up),
            ("↓", Down),
            ("←", Left),
            ("→", Right),
            ("home", Home),
            ("end", End),
            ("pageup", PageUp),
            ("PgUp", PageUp),
            ("pagedown", PageDown),
            ("pgdn", PageDown),
            ("f1", F(1)),
            ("F12", F(12)),
        ];
        for (text, code) in cases {
            assert_eq!(spec(text), key(code, NONE), "{text}");
        }
    }

    #[test]
    fn parses_modifiers() {
        use KeyCode::*;
        let cases = [
            ("ctrl-c", key(Char('c'), CTRL)),
            ("Ctrl+C", key(Char('C'), CTRL)),
            ("control-c", key(Char('c'), CTRL)),
            ("c-c", key(Char('c'), CTRL)),
            ("C-c", key(Char('c'), CTRL)),
            ("alt-x", key(Char('x'), ALT)),
            ("a-x", key(Char('x'), ALT)),
            ("A+x", key(Char('x'), ALT)),
            ("ctrl-alt-delete", key(Delete, CTRL | ALT)),
            ("c-a-del", key(Delete, CTRL | ALT)),
            ("shift-up", key(Up, SHIFT)),
            ("s-↑", key(Up, SHIFT)),
            ("ctrl--", key(Char('-'), CTRL)),
            ("ctrl-+", key(Char('+'), CTRL)),
            ("ctrl++", key(Char('+'), CTRL)),
            ("c-+", key(Char('+'), CTRL)),
            ("a--", key(Char('-'), ALT)),
            ("ctrl-space", key(Char(' '), CTRL)),
            ("ctrl-shift-tab", key(BackTab, CTRL)),
            ("ctrl-shift-g", key(Char('G'), CTRL)),
            ("alt-f4", key(F(4), ALT)),
            ("super-k", key(Char('k'), KeyModifiers::SUPER)),
        ];
        for (text, expected) in cases {
            assert_eq!(spec(text), expected, "{text}");
        }
    }

    #[test]
    fn rejects_bad_specs_with_helpful_errors() {
        let cases = [
            ("", "empty"),
            ("   ", "empty"),
            ("foo", "unknown key name \"foo\""),
            ("ctrl-foo", "unknown key name \"foo\""),
            ("ctrl-", "modifier without a key"),
            ("alt+", "modifier without a key"),
            ("f13", "f1 to f12"),
            ("f0", "f1 to f12"),
            ("hyper-f99", "f1 to f12"),
            ("ctrl-c-", "\"c-\" is a modifier without a key"),
        ];
        for (text, needle) in cases {
            let err = KeySpec::parse(text).expect_err(text);
            let message = err.to_string();
            assert_eq!(err.input(), text);
            assert!(message.contains(needle), "{text:?}: {message}");
            assert!(
                message.contains(&format!("invalid key \"{text}\"")),
                "{message}"
            );
            assert!(message.contains("pagedown, f1-f12"), "{message}");
            assert!(message.contains("ctrl-, alt- or shift-"), "{message}");
        }
    }

    #[test]
    fn displays_short_forms() {
        use KeyCode::*;
        let cases = [
            (key(Char('q'), NONE), "q"),
            (key(Char('?'), NONE), "?"),
            (key(Char('?'), SHIFT), "?"),
            (key(Char('G'), NONE), "G"),
            (key(Char('g'), SHIFT), "G"),
            (key(Enter, NONE), "Enter"),
            (key(Esc, NONE), "Esc"),
            (key(Tab, NONE), "Tab"),
            (key(BackTab, NONE), "S-Tab"),
            (key(BackTab, SHIFT), "S-Tab"),
            (key(Tab, SHIFT), "S-Tab"),
            (key(Char(' '), NONE), "Space"),
            (key(Up, NONE), "↑"),
            (key(Down, NONE), "↓"),
            (key(Left, NONE), "←"),
            (key(Right, NONE), "→"),
            (key(PageUp, NONE), "PgUp"),
            (key(PageDown, NONE), "PgDn"),
            (key(Home, NONE), "Home"),
            (key(End, NONE), "End"),
            (key(F(1), NONE), "F1"),
            (key(Char('c'), CTRL), "C-c"),
            (key(Char('x'), ALT), "A-x"),
            (key(Delete, NONE), "Del"),
            (key(Backspace, NONE), "Bksp"),
            (key(Char('-'), CTRL | ALT), "C-A--"),
            (key(Up, SHIFT), "S-↑"),
        ];
        for (spec, text) in cases {
            assert_eq!(spec.to_string(), text, "{spec:?}");
        }
    }

    #[test]
    fn display_round_trips() {
        use KeyCode::*;
        let keys = [
            KeySpec::char('q'),
            KeySpec::char('?'),
            KeySpec::char('/'),
            KeySpec::char('+'),
            KeySpec::char('-'),
            KeySpec::char('G'),
            KeySpec::char('c'),
            KeySpec::char('s'),
            KeySpec::char('a'),
            KeySpec::char(' '),
            KeySpec::ctrl('c'),
            KeySpec::ctrl('-'),
            KeySpec::ctrl('+'),
            KeySpec::ctrl(' '),
            KeySpec::new(Char('G'), CTRL | ALT),
            KeySpec::new(Char('x'), ALT),
            KeySpec::plain(Enter),
            KeySpec::plain(Esc),
            KeySpec::plain(Tab),
            KeySpec::plain(BackTab),
            KeySpec::new(BackTab, CTRL),
            KeySpec::plain(Backspace),
            KeySpec::plain(Delete),
            KeySpec::plain(Insert),
            KeySpec::plain(Up),
            KeySpec::new(Down, SHIFT),
            KeySpec::new(Left, CTRL),
            KeySpec::new(Right, ALT | SHIFT),
            KeySpec::plain(Home),
            KeySpec::plain(End),
            KeySpec::plain(PageUp),
            KeySpec::plain(PageDown),
            KeySpec::plain(F(1)),
            KeySpec::new(F(12), SHIFT),
            KeySpec::new(Char('k'), KeyModifiers::SUPER | KeyModifiers::META),
            KeySpec::new(Char('k'), KeyModifiers::HYPER),
        ];
        for key in keys {
            let text = key.to_string();
            assert_eq!(
                KeySpec::parse(&text),
                Ok(key),
                "{key:?} displayed as {text:?}"
            );
        }
    }

    #[test]
    fn matching_tolerates_shift_reporting() {
        use KeyCode::*;
        let question = spec("?");
        assert!(question.matches(&press(Char('?'), NONE)));
        assert!(question.matches(&press(Char('?'), SHIFT)));
        assert!(!question.matches(&press(Char('?'), CTRL)));

        let big_g = spec("G");
        assert!(big_g.matches(&press(Char('G'), NONE)));
        assert!(big_g.matches(&press(Char('G'), SHIFT)));
        assert!(big_g.matches(&press(Char('g'), SHIFT)));
        assert!(!big_g.matches(&press(Char('g'), NONE)));

        let small_g = spec("g");
        assert!(small_g.matches(&press(Char('g'), NONE)));
        assert!(!small_g.matches(&press(Char('G'), SHIFT)));
        assert!(!small_g.matches(&press(Char('G'), NONE)));

        let backtab = spec("shift-tab");
        assert!(backtab.matches(&press(BackTab, NONE)));
        assert!(backtab.matches(&press(BackTab, SHIFT)));
        assert!(backtab.matches(&press(Tab, SHIFT)));
        assert!(!backtab.matches(&press(Tab, NONE)));
        assert!(!spec("tab").matches(&press(BackTab, SHIFT)));
    }

    #[test]
    fn matching_requires_other_modifiers_exactly() {
        use KeyCode::*;
        let ctrl_c = spec("ctrl-c");
        assert!(ctrl_c.matches(&press(Char('c'), CTRL)));
        assert!(!ctrl_c.matches(&press(Char('c'), NONE)));
        assert!(!ctrl_c.matches(&press(Char('c'), CTRL | ALT)));
        assert!(!spec("c").matches(&press(Char('c'), CTRL)));
        assert!(spec("alt-x").matches(&press(Char('x'), ALT)));
        assert!(!spec("up").matches(&press(Up, SHIFT)));
        assert!(spec("shift-up").matches(&press(Up, SHIFT)));
        assert!(spec("enter").matches(&press(Enter, NONE)));
        assert!(!spec("enter").matches(&press(Esc, NONE)));
        assert!(spec("space").matches(&press(Char(' '), NONE)));
    }

    #[test]
    fn only_presses_and_repeats_match() {
        let q = spec("q");
        let code = KeyCode::Char('q');
        assert!(q.matches(&event(code, NONE, KeyEventKind::Press)));
        assert!(q.matches(&event(code, NONE, KeyEventKind::Repeat)));
        assert!(!q.matches(&event(code, NONE, KeyEventKind::Release)));
    }

    #[test]
    fn hand_built_specs_match_like_parsed_ones() {
        // A literal that is not canonical still matches sensibly.
        let literal = key(KeyCode::Char('g'), SHIFT);
        assert!(literal.matches(&press(KeyCode::Char('G'), NONE)));
        assert_eq!(
            KeySpec::from_event(&press(KeyCode::Char('g'), SHIFT)),
            spec("G")
        );
        assert_eq!(KeySpec::from(KeyCode::Esc), spec("esc"));
    }

    #[test]
    fn serde_uses_the_text_form() {
        #[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
        struct Keymap {
            quit: Vec<KeySpec>,
            help: KeySpec,
        }
        let map: Keymap = toml::from_str("quit = [\"q\", \"ctrl+c\"]\nhelp = \"?\"\n").unwrap();
        assert_eq!(map.quit, [spec("q"), KeySpec::ctrl('c')]);
        assert_eq!(map.help, KeySpec::char('?'));
        let text = toml::to_string(&map).unwrap();
        assert!(text.contains("\"C-c\""), "{text}");
        assert_eq!(toml::from_str::<Keymap>(&text).unwrap(), map);

        let err = toml::from_str::<Keymap>("quit = [\"ctrl-nope\"]\nhelp = \"?\"\n").unwrap_err();
        assert!(
            err.to_string().contains("unknown key name \"nope\""),
            "{err}"
        );
    }
}

//! Schema-guided JSON generation.
//!
//! Small models rarely write a long JSON document that parses, let alone one that
//! matches a schema. Here the generator writes the structure itself (braces, keys,
//! separators, constant values) and lets the model choose only what is free: the
//! text of strings, one value out of an enum, and whether an array goes on. Every
//! token the model proposes is checked against the grammar before it is sampled,
//! so the output always parses and always matches the [`Schema`]; callers still
//! run [`Schema::validate`] on the parsed value as an end-to-end check, and apply
//! their own checks on the content (retrying with another seed when it is poor).

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::sample::Rng;
use super::{LlmEngine, LlmError, Result, Tokenizer};

/// The shape of a JSON document, with every object key required and in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Schema {
    /// An object with exactly these keys, written in this order.
    Object(Vec<(String, Schema)>),
    /// An array of `min..=max` items of one schema.
    Array {
        /// Item schema.
        items: Box<Schema>,
        /// Fewest items.
        min: usize,
        /// Most items.
        max: usize,
    },
    /// An array of exactly these items (JSON Schema `prefixItems`).
    Tuple(Vec<Schema>),
    /// A single-line string of `min..=max` characters.
    String {
        /// Fewest characters.
        min: usize,
        /// Most characters.
        max: usize,
    },
    /// This exact string.
    Const(String),
    /// One of these strings.
    Enum(Vec<String>),
}

/// Where a value breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SchemaError {
    /// JSON pointer-like path (`$.scenes[2].prompt`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl Schema {
    /// A string of `min..=max` characters.
    pub fn string(min: usize, max: usize) -> Self {
        Schema::String { min, max }
    }

    /// An object from `(key, schema)` pairs.
    pub fn object<K: Into<String>>(fields: impl IntoIterator<Item = (K, Schema)>) -> Self {
        Schema::Object(fields.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// An array of `min..=max` items.
    pub fn array(items: Schema, min: usize, max: usize) -> Self {
        Schema::Array {
            items: Box::new(items),
            min,
            max: max.max(min),
        }
    }

    /// The equivalent JSON Schema (draft 2020-12) document.
    pub fn to_json_schema(&self) -> Value {
        use serde_json::json;
        match self {
            Schema::Object(fields) => {
                let props: serde_json::Map<String, Value> = fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json_schema()))
                    .collect();
                let required: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
                json!({
                    "type": "object",
                    "properties": props,
                    "required": required,
                    "additionalProperties": false,
                })
            }
            Schema::Array { items, min, max } => json!({
                "type": "array",
                "items": items.to_json_schema(),
                "minItems": min,
                "maxItems": max,
            }),
            Schema::Tuple(items) => json!({
                "type": "array",
                "prefixItems": items.iter().map(Schema::to_json_schema).collect::<Vec<_>>(),
                "items": false,
                "minItems": items.len(),
            }),
            Schema::String { min, max } => json!({
                "type": "string",
                "minLength": min,
                "maxLength": max,
                "pattern": "^[^\\n\\r\\t]*$",
            }),
            Schema::Const(s) => json!({ "const": s }),
            Schema::Enum(options) => json!({ "enum": options }),
        }
    }

    /// Checks `value` against the schema.
    pub fn validate(&self, value: &Value) -> std::result::Result<(), SchemaError> {
        self.check(value, "$")
    }

    fn check(&self, value: &Value, path: &str) -> std::result::Result<(), SchemaError> {
        let fail = |message: String| {
            Err(SchemaError {
                path: path.to_string(),
                message,
            })
        };
        match self {
            Schema::Object(fields) => {
                let Some(map) = value.as_object() else {
                    return fail(format!("expected an object, found {}", kind_of(value)));
                };
                for (k, schema) in fields {
                    match map.get(k) {
                        Some(v) => schema.check(v, &format!("{path}.{k}"))?,
                        None => return fail(format!("missing key `{k}`")),
                    }
                }
                if let Some(extra) = map.keys().find(|k| !fields.iter().any(|(f, _)| f == *k)) {
                    return fail(format!("unexpected key `{extra}`"));
                }
                Ok(())
            }
            Schema::Array { items, min, max } => {
                let Some(list) = value.as_array() else {
                    return fail(format!("expected an array, found {}", kind_of(value)));
                };
                if list.len() < *min || list.len() > *max {
                    return fail(format!("{} items; expected {min} to {max}", list.len()));
                }
                for (i, v) in list.iter().enumerate() {
                    items.check(v, &format!("{path}[{i}]"))?;
                }
                Ok(())
            }
            Schema::Tuple(items) => {
                let Some(list) = value.as_array() else {
                    return fail(format!("expected an array, found {}", kind_of(value)));
                };
                if list.len() != items.len() {
                    return fail(format!(
                        "{} items; expected exactly {}",
                        list.len(),
                        items.len()
                    ));
                }
                for (i, (v, s)) in list.iter().zip(items).enumerate() {
                    s.check(v, &format!("{path}[{i}]"))?;
                }
                Ok(())
            }
            Schema::String { min, max } => {
                let Some(s) = value.as_str() else {
                    return fail(format!("expected a string, found {}", kind_of(value)));
                };
                let n = s.chars().count();
                if n < *min || n > *max {
                    return fail(format!("{n} characters; expected {min} to {max}"));
                }
                if s.contains(['\n', '\r', '\t']) {
                    return fail("contains a line break or tab".into());
                }
                Ok(())
            }
            Schema::Const(c) => match value.as_str() {
                Some(s) if s == c => Ok(()),
                _ => fail(format!("expected \"{c}\"")),
            },
            Schema::Enum(options) => match value.as_str() {
                Some(s) if options.iter().any(|o| o == s) => Ok(()),
                _ => fail(format!("expected one of: {}", options.join(", "))),
            },
        }
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Escapes `s` as the inside of a JSON string.
fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

/// How to sample the free parts.
#[derive(Debug, Clone, PartialEq)]
pub struct StructuredOptions {
    /// Softmax temperature over the allowed tokens (`0` = greedy).
    pub temperature: f32,
    /// Nucleus mass over the allowed tokens.
    pub top_p: f32,
    /// Divides (or multiplies, when negative) the logit of a token already used in
    /// the current string.
    pub repeat_penalty: f32,
    /// Like `repeat_penalty`, for tokens used in earlier strings of the document
    /// (keeps a small model from writing the same value everywhere).
    pub document_penalty: f32,
    /// Forbids a token that would repeat a token trigram of the current string.
    pub no_repeat_trigrams: bool,
    /// Seed of the sampler.
    pub seed: u64,
    /// Most tokens the model may choose in one document.
    pub max_tokens: usize,
}

impl Default for StructuredOptions {
    fn default() -> Self {
        Self {
            temperature: 0.6,
            top_p: 0.9,
            repeat_penalty: 1.3,
            document_penalty: 1.2,
            no_repeat_trigrams: true,
            seed: 1,
            max_tokens: 4096,
        }
    }
}

/// A generated document.
#[derive(Debug, Clone)]
pub struct StructuredOutput {
    /// The JSON text.
    pub text: String,
    /// The parsed value (already checked against the schema).
    pub value: Value,
    /// Tokens the model chose (forced structure not counted).
    pub sampled_tokens: usize,
    /// Tokens fed in all (prompt, structure and choices).
    pub fed_tokens: usize,
    /// Wall time.
    pub elapsed: Duration,
}

/// Progress callback: called after every chosen token with the count so far;
/// `Break` cancels generation.
pub type OnToken<'a> = dyn FnMut(usize) -> ControlFlow<()> + 'a;

/// Per-vocabulary facts the token filter needs, computed once per call.
struct Vocab {
    bytes: Vec<Vec<u8>>,
    special: Vec<bool>,
    /// Tokens whose text starts with `,` and with `]` (array continuation).
    comma: Vec<u32>,
    close: Vec<u32>,
}

impl Vocab {
    fn new(tok: &Tokenizer) -> Self {
        let n = tok.vocab_size();
        let mut bytes = Vec::with_capacity(n);
        let mut special = Vec::with_capacity(n);
        let (mut comma, mut close) = (Vec::new(), Vec::new());
        for id in 0..n as u32 {
            let sp = tok.is_special(id);
            let mut b = Vec::new();
            if !sp {
                tok.token_bytes(id, false, &mut b);
                match b.first() {
                    Some(b',') => comma.push(id),
                    Some(b']') => close.push(id),
                    _ => {}
                }
            }
            special.push(sp || b.is_empty());
            bytes.push(b);
        }
        Self {
            bytes,
            special,
            comma,
            close,
        }
    }
}

/// What a candidate token would do inside a string.
enum StringStep {
    /// Adds these content bytes.
    Content,
    /// Adds content bytes (all but the last) and closes the string.
    Close,
}

/// Writes one document matching `schema` after `prompt` (a rendered chat that ends
/// where the answer begins).
pub fn generate_json(
    engine: &mut LlmEngine,
    prompt: &str,
    schema: &Schema,
    opts: &StructuredOptions,
    on_token: &mut OnToken<'_>,
) -> Result<StructuredOutput> {
    let t0 = Instant::now();
    let ids = engine.tokenize_prompt(prompt);
    let vocab = Vocab::new(engine.tokenizer());
    let mut g = Generator {
        vocab,
        rng: Rng::new(opts.seed),
        opts: opts.clone(),
        out: Vec::new(),
        unfed: Vec::new(),
        logits: Vec::new(),
        fed: ids.len(),
        sampled: 0,
        doc_used: Vec::new(),
        on_token,
    };
    g.logits = engine.prime(&ids)?.to_vec();
    g.value(engine, schema)?;
    let text = String::from_utf8(g.out)
        .map_err(|e| LlmError::Generation(format!("generated JSON is not UTF-8: {e}")))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        LlmError::Generation(format!("generated JSON does not parse ({e}): {text}"))
    })?;
    schema
        .validate(&value)
        .map_err(|e| LlmError::Generation(format!("generated JSON breaks its schema: {e}")))?;
    Ok(StructuredOutput {
        text,
        value,
        sampled_tokens: g.sampled,
        fed_tokens: g.fed,
        elapsed: t0.elapsed(),
    })
}

struct Generator<'c, 'a> {
    vocab: Vocab,
    rng: Rng,
    opts: StructuredOptions,
    out: Vec<u8>,
    /// Tokens chosen or forced but not yet fed to the model.
    unfed: Vec<u32>,
    /// Logits after everything fed so far.
    logits: Vec<f32>,
    fed: usize,
    sampled: usize,
    /// Content tokens of the strings finished so far.
    doc_used: Vec<u32>,
    on_token: &'c mut OnToken<'a>,
}

impl Generator<'_, '_> {
    /// Appends structure the model does not choose.
    fn force(&mut self, engine: &LlmEngine, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
        self.unfed.extend(engine.tokenizer().encode(text, false));
    }

    /// Feeds pending tokens, so `self.logits` are for the next position.
    fn feed(&mut self, engine: &mut LlmEngine) -> Result<()> {
        if !self.unfed.is_empty() {
            let needed = engine.context_len() + self.unfed.len() + 1;
            if needed > engine.capacity() {
                return Err(LlmError::ContextFull {
                    needed,
                    capacity: engine.capacity(),
                });
            }
            let tokens = std::mem::take(&mut self.unfed);
            self.fed += tokens.len();
            self.logits.clear();
            self.logits.extend_from_slice(engine.forward(&tokens)?);
        }
        Ok(())
    }

    /// Records one model choice (the tokens are fed lazily).
    fn chose(&mut self, id: u32) -> Result<()> {
        self.unfed.push(id);
        self.count_choice()
    }

    /// Counts a choice of the model, reports it, and enforces the budget.
    fn count_choice(&mut self) -> Result<()> {
        self.sampled += 1;
        if (self.on_token)(self.sampled).is_break() {
            return Err(LlmError::Generation("cancelled".into()));
        }
        if self.sampled > self.opts.max_tokens {
            return Err(LlmError::Generation(format!(
                "the document needed more than {} tokens",
                self.opts.max_tokens
            )));
        }
        Ok(())
    }

    fn value(&mut self, engine: &mut LlmEngine, schema: &Schema) -> Result<()> {
        match schema {
            Schema::Object(fields) => {
                self.force(engine, "{");
                for (i, (k, v)) in fields.iter().enumerate() {
                    let mut key = String::new();
                    if i > 0 {
                        key.push_str(", ");
                    }
                    key.push('"');
                    escape_into(k, &mut key);
                    key.push_str("\": ");
                    self.force(engine, &key);
                    self.value(engine, v)?;
                }
                self.force(engine, "}");
            }
            Schema::Tuple(items) => {
                self.force(engine, "[");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.force(engine, ", ");
                    }
                    self.value(engine, item)?;
                }
                self.force(engine, "]");
            }
            Schema::Array { items, min, max } => {
                self.force(engine, "[");
                let mut n = 0;
                while n < *max {
                    if n >= *min && !self.goes_on(engine)? {
                        break;
                    }
                    if n > 0 {
                        self.force(engine, ", ");
                    }
                    self.value(engine, items)?;
                    n += 1;
                }
                self.force(engine, "]");
            }
            Schema::Const(c) => {
                let mut s = String::from("\"");
                escape_into(c, &mut s);
                s.push('"');
                self.force(engine, &s);
            }
            Schema::Enum(options) => {
                self.force(engine, "\"");
                let pick = self.pick_option(engine, options)?;
                let mut s = String::new();
                escape_into(&options[pick], &mut s);
                s.push('"');
                self.force(engine, &s);
            }
            Schema::String { min, max } => self.string(engine, *min, *max)?,
        }
        Ok(())
    }

    /// Whether the model would rather continue an array (`,`) than close it (`]`).
    /// The first item of an array with no minimum is always written.
    fn goes_on(&mut self, engine: &mut LlmEngine) -> Result<bool> {
        if !self.out.ends_with(b"[") {
            self.feed(engine)?;
            let logits = &self.logits;
            let best = |ids: &[u32]| {
                ids.iter()
                    .map(|&i| logits[i as usize])
                    .fold(f32::NEG_INFINITY, f32::max)
            };
            return Ok(best(&self.vocab.comma) > best(&self.vocab.close));
        }
        Ok(true)
    }

    /// Chooses among enum options by the model's score for each option's first token.
    fn pick_option(&mut self, engine: &mut LlmEngine, options: &[String]) -> Result<usize> {
        let firsts: Vec<Option<u32>> = options
            .iter()
            .map(|o| engine.tokenizer().encode(o, false).first().copied())
            .collect();
        self.feed(engine)?;
        let logits = &self.logits;
        let scores: Vec<f32> = firsts
            .iter()
            .map(|f| f.map_or(f32::NEG_INFINITY, |id| logits[id as usize]))
            .collect();
        let pick = self.sample_from(&scores);
        self.count_choice()?;
        Ok(pick)
    }

    /// Index into `scores` by temperature/top-p sampling (greedy at temperature 0).
    fn sample_from(&mut self, scores: &[f32]) -> usize {
        let mut order: Vec<usize> = (0..scores.len())
            .filter(|&i| scores[i].is_finite())
            .collect();
        if order.is_empty() {
            return 0;
        }
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        let t = self.opts.temperature;
        if t <= 0.0 || order.len() == 1 {
            return order[0];
        }
        let top = scores[order[0]];
        let mut probs: Vec<f32> = order
            .iter()
            .map(|&i| ((scores[i] - top) / t).exp())
            .collect();
        let sum: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= sum);
        let mut keep = 0;
        let mut mass = 0.0;
        while keep < probs.len() {
            mass += probs[keep];
            keep += 1;
            if mass >= self.opts.top_p {
                break;
            }
        }
        let r = self.rng.next_f32() * mass;
        let mut acc = 0.0;
        for k in 0..keep {
            acc += probs[k];
            if r < acc {
                return order[k];
            }
        }
        order[keep - 1]
    }

    /// What `id` would do in a string holding `content`, or `None` if not allowed.
    fn string_step(&self, id: u32, content: &[u8], min: usize, max: usize) -> Option<StringStep> {
        if self.vocab.special[id as usize] {
            return None;
        }
        let b = &self.vocab.bytes[id as usize];
        let (body, closes) = match b.iter().position(|&c| c == b'"') {
            Some(p) if p + 1 == b.len() => (&b[..p], true),
            Some(_) => return None,
            None => (&b[..], false),
        };
        if body.iter().any(|&c| c < 0x20 || c == b'\\' || c == 0x7f) {
            return None;
        }
        // The content must stay UTF-8, possibly with one incomplete character at the end.
        let mut joined = Vec::with_capacity(content.len() + body.len());
        joined.extend_from_slice(content);
        joined.extend_from_slice(body);
        let chars = match std::str::from_utf8(&joined) {
            Ok(s) => s.chars().count(),
            Err(e) if e.error_len().is_none() && !closes => {
                std::str::from_utf8(&joined[..e.valid_up_to()])
                    .map(|s| s.chars().count())
                    .unwrap_or(0)
            }
            Err(_) => return None,
        };
        if chars > max {
            return None;
        }
        if closes {
            // No empty or padded strings, and nothing shorter than asked.
            let text = std::str::from_utf8(&joined).ok()?;
            if chars < min || text.trim().chars().count() < min.min(1) {
                return None;
            }
            Some(StringStep::Close)
        } else {
            // No leading whitespace: the generator trims nothing afterwards.
            if content.is_empty() && body.first().is_some_and(|c| c.is_ascii_whitespace()) {
                return None;
            }
            Some(StringStep::Content)
        }
    }

    fn string(&mut self, engine: &mut LlmEngine, min: usize, max: usize) -> Result<()> {
        self.force(engine, "\"");
        let mut content: Vec<u8> = Vec::new();
        let mut used: Vec<u32> = Vec::new();
        loop {
            let complete_chars = match std::str::from_utf8(&content) {
                Ok(s) => Some(s.chars().count()),
                Err(_) => None,
            };
            if complete_chars.is_some_and(|n| n >= max) {
                break;
            }
            self.feed(engine)?;
            // Best candidates first; fall back to a scan of the whole vocabulary.
            let mut scored = self.penalised(&used);
            let k = 64.min(scored.len());
            scored.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
            let mut top: Vec<(u32, f32)> = scored[..k].to_vec();
            top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let allow = |list: &[(u32, f32)]| -> Vec<(u32, f32, bool)> {
                list.iter()
                    .filter(|(id, _)| self.trigram_ok(&used, *id))
                    .filter_map(|&(id, s)| {
                        self.string_step(id, &content, min, max)
                            .map(|st| (id, s, matches!(st, StringStep::Close)))
                    })
                    .take(k)
                    .collect()
            };
            let mut allowed = allow(&top);
            if allowed.is_empty() {
                scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                allowed = allow(&scored);
            }
            if allowed.is_empty() {
                break;
            }
            let scores: Vec<f32> = allowed.iter().map(|a| a.1).collect();
            let (id, _, closes) = allowed[self.sample_from(&scores)];
            self.chose(id)?;
            let b = &self.vocab.bytes[id as usize];
            if closes {
                content.extend_from_slice(&b[..b.len() - 1]);
                self.out.extend_from_slice(b);
                self.remember(&used);
                return Ok(());
            }
            content.extend_from_slice(b);
            self.out.extend_from_slice(b);
            used.push(id);
        }
        // Length limit (or nothing allowed): drop an incomplete character and close.
        if let Err(e) = std::str::from_utf8(&content) {
            let cut = content.len() - e.valid_up_to();
            self.out.truncate(self.out.len() - cut);
        }
        self.remember(&used);
        self.force(engine, "\"");
        Ok(())
    }

    fn remember(&mut self, used: &[u32]) {
        for &id in used {
            if let Err(at) = self.doc_used.binary_search(&id) {
                self.doc_used.insert(at, id);
            }
        }
    }

    /// `(id, logit)` for the whole vocabulary with the repeat penalty applied.
    fn penalised(&self, used: &[u32]) -> Vec<(u32, f32)> {
        let mut scored: Vec<(u32, f32)> = self
            .logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, l))
            .collect();
        let penalise = |scored: &mut [(u32, f32)], ids: &[u32], p: f32| {
            if p != 1.0 {
                for &id in ids {
                    let l = &mut scored[id as usize].1;
                    *l = if *l > 0.0 { *l / p } else { *l * p };
                }
            }
        };
        // A token in both lists is penalised by both.
        penalise(&mut scored, &self.doc_used, self.opts.document_penalty);
        let mut mine = used.to_vec();
        mine.sort_unstable();
        mine.dedup();
        penalise(&mut scored, &mine, self.opts.repeat_penalty);
        scored
    }

    /// False when `next` would repeat a token trigram already in `used`.
    fn trigram_ok(&self, used: &[u32], next: u32) -> bool {
        if !self.opts.no_repeat_trigrams || used.len() < 2 {
            return true;
        }
        let (a, b) = (used[used.len() - 2], used[used.len() - 1]);
        !used.windows(3).any(|w| w == [a, b, next])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scene_schema() -> Schema {
        Schema::object([
            ("id", Schema::Const("s1".into())),
            ("prompt", Schema::string(3, 20)),
            (
                "shots",
                Schema::array(
                    Schema::object([("camera", Schema::Enum(vec!["a".into(), "b".into()]))]),
                    1,
                    2,
                ),
            ),
        ])
    }

    #[test]
    fn validate_accepts_a_matching_value() {
        let v = json!({"id": "s1", "prompt": "a red fox", "shots": [{"camera": "b"}]});
        scene_schema().validate(&v).unwrap();
    }

    #[test]
    fn validate_names_the_path_of_each_problem() {
        let s = scene_schema();
        let cases = [
            (
                json!({"id": "s2", "prompt": "abc", "shots": [{"camera": "a"}]}),
                "$.id",
                "expected \"s1\"",
            ),
            (
                json!({"id": "s1", "prompt": "ab", "shots": [{"camera": "a"}]}),
                "$.prompt",
                "2 characters",
            ),
            (
                json!({"id": "s1", "prompt": "a\nb c", "shots": [{"camera": "a"}]}),
                "$.prompt",
                "line break",
            ),
            (
                json!({"id": "s1", "prompt": "abc", "shots": []}),
                "$.shots",
                "0 items",
            ),
            (
                json!({"id": "s1", "prompt": "abc", "shots": [{"camera": "c"}]}),
                "$.shots[0].camera",
                "one of: a, b",
            ),
            (
                json!({"id": "s1", "prompt": "abc"}),
                "$",
                "missing key `shots`",
            ),
            (
                json!({"id": "s1", "prompt": "abc", "shots": [{"camera": "a"}], "x": 1}),
                "$",
                "unexpected key `x`",
            ),
            (json!([1]), "$", "expected an object, found an array"),
        ];
        for (v, path, msg) in cases {
            let e = s.validate(&v).unwrap_err();
            assert_eq!(e.path, path, "{v}");
            assert!(e.message.contains(msg), "{v}: {}", e.message);
        }
    }

    #[test]
    fn json_schema_document_has_the_constraints() {
        let doc = scene_schema().to_json_schema();
        assert_eq!(doc["required"], json!(["id", "prompt", "shots"]));
        assert_eq!(doc["additionalProperties"], json!(false));
        assert_eq!(doc["properties"]["id"]["const"], json!("s1"));
        assert_eq!(doc["properties"]["prompt"]["maxLength"], json!(20));
        assert_eq!(doc["properties"]["shots"]["minItems"], json!(1));
        assert_eq!(
            doc["properties"]["shots"]["items"]["properties"]["camera"]["enum"],
            json!(["a", "b"])
        );
        let t = Schema::Tuple(vec![Schema::Const("x".into())]).to_json_schema();
        assert_eq!(t["prefixItems"][0]["const"], json!("x"));
        assert_eq!(t["items"], json!(false));
    }

    #[test]
    fn escaping_round_trips_through_serde() {
        let mut s = String::from("\"");
        escape_into("a \"q\" \\ \n\t\u{1}é", &mut s);
        s.push('"');
        let v: String = serde_json::from_str(&s).unwrap();
        assert_eq!(v, "a \"q\" \\ \n\t\u{1}é");
    }
}

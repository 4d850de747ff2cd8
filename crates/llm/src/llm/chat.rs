//! Chat prompt templates.
//!
//! GGUF files carry a Jinja chat template in `tokenizer.chat_template`. Rather
//! than embedding a Jinja interpreter, the engine recognises the few template
//! families that matter by their markers and renders them natively.

use super::tokenizer::Tokenizer;

/// Who wrote a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Instructions framing the conversation.
    System,
    /// The human side.
    User,
    /// The model side.
    Assistant,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Author of the message.
    pub role: Role,
    /// Message text.
    pub content: String,
}

impl Message {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// A supported chat template family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatTemplate {
    /// `<|im_start|>role\n...<|im_end|>\n` (SmolLM2, Qwen2.5, Qwen3).
    ///
    /// `default_system` is injected when the conversation has no system
    /// message, as SmolLM2's and Qwen2.5's templates do.
    ChatMl {
        /// System prompt used when none is given.
        default_system: Option<String>,
    },
    /// Llama-3 header/`<|eot_id|>` format.
    Llama3,
    /// Gemma `<start_of_turn>`/`<end_of_turn>` format (system folded into the
    /// first user turn).
    Gemma,
    /// Phi-3 `<|user|>`/`<|end|>` format.
    Phi3,
}

impl ChatTemplate {
    /// Picks a template from the GGUF `tokenizer.chat_template` text, falling
    /// back on the architecture name when the template is absent or unknown.
    pub fn detect(template: Option<&str>, architecture: &str) -> Self {
        if let Some(t) = template {
            if t.contains("<|im_start|>") {
                return ChatTemplate::ChatMl {
                    default_system: extract_default_system(t),
                };
            }
            if t.contains("<|start_header_id|>") {
                return ChatTemplate::Llama3;
            }
            if t.contains("<start_of_turn>") {
                return ChatTemplate::Gemma;
            }
            if t.contains("<|user|>") {
                return ChatTemplate::Phi3;
            }
        }
        match architecture {
            "gemma" | "gemma2" | "gemma3" => ChatTemplate::Gemma,
            "phi3" => ChatTemplate::Phi3,
            "llama" if template.is_none() => ChatTemplate::Llama3,
            _ => ChatTemplate::ChatMl {
                default_system: None,
            },
        }
    }

    /// Renders the conversation, ending with the assistant generation prompt
    /// when `add_generation_prompt` is set.
    ///
    /// `bos` is the text of the BOS token for templates that start with it
    /// (Llama-3, Gemma); pass `None` to omit it.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        bos: Option<&str>,
    ) -> String {
        let mut out = String::new();
        match self {
            ChatTemplate::ChatMl { default_system } => {
                if let Some(sys) = default_system {
                    if messages.first().is_none_or(|m| m.role != Role::System) {
                        push_chatml(&mut out, "system", sys);
                    }
                }
                for m in messages {
                    push_chatml(&mut out, m.role.as_str(), &m.content);
                }
                if add_generation_prompt {
                    out.push_str("<|im_start|>assistant\n");
                }
            }
            ChatTemplate::Llama3 => {
                out.push_str(bos.unwrap_or(""));
                for m in messages {
                    out.push_str("<|start_header_id|>");
                    out.push_str(m.role.as_str());
                    out.push_str("<|end_header_id|>\n\n");
                    out.push_str(m.content.trim());
                    out.push_str("<|eot_id|>");
                }
                if add_generation_prompt {
                    out.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
                }
            }
            ChatTemplate::Gemma => {
                out.push_str(bos.unwrap_or(""));
                let mut system: Option<&str> = None;
                for m in messages {
                    match m.role {
                        Role::System => system = Some(m.content.trim()),
                        Role::User | Role::Assistant => {
                            let role = if m.role == Role::User {
                                "user"
                            } else {
                                "model"
                            };
                            out.push_str("<start_of_turn>");
                            out.push_str(role);
                            out.push('\n');
                            if let Some(sys) = system.take() {
                                out.push_str(sys);
                                out.push_str("\n\n");
                            }
                            out.push_str(m.content.trim());
                            out.push_str("<end_of_turn>\n");
                        }
                    }
                }
                if add_generation_prompt {
                    out.push_str("<start_of_turn>model\n");
                }
            }
            ChatTemplate::Phi3 => {
                for m in messages {
                    out.push_str("<|");
                    out.push_str(m.role.as_str());
                    out.push_str("|>\n");
                    out.push_str(&m.content);
                    out.push_str("<|end|>\n");
                }
                if add_generation_prompt {
                    out.push_str("<|assistant|>\n");
                }
            }
        }
        out
    }

    /// Text of the tokens that end an assistant turn in this template.
    pub fn end_of_turn_markers(&self) -> &'static [&'static str] {
        match self {
            ChatTemplate::ChatMl { .. } => &["<|im_end|>", "<|endoftext|>"],
            ChatTemplate::Llama3 => &["<|eot_id|>", "<|end_of_text|>", "<|eom_id|>"],
            ChatTemplate::Gemma => &["<end_of_turn>", "<eos>"],
            ChatTemplate::Phi3 => &["<|end|>", "<|endoftext|>"],
        }
    }

    /// Token ids that stop generation: the template's end-of-turn tokens
    /// present in the vocabulary plus the tokenizer's EOS.
    pub fn stop_token_ids(&self, tokenizer: &Tokenizer) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .end_of_turn_markers()
            .iter()
            .filter_map(|m| tokenizer.token_id(m))
            .collect();
        if let Some(eos) = tokenizer.eos_id() {
            if !ids.contains(&eos) {
                ids.push(eos);
            }
        }
        ids
    }
}

fn push_chatml(out: &mut String, role: &str, content: &str) {
    out.push_str("<|im_start|>");
    out.push_str(role);
    out.push('\n');
    out.push_str(content);
    out.push_str("<|im_end|>\n");
}

/// Finds a literal default system prompt in a ChatML Jinja template, i.e. the
/// text of `'<|im_start|>system\n...<|im_end|>` written as a string constant.
fn extract_default_system(template: &str) -> Option<String> {
    const OPEN: &str = "<|im_start|>system\\n";
    const OPEN_RAW: &str = "<|im_start|>system\n";
    for open in [OPEN, OPEN_RAW] {
        let mut from = 0;
        while let Some(pos) = template[from..].find(open) {
            let start = from + pos + open.len();
            let rest = &template[start..];
            if let Some(end) = rest.find("<|im_end|>") {
                let body = &rest[..end];
                // Only a literal constant counts, not `' + message['content'] + '`.
                if !body.is_empty()
                    && !body.contains('\'')
                    && !body.contains("{{")
                    && !body.contains('+')
                {
                    return Some(body.replace("\\n", "\n"));
                }
            }
            from = start;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_default_system_is_extracted() {
        let t = "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are helpful<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}";
        let tpl = ChatTemplate::detect(Some(t), "llama");
        assert_eq!(
            tpl,
            ChatTemplate::ChatMl {
                default_system: Some("You are helpful".into())
            }
        );
        let s = tpl.render(&[Message::user("hi")], true, None);
        assert_eq!(
            s,
            "<|im_start|>system\nYou are helpful<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn other_families() {
        assert_eq!(
            ChatTemplate::detect(Some("<|start_header_id|>"), "llama"),
            ChatTemplate::Llama3
        );
        assert_eq!(
            ChatTemplate::detect(Some("<start_of_turn>"), "gemma3"),
            ChatTemplate::Gemma
        );
        assert_eq!(
            ChatTemplate::detect(Some("<|user|>"), "phi3"),
            ChatTemplate::Phi3
        );
        let g = ChatTemplate::Gemma.render(
            &[Message::system("S"), Message::user("U")],
            true,
            Some("<bos>"),
        );
        assert_eq!(
            g,
            "<bos><start_of_turn>user\nS\n\nU<end_of_turn>\n<start_of_turn>model\n"
        );
        let l = ChatTemplate::Llama3.render(&[Message::user("U")], true, Some("<|begin_of_text|>"));
        assert_eq!(
            l,
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        );
        let p = ChatTemplate::Phi3.render(&[Message::user("U")], true, None);
        assert_eq!(p, "<|user|>\nU<|end|>\n<|assistant|>\n");
    }
}

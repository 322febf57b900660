//! The instruct prompt for one user message, from the kind of the model's chat template.
//!
//! greta does not run Jinja: it recognises the two template families it runs (ChatML, used by
//! SmolLM2 and Qwen; Llama-3's header format) and writes the prompt those templates render for a
//! single user message with `add_generation_prompt = true`. Anything else gets the raw text.
//!
//! ChatML templates may insert a default system message when the conversation has none (SmolLM2's:
//! "You are a helpful AI assistant named SmolLM, trained by Hugging Face"). It is read from the
//! template itself: the literal text between `<|im_start|>system\n` and `<|im_end|>` when that text
//! contains no Jinja expression.

/// The family of a model's chat template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatTemplate {
    /// `<|im_start|>role\n...<|im_end|>\n`.
    ChatMl {
        /// The system message the template adds when none is given.
        default_system: Option<String>,
    },
    /// `<|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>`.
    Llama3,
    /// No template, or one greta does not know: the prompt is the user text.
    Plain,
}

const IM_SYSTEM: &str = "<|im_start|>system\n";
const IM_END: &str = "<|im_end|>";

impl ChatTemplate {
    /// Classifies a Jinja chat template by the markers it contains.
    pub fn detect(template: Option<&str>) -> ChatTemplate {
        let Some(t) = template else {
            return ChatTemplate::Plain;
        };
        if t.contains("<|im_start|>") {
            ChatTemplate::ChatMl {
                default_system: default_system(t),
            }
        } else if t.contains("<|start_header_id|>") {
            ChatTemplate::Llama3
        } else {
            ChatTemplate::Plain
        }
    }

    /// The prompt text for one user message, ending where the assistant's reply starts.
    ///
    /// `bos_text` is written first where the template writes `bos_token` (Llama-3) — pass `None`
    /// when the encoder adds BOS itself, so the prompt does not start with two.
    pub fn prompt(&self, user: &str, bos_text: Option<&str>) -> String {
        match self {
            ChatTemplate::ChatMl { default_system } => {
                let mut p = String::new();
                if let Some(system) = default_system {
                    p.push_str(&format!("{IM_SYSTEM}{system}{IM_END}\n"));
                }
                p.push_str(&format!(
                    "<|im_start|>user\n{user}{IM_END}\n<|im_start|>assistant\n"
                ));
                p
            }
            ChatTemplate::Llama3 => format!(
                // Llama-3's template trims the message content.
                "{}<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>\
                 <|start_header_id|>assistant<|end_header_id|>\n\n",
                bos_text.unwrap_or(""),
                user.trim()
            ),
            ChatTemplate::Plain => user.to_string(),
        }
    }
}

/// The literal default system message of a ChatML template, if it has one.
fn default_system(template: &str) -> Option<String> {
    let mut rest = template;
    while let Some(at) = rest.find(IM_SYSTEM) {
        rest = &rest[at + IM_SYSTEM.len()..];
        let Some(end) = rest.find(IM_END) else { break };
        let body = &rest[..end];
        // A Jinja expression or a string-literal boundary means the text is computed (for example
        // `'<|im_start|>system\n' + messages[0]['content']`), not a fixed default.
        if !body.is_empty() && !body.contains(['{', '}', '\'', '"']) {
            // A template stored with escaped newlines still renders real ones.
            return Some(body.replace("\\n", "\n"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn smollm2_default_system() {
        let t = ChatTemplate::detect(Some(SMOLLM2));
        assert_eq!(
            t,
            ChatTemplate::ChatMl {
                default_system: Some(
                    "You are a helpful AI assistant named SmolLM, trained by Hugging Face".into()
                )
            }
        );
    }

    #[test]
    fn computed_system_is_not_a_default() {
        let t = "{{ '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}";
        assert_eq!(
            ChatTemplate::detect(Some(t)),
            ChatTemplate::ChatMl {
                default_system: None
            }
        );
    }

    #[test]
    fn llama3_and_plain() {
        let t = ChatTemplate::detect(Some("{{ '<|start_header_id|>' + role }}"));
        assert_eq!(t, ChatTemplate::Llama3);
        assert_eq!(
            t.prompt(" hi ", Some("<|begin_of_text|>")),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>\
             <|start_header_id|>assistant<|end_header_id|>\n\n"
        );
        assert_eq!(ChatTemplate::detect(None).prompt("x", None), "x");
    }
}

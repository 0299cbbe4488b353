//! The model's chat template (Jinja, from GGUF `tokenizer.chat_template`), rendered with
//! `minijinja` the way Hugging Face's `apply_chat_template` renders it.

use candle_core::quantized::gguf_file::Content;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;

/// One chat message, as the template sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// A chat template and the special-token texts it may refer to.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// The template stored in a GGUF file.
    pub fn from_gguf(ct: &Content, tokenizer: &Tokenizer) -> Result<Self> {
        let source = ct
            .metadata
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok())
            .ok_or_else(|| {
                Error::Template("the model has no tokenizer.chat_template".to_owned())
            })?;
        Self::new(
            source.clone(),
            tokenizer.bos_token().unwrap_or_default(),
            tokenizer.eos_token().unwrap_or_default(),
        )
    }

    /// A template from its Jinja source; checks that it compiles.
    pub fn new(source: String, bos_token: &str, eos_token: &str) -> Result<Self> {
        let t = Self {
            source,
            bos_token: bos_token.to_owned(),
            eos_token: eos_token.to_owned(),
        };
        t.env()?;
        Ok(t)
    }

    fn env(&self) -> Result<minijinja::Environment<'_>> {
        let mut env = minijinja::Environment::new();
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_template("chat", &self.source)
            .map_err(|e| Error::Template(e.to_string()))?;
        Ok(env)
    }

    /// The prompt text for `messages`, ending with the assistant's turn opener when
    /// `add_generation_prompt` is set.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let env = self.env()?;
        let tmpl = env
            .get_template("chat")
            .map_err(|e| Error::Template(e.to_string()))?;
        // Errors name the template's rule only: the messages never go into an error.
        let messages: Vec<minijinja::Value> = messages
            .iter()
            .map(|m| {
                minijinja::Value::from_pairs([
                    ("role", m.role.as_str()),
                    ("content", m.content.as_str()),
                ])
            })
            .collect();
        tmpl.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
        })
        .map_err(|e| Error::Template(format!("rendering failed: {}", e.kind())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-Instruct's template, as stored in its GGUF.
    pub(crate) const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    fn msg(role: &str, content: &str) -> ChatMessage {
        ChatMessage {
            role: role.to_owned(),
            content: content.to_owned(),
        }
    }

    #[test]
    fn renders_chatml_with_default_system_prompt() {
        let t =
            ChatTemplate::new(SMOLLM2.to_owned(), "<|im_start|>", "<|im_end|>").expect("compiles");
        let out = t.render(&[msg("user", "Hi")], true).expect("renders");
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn keeps_an_explicit_system_prompt() {
        let t = ChatTemplate::new(SMOLLM2.to_owned(), "", "").expect("compiles");
        let out = t
            .render(&[msg("system", "Be brief."), msg("user", "Hi")], false)
            .expect("renders");
        assert_eq!(
            out,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        );
    }

    #[test]
    fn template_errors_do_not_echo_content() {
        let t = ChatTemplate::new(
            "{{ raise_exception('only user/assistant roles') }}".to_owned(),
            "",
            "",
        )
        .expect("compiles");
        let err = t
            .render(&[msg("user", "secret prompt")], true)
            .expect_err("raises");
        assert!(!err.to_string().contains("secret"));
        assert!(ChatTemplate::new("{% for %}".to_owned(), "", "").is_err());
    }
}

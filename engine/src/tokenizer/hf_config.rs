//! A Hugging Face model's `tokenizer_config.json`: the chat template and the special
//! tokens (data only; no `trust_remote_code`).

use serde::Deserialize;

use crate::error::{Error, Result};

/// A special token in `tokenizer_config.json`: a string, or an object with `content`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum TokenText {
    Text(String),
    Object { content: String },
}

impl TokenText {
    fn into_text(self) -> String {
        match self {
            Self::Text(t) | Self::Object { content: t } => t,
        }
    }
}

#[derive(Debug, Deserialize)]
struct RawTokenizerConfig {
    #[serde(default)]
    chat_template: Option<serde_json::Value>,
    #[serde(default)]
    bos_token: Option<TokenText>,
    #[serde(default)]
    eos_token: Option<TokenText>,
    #[serde(default)]
    add_bos_token: bool,
}

/// The fields of `tokenizer_config.json` the engine reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfTokenizerConfig {
    /// The Jinja chat template.
    pub chat_template: String,
    /// Text of the BOS token.
    pub bos_token: Option<String>,
    /// Text of the EOS token.
    pub eos_token: Option<String>,
    /// Whether prompts start with the BOS token.
    pub add_bos_token: bool,
}

impl HfTokenizerConfig {
    /// Parses `tokenizer_config.json`; it must carry a single chat template as a string.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let raw: RawTokenizerConfig = serde_json::from_slice(bytes)
            .map_err(|e| Error::Tokenizer(format!("tokenizer_config.json: {e}")))?;
        let chat_template = match raw.chat_template {
            Some(serde_json::Value::String(s)) => s,
            Some(_) => {
                return Err(Error::Template(
                    "tokenizer_config.json: only a single chat_template string is supported"
                        .to_owned(),
                ));
            }
            None => {
                return Err(Error::Template(
                    "tokenizer_config.json has no chat_template".to_owned(),
                ));
            }
        };
        Ok(Self {
            chat_template,
            bos_token: raw.bos_token.map(TokenText::into_text),
            eos_token: raw.eos_token.map(TokenText::into_text),
            add_bos_token: raw.add_bos_token,
        })
    }
}

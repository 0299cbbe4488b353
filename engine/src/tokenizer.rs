//! The tokenizer, built from GGUF metadata the way llama.cpp builds it.
//!
//! For `tokenizer.ggml.model = gpt2` with `tokenizer.ggml.pre = smollm` (SmolLM/SmolLM2),
//! llama.cpp pre-tokenizes in two passes: every digit alone (`\p{N}`), then the GPT-2
//! regex; then byte-level BPE with the GGUF's merges, no prefix space, and every token
//! whose GGUF type is CONTROL (3) or USER_DEFINED (4) matched as a whole in the input.
//! The same pipeline in `tokenizers` terms is `Sequence[Digits(individual), ByteLevel(
//! add_prefix_space = false, use_regex = true)]`. candle's `TokenizerFromGguf` has no case
//! for `smollm` and falls back to a prefix-space GPT-2 pipeline, whose ids differ.
//!
//! Decoding does not go through `tokenizers`: every token id maps to its raw bytes (the
//! inverse of GPT-2's byte-to-unicode table), so a generated stream can be turned into
//! text incrementally without ever splitting a UTF-8 character (see [`crate::TextStream`]).

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::AddedToken;
use tokenizers::DecoderWrapper;
use tokenizers::ModelWrapper;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;

use crate::error::{Error, Result};

mod hf_config;

pub use hf_config::HfTokenizerConfig;

type Inner = tokenizers::Tokenizer;

/// GGUF token types (llama.cpp `llama_token_type`).
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// A piece of a prompt to tokenize (a chat template renders a conversation as these:
/// [`crate::chat::ChatTemplate::render_prompt`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptSegment {
    /// Written by the chat template: control tokens in it are control tokens.
    Template(String),
    /// A message's content: control-token text in it is plain text.
    Content(String),
}

/// A byte-level BPE tokenizer with the GGUF's vocabulary, merges and special tokens.
pub struct Tokenizer {
    inner: Inner,
    /// The same tokenizer with control-token text treated as plain text (for message content).
    inner_text: Inner,
    /// Raw bytes of every token; empty for control tokens (never printed).
    token_bytes: Vec<Vec<u8>>,
    /// Control tokens by id.
    control: Vec<bool>,
    /// End-of-generation ids: the GGUF's EOS and `<|endoftext|>`/`<|im_end|>`/`<|eot_id|>` if present.
    end_of_generation: Vec<u32>,
    /// Text of the BOS token, if the GGUF names one.
    bos: Option<String>,
    /// Text of the EOS token.
    eos: Option<String>,
    add_bos: Option<u32>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.token_bytes.len())
            .field("end_of_generation", &self.end_of_generation)
            .finish_non_exhaustive()
    }
}

fn meta<'a>(ct: &'a Content, key: &str) -> Result<&'a Value> {
    ct.metadata
        .get(key)
        .ok_or_else(|| Error::Tokenizer(format!("GGUF metadata has no `{key}`")))
}

fn meta_u32(ct: &Content, key: &str) -> Option<u32> {
    ct.metadata
        .get(key)
        .and_then(value_i64)
        .and_then(|v| u32::try_from(v).ok())
}

fn value_i64(v: &Value) -> Option<i64> {
    Some(match v {
        Value::U8(x) => i64::from(*x),
        Value::I8(x) => i64::from(*x),
        Value::U16(x) => i64::from(*x),
        Value::I16(x) => i64::from(*x),
        Value::U32(x) => i64::from(*x),
        Value::I32(x) => i64::from(*x),
        Value::U64(x) => i64::try_from(*x).ok()?,
        Value::I64(x) => *x,
        _ => return None,
    })
}

fn strings(v: &Value, key: &str) -> Result<Vec<String>> {
    v.to_vec()
        .map_err(|e| Error::Tokenizer(format!("`{key}`: {e}")))?
        .iter()
        .map(|s| {
            s.to_string()
                .cloned()
                .map_err(|e| Error::Tokenizer(format!("`{key}`: {e}")))
        })
        .collect()
}

impl Tokenizer {
    /// Builds the tokenizer from a GGUF file's metadata.
    pub fn from_gguf(ct: &Content) -> Result<Self> {
        let model = meta(ct, "tokenizer.ggml.model")?
            .to_string()
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        if model != "gpt2" {
            return Err(Error::Tokenizer(format!(
                "tokenizer model `{model}` is not supported (gpt2 byte-level BPE only)"
            )));
        }
        let pre = ct
            .metadata
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok())
            .map_or("default", String::as_str);
        let pre_tokenizer = pre_tokenizer(pre)?;

        let tokens = strings(meta(ct, "tokenizer.ggml.tokens")?, "tokenizer.ggml.tokens")?;
        let merges: Vec<(String, String)> =
            strings(meta(ct, "tokenizer.ggml.merges")?, "tokenizer.ggml.merges")?
                .into_iter()
                .map(|m| {
                    m.split_once(' ')
                        .map(|(a, b)| (a.to_owned(), b.to_owned()))
                        .ok_or_else(|| Error::Tokenizer("merge without a space".to_owned()))
                })
                .collect::<Result<_>>()?;
        let types: Vec<i64> = match ct.metadata.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .map_err(|e| Error::Tokenizer(e.to_string()))?
                .iter()
                .map(|t| value_i64(t).unwrap_or(1))
                .collect(),
            None => vec![1; tokens.len()],
        };
        if types.len() != tokens.len() {
            return Err(Error::Tokenizer(format!(
                "{} token types for {} tokens",
                types.len(),
                tokens.len()
            )));
        }

        let vocab: tokenizers::models::bpe::Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| Ok((t.clone(), u32::try_from(i).map_err(|_| too_many())?)))
            .collect::<Result<_>>()?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let mut inner = Inner::new(bpe);
        inner.with_pre_tokenizer(Some(pre_tokenizer));

        let control: Vec<bool> = types.iter().map(|&t| t == TOKEN_TYPE_CONTROL).collect();
        let specials: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, t)| matches!(**t, TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED))
            // USER_DEFINED tokens are matched whole even in message content (llama.cpp
            // parses them with or without `parse_special`); only CONTROL tokens are special.
            .map(|(tok, &t)| AddedToken::from(tok.clone(), t == TOKEN_TYPE_CONTROL))
            .collect();
        inner
            .add_special_tokens(specials)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;

        let eos_id = meta_u32(ct, "tokenizer.ggml.eos_token_id");
        let bos_id = meta_u32(ct, "tokenizer.ggml.bos_token_id");
        let add_bos = ct
            .metadata
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(false);
        // Decoding never goes through `tokenizers`; the decoder is set so that
        // [`Tokenizer::hf_json`] writes a complete byte-level tokenizer.
        inner.with_decoder(Some(ByteLevel::default()));
        Self::from_parts(inner, &tokens, control, eos_id, bos_id, add_bos)
    }

    /// Builds the tokenizer from a Hugging Face `tokenizer.json` and the special tokens of
    /// its `tokenizer_config.json`. Only byte-level BPE (a `ByteLevel` decoder: GPT-2,
    /// SmolLM, Llama 3, Qwen) is accepted; tokens marked `special` are control tokens.
    pub fn from_hf_json(json: &[u8], config: &HfTokenizerConfig) -> Result<Self> {
        let inner = Inner::from_bytes(json)
            .map_err(|e| Error::Tokenizer(format!("tokenizer.json: {e}")))?;
        if !matches!(inner.get_model(), ModelWrapper::BPE(_))
            || !matches!(inner.get_decoder(), Some(DecoderWrapper::ByteLevel(_)))
        {
            return Err(Error::Tokenizer(
                "tokenizer.json: only byte-level BPE tokenizers are supported".to_owned(),
            ));
        }
        let added = inner.get_added_tokens_decoder();
        let n = inner.get_vocab_size(true);
        let max_id = added.keys().copied().max().map_or(0, |m| m as usize + 1);
        let n = n.max(max_id);
        let mut tokens = Vec::with_capacity(n);
        let mut control = Vec::with_capacity(n);
        for id in 0..n {
            let id = u32::try_from(id).map_err(|_| too_many())?;
            tokens.push(inner.id_to_token(id).unwrap_or_default());
            control.push(added.get(&id).is_some_and(|t| t.special));
        }
        let id_of = |text: &Option<String>| -> Result<Option<u32>> {
            match text {
                None => Ok(None),
                Some(t) => inner.token_to_id(t).map(Some).ok_or_else(|| {
                    Error::Tokenizer(format!("special token `{t}` is not in the vocabulary"))
                }),
            }
        };
        let eos_id = id_of(&config.eos_token)?;
        let bos_id = id_of(&config.bos_token)?;
        Self::from_parts(
            inner,
            &tokens,
            control,
            eos_id,
            bos_id,
            config.add_bos_token,
        )
    }

    fn from_parts(
        inner: Inner,
        tokens: &[String],
        control: Vec<bool>,
        eos_id: Option<u32>,
        bos_id: Option<u32>,
        add_bos: bool,
    ) -> Result<Self> {
        let mut inner_text = inner.clone();
        inner_text.set_encode_special_tokens(true);

        let token_bytes = tokens
            .iter()
            .zip(&control)
            .map(|(t, &c)| if c { Vec::new() } else { byte_level_bytes(t) })
            .collect();

        let mut end_of_generation: Vec<u32> = eos_id.into_iter().collect();
        for name in ["<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|end|>"] {
            if let Some(id) = tokens.iter().position(|t| t == name)
                && control.get(id) == Some(&true)
            {
                let id = u32::try_from(id).map_err(|_| too_many())?;
                if !end_of_generation.contains(&id) {
                    end_of_generation.push(id);
                }
            }
        }
        let text_of = |id: Option<u32>| id.and_then(|i| tokens.get(i as usize)).cloned();
        Ok(Self {
            inner,
            inner_text,
            token_bytes,
            control,
            end_of_generation,
            bos: text_of(bos_id),
            eos: text_of(eos_id),
            add_bos: if add_bos { bos_id } else { None },
        })
    }

    /// This tokenizer as a Hugging Face `tokenizer.json` (for writing a safetensors
    /// directory of a GGUF model; [`Tokenizer::from_hf_json`] reads it back).
    pub fn hf_json(&self) -> Result<String> {
        self.inner
            .to_string(false)
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// Token ids of `text`, with control tokens written in the text (e.g. `<|im_start|>`)
    /// matched as single tokens, and the BOS token first if the model asks for one.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        ids.extend(self.add_bos);
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    /// Token ids of a rendered chat prompt: control tokens are matched in the template's
    /// segments only; in message content, text such as `<|im_start|>` is tokenized as the
    /// characters it is, so a message cannot open or close a turn. BOS first if the model
    /// asks for one.
    pub fn encode_prompt(&self, segments: &[PromptSegment]) -> Result<Vec<u32>> {
        let mut ids: Vec<u32> = self.add_bos.into_iter().collect();
        for segment in segments {
            let (tokenizer, text) = match segment {
                PromptSegment::Template(t) => (&self.inner, t),
                PromptSegment::Content(t) => (&self.inner_text, t),
            };
            let enc = tokenizer
                .encode_fast(text.as_str(), false)
                .map_err(|e| Error::Tokenizer(e.to_string()))?;
            ids.extend_from_slice(enc.get_ids());
        }
        Ok(ids)
    }

    /// Raw bytes of a token (empty for control tokens and unknown ids).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes.get(id as usize).map_or(&[], Vec::as_slice)
    }

    /// Text of a whole sequence of ids, control tokens left out (lossy on invalid UTF-8).
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&id| self.token_bytes(id).iter().copied())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Whether generating `id` ends the completion.
    pub fn is_end_of_generation(&self, id: u32) -> bool {
        self.end_of_generation.contains(&id)
    }

    /// The ids whose generation ends a completion, the GGUF's EOS first.
    pub fn end_of_generation(&self) -> &[u32] {
        &self.end_of_generation
    }

    /// Whether `id` is a control token.
    pub fn is_control(&self, id: u32) -> bool {
        self.control.get(id as usize).copied().unwrap_or(false)
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    /// Text of the BOS token (for chat templates).
    pub fn bos_token(&self) -> Option<&str> {
        self.bos.as_deref()
    }

    /// Text of the EOS token (for chat templates).
    pub fn eos_token(&self) -> Option<&str> {
        self.eos.as_deref()
    }
}

fn too_many() -> Error {
    Error::Tokenizer("vocabulary larger than u32".to_owned())
}

/// The pre-tokenizer for a GGUF `tokenizer.ggml.pre` value.
fn pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper> {
    // `ByteLevel::new(add_prefix_space, trim_offsets, use_regex)`: the GPT-2 regex, no prefix space.
    let byte_level = ByteLevel::new(false, true, true);
    Ok(match pre {
        // llama.cpp: `\p{N}` then the GPT-2 regex (starcoder, refact, smollm, codeshell, …).
        "smollm" | "starcoder" | "refact" | "codeshell" => {
            Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()
        }
        // llama.cpp's default for gpt2 models is the GPT-2 regex alone.
        "gpt-2" | "gpt2" | "default" => byte_level.into(),
        other => {
            return Err(Error::Tokenizer(format!(
                "pre-tokenizer `{other}` is not supported"
            )));
        }
    })
}

/// Inverse of GPT-2's byte-to-unicode table: the bytes a byte-level token string stands for.
fn byte_level_bytes(token: &str) -> Vec<u8> {
    token.chars().flat_map(char_to_bytes).collect()
}

fn char_to_bytes(c: char) -> Vec<u8> {
    let cp = c as u32;
    let direct =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    if direct(cp) {
        return vec![cp as u8];
    }
    if (256..256 + 68).contains(&cp) {
        // The 68 bytes that are not printable map, in order, to U+0100 onwards.
        let n = cp - 256;
        if let Some(b) = (0u32..=255).filter(|&b| !direct(b)).nth(n as usize) {
            return vec![b as u8];
        }
    }
    // Not byte-level encoded (should not happen in a gpt2 vocabulary): its UTF-8.
    c.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_inverse_covers_all_bytes() {
        // Ġ is a space, Ċ a newline, and every byte has exactly one character.
        assert_eq!(byte_level_bytes("Ġhello"), b" hello");
        assert_eq!(byte_level_bytes("ĊĊ"), b"\n\n");
        assert_eq!(byte_level_bytes("\u{100}"), [0u8]);
        assert_eq!(byte_level_bytes("\u{143}"), [0xadu8]);
        let mut seen = [false; 256];
        for cp in (33u32..=126)
            .chain(161..=172)
            .chain(174..=255)
            .chain(256..324)
        {
            let c = char::from_u32(cp).expect("valid char");
            let b = char_to_bytes(c);
            assert_eq!(b.len(), 1, "U+{cp:04X}");
            assert!(!seen[b[0] as usize], "byte {} twice", b[0]);
            seen[b[0] as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn rejects_unknown_pre_tokenizer() {
        assert!(pre_tokenizer("qwen2").is_err());
        assert!(pre_tokenizer("smollm").is_ok());
    }
}

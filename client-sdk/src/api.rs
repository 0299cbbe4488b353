//! The OpenAI endpoints over the encrypted path: typed requests in, typed responses out.

use futures_util::stream::{BoxStream, StreamExt as _};
use serde::Serialize;
use serde::de::DeserializeOwned;

use veil_openai::{ChatCompletion, ChatCompletionChunk, Completion, ModelList};

use crate::openai::{ApiErrorBody, ChatRequest, CompletionRequest};
use crate::stream::DONE;
use crate::{Client, Error, Request};

/// A typed stream of events; ends with an error unless the server's authenticated final
/// chunk arrived.
pub type EventStream<T> = BoxStream<'static, Result<T, Error>>;

/// The OpenAI error carried in an inner error response.
pub(crate) fn api_error(status: u16, body: &[u8]) -> Error {
    let parsed: ApiErrorBody = serde_json::from_slice(body).unwrap_or_default();
    Error::Api {
        status,
        kind: parsed.error.kind,
        message: crate::error::short(&parsed.error.message),
    }
}

fn to_body<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::json(&e))
}

fn parse_event<T: DeserializeOwned>(payload: &str) -> Result<T, Error> {
    let value: serde_json::Value = serde_json::from_str(payload).map_err(|e| Error::json(&e))?;
    if value.get("error").is_some() {
        return Err(api_error(200, payload.as_bytes()));
    }
    serde_json::from_value(value).map_err(|e| Error::json(&e))
}

impl Client {
    async fn json<T: DeserializeOwned>(&self, req: Request) -> Result<T, Error> {
        let resp = self.send(&req).await?;
        if !(200..300).contains(&resp.status) {
            return Err(api_error(resp.status, &resp.body));
        }
        serde_json::from_slice(&resp.body).map_err(|e| Error::json(&e))
    }

    async fn events<T: DeserializeOwned + Send + 'static>(
        &self,
        req: Request,
    ) -> Result<EventStream<T>, Error> {
        let resp = self.send_streaming(&req).await?;
        if !resp.is_success() {
            let status = resp.status;
            return Err(api_error(status, &resp.collect().await?));
        }
        Ok(resp
            .events()
            .filter(|e| std::future::ready(!matches!(e, Ok(d) if d == DONE)))
            .map(|e| e.and_then(|payload| parse_event(&payload)))
            .boxed())
    }

    /// `GET /v1/models`.
    pub async fn models(&self) -> Result<ModelList, Error> {
        self.json(Request::get("/v1/models")).await
    }

    /// `POST /v1/chat/completions` (not streamed).
    pub async fn chat(&self, req: &ChatRequest) -> Result<ChatCompletion, Error> {
        let mut req = req.clone();
        req.stream = None;
        self.json(Request::post_json("/v1/chat/completions", to_body(&req)?))
            .await
    }

    /// `POST /v1/chat/completions` with `stream: true`: the chunks as they authenticate.
    pub async fn chat_stream(
        &self,
        req: &ChatRequest,
    ) -> Result<EventStream<ChatCompletionChunk>, Error> {
        let mut req = req.clone();
        req.stream = Some(true);
        self.events(Request::post_json("/v1/chat/completions", to_body(&req)?))
            .await
    }

    /// `POST /v1/completions` (not streamed).
    pub async fn complete(&self, req: &CompletionRequest) -> Result<Completion, Error> {
        let mut req = req.clone();
        req.stream = None;
        self.json(Request::post_json("/v1/completions", to_body(&req)?))
            .await
    }

    /// `POST /v1/completions` with `stream: true`.
    pub async fn complete_stream(
        &self,
        req: &CompletionRequest,
    ) -> Result<EventStream<Completion>, Error> {
        let mut req = req.clone();
        req.stream = Some(true);
        self.events(Request::post_json("/v1/completions", to_body(&req)?))
            .await
    }
}

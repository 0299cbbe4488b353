//! Streamed responses: chunked-OHTTP plaintext → inner Binary HTTP content → SSE events.
//! Every stream ends with an error unless the authenticated final chunk arrived; the
//! SSE terminator `[DONE]` is only yielded after that point.

use std::collections::VecDeque;

use futures_util::stream::{self, BoxStream, StreamExt as _};
use veil_protocol::ChunkedResponseOpener;

use crate::Error;
use crate::sse::SseParser;
use veil_protocol::{ResponseDecoder, ResponseHead};

/// The SSE payload that ends an OpenAI stream.
pub const DONE: &str = "[DONE]";

struct State {
    body: BoxStream<'static, Result<Vec<u8>, Error>>,
    opener: ChunkedResponseOpener,
    parser: ResponseDecoder,
    head: Option<ResponseHead>,
    pending: Vec<u8>,
    done: bool,
}

impl State {
    /// Reads one more piece of the body; `Ok(false)` once the stream is complete.
    async fn fill(&mut self) -> Result<bool, Error> {
        if self.done {
            return Ok(false);
        }
        let (plain, last) = match self.body.next().await {
            Some(Ok(bytes)) => (self.opener.push(&bytes).map_err(Error::opening)?, false),
            Some(Err(e)) => {
                self.done = true;
                return Err(e);
            }
            None => {
                self.done = true;
                (self.opener.finish().map_err(Error::opening)?, true)
            }
        };
        let mut parsed = self.parser.push(&plain).map_err(Error::InnerResponse)?;
        if last {
            let end = self.parser.finish().map_err(Error::InnerResponse)?;
            parsed.head = parsed.head.or(end.head);
            parsed.content.extend(end.content);
        }
        if parsed.head.is_some() {
            self.head = parsed.head;
        }
        self.pending.extend(parsed.content);
        Ok(!last)
    }

    async fn next_content(&mut self) -> Option<Result<Vec<u8>, Error>> {
        loop {
            if !self.pending.is_empty() {
                return Some(Ok(std::mem::take(&mut self.pending)));
            }
            match self.fill().await {
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Ok(false) if self.pending.is_empty() => return None,
                Ok(_) => {}
            }
        }
    }
}

/// A streamed inner response: its status and content type, then its body.
#[non_exhaustive]
pub struct ResponseStream {
    /// Inner HTTP status.
    pub status: u16,
    /// Inner `content-type`, if any.
    pub content_type: Option<String>,
    /// Every inner header field (names lowercase as sent, values lossily UTF-8).
    pub headers: Vec<(String, String)>,
    state: State,
}

impl std::fmt::Debug for ResponseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseStream")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

impl ResponseStream {
    pub(crate) async fn start(
        resp: reqwest::Response,
        opener: ChunkedResponseOpener,
    ) -> Result<Self, Error> {
        let body = resp
            .bytes_stream()
            .map(|r| r.map(|b| b.to_vec()).map_err(|e| Error::transport(&e)))
            .boxed();
        let mut state = State {
            body,
            opener,
            parser: ResponseDecoder::new(),
            head: None,
            pending: Vec::new(),
            done: false,
        };
        while state.head.is_none() && state.fill().await? {}
        let head = state
            .head
            .take()
            .ok_or_else(|| Error::MalformedResponse("no response head".into()))?;
        Ok(Self {
            status: head.status,
            content_type: head
                .header("content-type")
                .map(|v| String::from_utf8_lossy(v).into_owned()),
            headers: head
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        String::from_utf8_lossy(n).into_owned(),
                        String::from_utf8_lossy(v).into_owned(),
                    )
                })
                .collect(),
            state,
        })
    }

    /// Whether the inner status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body's content, piece by piece as chunks authenticate; ends with
    /// [`Error::Truncated`] (or another error) unless the final chunk authenticated.
    pub fn bytes(self) -> BoxStream<'static, Result<Vec<u8>, Error>> {
        stream::unfold(self.state, |mut s| async move {
            s.next_content().await.map(|item| (item, s))
        })
        .boxed()
    }

    /// The whole body, once the final chunk authenticated.
    pub async fn collect(self) -> Result<Vec<u8>, Error> {
        let mut body = self.bytes();
        let mut out = Vec::new();
        while let Some(piece) = body.next().await {
            out.extend(piece?);
        }
        Ok(out)
    }

    /// The body as Server-Sent Events: each event's `data` payload. [`DONE`] is yielded
    /// last and only after the final chunk authenticated; a stream that ends inside an
    /// event is an error.
    pub fn events(self) -> BoxStream<'static, Result<String, Error>> {
        struct Ev {
            body: BoxStream<'static, Result<Vec<u8>, Error>>,
            sse: SseParser,
            queue: VecDeque<String>,
            saw_done: bool,
            ended: bool,
        }
        let ev = Ev {
            body: self.bytes(),
            sse: SseParser::default(),
            queue: VecDeque::new(),
            saw_done: false,
            ended: false,
        };
        stream::unfold(ev, |mut ev| async move {
            loop {
                if let Some(e) = ev.queue.pop_front() {
                    return Some((Ok(e), ev));
                }
                if ev.ended {
                    return None;
                }
                match ev.body.next().await {
                    Some(Ok(bytes)) => match ev.sse.push(&bytes) {
                        Ok(events) => {
                            for e in events {
                                if e == DONE {
                                    ev.saw_done = true;
                                } else if !ev.saw_done {
                                    ev.queue.push_back(e);
                                }
                            }
                        }
                        Err(m) => {
                            ev.ended = true;
                            return Some((Err(Error::MalformedResponse(m)), ev));
                        }
                    },
                    Some(Err(e)) => {
                        ev.ended = true;
                        return Some((Err(e), ev));
                    }
                    None => {
                        ev.ended = true;
                        if ev.sse.has_partial_event() {
                            let e = Error::MalformedResponse("stream ends inside an event".into());
                            return Some((Err(e), ev));
                        }
                        if ev.saw_done {
                            ev.queue.push_back(DONE.to_owned());
                        }
                    }
                }
            }
        })
        .boxed()
    }
}

//! Server-Sent Events framing of the decrypted stream: `data:` payloads out, comment
//! lines (Veil's length-hiding padding) and other fields ignored.

/// Splits bytes into events and returns each event's joined `data` payload.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    buf: Vec<u8>,
}

/// Cap on one buffered event.
const MAX_EVENT: usize = 16 << 20;

impl SseParser {
    /// Feeds bytes; returns the data payloads of the events they complete.
    pub(crate) fn push(&mut self, data: &[u8]) -> Result<Vec<String>, String> {
        self.buf.extend_from_slice(data);
        let mut events = Vec::new();
        while let Some(end) = find_event_end(&self.buf) {
            let (event, sep) = end;
            let raw: Vec<u8> = self.buf.drain(..event + sep).take(event).collect();
            if let Some(d) = payload(&raw)? {
                events.push(d);
            }
        }
        if self.buf.len() > MAX_EVENT {
            return Err("server-sent event over the size limit".into());
        }
        Ok(events)
    }

    /// Whether bytes of an unfinished event are left over (other than padding).
    pub(crate) fn has_partial_event(&self) -> bool {
        self.buf
            .split(|&b| b == b'\n')
            .any(|l| !l.is_empty() && l != b"\r" && !l.starts_with(b":"))
    }
}

/// Position of the first blank line that ends an event, and its separator length.
fn find_event_end(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\n' {
            match (b.get(i + 1), b.get(i + 2)) {
                (Some(b'\n'), _) => return Some((i, 2)),
                (Some(b'\r'), Some(b'\n')) => return Some((i, 3)),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

fn payload(event: &[u8]) -> Result<Option<String>, String> {
    let text = std::str::from_utf8(event).map_err(|_| "server-sent event is not UTF-8")?;
    let mut data: Option<String> = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some(v) = line.strip_prefix("data:") {
            let v = v.strip_prefix(' ').unwrap_or(v);
            match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(v);
                }
                None => data = Some(v.to_owned()),
            }
        }
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_events_and_ignores_padding_comments() {
        let mut p = SseParser::default();
        let mut got = p.push(b":    \ndata: {\"a\":1}\n\nda").expect("ok");
        got.extend(p.push(b"ta: [DONE]\n\n:   \n").expect("ok"));
        assert_eq!(got, vec!["{\"a\":1}".to_owned(), "[DONE]".to_owned()]);
        assert!(!p.has_partial_event());
        p.push(b"data: x").expect("ok");
        assert!(p.has_partial_event());
    }
}

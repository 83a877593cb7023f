//! The `text/event-stream` lines of `GET /v1/events` (`docs/local-api.md`) made into events, as
//! chunks of the answer arrive (a chunk may end anywhere, even inside a UTF-8 character).
//! The subset the node sends: `id`, `event`, `data` fields, `:` comments, a blank line ending
//! each event (the HTML standard's rules for these).

/// One event of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// Its `id` (the ledger index), when it had a numeric one.
    pub(crate) id: Option<u64>,
    /// Its `event` name (the entry's kind).
    pub(crate) event: String,
    /// Its `data` lines, joined by `\n`.
    pub(crate) data: String,
}

/// Bytes in, events out.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    pending: Vec<u8>,
    id: Option<u64>,
    event: String,
    data: Vec<String>,
}

/// Longest line kept while waiting for its end: a stream that never ends a line cannot make the
/// client hold all of it.
const MAX_LINE: usize = 1 << 20;

impl SseParser {
    /// Feeds a chunk; returns the events it completed.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..end]);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if let Some(event) = self.line(line) {
                events.push(event);
            }
        }
        if self.pending.len() > MAX_LINE {
            self.pending.clear();
        }
        events
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            if self.data.is_empty() {
                self.event.clear();
                return None;
            }
            return Some(SseEvent {
                id: self.id,
                event: std::mem::take(&mut self.event),
                data: std::mem::take(&mut self.data).join("\n"),
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match name {
            "id" => self.id = value.parse().ok(),
            "event" => self.event = value.to_owned(),
            "data" => self.data.push(value.to_owned()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_whole_however_the_chunks_are_cut() {
        let stream = "id: 1523\nevent: notice\ndata: {\"index\":1523,\"kind\":\"notice\",\"id\":\"6f1c\",\"fields\":{\"by\":\"Sở Nội vụ\"}}\n\n: keep-alive\n\nid: 1524\r\nevent: registered\r\ndata: {\"index\":1524}\r\n\r\n";
        let whole = SseParser::default().feed(stream.as_bytes());
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[0].id, Some(1523));
        assert_eq!(whole[0].event, "notice");
        assert!(whole[0].data.contains("Sở Nội vụ"));
        assert_eq!(whole[1].id, Some(1524));
        assert_eq!(whole[1].data, "{\"index\":1524}");
        // One byte at a time, cutting inside "ở": the same events.
        let mut parser = SseParser::default();
        let bytewise: Vec<SseEvent> = stream
            .as_bytes()
            .iter()
            .flat_map(|b| parser.feed(&[*b]))
            .collect();
        assert_eq!(bytewise, whole);
    }
}

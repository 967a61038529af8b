//! The response side of HTTP/1.1, fed in whatever pieces the socket gives:
//! the head through `httparse`, then a body framed by Content-Length,
//! chunked transfer-encoding, or the end of the connection.

use super::Response;

/// Why a response could not be read; `request.rs` adds the address.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ParseError {
    BadHead(String),
    BadBody(String),
    TooLarge(usize),
    ClosedBeforeHead,
    ClosedInBody,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Waiting for a chunk-size line.
    Size,
    /// This many data bytes of the current chunk are still to come.
    Data(usize),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// After the last (empty) chunk: trailers up to an empty line.
    Trailer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked(Chunk),
    UntilClose,
}

/// A response being received.
#[derive(Debug)]
pub(super) struct Parser {
    cap: usize,
    /// Bytes received so far, head included, for the cap.
    received: usize,
    /// Received but not yet consumed: the head until it is complete, then
    /// chunked framing not yet decoded.
    pending: Vec<u8>,
    /// The status and framing, once the head is complete.
    head: Option<(u16, Framing)>,
    body: Vec<u8>,
}

/// A head with more header lines than this is refused (Envoy sends 6-8).
const MAX_HEADERS: usize = 64;

impl Parser {
    pub(super) fn new(cap: usize) -> Self {
        Parser {
            cap,
            received: 0,
            pending: Vec::new(),
            head: None,
            body: Vec::new(),
        }
    }

    /// Take the next bytes; Some when the response is complete.
    pub(super) fn push(&mut self, data: &[u8]) -> Result<Option<Response>, ParseError> {
        self.received += data.len();
        if self.received > self.cap {
            return Err(ParseError::TooLarge(self.cap));
        }
        self.pending.extend_from_slice(data);
        loop {
            let Some((status, framing)) = self.head else {
                if !self.parse_head()? {
                    return Ok(None);
                }
                continue;
            };
            let done = match framing {
                Framing::Length(n) => {
                    let take = (n - self.body.len()).min(self.pending.len());
                    self.body.extend_from_slice(&self.pending[..take]);
                    // Anything after the body is not ours: Connection: close.
                    self.pending.clear();
                    self.body.len() == n
                }
                Framing::Chunked(state) => self.dechunk(state)?,
                Framing::UntilClose => {
                    self.body.append(&mut self.pending);
                    false
                }
            };
            return Ok(done.then(|| self.finish(status)));
        }
    }

    /// The peer closed the connection.
    pub(super) fn eof(&mut self) -> Result<Response, ParseError> {
        match self.head {
            None => Err(ParseError::ClosedBeforeHead),
            Some((status, Framing::UntilClose)) => Ok(self.finish(status)),
            // The last chunk was seen; only the trailer's end is missing.
            Some((status, Framing::Chunked(Chunk::Trailer))) => Ok(self.finish(status)),
            Some(_) => Err(ParseError::ClosedInBody),
        }
    }

    fn finish(&mut self, status: u16) -> Response {
        Response {
            status,
            body: std::mem::take(&mut self.body),
        }
    }

    /// Parse the head from `pending` if it is complete; false if more is
    /// needed.
    fn parse_head(&mut self) -> Result<bool, ParseError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut head = httparse::Response::new(&mut headers);
        let len = match head.parse(&self.pending) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(false),
            Err(e) => return Err(ParseError::BadHead(e.to_string())),
        };
        let status = head.code.unwrap_or_default();
        let framing = match status {
            // 101 would switch protocols: not something the admin does.
            101 => {
                return Err(ParseError::BadHead(
                    "unexpected 101 Switching Protocols".into(),
                ));
            }
            // An interim answer (100 Continue): the real one follows.
            100..=199 => None,
            204 | 304 => Some(Framing::Length(0)),
            _ => Some(framing(head.headers, self.cap)?),
        };
        self.pending.drain(..len);
        if let Some(framing) = framing {
            self.head = Some((status, framing));
        }
        Ok(true)
    }

    /// Decode chunks from `pending` into `body`; true once the last chunk
    /// and the trailer have been read.
    fn dechunk(&mut self, mut state: Chunk) -> Result<bool, ParseError> {
        let mut used = 0;
        let done = loop {
            let rest = &self.pending[used..];
            match state {
                Chunk::Size => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((n, size))) => {
                        used += n;
                        let size = usize::try_from(size).unwrap_or(usize::MAX);
                        if size > self.cap {
                            return Err(ParseError::TooLarge(self.cap));
                        }
                        state = if size == 0 {
                            Chunk::Trailer
                        } else {
                            Chunk::Data(size)
                        };
                    }
                    Ok(httparse::Status::Partial) => break false,
                    Err(_) => return Err(ParseError::BadBody("invalid chunk size line".into())),
                },
                Chunk::Data(left) => {
                    let take = left.min(rest.len());
                    self.body.extend_from_slice(&rest[..take]);
                    used += take;
                    if take < left {
                        state = Chunk::Data(left - take);
                        break false;
                    }
                    state = Chunk::DataEnd;
                }
                Chunk::DataEnd => {
                    if rest.len() < 2 {
                        break false;
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(ParseError::BadBody(
                            "chunk data not followed by CRLF".into(),
                        ));
                    }
                    used += 2;
                    state = Chunk::Size;
                }
                // No trailer fields: an empty line. Otherwise fields up to one.
                Chunk::Trailer if rest.starts_with(b"\r\n") => break true,
                Chunk::Trailer => break rest.windows(4).any(|w| w == b"\r\n\r\n"),
            }
        };
        self.pending.drain(..used);
        if let Some((_, framing)) = &mut self.head {
            *framing = Framing::Chunked(state);
        }
        Ok(done)
    }
}

/// How the body of a response with these headers ends (RFC 9112 6.3).
fn framing(headers: &[httparse::Header<'_>], cap: usize) -> Result<Framing, ParseError> {
    let mut length = None;
    let mut chunked = None;
    for h in headers {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| ParseError::BadHead(format!("{} is not UTF-8", h.name)))?
            .trim();
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only the final coding decides whether the body is chunked.
            let last = value.rsplit(',').next().unwrap_or("").trim();
            chunked = Some(last.eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .parse()
                .map_err(|_| ParseError::BadHead(format!("Content-Length {value:?}")))?;
            if length.is_some_and(|m| m != n) {
                return Err(ParseError::BadHead("conflicting Content-Length".into()));
            }
            length = Some(n);
        }
    }
    Ok(match (chunked, length) {
        (Some(true), _) => Framing::Chunked(Chunk::Size),
        // Transfer-Encoding without chunked last: the close ends the body.
        (Some(false), _) => Framing::UntilClose,
        (None, Some(n)) if n > cap => return Err(ParseError::TooLarge(cap)),
        (None, Some(n)) => Framing::Length(n),
        (None, None) => Framing::UntilClose,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Envoy 1.40's answer to GET /hot_restart_version, byte for byte.
    const ENVOY_CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain; \
        charset=UTF-8\r\ncache-control: no-cache, max-age=0\r\nx-content-type-options: \
        nosniff\r\ndate: Wed, 25 Nov 2026 13:09:39 GMT\r\nserver: envoy\r\nconnection: \
        close\r\ntransfer-encoding: chunked\r\n\r\n6\r\n11.104\r\n0\r\n\r\n";

    /// Feed `bytes` in pieces of `step`; the response once complete, else
    /// what EOF makes of it.
    fn feed(bytes: &[u8], step: usize) -> Result<Response, ParseError> {
        let mut p = Parser::new(1 << 20);
        for piece in bytes.chunks(step) {
            if let Some(r) = p.push(piece)? {
                return Ok(r);
            }
        }
        p.eof()
    }

    fn ok(status: u16, body: &[u8]) -> Result<Response, ParseError> {
        Ok(Response {
            status,
            body: body.to_vec(),
        })
    }

    #[test]
    fn envoy_chunked_answer_in_any_pieces() {
        for step in [1, 2, 3, 7, ENVOY_CHUNKED.len()] {
            assert_eq!(feed(ENVOY_CHUNKED, step), ok(200, b"11.104"), "step {step}");
        }
    }

    #[test]
    fn chunked_complete_without_waiting_for_eof() {
        let mut p = Parser::new(1 << 20);
        let r = p.push(ENVOY_CHUNKED).unwrap().expect("complete");
        assert_eq!(r.body, b"11.104");
    }

    #[test]
    fn chunked_with_extensions_trailers_and_several_chunks() {
        let msg = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
            3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: y\r\n\r\n";
        for step in [1, 5, msg.len()] {
            assert_eq!(feed(msg, step), ok(200, b"abc0123456789abcdef"));
        }
    }

    #[test]
    fn content_length_body_and_extra_bytes_ignored() {
        let msg = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
        for step in [1, 4, msg.len()] {
            assert_eq!(feed(msg, step), ok(503, b"hello"));
        }
        let empty = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(
            Parser::new(100).push(empty),
            Ok(Some(ok(200, b"").unwrap()))
        );
    }

    #[test]
    fn body_until_close() {
        let msg = b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nall of it";
        assert_eq!(feed(msg, 3), ok(200, b"all of it"));
    }

    #[test]
    fn interim_100_is_skipped_and_204_has_no_body() {
        let msg = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(feed(msg, 1), ok(204, b""));
    }

    #[test]
    fn truncated_responses() {
        assert_eq!(feed(b"", 1), Err(ParseError::ClosedBeforeHead));
        assert_eq!(
            feed(b"HTTP/1.1 200 OK\r\nContent-Le", 4),
            Err(ParseError::ClosedBeforeHead)
        );
        assert_eq!(
            feed(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", 4),
            Err(ParseError::ClosedInBody)
        );
        let cut = &ENVOY_CHUNKED[..ENVOY_CHUNKED.len() - 8];
        assert_eq!(feed(cut, 5), Err(ParseError::ClosedInBody));
        // The last chunk arrived; a missing final CRLF loses nothing.
        let no_crlf = &ENVOY_CHUNKED[..ENVOY_CHUNKED.len() - 2];
        assert_eq!(feed(no_crlf, 5), ok(200, b"11.104"));
    }

    #[test]
    fn garbage_and_bad_framing() {
        let bad_head = |msg: &[u8]| matches!(feed(msg, 3), Err(ParseError::BadHead(_)));
        assert!(bad_head(b"garbage\r\n\r\n"));
        assert!(bad_head(b"HTTP/1.1 abc OK\r\n\r\n"));
        assert!(bad_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"));
        assert!(bad_head(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
        ));
        let bad_body = |msg: &[u8]| matches!(feed(msg, 3), Err(ParseError::BadBody(_)));
        assert!(bad_body(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
        ));
        assert!(bad_body(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY"
        ));
    }

    #[test]
    fn the_cap_covers_head_body_and_declared_lengths() {
        let mut p = Parser::new(64);
        let head = b"HTTP/1.1 200 OK\r\n\r\n";
        assert_eq!(p.push(head), Ok(None));
        assert_eq!(p.push(&[b'x'; 40]), Ok(None));
        assert_eq!(p.push(&[b'x'; 10]), Err(ParseError::TooLarge(64)));
        let declared = b"HTTP/1.1 200 OK\r\nContent-Length: 65\r\n\r\n";
        assert_eq!(
            Parser::new(64).push(declared),
            Err(ParseError::TooLarge(64))
        );
        let chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\n";
        assert_eq!(Parser::new(100).push(chunk), Err(ParseError::TooLarge(100)));
    }
}

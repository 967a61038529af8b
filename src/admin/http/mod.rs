//! The response side of HTTP/1.1, fed in whatever pieces the socket gives:
//! the head through `httparse`, then a body framed by Content-Length,
//! chunked transfer-encoding, or the end of the connection.

use super::Response;
use crate::core::quoted;

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
            .map_err(|_| ParseError::BadHead(format!("header {} is not UTF-8", quoted(h.name))))?
            .trim();
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only the final coding decides whether the body is chunked.
            let last = value.rsplit(',').next().unwrap_or("").trim();
            chunked = Some(last.eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .parse()
                .map_err(|_| ParseError::BadHead(format!("Content-Length {}", quoted(value))))?;
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
mod tests;

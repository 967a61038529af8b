//! Unit tests of the parent module.

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

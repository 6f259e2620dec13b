//! Unit tests of `framing`.

use super::*;

/// Feeds `input` in pieces of `step` bytes; returns which of the first
/// `n` requests are refused.
fn verdicts(input: &[u8], step: usize, n: u64) -> Vec<bool> {
    let v = Arc::new(Verdicts::default());
    let mut t = Tracker::new(v.clone());
    for piece in input.chunks(step) {
        t.feed(piece);
    }
    (0..n).map(|i| !v.is_ok(i)).collect()
}

#[test]
fn pipelined_requests_with_bodies_are_followed() {
    let input = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n\
GET /c HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    for step in [1, 2, 3, 7, 64, input.len()] {
        assert_eq!(verdicts(input, step, 3), vec![false, false, true], "step {step}");
    }
}

#[test]
fn ambiguous_heads_are_marked() {
    let both = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n";
    assert_eq!(verdicts(both, 5, 1), vec![true]);
    let twice = b"POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd";
    assert_eq!(verdicts(twice, 100, 1), vec![true]);
    let fine = b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd";
    assert_eq!(verdicts(fine, 100, 1), vec![false]);
}

#[test]
fn a_head_inside_a_body_is_not_a_head() {
    // The body of the first request looks like an ambiguous request; it
    // is data, not a second request.
    let inner = b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut input = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", inner.len()).into_bytes();
    input.extend_from_slice(inner);
    assert_eq!(verdicts(&input, 9, 2), vec![false, false]);
}

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

#[test]
fn an_upgrade_request_does_not_stop_the_guard() {
    // Answered without a 101 (h2c is not spoken here), the connection goes
    // on with the next request, which must still be checked.
    let smuggle = b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    for first in [
        &b"GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"[..],
        b"POST /a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nContent-Length: 3\r\n\r\nabc",
        b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n",
    ] {
        let input = [first, &smuggle[..]].concat();
        for step in [1, 5, input.len()] {
            assert_eq!(
                verdicts(&input, step, 2),
                vec![false, true],
                "{}",
                String::from_utf8_lossy(first)
            );
        }
    }
}

#[test]
fn after_a_switch_of_protocols_the_bytes_are_not_http() {
    let v = Arc::new(Verdicts::default());
    let mut t = Tracker::new(v.clone());
    t.feed(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
    assert_eq!(v.next_request(), Verdict::Ok);
    v.switched_protocols();
    t.feed(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert!(v.is_ok(1), "WebSocket data that looks like a request is not one");
    assert_eq!(t.framing.phase, Phase::Off);
    assert!(t.framing.pending.is_empty());
}

#[test]
fn a_second_host_line_is_refused() {
    let input = b"GET /a HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n\
GET /b HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nhost: api.attacker.example\r\n\r\n\
GET /c HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
    for step in [1, 7, input.len()] {
        assert_eq!(verdicts(input, step, 3), vec![false, true, true], "step {step}");
    }
    let v = Arc::new(Verdicts::default());
    Tracker::new(v.clone()).feed(input);
    assert_eq!(
        [v.next_request(), v.next_request(), v.next_request()],
        [Verdict::Ok, Verdict::DuplicateHost, Verdict::DuplicateHost]
    );
    assert!(Verdict::DuplicateHost.refusal().unwrap().contains("Host"));
}

#[test]
fn only_a_101_or_a_successful_connect_switches_protocols() {
    let cases = [
        (Method::GET, 101, true),
        (Method::GET, 200, false),
        (Method::GET, 426, false),
        (Method::CONNECT, 200, true),
        (Method::CONNECT, 405, false),
        (Method::POST, 204, false),
    ];
    for (method, status, want) in cases {
        let status = StatusCode::from_u16(status).unwrap();
        assert_eq!(switches_protocols(&method, status), want, "{method} {status}");
    }
}

/// What the tracker expects hyper to refuse, feeding `input` in pieces of
/// `step` bytes with hyper's read buffer at `limit`.
fn early(input: &[u8], step: usize, limit: usize) -> Option<(u64, Early)> {
    let mut t = Tracker::with_limit(Arc::new(Verdicts::default()), limit);
    for piece in input.chunks(step) {
        t.feed(piece);
    }
    t.early()
}

#[test]
fn heads_hyper_refuses_are_predicted_with_their_status() {
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(MAX_URI));
    let cases: Vec<(Vec<u8>, Option<Early>)> = vec![
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), None),
        (
            b"G@T / HTTP/1.1\r\n\r\n".to_vec(),
            Some(Early::Malformed("invalid token in the method")),
        ),
        (
            b"GET /a\x01b HTTP/1.1\r\n\r\n".to_vec(),
            Some(Early::Malformed("invalid character in the request target")),
        ),
        (
            b"GET / HTTP/1.1\r\nBad Header: y\r\n\r\n".to_vec(),
            Some(Early::Malformed("invalid header name")),
        ),
        (
            b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n".to_vec(),
            Some(Early::Malformed("invalid header value")),
        ),
        (
            b"GET / HTTP/2.0\r\n\r\n".to_vec(),
            Some(Early::Malformed("invalid HTTP version")),
        ),
        (
            b"GET / HTTP/1.1\r\nX: y\rZ\r\n\r\n".to_vec(),
            Some(Early::Malformed("invalid header value")),
        ),
        (long_target.into_bytes(), Some(Early::UriTooLong)),
        (
            b"GET {x} HTTP/1.1\r\n\r\n".to_vec(),
            Some(Early::Malformed("the request target is not a valid URI")),
        ),
        (
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            Some(Early::Malformed("Transfer-Encoding in an HTTP/1.0 request")),
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(),
            Some(Early::Malformed("Transfer-Encoding whose last coding is not chunked")),
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 4x\r\n\r\n".to_vec(),
            Some(Early::Malformed("Content-Length is not a number")),
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n".to_vec(),
            Some(Early::Malformed("Content-Length repeated with different values")),
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n".to_vec(),
            Some(Early::Oversized("a Content-Length too large to count")),
        ),
        // hyper takes these (the proxy refuses the ambiguous one itself).
        (
            b"POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd".to_vec(),
            None,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n0\r\n\r\n".to_vec(),
            None,
        ),
        (b"CONNECT api.ethgas.com:443 HTTP/1.1\r\n\r\n".to_vec(), None),
        (b"OPTIONS * HTTP/1.1\r\n\r\n".to_vec(), None),
    ];
    for (input, want) in cases {
        // (Byte by byte, a head is parsed again at every byte: not for the long one.)
        for step in [1, 7, input.len()].into_iter().filter(|s| *s * 1000 >= input.len()) {
            assert_eq!(
                early(&input, step, MAX_HEAD).map(|(_, e)| e),
                want,
                "{} in steps of {step}",
                String::from_utf8_lossy(&input[..input.len().min(60)])
            );
        }
    }
    let too_many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: y\r\n")).collect();
    let input = format!("GET / HTTP/1.1\r\n{too_many}\r\n");
    assert_eq!(early(input.as_bytes(), 64, MAX_HEAD), Some((0, Early::TooManyHeaders)));
}

#[test]
fn a_head_that_outgrows_hypers_buffer_is_431_however_it_arrives() {
    let limit = 4096;
    let head = |len: usize| {
        let mut h = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        h.resize(len - 4, b'a');
        h.extend_from_slice(b"\r\n\r\n");
        h
    };
    for step in [1, 100, 4095, 4096, 10_000] {
        assert_eq!(early(&head(limit), step, limit), None, "exactly the buffer fits");
        assert_eq!(
            early(&head(limit + 1), step, limit),
            Some((0, Early::TooLarge)),
            "step {step}"
        );
        // What hyper never reads is never parsed: an error beyond the limit
        // is still a 431.
        let mut bad = head(limit + 100);
        bad[limit + 10] = 0;
        assert_eq!(early(&bad, step, limit), Some((0, Early::TooLarge)), "step {step}");
    }
    // After two good requests, the third is the refused one.
    let input = [GOOD, GOOD, &b"GET / HTTP/1.1\r\nBad Header: y\r\n\r\n"[..]].concat();
    assert_eq!(
        early(&input, 5, limit),
        Some((2, Early::Malformed("invalid header name")))
    );
}

const GOOD: &[u8] = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";

#[test]
fn after_a_refusal_hyper_might_not_make_the_guard_still_follows() {
    // A target hyper refuses (over 64 KiB): were hyper to take it after all,
    // the smuggling attempt behind it must still be caught.
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(MAX_URI));
    let smuggle = b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    let input = [long.as_bytes(), &smuggle[..]].concat();
    let v = Arc::new(Verdicts::default());
    let mut t = Tracker::new(v.clone());
    t.feed(&input);
    assert_eq!(t.early(), Some((0, Early::UriTooLong)));
    assert!(v.is_ok(0));
    assert!(!v.is_ok(1), "the request behind it is refused");
}

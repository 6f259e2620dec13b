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
    assert_eq!(t.phase, Phase::Off);
    assert!(t.pending.is_empty());
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

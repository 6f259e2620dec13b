//! Unit tests of `framing::guard`: hyper's bytes as it writes them (whole,
//! split, partly accepted by the socket) and what reaches the client.

use std::collections::VecDeque;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use http::StatusCode;

/// A socket: the client's bytes to read, what the guard wrote, and how much
/// each write may take.
#[derive(Default)]
struct Wire {
    input: Vec<u8>,
    read_at: usize,
    out: Vec<u8>,
    /// Bytes each write takes in turn (0: not now); then all it is given.
    takes: VecDeque<usize>,
    shut: bool,
}

impl AsyncRead for Wire {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let rest = &self.input[self.read_at..];
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        self.read_at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Wire {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let n = match self.takes.pop_front() {
            Some(0) => {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Some(k) => k.min(buf.len()),
            None => buf.len(),
        };
        self.out.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.shut = true;
        Poll::Ready(Ok(()))
    }
}

/// hyper's bare answer to a head it refuses.
fn bare(status: u16, reason: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status} {reason}\r\nconnection: close\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 05:50:54 GMT\r\n\r\n")
        .into_bytes()
}

const OK_200: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";
const BAD_HEAD: &[u8] = b"GET /b HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n";
const GOOD_HEAD: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";

/// One connection: the client sends `input` (read whole by the guard); the
/// service is handed `served` requests; hyper writes `writes` (each flushed)
/// through a socket that takes `takes`, then shuts down. What the client got.
async fn exchange(input: &[u8], served: u64, writes: &[&[u8]], takes: &[usize], answers: Answers) -> Vec<u8> {
    let verdicts = Arc::new(Verdicts::default());
    let wire = Wire {
        input: input.to_vec(),
        takes: takes.iter().copied().collect(),
        ..Wire::default()
    };
    let mut guarded = Guarded::new(wire, verdicts.clone(), answers);
    let mut seen = Vec::new();
    guarded.read_to_end(&mut seen).await.unwrap();
    assert_eq!(seen, input, "reads pass through unchanged");
    for _ in 0..served {
        verdicts.next_request();
    }
    for w in writes {
        guarded.write_all(w).await.unwrap();
        guarded.flush().await.unwrap();
    }
    guarded.shutdown().await.unwrap();
    assert!(guarded.inner.shut);
    guarded.inner.out
}

/// The guard's envelope answer with `status` for the default answers.
fn envelope_of(error: &ProxyError) -> Vec<u8> {
    error.wire(Envelope::Documented)
}

fn malformed(why: &'static str) -> Vec<u8> {
    envelope_of(&Early::Malformed(why).error(&HeadLimits::default()))
}

#[tokio::test]
async fn hypers_bare_400_becomes_the_envelope() {
    let out = exchange(BAD_HEAD, 0, &[&bare(400, "Bad Request")], &[], Answers::default()).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(text.contains("connection: close\r\n"), "{text}");
    assert!(text.contains("content-type: application/json\r\n"), "{text}");
    assert!(!text.contains("content-length: 0"), "{text}");
    assert!(
        text.contains("ethgas-sidecar: malformed HTTP/1.1 request head: invalid header name"),
        "{text}"
    );
    assert_eq!(out, malformed("invalid header name"));
}

#[tokio::test]
async fn a_pipelined_response_before_the_refusal_is_never_touched() {
    let input = [GOOD_HEAD, BAD_HEAD].concat();
    let bare = bare(400, "Bad Request");
    let together = [OK_200, &bare[..]].concat();
    let want = [OK_200, &malformed("invalid header name")[..]].concat();
    // The end of the response and hyper's error head in one write, the
    // socket taking any number of bytes at first (or none for a while).
    for first in 0..=together.len() {
        for takes in [vec![first], vec![0, first, 0, 1]] {
            let out = exchange(&input, 1, &[&together], &takes, Answers::default()).await;
            assert_eq!(out, want, "takes {takes:?}: {}", String::from_utf8_lossy(&out));
        }
    }
    // Or in two writes.
    let out = exchange(&input, 1, &[OK_200, &bare], &[3, 0, 5], Answers::default()).await;
    assert_eq!(out, want);
}

#[tokio::test]
async fn a_body_that_ends_like_an_error_head_is_body() {
    let input = [GOOD_HEAD, BAD_HEAD].concat();
    let bare = bare(400, "Bad Request");
    let mut response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
        bare.len()
    )
    .into_bytes();
    response.extend_from_slice(&bare);
    // Followed by hyper's real refusal: only that one is replaced.
    let want = [&response[..], &malformed("invalid header name")[..]].concat();
    for takes in [vec![], vec![response.len() - bare.len()], vec![1, 0, 7]] {
        let out = exchange(&input, 1, &[&response, &bare], &takes, Answers::default()).await;
        assert_eq!(out, want, "takes {takes:?}");
        let out = exchange(
            &input,
            1,
            &[&[&response[..], &bare[..]].concat()],
            &takes,
            Answers::default(),
        )
        .await;
        assert_eq!(out, want, "one write, takes {takes:?}");
    }
    // Or by the close (hyper never got to the refused head): untouched.
    let out = exchange(&input, 1, &[&response], &[], Answers::default()).await;
    assert_eq!(out, response);
}

#[tokio::test]
async fn an_earlier_answer_shaped_like_hypers_is_the_earlier_answer() {
    // The answer to the first request (after which hyper closes, without
    // reading the refused head) happens to look like hyper's bare 400: it is
    // the first request's, and goes out as it is.
    let close = b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let input = [&close[..], BAD_HEAD].concat();
    let lookalike = bare(400, "Bad Request");
    let out = exchange(&input, 1, &[&lookalike], &[], Answers::default()).await;
    assert_eq!(out, lookalike);
}

#[tokio::test]
async fn a_head_response_has_no_body_so_the_refusal_follows_it() {
    let input = [&b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n"[..], BAD_HEAD].concat();
    let head_answer = b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n";
    let out = exchange(
        &input,
        1,
        &[&[&head_answer[..], &bare(400, "Bad Request")[..]].concat()],
        &[],
        Answers::default(),
    )
    .await;
    assert_eq!(out, [&head_answer[..], &malformed("invalid header name")[..]].concat());
}

#[tokio::test]
async fn when_guard_and_hyper_disagree_hypers_answer_goes_out() {
    // hyper took the head after all (the service saw it): bytes unchanged.
    let bare_400 = bare(400, "Bad Request");
    let out = exchange(BAD_HEAD, 1, &[&bare_400], &[], Answers::default()).await;
    assert_eq!(out, bare_400);
    // Another status than the guard expected.
    let bare_431 = bare(431, "Request Header Fields Too Large");
    let out = exchange(BAD_HEAD, 0, &[&bare_431], &[], Answers::default()).await;
    assert_eq!(out, bare_431);
    // hyper writes on after what looked like its last answer.
    let out = exchange(BAD_HEAD, 0, &[&bare_400, OK_200], &[], Answers::default()).await;
    assert_eq!(out, [&bare_400[..], OK_200].concat());
    // No refused head at all: a bare 400 (the service's own) passes.
    let out = exchange(GOOD_HEAD, 1, &[&bare_400], &[], Answers::default()).await;
    assert_eq!(out, bare_400);
}

#[tokio::test]
async fn an_oversized_head_gets_431_naming_the_limits_in_the_live_envelope() {
    let limits = HeadLimits {
        max_header_bytes: 1024,
        max_uri_bytes: 256,
    };
    let answers = Answers {
        envelope: Envelope::Live,
        limits,
        metrics: Some(Arc::new(Metrics::new())),
    };
    let metrics = answers.metrics.clone().unwrap();
    let mut input = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    input.resize(limits.max_buf() + 10, b'a');
    let bare = bare(431, "Request Header Fields Too Large");
    let out = exchange(&input, 0, &[&bare], &[2, 0], answers).await;
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{text}"
    );
    assert!(text.contains("connection: close\r\n"), "{text}");
    let body: serde_json::Value = serde_json::from_slice(&out[text.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(body["errorCode"], 431);
    assert_eq!(body["errorMsgKey"], "ethgas-sidecar.headers_too_large");
    let msg = body["errorMsg"].as_str().unwrap();
    for part in [
        &format!("larger than {} bytes", limits.max_buf())[..],
        "proxy.max_header_bytes = 1024",
        "proxy.max_uri_bytes = 256",
    ] {
        assert!(msg.contains(part), "{msg}");
    }
    assert!(
        metrics
            .render()
            .contains("ethgas_sidecar_local_responses_total{reason=\"too_large\"} 1")
    );
}

#[test]
fn hypers_error_head_is_recognised_only_whole_at_the_end() {
    let bare = bare(400, "Bad Request");
    let status = StatusCode::BAD_REQUEST;
    assert_eq!(error_head_at_end(&bare, status), Some(0));
    let after = [OK_200, &bare[..]].concat();
    assert_eq!(error_head_at_end(&after, status), Some(OK_200.len()));
    assert_eq!(error_head_at_end(&bare, StatusCode::URI_TOO_LONG), None);
    let no_date = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
    assert_eq!(error_head_at_end(no_date, status), Some(0));
    let http10 = b"HTTP/1.0 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
    assert_eq!(error_head_at_end(http10, status), Some(0));
    for not_it in [
        &b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nx"[..],
        b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n",
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 3\r\n\r\n",
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ncontent-type: text/plain\r\n\r\n",
        b"HTTP/1.1 400 Nope\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
        &bare[1..],
        b"",
    ] {
        assert_eq!(
            error_head_at_end(not_it, status),
            None,
            "{}",
            String::from_utf8_lossy(not_it)
        );
    }
}

//! Answers that hyper itself gives to a request head it refuses before the
//! proxy sees it stand as hyper writes them (issue 21, item 1): a bare 400
//! for a malformed head, 431 for one beyond its read buffer (sized from
//! `proxy.max_header_bytes` and `proxy.max_uri_bytes`) or with too many
//! lines, 414 for a target over its 64 KiB — each with `connection: close`
//! and no body — and a silent close for a head that does not arrive within
//! `proxy.header_read_timeout`, or none on an idle connection. Earlier
//! pipelined responses on the connection stay intact, and the API sees none
//! of these requests. Heads within hyper's buffer but over the proxy's own
//! limits get the sidecar's 431/414 envelopes (tests/legacy_programs.rs).
//!
//! Everything goes over raw sockets: no client library would send these.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Everything the mock answered apart from logins.
fn seen(api: &Api) -> u64 {
    let c = api.mock.counts();
    c.public_requests + c.private_ok + c.private_unauthorized + c.not_found
}

/// Sends `bytes` on a new connection; the first response, and the stream.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> (RawResponse, TcpStream) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let resp = read_raw_response(&mut s).await;
    (resp, s)
}

async fn assert_closed(s: &mut TcpStream) {
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest))
        .await
        .expect("closed within 10 s")
        .expect("a clean close");
    assert!(
        rest.is_empty(),
        "nothing after the answer: {}",
        String::from_utf8_lossy(&rest)
    );
}

/// hyper's own refusal: `status`, `connection: close`, an empty body.
fn bare(resp: &RawResponse, status: u16) {
    assert_eq!(resp.status, status, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.header("connection"), Some("close"), "{resp:?}");
    assert_eq!(resp.header("content-length"), Some("0"), "{resp:?}");
    assert!(resp.body.is_empty(), "{resp:?}");
}

#[tokio::test]
async fn a_head_beyond_the_read_buffer_or_with_too_many_lines_gets_hypers_bare_431() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::proxy("max_header_bytes = 1024\nmax_uri_bytes = 256\n")).await;
    // hyper reads (1024 + 256) * 2 + 16384 bytes of a head at most: send
    // exactly that much of one that never ends (so none is left unread).
    let max_buf = (1024 + 256) * 2 + 16384;
    let mut head = b"GET /api/v1/user/info HTTP/1.1\r\nHost: localhost\r\nX-Big: ".to_vec();
    head.resize(max_buf, b'a');
    let (resp, mut s) = exchange(sidecar.proxy, &head).await;
    bare(&resp, 431);
    assert_closed(&mut s).await;

    // 257 header lines, well within the buffer.
    let mut many = "GET /api/v1/user/info HTTP/1.1\r\nHost: localhost\r\n".to_string();
    for i in 0..256 {
        many.push_str(&format!("X-{i}: a\r\n"));
    }
    many.push_str("\r\n");
    let (resp, mut s) = exchange(sidecar.proxy, many.as_bytes()).await;
    bare(&resp, 431);
    assert_closed(&mut s).await;
    assert_eq!(seen(&api), 0);
}

#[tokio::test]
async fn a_target_over_hypers_own_limit_gets_its_bare_414() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::proxy("max_uri_bytes = 1048576\n")).await;
    let long = "a".repeat(70 * 1024);
    let req = format!("GET /api/v1/user/info?q={long} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let (resp, mut s) = exchange(sidecar.proxy, req.as_bytes()).await;
    bare(&resp, 414);
    assert_closed(&mut s).await;
    assert_eq!(seen(&api), 0);
}

#[tokio::test]
async fn malformed_heads_get_hypers_bare_400_and_a_close() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;
    let cases: [&[u8]; 5] = [
        b"G@T /api/v1/user/info HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET /api/v1/user/info HTTP/1.1\r\nHost: localhost\r\nBad Header: y\r\n\r\n",
        b"GET /api/v1/user/info HTTP/9.9\r\nHost: localhost\r\n\r\n",
        b"POST /api/v1/user/info HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST /api/v1/user/info HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd",
    ];
    for bytes in cases {
        let (resp, mut s) = exchange(sidecar.proxy, bytes).await;
        bare(&resp, 400);
        assert_closed(&mut s).await;
    }
    assert_eq!(seen(&api), 0, "the API saw none of them");
}

#[tokio::test]
async fn a_good_request_pipelined_before_a_bad_head_is_answered_whole_first() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;
    let mut s = TcpStream::connect(sidecar.proxy).await.unwrap();
    s.write_all(
        b"GET /api/v1/user/info HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /api/v1/user/info HTTP/1.1\r\nHost: localhost\r\nBad Header: y\r\n\r\n",
    )
    .await
    .unwrap();
    let first = read_raw_response(&mut s).await;
    assert_eq!(first.status, 200, "{}", String::from_utf8_lossy(&first.body));
    let env = first.json();
    assert_eq!(env["code"], 200);
    assert_eq!(env["data"]["username"], USER, "the whole body: {env}");
    let second = read_raw_response(&mut s).await;
    bare(&second, 400);
    assert_closed(&mut s).await;
    assert_eq!(api.mock.counts().private_ok, 1, "the API saw the good request only");
}

/// A head that stalls, and a connection that sends nothing after its
/// answer: both are closed without a word within `proxy.header_read_timeout`
/// (1 s here; generous bounds: at least 1 s, well under 10 s).
#[tokio::test]
async fn a_stalled_head_and_an_idle_connection_are_closed_silently_at_the_header_read_timeout() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::proxy("header_read_timeout = \"1s\"\n")).await;
    let silent_close = |mut s: TcpStream, started: Instant| async move {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest))
            .await
            .expect("closed within 10 s")
            .ok();
        assert!(
            rest.is_empty(),
            "closed without an answer: {}",
            String::from_utf8_lossy(&rest)
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900),
            "closed after {took:?}, before the timeout"
        );
    };

    let started = Instant::now();
    let mut s = TcpStream::connect(sidecar.proxy).await.unwrap();
    s.write_all(b"GET /api/v1/user/info HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    silent_close(s, started).await;

    let (resp, s) = exchange(
        sidecar.proxy,
        b"GET /api/v1/user/info HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 200, "{resp:?}");
    silent_close(s, Instant::now()).await;
    assert_eq!(seen(&api), 1, "the API saw the whole request only");
}

#[tokio::test]
async fn what_still_gets_no_envelope_an_http2_preface_and_the_admin_listener() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;
    // hyper closes on an HTTP/2 preface without a word: nothing to replace.
    let mut s = TcpStream::connect(sidecar.proxy).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    assert_closed(&mut s).await;
    // The admin listener is hyper's own: a bare answer, no body.
    let (resp, mut s) = exchange(
        sidecar.admin,
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nBad Header: y\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.header("content-length"), Some("0"));
    assert!(resp.body.is_empty());
    assert_closed(&mut s).await;
}

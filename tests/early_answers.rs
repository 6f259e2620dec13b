//! Answers that hyper itself would give to a request head it refuses before
//! the proxy sees it — 400 for a malformed head, 431 for one beyond its read
//! buffer, 414 for a target over its 64 KiB — come in the API's envelope
//! (issue #12, item 6), like everything else the sidecar says: the same
//! status, a message that says what to fix, `connection: close`. Earlier
//! pipelined responses on the connection stay intact. The 408 for a stalled
//! head uses the envelope too, the live one in wallet mode.
//!
//! Everything goes over raw sockets: no client library would send these.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Everything the mock answered apart from logins.
fn seen(api: &Api) -> u64 {
    let c = api.mock.counts();
    c.public_requests + c.private_ok + c.private_unauthorized + c.not_found
}

/// Sends `bytes` on a new connection; the first response, and whether the
/// sidecar then closed the connection (nothing more, then the end).
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

/// A documented error envelope with `status`, its message.
fn documented(resp: &RawResponse, status: u16) -> String {
    assert_eq!(resp.status, status, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.header("connection"), Some("close"));
    let env = resp.json();
    assert_eq!(env["code"], status, "{env}");
    assert_eq!(env["data"], Value::Null, "{env}");
    let message = env["message"].as_str().unwrap_or_default().to_string();
    assert!(message.starts_with("ethgas-sidecar: "), "{message}");
    message
}

#[tokio::test]
async fn a_head_beyond_the_read_buffer_gets_431_naming_the_config_keys() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, c) = ready_sidecar(&api, Extra::proxy("max_header_bytes = 1024\nmax_uri_bytes = 256\n")).await;
    // hyper reads (1024 + 256) * 2 + 16384 bytes of a head at most: send
    // exactly that much of one that never ends (so none is left unread).
    let max_buf = (1024 + 256) * 2 + 16384;
    let mut head = b"GET /api/v1/user/info HTTP/1.1\r\nHost: localhost\r\nX-Big: ".to_vec();
    head.resize(max_buf, b'a');
    let (resp, mut s) = exchange(sidecar.proxy, &head).await;
    let message = documented(&resp, 431);
    for part in [
        &format!("request head larger than {max_buf} bytes")[..],
        "proxy.max_header_bytes = 1024",
        "proxy.max_uri_bytes = 256",
    ] {
        assert!(message.contains(part), "{message}");
    }
    assert_closed(&mut s).await;
    assert_eq!(seen(&api), 0);
    let metrics = String::from_utf8_lossy(&get(&c, &sidecar.admin_url("/metrics")).await.body).into_owned();
    assert!(
        metrics.contains("ethgas_sidecar_local_responses_total{reason=\"too_large\"} 1"),
        "counted as an answer of the sidecar's"
    );
}

#[tokio::test]
async fn a_target_over_hypers_own_limit_gets_414_naming_max_uri_bytes() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;
    let long = "a".repeat(70 * 1024);
    let req = format!("GET /api/v1/user/info?q={long} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let (resp, mut s) = exchange(sidecar.proxy, req.as_bytes()).await;
    let message = documented(&resp, 414);
    assert!(
        message.contains("longer than 8192 bytes (proxy.max_uri_bytes)"),
        "{message}"
    );
    assert_closed(&mut s).await;
    assert_eq!(seen(&api), 0);
}

#[tokio::test]
async fn malformed_heads_get_400_saying_what_is_wrong() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;
    let cases: [(&[u8], &str); 5] = [
        (
            b"G@T /api/v1/user/info HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "invalid token in the method",
        ),
        (
            b"GET /api/v1/user/info HTTP/1.1\r\nHost: localhost\r\nBad Header: y\r\n\r\n",
            "invalid header name",
        ),
        (
            b"GET /api/v1/user/info HTTP/9.9\r\nHost: localhost\r\n\r\n",
            "invalid HTTP version",
        ),
        (
            b"POST /api/v1/user/info HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\n",
            "Transfer-Encoding whose last coding is not chunked",
        ),
        (
            b"POST /api/v1/user/info HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd",
            "Content-Length repeated with different values",
        ),
    ];
    for (bytes, why) in cases {
        let (resp, mut s) = exchange(sidecar.proxy, bytes).await;
        let message = documented(&resp, 400);
        assert!(message.contains(why), "{}: {message}", String::from_utf8_lossy(bytes));
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
    let message = documented(&second, 400);
    assert!(
        message.contains("malformed HTTP/1.1 request head: invalid header name"),
        "{message}"
    );
    assert_closed(&mut s).await;
    assert_eq!(api.mock.counts().private_ok, 1, "the API saw the good request only");
}

#[tokio::test]
async fn in_wallet_mode_the_answers_are_in_the_live_envelope_and_the_408_too() {
    let (key_hex, key) = random_key_hex();
    let api = start_live_api(key.address(), Duration::from_secs(600), Duration::from_secs(3600)).await;
    let files = write_wallet_config(api.addr, &key_hex, &Extra::proxy("header_read_timeout = \"1s\"\n"));
    let sidecar = start_from_files(files).await;
    let c = client();
    wait_ready(&c, sidecar.admin).await;

    let live = |resp: &RawResponse, status: u16, key: &str| -> String {
        assert_eq!(resp.status, status, "{}", String::from_utf8_lossy(&resp.body));
        assert_eq!(resp.header("connection"), Some("close"));
        let env = resp.json();
        assert_eq!(env["success"], false, "{env}");
        assert_eq!(env["errorCode"], status, "{env}");
        assert_eq!(env["errorMsgKey"], format!("ethgas-sidecar.{key}"), "{env}");
        assert_eq!(env["data"], Value::Null, "{env}");
        env["errorMsg"].as_str().unwrap_or_default().to_string()
    };

    let (resp, mut s) = exchange(
        sidecar.proxy,
        b"GET / HTTP/1.1\r\nHost: localhost\r\nBad Header: y\r\n\r\n",
    )
    .await;
    let message = live(&resp, 400, "bad_request");
    assert!(message.contains("invalid header name"), "{message}");
    assert_closed(&mut s).await;

    // A head that stalls: the 408 comes in the same envelope.
    let (resp, mut s) = exchange(
        sidecar.proxy,
        b"GET /api/v1/user/info HTTP/1.1\r\nHost: localhost\r\nX-Slow: ",
    )
    .await;
    let message = live(&resp, 408, "request_timeout");
    assert!(message.contains("proxy.header_read_timeout"), "{message}");
    assert_closed(&mut s).await;
    assert_eq!(seen(&api), 0);
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

//! Attacks on request framing, from raw sockets. hyper alone frames what a
//! client sends (RFC 9112: `Transfer-Encoding` over `Content-Length`, and a
//! close after such a request), the admission gate refuses a second `Host`
//! line, and the sidecar sends the API every body framed anew by its own
//! client. So the API — watched here through a relay that reads its bytes
//! as its own parser would — sees each request the sidecar read, well
//! framed, and never one hidden in another's body (issue 21, item 1). A
//! request that names an upgrade does not change that for the rest of the
//! connection, and `Upgrade` without `Connection: upgrade` is no upgrade.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::relay::{Relay, Seen};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the API answered for the account, whatever the outcome.
fn api_requests(api: &Api) -> u64 {
    let c = api.mock.counts();
    c.private_ok + c.private_unauthorized
}

/// The mock API behind a recording relay, and a ready sidecar in front of it.
async fn relayed() -> (Api, Relay, Sidecar) {
    let api = start_api(Duration::from_secs(3600)).await;
    let relay = Relay::start(api.addr).await;
    let sidecar = start_sidecar_with_password(relay.addr, PASSWORD, Extra::default()).await;
    wait_ready(&client(), sidecar.admin).await;
    (api, relay, sidecar)
}

/// Sends `bytes` on a new connection and reads until the sidecar closes it
/// (10 s at most): the statuses of the answers, and whether it closed.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> (Vec<u16>, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut all = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut all))
        .await
        .is_ok();
    let text = String::from_utf8_lossy(&all);
    let statuses = text
        .match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| text.get(at + 9..at + 12)?.parse().ok())
        .collect();
    (statuses, closed)
}

/// `Content-Length` and `Transfer-Encoding` together: hyper reads the body
/// by its chunks, the API gets one request with that body and a length of
/// its own, and the connection closes after the answer — so the bytes after
/// the chunks, which a reader of the length would take for the body, are
/// never read as a request.
#[tokio::test]
async fn content_length_with_chunked_is_read_as_chunked_and_the_api_gets_one_well_framed_request() {
    let (_api, relay, sidecar) = relayed().await;
    let before = relay.forwarded().len();
    for (first, second) in [
        ("Content-Length: 48", "Transfer-Encoding: chunked"),
        ("Transfer-Encoding: chunked", "Content-Length: 48"),
    ] {
        let request = format!(
            "POST /api/v1/mock/echo HTTP/1.1\r\nHost: localhost\r\n{first}\r\n{second}\r\n\r\n\
             3\r\nabc\r\n0\r\n\r\nGET /api/v1/hidden HTTP/1.1\r\nHost: localhost\r\n\r\n"
        );
        let mut s = TcpStream::connect(sidecar.proxy).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let resp = read_raw_response(&mut s).await;
        assert_eq!(resp.status, 200, "{first}, {second}: {resp:?}");
        assert_eq!(resp.json()["data"]["body"], "abc", "the chunked body: {resp:?}");
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest))
            .await
            .expect("the connection is closed after the answer")
            .ok();
        assert!(rest.is_empty(), "no second answer: {}", String::from_utf8_lossy(&rest));
    }
    let seen = relay.forwarded();
    let echo = Seen {
        method: "POST".into(),
        path: "/api/v1/mock/echo".into(),
        body: b"abc".to_vec(),
    };
    assert_eq!(seen[before..], [echo.clone(), echo], "one request each, nothing hidden");
}

/// Vectors that would show a parser other than hyper's a second request
/// inside the first (`GET /api/v1/hidden`): each is answered as hyper reads
/// it (200, or hyper's or the gate's 400), and the API, reading what the
/// sidecar sent it, never sees the hidden request.
#[tokio::test]
async fn smuggling_vectors_never_show_the_api_a_hidden_request() {
    let (_api, relay, sidecar) = relayed().await;
    let hidden = "GET /api/v1/hidden HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let post = "POST /api/v1/mock/echo HTTP/1.1\r\nHost: localhost\r\n";
    let n = hidden.len();
    let chunk = format!("{n:x}\r\n{hidden}\r\n0\r\n\r\n");
    // (name, bytes, the statuses hyper and the gate give)
    let vectors: Vec<(&str, String, &[u16])> = vec![
        (
            "CL then TE",
            format!("{post}Content-Length: {n}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}"),
            &[200],
        ),
        (
            "TE then CL",
            format!("{post}Transfer-Encoding: chunked\r\nContent-Length: {n}\r\n\r\n0\r\n\r\n{hidden}"),
            &[200],
        ),
        (
            "CL then TE, the request in a chunk",
            format!("{post}Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}"),
            &[200],
        ),
        (
            "two equal lengths",
            format!("{post}Content-Length: {n}\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n{hidden}"),
            &[200],
        ),
        (
            "two different lengths",
            format!("{post}Content-Length: 0\r\nContent-Length: {n}\r\n\r\n{hidden}"),
            &[400],
        ),
        (
            "a length list",
            format!("{post}Content-Length: 0, {n}\r\n\r\n{hidden}"),
            &[400],
        ),
        (
            "a signed length",
            format!("{post}Content-Length: +{n}\r\n\r\n{hidden}"),
            &[400],
        ),
        (
            "a coding that is not chunked",
            format!("{post}Transfer-Encoding: gzip\r\nContent-Length: {n}\r\n\r\n{hidden}"),
            &[400],
        ),
        (
            "chunked, then another coding",
            format!("{post}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n{chunk}"),
            &[400],
        ),
        (
            "a space before the colon",
            format!("{post}Transfer-Encoding : chunked\r\nContent-Length: {n}\r\n\r\n{hidden}"),
            &[400],
        ),
        (
            "obs-fold of Transfer-Encoding",
            format!("{post}X-A: b\r\n Transfer-Encoding: chunked\r\nContent-Length: {n}\r\n\r\n0\r\n\r\n{hidden}"),
            &[400],
        ),
        (
            "bare LF line ends",
            format!(
                "POST /api/v1/mock/echo HTTP/1.1\nHost: localhost\nContent-Length: {n}\nConnection: close\n\n{hidden}"
            ),
            &[200],
        ),
        (
            "a bare LF after a chunk size",
            format!("{post}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{n:x}\n{hidden}\r\n0\r\n\r\n"),
            &[400],
        ),
        (
            "a quoted chunk extension",
            format!(
                "{post}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{n:x};a=\"x\r\n{hidden}\r\n0\r\n\r\n"
            ),
            &[200],
        ),
        (
            "a chunk extension",
            format!("{post}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{n:x};a=b\r\n{hidden}\r\n0\r\n\r\n"),
            &[200],
        ),
        (
            "a chunk size with leading zeros",
            format!("{post}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n0000{n:x}\r\n{hidden}\r\n0\r\n\r\n"),
            &[200],
        ),
        (
            "a chunk size beyond 64 bits",
            format!("{post}Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\n{hidden}\r\n0\r\n\r\n"),
            &[400],
        ),
        (
            "two Host lines",
            format!("{post}Host: api.attacker.example\r\nContent-Length: {n}\r\n\r\n{hidden}"),
            &[400],
        ),
        (
            "Transfer-Encoding over HTTP/1.0",
            format!("POST /api/v1/mock/echo HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}"),
            &[400],
        ),
    ];
    let vectors_served = vectors.iter().filter(|(_, _, e)| e.contains(&200)).count();
    for (name, bytes, expected) in vectors {
        let (statuses, closed) = exchange(sidecar.proxy, bytes.as_bytes()).await;
        assert_eq!(statuses, expected, "{name}");
        assert!(closed, "{name}: the connection is closed after the answer");
        let seen = relay.forwarded();
        assert!(
            seen.iter().all(|r| r.path == "/api/v1/mock/echo"),
            "{name}: the API saw a hidden request: {seen:?}"
        );
    }
    let served = vectors_served;
    assert_eq!(
        relay.forwarded().len(),
        served,
        "one request for each 200: {:?}",
        relay.forwarded()
    );
}

#[tokio::test]
async fn an_h2c_upgrade_request_does_not_let_a_smuggled_request_through_on_the_same_connection() {
    let (_api, relay, sidecar) = relayed().await;
    let host = sidecar.proxy;
    let mut s = TcpStream::connect(host).await.unwrap();

    // Not answered with a 101 (the sidecar speaks no h2c), so the connection
    // goes on as HTTP/1.1...
    let upgrade = format!(
        "GET /api/v1/mock/echo HTTP/1.1\r\nHost: {host}\r\nUpgrade: h2c\r\n\
         Connection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
    );
    s.write_all(upgrade.as_bytes()).await.unwrap();
    let first = read_raw_response(&mut s).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.json()["data"]["method"], "GET");
    let before = relay.forwarded().len();

    // ... and the next request, with two lengths, is read by its chunks; what
    // follows them is never read as a request: the connection closes.
    let smuggle = format!(
        "POST /api/v1/mock/echo HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\n\
         Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/v1/hidden HTTP/1.1\r\nHost: {host}\r\n\r\n"
    );
    s.write_all(smuggle.as_bytes()).await.unwrap();
    let second = read_raw_response(&mut s).await;
    assert_eq!(second.status, 200, "{}", String::from_utf8_lossy(&second.body));
    assert_eq!(second.json()["data"]["method"], "POST");
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest))
        .await
        .expect("closed after the answer")
        .ok();
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    let seen = relay.forwarded();
    assert_eq!(
        seen[before..],
        [Seen {
            method: "POST".into(),
            path: "/api/v1/mock/echo".into(),
            body: vec![],
        }],
        "the API saw the POST alone, with no body"
    );
}

#[tokio::test]
async fn a_post_with_upgrade_websocket_but_no_connection_upgrade_is_an_ordinary_post() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;
    let host = sidecar.proxy;
    let mut s = TcpStream::connect(host).await.unwrap();

    let post = format!(
        "POST /api/v1/mock/echo HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Content-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world"
    );
    s.write_all(post.as_bytes()).await.unwrap();
    let resp = read_raw_response(&mut s).await;
    assert_eq!(resp.status, 200, "not switched to a WebSocket: {resp:?}");
    assert_eq!(resp.header("upgrade"), None);
    let seen = &resp.json()["data"];
    assert_eq!(seen["method"], "POST", "the API saw the POST: {seen}");
    assert_eq!(seen["body"], "hello world", "with its body: {seen}");
    assert!(
        seen["headers"].get("upgrade").is_none(),
        "hop-by-hop Upgrade dropped: {seen}"
    );
    assert_eq!(seen["headers"]["authorization"]["valid"], true);

    // Still HTTP: the next request on the connection is answered too.
    let next = format!("GET /api/v1/user/info HTTP/1.1\r\nHost: {host}\r\n\r\n");
    s.write_all(next.as_bytes()).await.unwrap();
    let info = read_raw_response(&mut s).await;
    assert_eq!(info.status, 200, "{info:?}");
    assert_eq!(info.json()["data"]["username"], USER);
    let counts = api.mock.counts();
    assert_eq!(counts.ws_logins_ok + counts.ws_logins_refused, 0);
}

#[tokio::test]
async fn duplicate_host_headers_are_refused_before_the_api_sees_the_request() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;
    let host = sidecar.proxy;
    let before = api_requests(&api);
    for second_host in [host.to_string(), "api.attacker.example".to_string()] {
        let mut s = TcpStream::connect(host).await.unwrap();
        let req = format!("GET /api/v1/user/info HTTP/1.1\r\nHost: {host}\r\nHost: {second_host}\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let resp = read_raw_response(&mut s).await;
        assert_eq!(
            resp.status,
            400,
            "second Host {second_host}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        assert_eq!(resp.json()["code"], 400);
        assert_eq!(resp.header("connection"), Some("close"));
    }
    assert_eq!(api_requests(&api), before, "the API saw nothing");
}

/// The statuses of every answer on a connection until it closes (or 10 s
/// pass with the connection open).
async fn statuses_until_closed(s: &mut TcpStream) -> Vec<u16> {
    use tokio::io::AsyncReadExt;
    let mut all = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut all)).await;
    let text = String::from_utf8_lossy(&all);
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| text.get(at + 9..at + 12)?.parse().ok())
        .collect()
}

/// A trailer line with a bare LF (`X: a\n\n`) does not end the trailers
/// for hyper, which ends a trailer line only at CRLF (issue 18, item 14,
/// when a second parser ran beside hyper's). Whatever hyper makes of it, a
/// request with two `Host` lines after it is never served, a well-formed
/// one is not refused, and the API sees no more than the requests hyper
/// read.
#[tokio::test]
async fn a_bare_lf_in_a_trailer_never_lets_a_request_with_two_host_lines_through() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;
    let host = sidecar.proxy;
    let odd = format!(
        "POST /api/v1/mock/echo HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n\
         1\r\na\r\n0\r\nX: a\n\n\r\n\r\n"
    );

    let seen = api_requests(&api);
    let mut s = TcpStream::connect(host).await.unwrap();
    let attack = format!(
        "{odd}GET /api/v1/mock/echo HTTP/1.1\r\nHost: {host}\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    );
    s.write_all(attack.as_bytes()).await.unwrap();
    let answers = statuses_until_closed(&mut s).await;
    assert!(
        !answers.iter().skip(1).any(|s| *s == 200),
        "the request with two Host lines was served: {answers:?}"
    );
    assert!(
        api_requests(&api) <= seen + 1,
        "only the POST may reach the API: {} requests ({answers:?})",
        api_requests(&api) - seen
    );

    // The trailer that hyper does not end: the request after it is read
    // as more trailer lines by hyper.
    let seen = api_requests(&api);
    let mut s = TcpStream::connect(host).await.unwrap();
    let swallowed = format!(
        "POST /api/v1/mock/echo HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n\
         1\r\na\r\n0\r\nX: a\n\nGET /x HTTP/1.1\r\nHost: {host}\r\n\r\n\
         GET /api/v1/mock/echo HTTP/1.1\r\nHost: {host}\r\n\r\n\
         GET /api/v1/mock/echo HTTP/1.1\r\nHost: {host}\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    );
    s.write_all(swallowed.as_bytes()).await.unwrap();
    let answers = statuses_until_closed(&mut s).await;
    assert!(
        answers.get(1).is_none_or(|s| *s != 400),
        "the well-formed request got another request's verdict: {answers:?}"
    );
    assert!(
        answers.get(2).is_none_or(|s| *s != 200),
        "the request with two Host lines was served: {answers:?}"
    );
    assert!(api_requests(&api) <= seen + 2, "{answers:?}");
}

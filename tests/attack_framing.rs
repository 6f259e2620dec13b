//! Attacks on the framing guard, from raw sockets (issue 11, item 7): a
//! request that names an upgrade must not switch the guard off for the rest
//! of the connection, `Upgrade` without `Connection: upgrade` is not an
//! upgrade, and a second `Host` line is refused.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// What the API answered for the account, whatever the outcome.
fn api_requests(api: &Api) -> u64 {
    let c = api.mock.counts();
    c.private_ok + c.private_unauthorized
}

#[tokio::test]
async fn an_h2c_upgrade_request_does_not_let_a_smuggled_request_through_on_the_same_connection() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;
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
    let seen = api_requests(&api);

    // ... and the next request, with two lengths, must meet the guard.
    let smuggle = format!(
        "POST /api/v1/mock/echo HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\n\
         Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    );
    s.write_all(smuggle.as_bytes()).await.unwrap();
    let second = read_raw_response(&mut s).await;
    assert_eq!(
        second.status,
        400,
        "Content-Length with Transfer-Encoding after an Upgrade request: {}",
        String::from_utf8_lossy(&second.body)
    );
    let env = second.json();
    assert_eq!(env["code"], 400);
    assert!(env["message"].as_str().unwrap().starts_with("ethgas-sidecar:"), "{env}");
    assert_eq!(second.header("connection"), Some("close"));
    assert_eq!(api_requests(&api), seen, "the API never saw the smuggled request");
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

/// A trailer line with a bare LF (`X: a\n\n`) does not end the trailers for
/// hyper, which ends a trailer line only at CRLF: the guard must read it the
/// same way, or it runs one request ahead of hyper and hands the next
/// request another request's verdict (issue 18, item 14). The request with
/// two `Host` lines that follows must still be refused, and a well-formed
/// request after the same trailer is not.
#[tokio::test]
async fn a_bare_lf_in_a_trailer_does_not_put_the_guard_a_request_ahead() {
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
    // as more trailer lines by hyper. A guard that ended the trailers at the
    // bare LF would judge that text as a request of its own, and from then
    // on judge every request by the head before it.
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

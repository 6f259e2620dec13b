//! A web page in the user's browser can reach 127.0.0.1. These tests send
//! what such a page can send — its own domain rebound to loopback (DNS
//! rebinding), a cross-site "simple" POST, a WebSocket from a foreign origin
//! — and check that the sidecar refuses each before the API hears of it,
//! while legacy programs (which send no `Origin` and no `Sec-Fetch-*`) are
//! served as before.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Method, Request};
use http_body_util::Full;

fn request(url: &str, method: Method, headers: &[(&str, &str)], body: &str) -> Request<Full<Bytes>> {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

#[tokio::test]
async fn dns_rebinding_a_foreign_host_name_is_refused() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, c) = ready_sidecar(&api, Extra::default()).await;
    let before = api.mock.counts().private_ok;
    let r = send(
        &c,
        request(
            &sidecar.url("/api/v1/user/info"),
            Method::GET,
            &[("host", "rebind.attacker.example:8080")],
            "",
        ),
    )
    .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let env = r.json();
    assert!(env["message"].as_str().unwrap().contains("DNS rebinding"), "{env}");
    assert_eq!(api.mock.counts().private_ok, before, "the API never saw it");

    // The program's own ways of naming the sidecar keep working.
    for host in ["localhost", "127.0.0.1:8080", "[::1]:1234"] {
        let r = send(
            &c,
            request(&sidecar.url("/api/v1/user/info"), Method::GET, &[("host", host)], ""),
        )
        .await;
        assert_eq!(r.status, 200, "Host {host}: {:?}", r.body);
    }
}

#[tokio::test]
async fn a_name_in_allowed_hosts_is_served() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, c) = ready_sidecar(&api, Extra::proxy("allowed_hosts = [\"Sidecar.Internal\"]\n")).await;
    let r = send(
        &c,
        request(
            &sidecar.url("/api/v1/user/info"),
            Method::GET,
            &[("host", "sidecar.internal:8080")],
            "",
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

#[tokio::test]
async fn a_cross_site_simple_post_from_a_page_is_refused() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, c) = ready_sidecar(&api, Extra::default()).await;
    let before = api.mock.counts().private_ok;
    // What a page can send without a CORS preflight: a text/plain POST.
    let page = [
        ("origin", "https://evil.example"),
        ("content-type", "text/plain"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-mode", "no-cors"),
    ];
    for headers in [&page[..], &page[..2], &page[1..]] {
        let r = send(
            &c,
            request(
                &sidecar.url("/api/v1/mock/echo"),
                Method::POST,
                headers,
                r#"{"side":"sell","qty":100}"#,
            ),
        )
        .await;
        assert_eq!(r.status, 403, "{headers:?}: {:?}", r.body);
        assert!(
            r.json()["message"]
                .as_str()
                .unwrap()
                .contains("browsers cannot use the account")
        );
    }
    assert_eq!(api.mock.counts().private_ok, before, "no order reached the API");
}

#[tokio::test]
async fn an_allowed_origin_is_served_and_its_origin_header_stays_local() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, c) = ready_sidecar(&api, Extra::proxy("allowed_origins = [\"https://dash.example\"]\n")).await;
    let r = send(
        &c,
        request(
            &sidecar.url("/api/v1/mock/echo"),
            Method::GET,
            &[("origin", "https://dash.example"), ("sec-fetch-site", "same-origin")],
            "",
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let headers = &r.json()["data"]["headers"];
    assert!(headers.get("origin").is_none(), "Origin is not passed on: {headers}");
    assert_eq!(headers["authorization"]["valid"], true);
}

/// Sends a WebSocket handshake for `path` with `Host: <host>` and the extra
/// header lines; returns the head of the answer.
async fn handshake(proxy: std::net::SocketAddr, host: &str, extra: &[(&str, &str)]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let mut req = format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(n > 0, "connection closed without an answer");
        head.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn a_websocket_from_a_foreign_origin_is_refused() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;
    let host = sidecar.proxy.to_string();
    let head = handshake(sidecar.proxy, &host, &[("Origin", "https://evil.example")]).await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert_eq!(api.mock.counts().ws_logins_ok, 0);
}

/// What websocket-client (python-ethgas's `WsClient`) sends: `Origin:
/// http://<host>:<port>` of the URL it connects to. That is this listener's
/// own origin, which no web page can have, and it is served; every origin a
/// page can have is still refused, with the same `Host`.
#[tokio::test]
async fn a_programs_own_origin_websocket_is_served_and_every_web_page_origin_still_refused() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;
    let port = sidecar.proxy.port();
    let ip_host = format!("127.0.0.1:{port}");
    let own_ip = format!("http://127.0.0.1:{port}");
    let local_host = format!("localhost:{port}");
    let own_name = format!("http://localhost:{port}");

    for (host, origin) in [(&ip_host, &own_ip), (&local_host, &own_name)] {
        let head = handshake(sidecar.proxy, host, &[("Origin", origin)]).await;
        assert!(head.starts_with("HTTP/1.1 101"), "Origin {origin}: {head}");
        let head = handshake(
            sidecar.proxy,
            host,
            &[("Origin", origin), ("Sec-Fetch-Site", "same-origin")],
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 101"), "Origin {origin}, same-origin: {head}");
    }
    let upgrades = api.mock.websocket_paths().len();
    assert_eq!(upgrades, 4, "each reached the API's socket");

    let rebound = format!("http://evil.example:{port}");
    let other_port = format!("http://127.0.0.1:{}", if port == 3000 { 3001 } else { 3000 });
    let other_ip = format!("http://127.0.0.2:{port}");
    let pages: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("DNS rebinding", vec![("Origin", &rebound)]),
        ("a foreign origin", vec![("Origin", "https://evil.example")]),
        ("another local web server", vec![("Origin", "http://localhost:3000")]),
        ("another local port", vec![("Origin", &other_port)]),
        ("another loopback address", vec![("Origin", &other_ip)]),
        ("an opaque origin (a sandboxed page)", vec![("Origin", "null")]),
        (
            "own origin, cross-site",
            vec![("Origin", &own_ip), ("Sec-Fetch-Site", "cross-site")],
        ),
        (
            "own origin, same-site",
            vec![("Origin", &own_ip), ("Sec-Fetch-Site", "same-site")],
        ),
        ("own origin, https", vec![("Origin", "https://127.0.0.1")]),
        ("no origin, cross-site", vec![("Sec-Fetch-Site", "cross-site")]),
    ];
    for (what, headers) in &pages {
        let head = handshake(sidecar.proxy, &ip_host, headers).await;
        assert!(head.starts_with("HTTP/1.1 403"), "{what}: {head}");
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("content-security-policy: sandbox"), "{what}: {head}");
    }
    // A page on the attacker's rebound name, with our port, is refused for its Host too.
    let head = handshake(sidecar.proxy, &format!("evil.example:{port}"), &[("Origin", &rebound)]).await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert_eq!(api.mock.websocket_paths().len(), upgrades, "no page reached the API");
}

/// Every value of a response header.
fn all(r: &Reply, name: &str) -> Vec<String> {
    r.headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// No document the sidecar hands out can run as its origin: every answer,
/// the API's and its own, is sandboxed and not to be sniffed.
#[tokio::test]
async fn every_answer_is_sandboxed_so_no_page_can_have_the_sidecars_origin() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, c) = ready_sidecar(&api, Extra::default()).await;
    for (path, status) in [
        ("/api/v1/user/info", 200),
        ("/api/v1/p/markets", 200),
        ("/nowhere", 404),
    ] {
        let r = get(&c, &sidecar.url(path)).await;
        assert_eq!(r.status, status, "{path}");
        assert_eq!(all(&r, "content-security-policy"), ["sandbox"], "{path}");
        assert_eq!(all(&r, "x-content-type-options"), ["nosniff"], "{path}");
    }
    let refused = send(
        &c,
        request(
            &sidecar.url("/api/v1/user/info"),
            Method::GET,
            &[("origin", "https://evil.example")],
            "",
        ),
    )
    .await;
    assert_eq!(refused.status, 403);
    assert_eq!(all(&refused, "content-security-policy"), ["sandbox"]);
}

/// Each refused origin is logged once, at warn level, with the key that
/// would allow it.
#[tokio::test]
async fn each_refused_origin_is_logged_once_with_the_key_that_would_allow_it() {
    let api = start_api(Duration::from_secs(3600)).await;
    let files = write_config(api.addr, PASSWORD, &Extra::default());
    let sidecar = Proc::spawn(&files.config, &[]).await;
    let c = client();
    wait_ready(&c, sidecar.admin).await;
    let url = format!("http://{}/api/v1/user/info", sidecar.proxy);
    for origin in [
        "https://evil.example",
        "https://evil.example",
        "https://evil.example",
        "https://other.example",
    ] {
        let r = send(&c, request(&url, Method::GET, &[("origin", origin)], "")).await;
        assert_eq!(r.status, 403);
    }
    let hostile = format!("https://{}.example", "x".repeat(3000));
    let r = send(&c, request(&url, Method::GET, &[("origin", &hostile)], "")).await;
    assert_eq!(r.status, 403);
    // The log is written by another process: wait for the last line.
    eventually(Duration::from_secs(10), "the refusals in the log", || {
        sidecar
            .log()
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("refused a request from the web origin"))
            .count()
            >= 3
    })
    .await;
    let log = sidecar.log();
    let warned = |needle: &str| {
        log.lines()
            .filter(|l| l.contains("WARN") && l.contains(needle) && l.contains("proxy.allowed_origins"))
            .count()
    };
    assert_eq!(warned("\"https://evil.example\""), 1, "{log}");
    assert_eq!(warned("\"https://other.example\""), 1, "{log}");
    let long = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("xxxxxxxx"))
        .expect("the long origin is logged");
    assert!(long.len() < 600, "the origin is cut: {} characters", long.len());
}

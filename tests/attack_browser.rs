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

#[tokio::test]
async fn a_websocket_from_a_foreign_origin_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;
    let mut s = tokio::net::TcpStream::connect(sidecar.proxy).await.unwrap();
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Origin: https://evil.example\r\n\r\n",
        sidecar.proxy
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert_eq!(api.mock.counts().ws_logins_ok, 0);
}

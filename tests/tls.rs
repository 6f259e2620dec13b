//! An HTTPS upstream: rustls with `upstream.ca_file`, HTTP/2 or HTTP/1.1 as
//! ALPN decides, and certificate verification that refuses an unknown issuer.

mod common;

use std::time::Duration;

use common::*;
use ethgas_mock::{self as mock, Mock, MockConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct TlsApi {
    mock: Mock,
    addr: std::net::SocketAddr,
    ca_pem: String,
    stop: CancellationToken,
}

impl Drop for TlsApi {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The mock API behind TLS with a fresh self-signed certificate for
/// 127.0.0.1, offering the given ALPN protocols.
async fn start_tls_api(alpn: &[&[u8]]) -> TlsApi {
    let (acceptor, ca_pem) = tls_acceptor(alpn);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mock = Mock::new(MockConfig {
        username: USER.into(),
        password: PASSWORD.into(),
        ..MockConfig::default()
    });
    let stop = CancellationToken::new();
    tokio::spawn(mock::serve_tls(listener, mock.clone(), acceptor, stop.clone()));
    TlsApi {
        mock,
        addr,
        ca_pem,
        stop,
    }
}

/// A sidecar in front of `https://127.0.0.1:PORT`, trusting the API's
/// certificate through `upstream.ca_file` if `trust`.
async fn sidecar_for(api: &TlsApi, trust: bool) -> Sidecar {
    sidecar_configured(api, trust, "").await
}

/// A trusting sidecar with `upstream` lines added to its `[upstream]` table.
async fn sidecar_with(api: &TlsApi, upstream: &str) -> Sidecar {
    sidecar_configured(api, true, upstream).await
}

/// `n` concurrent echo requests through the sidecar, each answered 200 and
/// seen by the API as `version`.
async fn echo_burst(c: &TestClient, sidecar: &Sidecar, n: usize, version: &str) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (c, url) = (c.clone(), sidecar.url("/api/v1/mock/echo"));
        set.spawn(async move { get(&c, &url).await });
    }
    while let Some(r) = set.join_next().await {
        let r = r.unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["data"]["version"], version);
    }
}

async fn sidecar_configured(api: &TlsApi, trust: bool, upstream: &str) -> Sidecar {
    let files = write_config(api.addr, PASSWORD, &Extra::proxy("token_wait = \"300ms\""));
    let ca = files.dir.path().join("ca.pem");
    std::fs::write(&ca, &api.ca_pem).unwrap();
    let mut text = std::fs::read_to_string(&files.config)
        .unwrap()
        .replace("base_url = \"http://", "base_url = \"https://");
    if trust {
        text = text.replace(
            "[upstream]\n",
            &format!("[upstream]\nca_file = {:?}\n{upstream}", ca.display().to_string()),
        );
    }
    std::fs::write(&files.config, text).unwrap();
    start_from_files(files).await
}

#[tokio::test]
async fn https_upstream_with_ca_file_speaks_http2_when_offered() {
    let api = start_tls_api(&[b"h2", b"http/1.1"]).await;
    let sidecar = sidecar_for(&api, true).await;
    let c = client();
    wait_ready(&c, sidecar.admin).await;
    let r = get(&c, &sidecar.url("/api/v1/mock/echo")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let echo = r.json()["data"].clone();
    assert_eq!(echo["version"], "HTTP/2.0", "ALPN chose h2: {echo}");
    assert_eq!(echo["headers"]["authorization"]["valid"], true);
    assert_eq!(api.mock.counts().logins_ok, 1);
}

/// `upstream.http2 = false`: an API that offers h2 still gets HTTP/1.1, for
/// single requests and for a burst of concurrent ones (one connection each).
#[tokio::test]
async fn https_upstream_over_http1_when_http2_is_turned_off() {
    let api = start_tls_api(&[b"h2", b"http/1.1"]).await;
    let sidecar = sidecar_with(&api, "http2 = false\n").await;
    let c = client();
    wait_ready(&c, sidecar.admin).await;
    for _ in 0..3 {
        let r = get(&c, &sidecar.url("/api/v1/mock/echo")).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["data"]["version"], "HTTP/1.1");
        assert_eq!(r.json()["data"]["headers"]["authorization"]["valid"], true);
    }
    echo_burst(&c, &sidecar, 20, "HTTP/1.1").await;
    assert_eq!(api.mock.counts().logins_ok, 1);
}

#[tokio::test]
async fn https_upstream_over_http1_when_only_that_is_offered() {
    let api = start_tls_api(&[b"http/1.1"]).await;
    let sidecar = sidecar_for(&api, true).await;
    let c = client();
    wait_ready(&c, sidecar.admin).await;
    let r = get(&c, &sidecar.url("/api/v1/mock/echo")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["version"], "HTTP/1.1");
    // A large download streams over TLS too.
    let r = get(&c, &sidecar.url("/api/v1/mock/download?bytes=3000000")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 3_000_000);
}

/// The WebSocket relay dials through the pool's connector: the same roots
/// (`upstream.ca_file`) and only http/1.1 offered in ALPN, so an API that
/// prefers h2 still gets an HTTP/1.1 upgrade.
#[tokio::test]
async fn a_websocket_reaches_an_https_api_through_the_pools_roots() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    let api = start_tls_api(&[b"h2", b"http/1.1"]).await;
    let sidecar = sidecar_for(&api, true).await;
    wait_ready(&client(), sidecar.admin).await;
    let stream = tokio::net::TcpStream::connect(sidecar.proxy).await.unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(format!("ws://{}/ws", sidecar.proxy), stream)
        .await
        .expect("upgrade through the sidecar to the wss:// API");
    assert_eq!(resp.status(), 101);
    ws.send(Message::text(r#"{"cmd":"login","data":{"accessToken":"placeholder"}}"#))
        .await
        .unwrap();
    let reply = next_ws_json(&mut ws).await;
    assert_eq!(
        (reply["cmd"].as_str(), reply["code"].as_i64()),
        (Some("login"), Some(200)),
        "{reply}"
    );
    ws.send(Message::text(r#"{"cmd":"whoami"}"#)).await.unwrap();
    let whoami = next_ws_json(&mut ws).await;
    assert_eq!(whoami["authenticated"], true, "{whoami}");
    assert_eq!(api.mock.websocket_paths(), ["/ws"]);
    assert_eq!(api.mock.counts().ws_logins_ok, 1);
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_and_said_so() {
    let api = start_tls_api(&[b"http/1.1"]).await;
    let sidecar = sidecar_for(&api, false).await;
    let c = client();
    eventually(Duration::from_secs(5), "a TLS connection attempt", || {
        api.mock.counts().connections >= 1
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let err = loop {
        let r = get(&c, &sidecar.admin_url("/readyz")).await;
        assert_eq!(r.status, 503, "never ready with an unknown issuer");
        if let Some(e) = r.json()["data"]["last_error"].as_str() {
            break e.to_string();
        }
        assert!(tokio::time::Instant::now() < deadline, "no error reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert_eq!(
        api.mock.counts().logins_ok,
        0,
        "the password never went to an unverified server"
    );
}

#[tokio::test]
async fn every_worker_holds_a_warm_http2_connection_before_the_first_request() {
    let api = start_tls_api(&[b"h2", b"http/1.1"]).await;
    let sidecar = sidecar_for(&api, true).await;
    let c = client();
    wait_ready(&c, sidecar.admin).await;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    // The auth task's connection and one per worker, opened at start.
    let started = std::time::Instant::now();
    while api.mock.counts().connections < 1 + workers {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} connections, want {} (auth + {workers} warm)",
            api.mock.counts().connections,
            1 + workers
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for _ in 0..10 {
        let r = get(&c, &sidecar.url("/api/v1/mock/echo")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["data"]["version"], "HTTP/2.0");
    }
    assert_eq!(
        api.mock.counts().connections,
        1 + workers,
        "no request paid for a handshake"
    );
}

#[tokio::test]
async fn concurrent_requests_share_one_http2_connection_per_worker() {
    let api = start_tls_api(&[b"h2", b"http/1.1"]).await;
    let sidecar = sidecar_for(&api, true).await;
    let c = client();
    wait_ready(&c, sidecar.admin).await;
    for _round in 0..2 {
        echo_burst(&c, &sidecar, 20, "HTTP/2.0").await;
    }
    // One for the auth task, at most one per proxy worker (one per core):
    // 40 requests, 20 at a time, multiplexed.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let connections = api.mock.counts().connections;
    assert!(
        connections <= 1 + workers as u64,
        "{connections} TLS connections for 40 requests with {workers} workers"
    );
}

//! An HTTPS API that retires its HTTP/2 connections: requests it refuses
//! unprocessed (REFUSED_STREAM, or streams a graceful GOAWAY leaves out) are
//! sent again on a new connection instead of reaching the program as 502s.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use common::*;
use tokio::net::TcpListener;

/// What the API did.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    answered: AtomicUsize,
    refused: AtomicUsize,
}

/// An HTTP/2-only API over TLS that answers the first request on each
/// connection (a login answer for the login, a small JSON otherwise) and
/// refuses every later one with REFUSED_STREAM: as if it retired each
/// connection after one request.
async fn retiring_api() -> (std::net::SocketAddr, String, Arc<Seen>) {
    let (acceptor, ca_pem) = tls_acceptor(&[b"h2"]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let counts = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counts.connections.fetch_add(1, Ordering::SeqCst);
            let (acceptor, counts) = (acceptor.clone(), counts.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut conn) = h2::server::handshake(tls).await else {
                    return;
                };
                let mut streams = 0;
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    streams += 1;
                    if streams > 1 {
                        counts.refused.fetch_add(1, Ordering::SeqCst);
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                        continue;
                    }
                    counts.answered.fetch_add(1, Ordering::SeqCst);
                    let body = if req.uri().path().ends_with("/login") {
                        r#"{"code":200,"message":"OK","data":{"accessToken":"tok-1","refreshToken":"ref-1","expiresIn":3600}}"#
                    } else {
                        r#"{"code":200,"message":"OK","data":{"served":true}}"#
                    };
                    let resp = http::Response::builder()
                        .header("content-type", "application/json")
                        .body(())
                        .unwrap();
                    if let Ok(mut send) = respond.send_response(resp, false) {
                        let _ = send.send_data(Bytes::from_static(body.as_bytes()), true);
                    }
                }
            });
        }
    });
    (addr, ca_pem, seen)
}

#[tokio::test]
async fn requests_the_api_refuses_unprocessed_are_sent_again_not_answered_502() {
    let (addr, ca_pem, seen) = retiring_api().await;
    let files = write_config(addr, PASSWORD, &Extra::default());
    let ca = files.dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let text = std::fs::read_to_string(&files.config)
        .unwrap()
        .replace("base_url = \"http://", "base_url = \"https://")
        .replace(
            "[upstream]\n",
            &format!("[upstream]\nca_file = {:?}\n", ca.display().to_string()),
        );
    std::fs::write(&files.config, text).unwrap();
    let sidecar = start_from_files(files).await;
    let c = client();
    wait_ready(&c, sidecar.admin).await;

    // One client connection: every request lands on the same worker, whose
    // HTTP/2 connection is refused from its second request on.
    for i in 0..6 {
        let r = get(&c, &sidecar.url("/api/v1/user/info")).await;
        assert_eq!(r.status, 200, "request {i}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["data"]["served"], true);
    }
    let refused = seen.refused.load(Ordering::SeqCst);
    assert!(refused >= 1, "the API refused nothing: the test did not test");
    let metrics = get(&c, &sidecar.admin_url("/metrics")).await;
    let text = String::from_utf8_lossy(&metrics.body);
    let resent: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("ethgas_sidecar_resent_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("ethgas_sidecar_resent_total in /metrics");
    assert_eq!(resent, refused as u64, "each refused request was sent once more");
    eprintln!(
        "{} connections, {} answered, {refused} refused unprocessed and sent again",
        seen.connections.load(Ordering::SeqCst),
        seen.answered.load(Ordering::SeqCst)
    );
}

//! Attacks through the proxy on what reaches the API and what comes back
//! (issue 18, items 9 and 11), against a raw-TCP API that records every
//! request it reads: a `TRACE` (which an API may answer by reflecting the
//! injected `Authorization`) or an unknown method never reaches it; a client's
//! malformed chunked body is the client's 400, not the API's 502; an answer
//! with both `Content-Length` and chunked coding reaches the client whole.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.recorded-access-token.c2lnbmF0dXJl";
/// The body of `/api/v1/framing`, sent chunked under a `Content-Length: 5`.
const FRAMED: &[u8; 20] = b"abcdefghijklmnopqrst";

/// The request lines (`METHOD /path`) the API read, in order.
type Seen = Arc<Mutex<Vec<String>>>;

/// An API on raw TCP: logs the account in, answers `/api/v1/framing` with
/// `Content-Length: 5` and a 20-byte chunked body, anything else 200 `ok`.
/// Bodies are read by `Content-Length` or up to the last chunk.
async fn recording_api() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(serve(s, record.clone()));
        }
    });
    (addr, seen)
}

async fn serve(mut s: TcpStream, seen: Seen) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let line = String::from_utf8_lossy(&buf[..head_end])
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        let request = line.rsplit_once(' ').map_or(line.as_str(), |(r, _)| r).to_string();
        seen.lock().unwrap().push(request.clone());
        buf.drain(..head_end);
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        let end = |buf: &[u8]| match length {
            Some(n) => (buf.len() >= n).then_some(n),
            None if head.contains("transfer-encoding: chunked") => {
                buf.windows(5).position(|w| w == b"0\r\n\r\n").map(|i| i + 5)
            }
            None => Some(0),
        };
        let body_end = loop {
            if let Some(n) = end(&buf) {
                break n;
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        buf.drain(..body_end);
        let answer = if request.starts_with("POST /api/v1/user/login") {
            let body = format!(r#"{{"code":200,"message":"OK","data":{{"accessToken":"{TOKEN}","expiresIn":3600}}}}"#);
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        } else if request.ends_with(" /api/v1/framing") {
            let mut a = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n14\r\n".to_vec();
            a.extend_from_slice(FRAMED);
            a.extend_from_slice(b"\r\n0\r\n\r\n");
            a
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()
        };
        if s.write_all(&answer).await.is_err() {
            return;
        }
    }
}

/// The requests the API saw besides the login.
fn forwarded(seen: &Seen) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|r| !r.starts_with("POST /api/v1/user/login"))
        .cloned()
        .collect()
}

async fn ready(api: SocketAddr) -> Sidecar {
    let sidecar = start_sidecar_with_password(api, PASSWORD, Extra::default()).await;
    wait_ready(&client(), sidecar.admin).await;
    sidecar
}

async fn raw(sidecar: &Sidecar, request: &[u8]) -> RawResponse {
    let mut s = TcpStream::connect(sidecar.proxy).await.unwrap();
    s.write_all(request).await.unwrap();
    read_raw_response(&mut s).await
}

#[tokio::test]
async fn trace_and_methods_the_api_does_not_use_are_refused_with_405_and_never_reach_the_api() {
    let (api, seen) = recording_api().await;
    let sidecar = ready(api).await;
    for method in ["TRACE", "TRACK", "PROPFIND", "BREW", "CONNECT"] {
        let target = if method == "CONNECT" {
            "api.ethgas.com:443"
        } else {
            "/api/v1/user/accounts"
        };
        let r = raw(
            &sidecar,
            format!("{method} {target} HTTP/1.1\r\nHost: {}\r\n\r\n", sidecar.proxy).as_bytes(),
        )
        .await;
        assert_eq!(r.status, 405, "{method}: {r:?}");
        assert_eq!(
            r.header("allow"),
            Some("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
            "{method}"
        );
        let env = r.json();
        assert_eq!(env["code"], 405, "{method}: {env}");
        assert!(env["message"].as_str().unwrap().contains(method), "{method}: {env}");
        assert!(!String::from_utf8_lossy(&r.body).contains(TOKEN));
    }
    assert!(forwarded(&seen).is_empty(), "the API saw {:?}", forwarded(&seen));

    // The methods the API uses still go.
    for method in ["GET", "DELETE", "OPTIONS"] {
        let r = raw(
            &sidecar,
            format!("{method} /api/v1/x HTTP/1.1\r\nHost: {}\r\n\r\n", sidecar.proxy).as_bytes(),
        )
        .await;
        assert_eq!(r.status, 200, "{method}: {r:?}");
    }
    assert_eq!(
        forwarded(&seen),
        ["GET /api/v1/x", "DELETE /api/v1/x", "OPTIONS /api/v1/x"]
    );
}

#[tokio::test]
async fn a_malformed_chunked_request_body_is_a_400_naming_the_body_not_a_502() {
    let (api, _seen) = recording_api().await;
    let sidecar = ready(api).await;
    for size_line in ["+1\r\n", " 1\r\n", "1\n", "10000000000000000\r\n"] {
        let request = format!(
            "POST /api/v1/user/order HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\n\r\n{size_line}x\r\n0\r\n\r\n",
            sidecar.proxy
        );
        let r = raw(&sidecar, request.as_bytes()).await;
        assert_eq!(r.status, 400, "{size_line:?}: {r:?}");
        assert_eq!(r.header("retry-after"), None, "{size_line:?}: a retry would not help");
        let message = r.json()["message"].as_str().unwrap().to_string();
        assert!(message.contains("request body"), "{size_line:?}: {message}");
        assert!(!message.contains("failed to answer"), "{size_line:?}: {message}");
    }
}

#[tokio::test]
async fn an_answer_with_content_length_and_chunked_coding_reaches_the_client_whole() {
    let (api, _seen) = recording_api().await;
    let sidecar = ready(api).await;
    let r = raw(
        &sidecar,
        format!("GET /api/v1/framing HTTP/1.1\r\nHost: {}\r\n\r\n", sidecar.proxy).as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(&r.body[..], FRAMED, "the chunked body, whole: {r:?}");
    assert_ne!(r.header("content-length"), Some("5"), "{r:?}");
}

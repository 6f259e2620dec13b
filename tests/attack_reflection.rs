//! A misbehaving API: one that reflects the request's `Authorization` (or
//! sets the live refresh cookie) in a response header, and one that answers
//! 401 with a large body while no new token can be had. The client must never
//! see the account's token, and must always get the API's whole answer.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use common::*;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.real-access-token.c2lnbmF0dXJl";
const BIG: usize = 100 * 1024;

/// An API that logs the account in once (later logins are refused),
/// reflects headers on `/api/v1/reflect`, and answers `/api/v1/big401`
/// with a 401 whose body is `BIG` bytes.
async fn misbehaving_api() -> (SocketAddr, Arc<AtomicU64>) {
    let logins = Arc::new(AtomicU64::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = logins.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let count = count.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let count = count.clone();
                    async move {
                        let mut resp = Response::new(Full::new(Bytes::new()));
                        match (req.method().clone(), req.uri().path()) {
                            (Method::POST, "/api/v1/user/login") => {
                                if count.fetch_add(1, Ordering::SeqCst) == 0 {
                                    *resp.body_mut() = Full::new(Bytes::from(format!(
                                        r#"{{"code":200,"message":"OK","data":{{"accessToken":"{TOKEN}","expiresIn":3600}}}}"#
                                    )));
                                } else {
                                    *resp.status_mut() = StatusCode::UNAUTHORIZED;
                                    *resp.body_mut() =
                                        Full::new(Bytes::from_static(br#"{"code":401,"message":"no","data":null}"#));
                                }
                            }
                            (_, "/api/v1/reflect") => {
                                let auth = req.headers().get("authorization").cloned().unwrap();
                                resp.headers_mut().insert("x-echo-authorization", auth);
                                resp.headers_mut().append(
                                    "set-cookie",
                                    "x_auth_refresh_token=eyJ.refresh.sig; Path=/; HttpOnly"
                                        .parse()
                                        .unwrap(),
                                );
                                resp.headers_mut().append("set-cookie", "lang=en".parse().unwrap());
                                *resp.body_mut() = Full::new(Bytes::from_static(b"reflected"));
                            }
                            (_, "/api/v1/big401") => {
                                *resp.status_mut() = StatusCode::UNAUTHORIZED;
                                let body: Vec<u8> = (0..BIG).map(|i| b'a' + (i % 26) as u8).collect();
                                *resp.body_mut() = Full::new(Bytes::from(body));
                            }
                            _ => *resp.status_mut() = StatusCode::NOT_FOUND,
                        }
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    (addr, logins)
}

#[tokio::test]
async fn an_api_that_reflects_the_token_in_a_header_never_hands_it_to_the_client() {
    let (api, _) = misbehaving_api().await;
    let sidecar = start_sidecar_with_password(api, PASSWORD, Extra::default()).await;
    let c = client();
    wait_ready(&c, sidecar.admin).await;
    let r = get(&c, &sidecar.url("/api/v1/reflect")).await;
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], b"reflected");
    for (name, value) in &r.headers {
        let v = String::from_utf8_lossy(value.as_bytes());
        assert!(!v.contains(TOKEN), "{name}: {v}");
        assert!(!v.contains("x_auth_refresh_token"), "{name}: {v}");
    }
    assert_eq!(r.headers["set-cookie"], "lang=en", "other cookies pass");
    let metrics = get(&c, &sidecar.admin_url("/metrics")).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("ethgas_sidecar_response_headers_redacted_total 2"),
        "{text}"
    );
}

#[tokio::test]
async fn a_large_401_body_reaches_the_client_whole_when_no_new_token_comes() {
    let (api, logins) = misbehaving_api().await;
    let sidecar = start_sidecar_with_password(api, PASSWORD, Extra::proxy("token_wait = \"1s\"\n")).await;
    let c = client();
    wait_ready(&c, sidecar.admin).await;
    // A small POST: its body is kept for a replay, so the sidecar tries to
    // renew the token, which the API refuses.
    let r = post_json(&c, &sidecar.url("/api/v1/big401"), r#"{"x":1}"#).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body.len(), BIG, "the API's whole 401 body");
    assert!(r.body.iter().enumerate().all(|(i, b)| *b == b'a' + (i % 26) as u8));
    assert!(logins.load(Ordering::SeqCst) >= 2, "a renewal was tried");
}

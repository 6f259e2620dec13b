//! Look-alikes of the account endpoints. An upstream that normalises paths
//! (nginx `merge_slashes`, Spring, IIS) reads `//api/v1/user/logout/` as the
//! logout endpoint; if the sidecar forwarded it with the real token, any
//! local process could end the account's session or obtain a real token
//! pair. Every variant must be answered by the sidecar or refused: the API
//! (here a recorder that logs every request it gets) must never see a request
//! whose path normalises to an account endpoint carrying the real token.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use http::{Method, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

const REAL: &str = "real-access-token-0123456789";

/// A fake API that logs the account in and records everything else.
async fn recorder() -> (SocketAddr, Arc<Mutex<Vec<(Method, String, String)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let log = log.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let body = if req.method() == Method::POST && path == "/api/v1/user/login" {
                            format!(
                                r#"{{"code":200,"message":"OK","data":{{"accessToken":"{REAL}","refreshToken":"real-refresh","expiresIn":3600}}}}"#
                            )
                        } else {
                            let auth = req
                                .headers()
                                .get("authorization")
                                .map(|v| v.to_str().unwrap_or("").to_string())
                                .unwrap_or_default();
                            log.lock().unwrap().push((req.method().clone(), path, auth));
                            r#"{"code":200,"message":"OK","data":{"loggedOut":true}}"#.to_string()
                        };
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                    }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn look_alikes_of_logout_refresh_and_login_never_reach_the_api_with_the_real_token() {
    let (api, seen) = recorder().await;
    let sidecar = start_sidecar_with_password(api, PASSWORD, Extra::default()).await;
    let c = client();
    wait_ready(&c, sidecar.admin).await;
    let variants = [
        "//api/v1/user/logout",
        "/api/v1/user/logout/",
        "/api/v1/user/logout;x=1",
        "/api/v1/user/%6Cogout",
        "/api/v1/user/%6cogout",
        "/api/v1/user/./logout",
        "/api/v1/p/../user/logout",
        "/api/v1/p/%2e%2e/user/logout",
        "/API/V1/USER/LOGOUT",
        "/api/v1/user%2Flogout",
        "/api/v1/user/login/refresh/",
        "//api/v1/user/login//refresh",
        "/api/v1/user/login;jsessionid=1",
        "/api/v1/user/login/verify/",
    ];
    for path in variants {
        for method in [Method::POST, Method::GET, Method::DELETE, Method::PUT] {
            let req = Request::builder()
                .method(method.clone())
                .uri(sidecar.url(path))
                .body(Full::default())
                .unwrap();
            let r = send(&c, req).await;
            if method == Method::POST {
                assert_eq!(r.status, 200, "{method} {path} answered by the sidecar: {:?}", r.body);
            } else {
                assert_eq!(r.status, 405, "{method} {path} refused: {:?}", r.body);
                assert_eq!(r.headers["allow"], "POST");
                assert!(r.json()["message"].as_str().unwrap().starts_with("ethgas-sidecar: "));
            }
        }
    }
    let seen = seen.lock().unwrap();
    assert!(seen.is_empty(), "the API saw: {seen:?}");
}

#[tokio::test]
async fn with_interception_off_account_calls_go_as_sent_without_the_token() {
    let (api, seen) = recorder().await;
    let sidecar = start_sidecar_with_password(api, PASSWORD, Extra::proxy("intercept_login = false\n")).await;
    let c = client();
    wait_ready(&c, sidecar.admin).await;
    let req = Request::post(sidecar.url("//api/v1/user/logout/"))
        .header("authorization", "Bearer the-programs-own")
        .body(Full::default())
        .unwrap();
    assert_eq!(send(&c, req).await.status, 200);
    let req = Request::post(sidecar.url("/api/v1/user/logout"))
        .body(Full::default())
        .unwrap();
    assert_eq!(send(&c, req).await.status, 200);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        seen[0].2, "Bearer the-programs-own",
        "the program's own header, as sent"
    );
    assert_eq!(seen[1].2, "", "no token added");
    assert!(seen.iter().all(|(_, _, auth)| !auth.contains(REAL)));
}

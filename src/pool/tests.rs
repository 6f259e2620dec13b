//! Unit tests of `pool`: connection reuse, stale connections, idle expiry.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::*;
use crate::config::Config;
use crate::upstream;

fn settings(base: &str, extra: &str) -> UpstreamSettings {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "x").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path().join("pw"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = format!("[upstream]\nbase_url = {base:?}\n{extra}\n[auth]\nusername = \"u\"\npassword_file = \"pw\"\n");
    Config::from_toml(&text, &dir.path().join("c.toml"))
        .unwrap()
        .restart
        .upstream
}

/// An HTTP/1 upstream that counts the connections it accepted and answers
/// every request with its request line's target and its Host header.
struct Upstream {
    base: String,
    accepted: Arc<AtomicUsize>,
}

async fn upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<Incoming>| async move {
                    let host = req.headers().get(header::HOST).cloned();
                    let text = format!(
                        "{} {}",
                        req.uri(),
                        host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("-")
                    );
                    Ok::<_, Infallible>(Response::new(http_body_util::Full::new(Bytes::from(text))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Upstream { base, accepted }
}

/// An upstream that answers one request per connection as if keeping it
/// alive, then closes it (a server whose keep-alive timeout passed): the
/// pooled connection is dead when the next request takes it. `closed` is
/// notified once a socket has been shut.
async fn forgetful_upstream() -> (Upstream, Arc<Notify>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(Notify::new());
    let (count, notify) = (accepted.clone(), closed.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let notify = notify.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok")
                    .await;
                let _ = stream.shutdown().await;
                drop(stream);
                notify.notify_one();
            });
        }
    });
    (Upstream { base, accepted }, closed)
}

fn pool_for(base: &str, extra: &str) -> (Pool, Target) {
    let s = settings(base, extra);
    let roots = Arc::new(upstream::root_store(&s).unwrap());
    let connector = upstream::connector(&s, roots).unwrap();
    let target = Target::new(&s);
    (Pool::new(&s, connector), target)
}

async fn get(pool: &Pool, target: &Target, path: &'static str) -> (u16, String) {
    let mut req = Request::new(upstream::full(Bytes::new()));
    *req.uri_mut() = target.uri(Some(PathAndQuery::from_static(path)));
    let resp = pool.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn sequential_requests_share_one_connection_in_origin_form() {
    let up = upstream().await;
    let (pool, target) = pool_for(&up.base, "");
    let authority = up.base.trim_start_matches("http://").to_string();
    for i in 0..20 {
        let (status, body) = get(&pool, &target, "/api/v1/user/info?n=1").await;
        assert_eq!(status, 200, "request {i}");
        // Origin form on the request line, the authority in Host.
        assert_eq!(body, format!("/api/v1/user/info?n=1 {authority}"));
    }
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1, "20 requests, one connection");
    assert_eq!(pool.idle_connections(), 1);
}

#[tokio::test]
async fn concurrent_requests_open_one_connection_each_then_reuse_them() {
    let up = upstream().await;
    let (pool, target) = pool_for(&up.base, "");
    for _round in 0..3 {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (pool, target) = (pool.clone(), target.clone());
            set.spawn(async move { get(&pool, &target, "/x").await.0 });
        }
        while let Some(status) = set.join_next().await {
            assert_eq!(status.unwrap(), 200);
        }
    }
    let opened = up.accepted.load(Ordering::SeqCst);
    assert!(
        opened <= 8,
        "3 rounds of 8 concurrent requests opened {opened} connections"
    );
}

#[tokio::test]
async fn a_connection_the_server_closed_while_idle_is_replaced_without_an_error() {
    let (up, closed) = forgetful_upstream().await;
    let (pool, target) = pool_for(&up.base, "");
    for i in 0..5 {
        let shut = closed.notified();
        let (status, body) = get(&pool, &target, "/again").await;
        assert_eq!((status, body.as_str()), (200, "ok"), "request {i}");
        // The server has closed the connection the pool kept.
        shut.await;
        tokio::task::yield_now().await;
    }
    assert_eq!(
        up.accepted.load(Ordering::SeqCst),
        5,
        "each request needed a new connection"
    );
}

#[tokio::test]
async fn idle_connections_expire_after_pool_idle_timeout() {
    let up = upstream().await;
    let (pool, target) = pool_for(&up.base, "pool_idle_timeout = \"1s\"");
    assert_eq!(get(&pool, &target, "/a").await.0, 200);
    assert_eq!(pool.idle_connections(), 1);
    tokio::time::pause();
    tokio::time::advance(Duration::from_millis(1500)).await;
    tokio::time::resume();
    assert_eq!(get(&pool, &target, "/b").await.0, 200);
    assert_eq!(
        up.accepted.load(Ordering::SeqCst),
        2,
        "the expired connection was not reused"
    );
}

#[tokio::test]
async fn an_unreachable_api_is_a_connect_error() {
    // Bind and drop: nothing listens on this port any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (pool, target) = pool_for(&format!("http://127.0.0.1:{port}"), "");
    let mut req = Request::new(upstream::full(Bytes::new()));
    *req.uri_mut() = target.uri(None);
    match pool.request(req).await {
        Err(err) => assert!(err.is_connect(), "{err}"),
        Ok(resp) => panic!("a response from nowhere: {}", resp.status()),
    }
}

/// An upstream that accepts connections and closes them at once (an API
/// behind a balancer with no healthy backend).
async fn dropping_upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    Upstream { base, accepted }
}

#[tokio::test]
async fn an_api_that_closes_every_connection_gets_at_most_three_per_request() {
    let up = dropping_upstream().await;
    let (pool, target) = pool_for(&up.base, "");
    let requests = 5;
    let started = Instant::now();
    for i in 0..requests {
        let before = up.accepted.load(Ordering::SeqCst);
        let mut req = Request::new(upstream::full(Bytes::new()));
        *req.uri_mut() = target.uri(Some(PathAndQuery::from_static("/api/v1/user/login")));
        // Unbounded, the pool dialled for as long as it was let (~350
        // connections a second here).
        let result = tokio::time::timeout(Duration::from_secs(5), pool.request(req))
            .await
            .unwrap_or_else(|_| panic!("request {i} still dialling after 5 s"));
        match result {
            // Closed before the request was written (the usual case): a
            // connect error after at most three connections.
            Err(PoolError::Connect(e)) => assert!(e.to_string().contains("closed"), "{e}"),
            // Closed while it was being written: the caller's error.
            Err(PoolError::Request(_)) => {}
            Ok(resp) => panic!("request {i}: a response from a closed connection: {}", resp.status()),
        }
        let opened = up.accepted.load(Ordering::SeqCst) - before;
        assert!(
            (1..=MAX_CONNECTS as usize).contains(&opened),
            "request {i} opened {opened} connections"
        );
    }
    let total = up.accepted.load(Ordering::SeqCst);
    eprintln!(
        "{requests} requests to an API that drops connections: {total} connections in {:?}",
        started.elapsed()
    );
    assert!(total <= requests * MAX_CONNECTS as usize);
}

/// Waits (in real time, generously bounded) until `cond` holds.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_warm_pool_connects_before_the_first_request_and_the_request_uses_it() {
    let up = upstream().await;
    let (pool, target) = pool_for(&up.base, "");
    pool.keep_warm();
    eventually("the warm connection is open", || pool.is_warm()).await;
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
    for _ in 0..3 {
        assert_eq!(get(&pool, &target, "/first").await.0, 200);
    }
    assert_eq!(
        up.accepted.load(Ordering::SeqCst),
        1,
        "the requests went over the warm connection"
    );
    assert_eq!(pool.idle_connections(), 1, "an idle pool holds one connection");
}

#[tokio::test]
async fn a_warm_connection_the_api_closes_is_replaced_at_once() {
    let (up, closed) = forgetful_upstream().await;
    let (pool, target) = pool_for(&up.base, "");
    pool.keep_warm();
    eventually("the warm connection is open", || pool.is_warm()).await;
    // The request uses the warm connection; the API then closes it (its
    // keep-alive timeout passed). The pool opens a new one by itself.
    let shut = closed.notified();
    assert_eq!(get(&pool, &target, "/a").await, (200, "ok".into()));
    shut.await;
    eventually("a second connection is open", || {
        up.accepted.load(Ordering::SeqCst) == 2 && pool.is_warm()
    })
    .await;
    // The next request finds it ready: no connection is opened for it.
    let shut = closed.notified();
    assert_eq!(get(&pool, &target, "/b").await, (200, "ok".into()));
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
    shut.await;
}

#[tokio::test]
async fn an_idle_http1_warm_connection_is_renewed_before_pool_idle_timeout() {
    let up = upstream().await;
    let (pool, _target) = pool_for(&up.base, "pool_idle_timeout = \"1s\"");
    pool.keep_warm();
    eventually("the warm connection is open", || pool.is_warm()).await;
    // 1 s idle timeout: it is replaced every ~0.9 s (then the keeper backs
    // off, as these connections live shorter than 5 s); never cold for long
    // and never more than two connections held at once.
    eventually("the warm connection was renewed", || {
        up.accepted.load(Ordering::SeqCst) >= 2
    })
    .await;
    assert!(pool.idle_connections() <= 2, "{} idle", pool.idle_connections());
}

#[tokio::test]
async fn keep_warm_false_opens_nothing_until_a_request() {
    let up = upstream().await;
    let (pool, target) = pool_for(&up.base, "keep_warm = false");
    tokio::time::pause();
    pool.keep_warm();
    // A minute of (virtual) time: a keeper, if one ran, would have connected.
    for _ in 0..600 {
        tokio::time::advance(Duration::from_millis(100)).await;
        tokio::task::yield_now().await;
    }
    tokio::time::resume();
    assert_eq!(up.accepted.load(Ordering::SeqCst), 0);
    assert!(!pool.is_warm());
    assert_eq!(get(&pool, &target, "/x").await.0, 200);
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_down_api_is_dialled_with_a_growing_pause() {
    let up = dropping_upstream().await;
    let (pool, _target) = pool_for(&up.base, "");
    tokio::time::pause();
    pool.keep_warm();
    // Each warm connection dies at once. Over 60 s of (virtual) time the
    // pauses grow 1, 2, 4, 8, 16, 32 s: a handful of connections, not the
    // hundreds a loop without pauses would open.
    for _ in 0..600 {
        tokio::time::advance(Duration::from_millis(100)).await;
        tokio::task::yield_now().await;
    }
    let opened = up.accepted.load(Ordering::SeqCst);
    eprintln!("a warm pool against an API that drops every connection: {opened} connections in 60 s");
    assert!((3..=12).contains(&opened), "{opened} connections in 60 s");
}

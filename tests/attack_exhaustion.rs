//! A local process trying to take the sidecar down: connections whose bodies
//! never finish, heads that never end, and more connections than the process
//! has file descriptors for. Each must end instead of hanging — with a clear
//! answer (408 for a body, a fast 503), or closed without a word for a head
//! (hyper's timer) — and the admin listener must keep answering.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the peer closes or `limit` passes; returns what came and how long it took.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(limit.saturating_sub(started.elapsed()), s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    (String::from_utf8_lossy(&out).into_owned(), started.elapsed())
}

#[tokio::test]
async fn a_body_that_never_finishes_is_ended_with_408() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::proxy("body_idle_timeout = \"1s\"\n")).await;
    // A small body (kept for replay) and a large one (streamed to the API).
    for (declared, path) in [(100, "/api/v1/mock/echo"), (10_000_000, "/api/v1/mock/upload")] {
        let mut s = TcpStream::connect(sidecar.proxy).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n0123456789"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let (answer, took) = read_until_closed(&mut s, Duration::from_secs(10)).await;
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "{declared} bytes declared: {answer}"
        );
        assert!(answer.contains("proxy.body_idle_timeout"), "{answer}");
        assert!(took < Duration::from_secs(5), "dropped after {took:?}");
        eprintln!("slow body of {declared} declared bytes answered 408 after {took:?}");
    }
}

#[tokio::test]
async fn a_head_that_never_ends_is_closed_silently_at_the_header_read_timeout() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::proxy("header_read_timeout = \"1s\"\n")).await;
    let mut s = TcpStream::connect(sidecar.proxy).await.unwrap();
    s.write_all(b"GET /api/v1/user/info HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let (answer, took) = read_until_closed(&mut s, Duration::from_secs(10)).await;
    // hyper's timer ends it without a word (issue 21: no 408 of the sidecar's).
    assert_eq!(answer, "", "closed without an answer");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    assert_eq!(api.mock.counts().private_ok, 0);
}

#[tokio::test]
async fn over_the_connection_cap_clients_get_a_fast_503_and_the_admin_listener_still_answers() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, c) = ready_sidecar(&api, Extra::proxy("max_connections = 4\n")).await;
    // Four connections that hold their place (a head never sent).
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(sidecar.proxy).await.unwrap());
    }
    // Give the accept loop a moment to register them: poll until the fifth is refused.
    let mut refused = None;
    for _ in 0..50 {
        let mut s = TcpStream::connect(sidecar.proxy).await.unwrap();
        s.write_all(b"GET /api/v1/user/info HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let (answer, took) = read_until_closed(&mut s, Duration::from_secs(5)).await;
        if answer.starts_with("HTTP/1.1 503") {
            refused = Some((answer, took));
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (answer, took) = refused.expect("a connection over the cap is refused with 503");
    assert!(answer.contains("proxy.max_connections"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
    assert!(took < Duration::from_secs(2), "answered in {took:?}");
    // The admin listener answers meanwhile.
    let started = Instant::now();
    let r = get(&c, &sidecar.admin_url("/healthz")).await;
    assert_eq!(r.status, 200);
    eprintln!(
        "503 over the cap in {took:?}; /healthz in {:?} while the proxy holds its cap",
        started.elapsed()
    );
    // Freed places serve again.
    drop(held);
    let mut ok = false;
    for _ in 0..100 {
        let r = get(&c, &sidecar.url("/api/v1/user/info")).await;
        if r.status == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "served again once the held connections closed");
}

#[tokio::test]
async fn running_out_of_file_descriptors_is_reported_as_such() {
    // The sidecar as a child process with a tiny descriptor limit, and an
    // explicit cap above it, so that descriptors run out before the cap.
    let api = start_api(Duration::from_secs(3600)).await;
    let files = write_config(api.addr, PASSWORD, &Extra::proxy("max_connections = 500\n"));
    let script = format!(
        "ulimit -n 48 && exec {} run --config {}",
        binary(),
        files.config.display()
    );
    let proc = Proc::spawn_command(std::process::Command::new("bash").args(["-c", &script]), &[]).await;
    let c = client();
    wait_ready(&c, proc.admin).await;
    let mut held = Vec::new();
    for _ in 0..60 {
        if let Ok(s) = TcpStream::connect(proc.proxy).await {
            held.push(s);
        }
    }
    eventually(Duration::from_secs(10), "the out-of-descriptors warning", || {
        proc.log().contains("out of file descriptors: raise LimitNOFILE")
    })
    .await;
    assert!(
        !proc.log().contains("unreachable"),
        "not blamed on the API:\n{}",
        proc.log()
    );
}

#[tokio::test]
async fn idle_connections_never_fill_the_admin_listener_and_the_oldest_make_room() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, c) = ready_sidecar(&api, Extra::default()).await;
    // Many more idle connections than the admin listener keeps (64 used to
    // turn /healthz into a 503 naming proxy.max_connections); some with half
    // a head.
    let mut held = Vec::new();
    for i in 0..ethgas_sidecar::server::ADMIN_CONNECTIONS + 44 {
        let mut s = TcpStream::connect(sidecar.admin).await.unwrap();
        if i % 2 == 1 {
            s.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        }
        held.push(s);
    }
    for _ in 0..3 {
        let r = get(&c, &sidecar.admin_url("/healthz")).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    // The oldest were closed to make room for the newest.
    let (answer, took) = read_until_closed(&mut held[0], Duration::from_secs(3)).await;
    assert_eq!(answer, "", "closed without an answer");
    assert!(took < Duration::from_secs(3), "the oldest connection was closed");
}

#[tokio::test]
async fn an_idle_admin_connection_is_closed_after_the_admin_header_timeout() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;
    let mut s = TcpStream::connect(sidecar.admin).await.unwrap();
    let limit = ethgas_sidecar::server::ADMIN_HEADER_TIMEOUT + Duration::from_secs(10);
    let (answer, took) = read_until_closed(&mut s, limit).await;
    assert!(took < limit, "an idle admin connection stays open");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "closed quietly: {answer}"
    );
}

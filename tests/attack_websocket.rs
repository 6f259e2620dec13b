//! Attacks on the WebSocket relay (issue 11, items 5 and 6): a message too
//! big to hold, a big message that must not be parsed, and an API that takes
//! the connection but never answers the upgrade.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Client = WebSocketStream<TcpStream>;

/// A WebSocket client of the sidecar, at `path`.
async fn connect(sidecar: &Sidecar, path: &str) -> Client {
    let stream = TcpStream::connect(sidecar.proxy).await.unwrap();
    let (ws, resp) = tokio_tungstenite::client_async(format!("ws://{}{path}", sidecar.proxy), stream)
        .await
        .expect("upgrade through the sidecar");
    assert_eq!(resp.status(), 101);
    ws
}

/// The next data or close message, within 10 s.
async fn next(ws: &mut Client) -> Message {
    next_ws_message(ws).await
}

async fn next_json(ws: &mut Client) -> Value {
    match next(ws).await {
        Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// A line of `/proc/self/status`, in KiB. The sidecar runs in this process.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// Restarts the peak-RSS count (`VmHWM`) from the current RSS.
fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").expect("peak RSS can be reset (Linux 4.0+)");
}

/// A WebSocket "API" that sends every text message back as it came, and
/// answers `big:N` with a text message of N bytes.
async fn start_echo_api() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Text(text) = msg else { continue };
                    let reply = match text.as_str().strip_prefix("big:").and_then(|n| n.parse().ok()) {
                        Some(n) => Message::text("x".repeat(n)),
                        None => Message::Text(text),
                    };
                    if ws.send(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Writes a text message of `len` (even) bytes, a JSON array of zeros
/// (`[0,0,…,0 ]`), straight onto the socket in masked frames of `frame`
/// bytes (one frame when `frame >= len`), 64 KiB at a time: the test itself
/// never holds the message.
async fn write_huge_text_message(ws: &mut Client, len: u64, frame: u64) {
    assert!(len % 2 == 0 && len >= 4 && frame % 2 == 0 && frame > 0);
    let io = ws.get_mut();
    // Byte p of the message: ',' at even p, '0' at odd p, apart from the ends.
    let piece: Vec<u8> = b",0".iter().copied().cycle().take(64 * 1024).collect();
    let mut sent = 0u64;
    while sent < len {
        let frame_len = (len - sent).min(frame);
        let last = sent + frame_len == len;
        let opcode = if sent == 0 { 0x1 } else { 0x0 };
        let mut header = vec![if last { 0x80 } else { 0 } | opcode, 0x80 | 127];
        header.extend_from_slice(&frame_len.to_be_bytes());
        header.extend_from_slice(&[0, 0, 0, 0]); // a zero mask leaves the payload as is
        io.write_all(&header)
            .await
            .expect("the sidecar reads the refused message to its end");
        let end = sent + frame_len;
        while sent < end {
            let n = (end - sent).min(piece.len() as u64) as usize;
            let mut chunk = piece[..n].to_vec();
            if sent == 0 {
                chunk[0] = b'[';
            }
            if sent + n as u64 == len {
                chunk[n - 2] = b' ';
                chunk[n - 1] = b']';
            }
            io.write_all(&chunk)
                .await
                .expect("the sidecar reads the refused message to its end");
            sent += n as u64;
        }
    }
    io.flush().await.unwrap();
}

/// The close frame that must come next: 1009, naming the key.
async fn expect_too_big(ws: &mut Client) {
    let close = next(ws).await;
    let Message::Close(Some(frame)) = close else {
        panic!("expected a close frame, got {close:?}")
    };
    assert_eq!(frame.code, CloseCode::Size, "1009 message too big: {frame:?}");
    assert!(
        frame.reason.as_str().contains("proxy.ws_max_message_bytes"),
        "the close names the key: {frame:?}"
    );
}

#[tokio::test]
async fn a_websocket_message_over_the_limit_is_closed_with_1009_and_never_held_in_memory() {
    const MESSAGE: u64 = 4 << 20;
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;
    let mut ws = connect(&sidecar, "/ws").await;
    ws.send(Message::text(r#"{"cmd":"login","data":{"accessToken":"placeholder"}}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["code"], 200);

    reset_peak_rss();
    let before = status_kib("VmHWM:");
    let started = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(20),
        write_huge_text_message(&mut ws, MESSAGE, MESSAGE),
    )
    .await
    .expect("the 4 MiB message is written within 20 s");
    expect_too_big(&mut ws).await;
    let growth_kib = status_kib("VmHWM:").saturating_sub(before);
    eprintln!(
        "{} MiB message: peak RSS grew by {growth_kib} KiB; closed after {:?}",
        MESSAGE >> 20,
        started.elapsed()
    );
    assert!(
        growth_kib < 32 * 1024,
        "peak RSS grew by {growth_kib} KiB for a refused {} MiB message",
        MESSAGE >> 20
    );
}

#[tokio::test]
async fn a_websocket_message_over_the_limit_in_small_frames_is_closed_with_1009_too() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;
    let mut ws = connect(&sidecar, "/ws").await;
    // 64 KiB frames, each well under the limit; the message is 4 MiB.
    tokio::time::timeout(
        Duration::from_secs(20),
        write_huge_text_message(&mut ws, 4 << 20, 64 << 10),
    )
    .await
    .expect("the message is written within 20 s");
    expect_too_big(&mut ws).await;
}

#[tokio::test]
async fn a_large_message_under_the_limit_is_relayed_byte_for_byte_without_being_parsed() {
    let api = start_api(Duration::from_secs(3600)).await;
    let echo = start_echo_api().await;
    let extra = Extra::upstream(&format!("websocket_url = \"ws://{echo}/\""));
    let (sidecar, _c) = ready_sidecar(&api, extra).await;
    let mut ws = connect(&sidecar, "/").await;

    // 512 KiB of JSON array arrives intact.
    let array = format!("[{}0 ]", "0,".repeat(256 * 1024 - 2));
    assert_eq!(array.len(), 512 * 1024);
    ws.send(Message::text(array.clone())).await.unwrap();
    match next(&mut ws).await {
        Message::Text(t) => assert!(t.as_str() == array, "the array came back changed"),
        other => panic!("expected the array back, got {other:?}"),
    }

    // A login-shaped message of 512 KiB is not looked into: it is relayed
    // unchanged (before, it was parsed whole and rewritten).
    let padded_login = format!(
        r#"{{"cmd":"login","data":{{"accessToken":"placeholder"}},"pad":"{}"}}"#,
        "p".repeat(512 * 1024)
    );
    ws.send(Message::text(padded_login.clone())).await.unwrap();
    match next(&mut ws).await {
        Message::Text(t) => assert!(
            t.as_str() == padded_login,
            "a 512 KiB message was rewritten, so it was parsed"
        ),
        other => panic!("expected the message back, got {other:?}"),
    }
}

#[tokio::test]
async fn a_login_is_still_rewritten_to_the_real_token() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;
    let mut ws = connect(&sidecar, "/ws").await;
    ws.send(Message::text(
        r#"{"cmd":"login","data":{"accessToken":"placeholder-from-the-program"}}"#,
    ))
    .await
    .unwrap();
    let reply = next_json(&mut ws).await;
    assert_eq!(reply["cmd"], "login");
    assert_eq!(reply["code"], 200, "the API accepted the rewritten login: {reply}");
    ws.send(Message::text(r#"{"cmd":"whoami"}"#)).await.unwrap();
    let whoami = next_json(&mut ws).await;
    assert_eq!(whoami["authenticated"], true, "{whoami}");
    let counts = api.mock.counts();
    assert_eq!((counts.ws_logins_ok, counts.ws_logins_refused), (1, 0));
}

#[tokio::test]
async fn an_api_message_over_the_limit_closes_the_program_socket_with_1009() {
    let api = start_api(Duration::from_secs(3600)).await;
    let echo = start_echo_api().await;
    let extra = Extra {
        proxy: "ws_max_message_bytes = 65536".into(),
        upstream: format!("websocket_url = \"ws://{echo}/\""),
        ..Extra::default()
    };
    let (sidecar, _c) = ready_sidecar(&api, extra).await;
    let mut ws = connect(&sidecar, "/").await;
    ws.send(Message::text("big:60000")).await.unwrap();
    assert!(matches!(next(&mut ws).await, Message::Text(t) if t.len() == 60_000));
    ws.send(Message::text("big:70000")).await.unwrap();
    let close = next(&mut ws).await;
    let Message::Close(Some(frame)) = close else {
        panic!("expected a close frame, got {close:?}")
    };
    assert_eq!(frame.code, CloseCode::Size, "{frame:?}");
    assert!(frame.reason.as_str().contains("the API sent"), "{frame:?}");
}

#[tokio::test]
async fn a_websocket_handshake_the_api_never_answers_gets_a_504_within_request_timeout() {
    let api = start_api(Duration::from_secs(3600)).await;
    // Takes connections and never says a word.
    let hold = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hold_addr = hold.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..8 {
            match hold.accept().await {
                Ok((s, _)) => held.push(s),
                Err(_) => break,
            }
        }
        std::future::pending::<()>().await;
    });
    let files = write_config(
        api.addr,
        PASSWORD,
        &Extra::upstream(&format!("websocket_url = \"ws://{hold_addr}/\"")),
    );
    let text = std::fs::read_to_string(&files.config).unwrap();
    assert!(text.contains("request_timeout = \"10s\""));
    std::fs::write(
        &files.config,
        text.replace("request_timeout = \"10s\"", "request_timeout = \"1s\""),
    )
    .unwrap();
    let sidecar = start_from_files(files).await;
    wait_ready(&client(), sidecar.admin).await;

    let mut s = TcpStream::connect(sidecar.proxy).await.unwrap();
    let upgrade = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        sidecar.proxy
    );
    let started = Instant::now();
    s.write_all(upgrade.as_bytes()).await.unwrap();
    let resp = read_raw_response(&mut s).await;
    let took = started.elapsed();
    eprintln!("hung WebSocket handshake answered after {took:?}");
    assert_eq!(resp.status, 504, "{}", String::from_utf8_lossy(&resp.body));
    let env = resp.json();
    assert_eq!(env["code"], 504);
    assert_eq!(env["data"], Value::Null);
    let message = env["message"].as_str().unwrap();
    assert!(message.contains("upstream.request_timeout"), "{message}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "answered after {took:?}, configured 1 s"
    );
    holder.abort();
}

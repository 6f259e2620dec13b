//! The WebSocket relay's memory (issue 18, item 4): after a large message a
//! relay renews its sockets' buffers, which must never lose or reorder a
//! byte (large and small messages, fragmented ones and pings interleaved, in
//! both directions); and large messages in flight share
//! `proxy.ws_memory_budget_bytes`, a message that finds it spent closing its
//! relay with 1013. (How many MiB a socket keeps is measured by
//! `bench/ws_memory.py`, not asserted here.)

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

type Client = WebSocketStream<TcpStream>;

/// A WebSocket API that echoes every data message, and after a text
/// message `"push N"` sends N bytes of its own first.
async fn echo_api() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if let Message::Text(t) = &msg {
                        if let Some(n) = t.as_str().strip_prefix("push ") {
                            let n: usize = n.parse().unwrap();
                            let _ = ws.send(Message::binary(pattern(n, 3))).await;
                        }
                    }
                    if msg.is_text() || msg.is_binary() {
                        let _ = ws.send(msg).await;
                    }
                }
            });
        }
    });
    addr
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

async fn connect(sidecar: &Sidecar) -> Client {
    let stream = TcpStream::connect(sidecar.proxy).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{}/", sidecar.proxy), stream)
        .await
        .expect("upgrade through the sidecar");
    ws
}

/// The next data or close message, within 10 s.
async fn next(ws: &mut Client) -> Message {
    next_ws_message(ws).await
}

async fn sidecar_for(socket_api: SocketAddr, proxy: &str) -> (Api, Sidecar) {
    let api = start_api(Duration::from_secs(3600)).await;
    let extra = Extra {
        proxy: proxy.into(),
        upstream: format!("websocket_url = \"ws://{socket_api}/\""),
        ..Extra::default()
    };
    let (sidecar, _c) = ready_sidecar(&api, extra).await;
    (api, sidecar)
}

#[tokio::test]
async fn messages_large_and_small_fragmented_or_not_pass_intact_across_buffer_renewals() {
    let (_api, sidecar) = sidecar_for(echo_api().await, "").await;
    let mut ws = connect(&sidecar).await;
    for round in 0..3u8 {
        let big = pattern(700 * 1024, round);
        ws.send(Message::binary(big.clone())).await.unwrap();
        ws.send(Message::Ping(vec![round].into())).await.unwrap();
        ws.send(Message::text(format!("small {round}"))).await.unwrap();
        // A 200 KiB message in three frames, a ping between them.
        let part = pattern(200 * 1024, round + 7);
        let (a, rest) = part.split_at(70 * 1024);
        let (b, c) = rest.split_at(70 * 1024);
        let frame = |op, fin, data: &[u8]| {
            Message::Frame(Frame::from_payload(
                FrameHeader {
                    is_final: fin,
                    opcode: op,
                    ..FrameHeader::default()
                },
                data.to_vec().into(),
            ))
        };
        ws.send(frame(OpCode::Data(Data::Binary), false, a)).await.unwrap();
        ws.send(Message::Ping(vec![9].into())).await.unwrap();
        ws.send(frame(OpCode::Data(Data::Continue), false, b)).await.unwrap();
        ws.send(frame(OpCode::Data(Data::Continue), true, c)).await.unwrap();
        // And the API pushes a large message of its own before its echo.
        ws.send(Message::text("push 900000")).await.unwrap();

        assert_eq!(next(&mut ws).await.into_data(), big, "round {round}: the large message");
        assert_eq!(
            next(&mut ws).await.into_text().unwrap().as_str(),
            format!("small {round}")
        );
        assert_eq!(
            next(&mut ws).await.into_data(),
            part,
            "round {round}: the fragmented one"
        );
        assert_eq!(next(&mut ws).await.into_data(), pattern(900_000, 3), "the API's push");
        assert_eq!(next(&mut ws).await.into_text().unwrap().as_str(), "push 900000");
    }
}

#[tokio::test]
async fn a_large_message_that_finds_the_relay_memory_budget_spent_closes_with_1013() {
    // 1 MiB: a 400 KiB message (800 KiB while relayed) fits, 600 KiB does not.
    let (_api, sidecar) = sidecar_for(echo_api().await, "ws_memory_budget_bytes = 1048576\n").await;
    let mut ws = connect(&sidecar).await;
    let fits = pattern(400 * 1024, 1);
    ws.send(Message::binary(fits.clone())).await.unwrap();
    assert_eq!(next(&mut ws).await.into_data(), fits);

    ws.send(Message::binary(pattern(600 * 1024, 2))).await.unwrap();
    match next(&mut ws).await {
        Message::Close(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::Again, "{frame:?}");
            assert!(frame.reason.contains("proxy.ws_memory_budget_bytes"), "{frame:?}");
        }
        other => panic!("expected a 1013 close, got a {}-byte message", other.len()),
    }
    // Other sockets are served as before.
    let mut again = connect(&sidecar).await;
    again.send(Message::text("hello")).await.unwrap();
    assert_eq!(next(&mut again).await.into_text().unwrap().as_str(), "hello");
}

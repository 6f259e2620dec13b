//! A program's in-socket login while the sidecar holds no token (issue 18,
//! item 10): it waits for a token (bounded by `proxy.token_wait`, then the
//! socket closes with 1013) instead of going to the API with the program's
//! own credential, and the socket is logged in once a token comes. No
//! credential of the program's (an `op` login's further `args` included)
//! ever reaches the API. The API's socket is a recorder of every text
//! message; the mock does the HTTP logins.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use ethgas_mock::Fault;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const OWN: &str = "program-own-credential";

type Recorded = Arc<Mutex<Vec<String>>>;

/// A WebSocket API that records every text message and answers logins.
async fn recording_socket_api() -> (SocketAddr, Recorded) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let recorded = Recorded::default();
    let record = recorded.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if let Message::Text(t) = msg {
                        record.lock().unwrap().push(t.to_string());
                        let _ = ws
                            .send(Message::text(r#"{"cmd":"login","code":200,"message":"OK"}"#))
                            .await;
                    }
                }
            });
        }
    });
    (addr, recorded)
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn setup(token_wait: &str) -> (Api, Sidecar, TestClient, Ws, Recorded) {
    // Short tokens: with renewals failing, the sidecar soon holds none.
    let api = start_api(Duration::from_secs(2)).await;
    let (socket_api, recorded) = recording_socket_api().await;
    let extra = Extra {
        proxy: format!("token_wait = \"{token_wait}\"\n"),
        upstream: format!("websocket_url = \"ws://{socket_api}/\""),
        ..Extra::default()
    };
    let (sidecar, c) = ready_sidecar(&api, extra).await;
    let stream = tokio::net::TcpStream::connect(sidecar.proxy).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{}/ws", sidecar.proxy), stream)
        .await
        .expect("upgrade through the sidecar");
    // Renewals fail (503) until the test lets them through again.
    api.mock.set_login_fault(Fault::Status(503));
    api.mock.set_refresh_fault(Fault::Status(503));
    let admin = sidecar.admin;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = get(&c, &format!("http://{admin}/readyz")).await;
        if r.status != 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the token never ran out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (api, sidecar, c, ws, recorded)
}

fn logins(recorded: &Recorded) -> Vec<Value> {
    recorded
        .lock()
        .unwrap()
        .iter()
        .filter_map(|t| serde_json::from_str::<Value>(t).ok())
        .filter(|v| v["cmd"] == "login" || v["op"] == "login")
        .collect()
}

#[tokio::test]
async fn a_websocket_login_without_a_token_waits_for_one_and_never_carries_the_programs_credential() {
    let (api, sidecar, c, mut ws, recorded) = setup("60s").await;
    ws.send(Message::text(format!(
        r#"{{"op":"login","args":[{{"accessToken":"{OWN}-1"}},{{"accessToken":"{OWN}-2"}},"{OWN}-3"]}}"#
    )))
    .await
    .unwrap();
    // The token comes back: the held login goes, with it.
    api.mock.set_login_fault(Fault::None);
    api.mock.set_refresh_fault(Fault::None);
    wait_ready(&c, sidecar.admin).await;
    eventually(Duration::from_secs(20), "the held login reaches the API", || {
        !logins(&recorded).is_empty()
    })
    .await;
    let sent = logins(&recorded);
    let args = sent[0]["args"].as_array().expect("args").clone();
    assert_eq!(args.len(), 1, "only the account's login goes: {:?}", sent[0]);
    let token = args[0]["accessToken"].as_str().unwrap().to_string();
    assert!(api.mock.issued_tokens().contains(&token), "a token the API issued");
    for text in recorded.lock().unwrap().iter() {
        assert!(!text.contains(OWN), "the program's credential reached the API: {text}");
    }
    // The program reads the API's answer to its login.
    let reply = next_ws_json(&mut ws).await;
    assert_eq!(reply["code"], 200, "{reply}");
}

#[tokio::test]
async fn a_websocket_login_that_finds_no_token_within_token_wait_closes_with_1013() {
    let (_api, _sidecar, _c, mut ws, recorded) = setup("1s").await;
    ws.send(Message::text(format!(
        r#"{{"cmd":"login","data":{{"accessToken":"{OWN}"}}}}"#
    )))
    .await
    .unwrap();
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("the socket closes within 15 s")
        {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let frame = close.expect("a close frame with a code");
    assert_eq!(frame.code, CloseCode::Again, "{frame:?}");
    assert!(frame.reason.contains("proxy.token_wait"), "{frame:?}");
    assert!(
        logins(&recorded).is_empty(),
        "no login reached the API: {:?}",
        logins(&recorded)
    );
    for text in recorded.lock().unwrap().iter() {
        assert!(!text.contains(OWN), "{text}");
    }
}

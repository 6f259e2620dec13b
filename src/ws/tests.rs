//! Unit tests of `ws`.

use super::limits::socket_config;
use super::*;

fn request(method: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::builder().method(method).uri("/ws");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

#[test]
fn an_upgrade_needs_both_headers_and_a_get() {
    let yes: &[&[(&str, &str)]] = &[
        &[("upgrade", "websocket"), ("connection", "Upgrade")],
        &[("upgrade", "WebSocket"), ("connection", "keep-alive, upgrade")],
        &[
            ("upgrade", "websocket"),
            ("connection", "keep-alive"),
            ("connection", "UPGRADE"),
        ],
    ];
    for headers in yes {
        assert!(is_upgrade(&request("GET", headers)), "{headers:?}");
    }
    let no: &[(&str, &[(&str, &str)])] = &[
        ("GET", &[("upgrade", "websocket")]),
        ("POST", &[("upgrade", "websocket")]),
        ("POST", &[("upgrade", "websocket"), ("connection", "upgrade")]),
        ("GET", &[("upgrade", "h2c"), ("connection", "upgrade")]),
        ("GET", &[("upgrade", "websocket"), ("connection", "upgraded")]),
        ("GET", &[("connection", "upgrade")]),
    ];
    for (method, headers) in no {
        assert!(!is_upgrade(&request(method, headers)), "{method} {headers:?}");
    }
}

#[test]
fn both_sockets_refuse_frames_and_messages_over_the_limit() {
    let c = socket_config(1 << 20);
    assert_eq!(c.max_message_size, Some(1 << 20));
    assert_eq!(c.max_frame_size, Some(1 << 20));
}

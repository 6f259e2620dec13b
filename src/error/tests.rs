//! Unit tests of `error`.

use super::*;
use crate::envelope::Envelope;

fn body(resp: Response<Full<Bytes>>) -> serde_json::Value {
    use http_body_util::BodyExt;
    let bytes = futures_util::FutureExt::now_or_never(resp.into_body().collect())
        .and_then(Result::ok)
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or_default()
}

#[test]
fn every_error_maps_to_its_status_and_an_envelope() {
    let cases = [
        (ProxyError::Connect, 405),
        (
            ProxyError::NotAllowed {
                method: "POST".into(),
                path: "/api/v1/user/funding/withdraw".into(),
                class: crate::policy::Class::Funds,
                listener: "proxy".into(),
            },
            403,
        ),
        (ProxyError::BadRequest("x".into()), 400),
        (ProxyError::HeadersTooLarge { limit: 1 }, 431),
        (
            ProxyError::UriTooLong {
                limit: 1,
                setting: "proxy.max_uri_bytes",
            },
            414,
        ),
        (
            ProxyError::Timeout {
                origin: "o".into(),
                limit: Duration::from_secs(1),
                setting: "upstream.request_timeout",
            },
            504,
        ),
        (
            ProxyError::NoToken {
                account: "u".into(),
                reason: "r".into(),
                retry_after: 3,
            },
            503,
        ),
        (ProxyError::WebSocketVersion, 426),
        (ProxyError::NotFound("x".into()), 404),
    ];
    for (e, status) in cases {
        let resp = e.response(Envelope::Documented);
        assert_eq!(resp.status().as_u16(), status);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        let v = body(resp);
        assert_eq!(v["code"], status, "{v}");
        assert!(v["message"].as_str().unwrap().starts_with("ethgas-sidecar: "), "{v}");
        assert!(v["data"].is_null());
    }
    let resp = ProxyError::NoToken {
        account: "u".into(),
        reason: "r".into(),
        retry_after: 3,
    }
    .response(Envelope::Documented);
    assert_eq!(resp.headers()[header::RETRY_AFTER], "3");
}

#[test]
fn the_live_envelope_carries_the_status_and_a_reason_key() {
    let resp = ProxyError::Unreachable {
        origin: "https://mainnet.app.ethgas.com".into(),
        cause: "connection refused".into(),
    }
    .response(Envelope::Live);
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
    let v = body(resp);
    assert_eq!(v["success"], false);
    assert_eq!(v["errorCode"], 502);
    assert_eq!(v["errorMsgKey"], "ethgas-sidecar.unreachable");
    assert!(v["errorMsg"].as_str().unwrap().contains("connection refused"));
    assert!(v["data"].is_null());
    assert!(v.get("code").is_none());
}

#[test]
fn the_wire_form_is_the_same_answer_as_http_bytes() {
    let e = ProxyError::TooManyConnections { limit: 4 };
    for envelope in [Envelope::Documented, Envelope::Live] {
        let wire = e.wire(envelope);
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut resp = httparse::Response::new(&mut headers);
        let head = match resp.parse(&wire).unwrap() {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("a whole head"),
        };
        assert_eq!(resp.code, Some(503));
        assert_eq!(resp.reason, Some("Service Unavailable"));
        let get = |name: &str| {
            resp.headers
                .iter()
                .find(|h| h.name == name)
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        assert_eq!(get("content-type").as_deref(), Some("application/json"));
        assert_eq!(get("connection").as_deref(), Some("close"));
        assert_eq!(get("retry-after").as_deref(), Some("1"));
        assert_eq!(get("content-length"), Some((wire.len() - head).to_string()));
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&wire[head..]).unwrap(),
            body(e.response(envelope)),
            "{envelope:?}"
        );
    }
}

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

/// A variant, and what it answers: status, key, `Retry-After`, `Allow`,
/// `Connection: close`.
type Case = (
    ProxyError,
    u16,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    bool,
);

/// One of every variant, with what a client sees: status, the live
/// envelope's key, `Retry-After`, `Allow` and `Connection: close`.
#[test]
fn every_error_maps_to_its_status_key_and_headers() {
    let s = |v: &str| v.to_string();
    let o = || s("https://mainnet.app.ethgas.com");
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        (ProxyError::NoToken { account: s("u"), reason: s("r"), retry_after: 3 }, 503, "no_token", Some("3"), None, false),
        (ProxyError::Unreachable { origin: o(), cause: s("refused") }, 502, "unreachable", Some("1"), None, false),
        (ProxyError::BadGateway { origin: o(), cause: s("reset") }, 502, "bad_gateway", Some("1"), None, false),
        (ProxyError::Timeout { origin: o(), limit: Duration::from_secs(1), setting: "upstream.request_timeout" }, 504, "timeout", None, None, false),
        (ProxyError::RefusedHost { host: s("h"), upstream: o() }, 403, "refused_host", None, None, false),
        (ProxyError::RefusedClient { addr: s("10.0.0.1") }, 403, "refused_client", None, None, true),
        (ProxyError::Connect, 405, "connect_unsupported", None, Some(FORWARDED_METHODS), true),
        (ProxyError::BadRequest(s("x")), 400, "bad_request", None, None, true),
        (ProxyError::Forbidden(s("x")), 403, "forbidden", None, None, false),
        (ProxyError::HeadersTooLarge { limit: 1 }, 431, "headers_too_large", None, None, true),
        (ProxyError::UriTooLong { limit: 1, setting: "proxy.max_uri_bytes" }, 414, "uri_too_long", None, None, true),
        (ProxyError::WebSocketVersion, 426, "websocket_version", None, None, false),
        (ProxyError::WebSocketRefused { status: StatusCode::UNAUTHORIZED }, 401, "bad_gateway", None, None, false),
        (ProxyError::NotFound(s("x")), 404, "not_found", None, None, false),
        (ProxyError::TooManyConnections { limit: 4 }, 503, "too_many_connections", Some("1"), None, true),
        (ProxyError::OutOfDescriptors, 503, "out_of_descriptors", Some("1"), None, false),
        (ProxyError::SlowBody { limit: Duration::from_secs(1) }, 408, "request_timeout", None, None, true),
        (ProxyError::MethodNotAllowed { message: s("no"), allow: "GET, POST" }, 405, "method_not_allowed", None, Some("GET, POST"), false),
        (ProxyError::NotAllowed { method: s("POST"), path: s("/api/v1/user/funding/withdraw"), class: crate::policy::Class::Funds, listener: s("proxy") }, 403, "not_allowed", None, None, false),
    ];
    for (e, status, key, retry_after, allow, closes) in cases {
        let header =
            |resp: &Response<Full<Bytes>>, name| resp.headers().get(name).map(|v| v.to_str().unwrap().to_string());
        let resp = e.response(Envelope::Documented);
        assert_eq!(resp.status().as_u16(), status, "{e:?}");
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(header(&resp, header::RETRY_AFTER).as_deref(), retry_after, "{e:?}");
        assert_eq!(header(&resp, header::ALLOW).as_deref(), allow, "{e:?}");
        assert_eq!(
            header(&resp, header::CONNECTION).as_deref(),
            closes.then_some("close"),
            "{e:?}"
        );
        let v = body(resp);
        assert_eq!(v["code"], status, "{v}");
        assert!(v["message"].as_str().unwrap().starts_with("ethgas-sidecar: "), "{v}");
        assert!(v["data"].is_null());
        let v = body(e.response(Envelope::Live));
        assert_eq!(v["errorCode"], status, "{v}");
        assert_eq!(v["errorMsgKey"], format!("ethgas-sidecar.{key}"), "{v}");
    }
    let resp = ProxyError::WebSocketVersion.response(Envelope::Documented);
    assert_eq!(resp.headers()[header::SEC_WEBSOCKET_VERSION], "13");
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

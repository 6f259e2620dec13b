//! The admission gate as a whole: every rule in its place in the order, and
//! the answer each refusal gets.

use super::*;

/// A request for the table of rules: method, target, headers, arrival.
struct Req {
    method: &'static str,
    target: String,
    headers: Vec<(&'static str, String)>,
    peer: &'static str,
}

fn req(target: &str, headers: &[(&'static str, &str)]) -> Req {
    Req {
        method: "GET",
        target: target.into(),
        headers: headers.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        peer: "127.0.0.1:40000",
    }
}

impl Req {
    fn from(mut self, peer: &'static str) -> Req {
        self.peer = peer;
        self
    }

    fn method(mut self, method: &'static str) -> Req {
        self.method = method;
        self
    }

    fn admit(&self) -> Result<(), Refusal> {
        let mut builder = Request::builder().method(self.method).uri(&self.target);
        for (k, v) in &self.headers {
            builder = builder.header(*k, v);
        }
        let arrival = Arrival {
            peer: Some(self.peer.parse().unwrap()),
            local: Some("127.0.0.1:8080".parse().unwrap()),
        };
        gate().admit(&policy(), &builder.body(()).unwrap(), arrival)
    }
}

/// Every rule, each alone and each against the ones after it: the first in
/// the documented order answers.
#[test]
fn every_rule_and_their_order() {
    let big = "x".repeat(8300);
    let long = format!("/api/v1/user/info?q={}", "a".repeat(300));
    let dup = [("host", "localhost"), ("host", "evil.example")];
    let evil_origin = ("origin", "https://evil.example");
    let outsider = "10.0.0.1:40000";
    let forbidden_absolute = Refusal::AbsoluteForm {
        host: "evil.example".into(),
        upstream: "https://api.ethgas.com".into(),
    };
    let cases: Vec<(&str, Req, Result<(), Refusal>)> = vec![
        ("fine", req("/api/v1/user/info", &[("host", "localhost")]), Ok(())),
        (
            "absolute form for the API",
            req("https://api.ethgas.com/api/v1/user/info", &[("host", "api.ethgas.com")]),
            Ok(()),
        ),
        (
            "absolute form for the API's port, written",
            req("http://api.ethgas.com:443/x", &[]),
            Ok(()),
        ),
        (
            "an IPv4-mapped loopback peer",
            req("/x", &[("host", "localhost")]).from("[::ffff:127.0.0.1]:5"),
            Ok(()),
        ),
        // 1. the peer, before everything else.
        (
            "peer",
            req("/x", &[("host", "localhost")]).from(outsider),
            Err(Refusal::Client("10.0.0.1".parse().unwrap())),
        ),
        (
            "peer before a duplicate Host",
            req("/x", &dup).from(outsider),
            Err(Refusal::Client("10.0.0.1".parse().unwrap())),
        ),
        // 2. one Host.
        ("duplicate Host", req("/x", &dup), Err(Refusal::DuplicateHost)),
        (
            "the same Host twice",
            req("/x", &[("host", "localhost"), ("host", "localhost")]),
            Err(Refusal::DuplicateHost),
        ),
        (
            "duplicate Host before a long target",
            req(&long, &dup),
            Err(Refusal::DuplicateHost),
        ),
        // 3. the target's length.
        (
            "long target",
            req(&long, &[("host", "localhost")]),
            Err(Refusal::UriTooLong(256)),
        ),
        (
            "long target before large headers",
            req(&long, &[("host", "localhost"), ("x-big", &big)]),
            Err(Refusal::UriTooLong(256)),
        ),
        // 4. the headers' size.
        (
            "large headers",
            req("/x", &[("host", "localhost"), ("x-big", &big)]),
            Err(Refusal::HeadersTooLarge(8192)),
        ),
        (
            "large headers before a browser's Origin",
            req("/x", &[("host", "localhost"), ("x-big", &big), evil_origin]),
            Err(Refusal::HeadersTooLarge(8192)),
        ),
        // 5. browsers: Origin, then Sec-Fetch-Site.
        (
            "Origin",
            req("/x", &[("host", "localhost"), evil_origin]),
            Err(Refusal::Origin("https://evil.example".into())),
        ),
        (
            "Sec-Fetch-Site",
            req("/x", &[("host", "localhost"), ("sec-fetch-site", "cross-site")]),
            Err(Refusal::Site("cross-site".into())),
        ),
        (
            "Origin before Host",
            req("/x", &[("host", "evil.example"), evil_origin]),
            Err(Refusal::Origin("https://evil.example".into())),
        ),
        // 6. Host.
        (
            "Host",
            req("/x", &[("host", "evil.example")]),
            Err(Refusal::Host("evil.example".into())),
        ),
        // 7. absolute form: host, then port.
        (
            "absolute form for another host",
            req("http://evil.example/x", &[("host", "evil.example")]),
            Err(forbidden_absolute.clone()),
        ),
        (
            "absolute form for another port",
            req("http://api.ethgas.com:8443/x", &[]),
            Err(Refusal::AbsoluteForm {
                host: "api.ethgas.com:8443".into(),
                upstream: "https://api.ethgas.com".into(),
            }),
        ),
        (
            "a browser before the absolute form",
            req("http://evil.example/x", &[evil_origin]),
            Err(Refusal::Origin("https://evil.example".into())),
        ),
        // CONNECT's authority form is not an absolute-form target: the
        // proxy's 405 answers it.
        (
            "CONNECT",
            req("evil.example:443", &[("host", "evil.example:443")]).method("CONNECT"),
            Ok(()),
        ),
    ];
    for (name, request, expected) in cases {
        assert_eq!(request.admit(), expected, "{name}");
    }
}

/// Each refusal is answered as it was before the gate: the status, the
/// envelope's key and whether the connection closes.
#[test]
fn each_refusal_gets_the_answer_it_always_had() {
    use crate::envelope::Envelope;
    let cases = [
        (
            Refusal::Client("10.0.0.1".parse().unwrap()),
            403,
            "refused_client",
            true,
        ),
        (Refusal::DuplicateHost, 400, "bad_request", true),
        (Refusal::UriTooLong(256), 414, "uri_too_long", true),
        (Refusal::HeadersTooLarge(8192), 431, "headers_too_large", true),
        (Refusal::Origin("https://evil.example".into()), 403, "forbidden", false),
        (Refusal::Site("cross-site".into()), 403, "forbidden", false),
        (Refusal::Host("evil.example".into()), 403, "forbidden", false),
        (
            Refusal::AbsoluteForm {
                host: "evil.example".into(),
                upstream: "https://api.ethgas.com".into(),
            },
            403,
            "refused_host",
            false,
        ),
    ];
    for (refusal, status, key, closes) in cases {
        let resp = refusal.error().response(Envelope::Live);
        assert_eq!(resp.status().as_u16(), status, "{refusal:?}");
        let (parts, body) = resp.into_parts();
        let bytes = futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(body))
            .and_then(Result::ok)
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let resp = http::Response::from_parts(parts, ());
        assert_eq!(body["errorMsgKey"], format!("ethgas-sidecar.{key}"), "{refusal:?}");
        assert_eq!(
            resp.headers().get("connection").is_some_and(|v| v == "close"),
            closes,
            "{refusal:?}"
        );
    }
    let message = Refusal::Client("10.0.0.1".parse().unwrap()).error().to_string();
    assert!(message.contains("proxy.allowed_clients"), "{message}");
    let message = Refusal::UriTooLong(256).error().to_string();
    assert!(message.contains("256 bytes (proxy.max_uri_bytes)"), "{message}");
    let message = Refusal::HeadersTooLarge(8192).error().to_string();
    assert!(message.contains("8192 bytes (proxy.max_header_bytes)"), "{message}");
}

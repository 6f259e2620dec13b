//! Unit tests of `access`: tables of requests and the gate's verdict on
//! each, the order of the rules, the answer each refusal gets, and the
//! bounded memory of logged refusals.

use super::*;
use http::HeaderValue;

fn policy() -> ProxyPolicy {
    ProxyPolicy {
        allowed_clients: vec!["127.0.0.0/8".parse().unwrap()],
        intercept_login: true,
        host_aliases: vec![],
        allowed_hosts: vec!["sidecar.internal".into()],
        allowed_origins: vec!["https://dash.example".into()],
        public_prefixes: vec!["/api/v1/p/".into()],
        token_wait: std::time::Duration::from_secs(1),
        replay_buffer: 1024,
        body_idle_timeout: std::time::Duration::from_secs(30),
        ws_max_message_bytes: 1 << 20,
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(
            http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}

/// A gate for an API at https://api.ethgas.com with 8 KiB of headers and
/// 256 bytes of target at most.
fn gate() -> Gate {
    Gate {
        max_header_bytes: 8192,
        max_uri_bytes: 256,
        upstream_host: "api.ethgas.com".into(),
        upstream_port: 443,
        upstream_origin: "https://api.ethgas.com".into(),
    }
}

/// A TCP connection from a loopback peer accepted on `local`.
fn tcp(local: &str) -> Arrival {
    Arrival {
        peer: Some("127.0.0.1:40000".parse().unwrap()),
        local: Some(local.parse().unwrap()),
    }
}

const UNIX: Arrival = Arrival {
    peer: None,
    local: None,
};

/// The gate's verdict on a GET of `/api/v1/user/info` with these headers.
fn check_request(policy: &ProxyPolicy, headers: &HeaderMap, arrival: Arrival) -> Result<(), Refusal> {
    let mut req = Request::get("/api/v1/user/info").body(()).unwrap();
    *req.headers_mut() = headers.clone();
    gate().admit(policy, &req, arrival)
}

/// Request headers, how the request arrived, and whether it is allowed.
type Case = (&'static [(&'static str, &'static str)], Arrival, bool);

#[test]
fn hosts_and_browser_marks() {
    let on = tcp("127.0.0.1:8080");
    let cases: &[Case] = &[
        // (headers, arrival, allowed)
        (&[("host", "127.0.0.1:8080")], on, true),
        (&[("host", "localhost")], on, true),
        (&[("host", "LOCALHOST:1")], on, true),
        (&[("host", "[::1]:8080")], on, true),
        (&[("host", "127.0.0.5")], on, true),
        (&[("host", "api.ethgas.com")], on, true),
        (&[("host", "sidecar.internal:8080")], on, true),
        (&[], on, true),
        (&[("host", "rebind.attacker.example:8080")], on, false),
        (&[("host", "127.0.0.1.nip.io")], on, false),
        (&[("host", "rebind.attacker.example")], UNIX, true),
        (&[("host", "localhost"), ("origin", "https://evil.example")], on, false),
        (&[("host", "localhost"), ("origin", "null")], on, false),
        (&[("host", "localhost"), ("origin", "https://dash.example")], on, true),
        // An allowed origin is the operator's word, whatever the browser marks.
        (
            &[
                ("host", "localhost"),
                ("origin", "https://dash.example"),
                ("sec-fetch-site", "cross-site"),
            ],
            on,
            true,
        ),
        (&[("host", "localhost"), ("sec-fetch-site", "cross-site")], on, false),
        (&[("host", "localhost"), ("sec-fetch-site", "same-site")], on, false),
        (&[("host", "localhost"), ("sec-fetch-site", "same-origin")], on, true),
        (&[("host", "localhost"), ("sec-fetch-site", "none")], on, true),
        (&[("origin", "https://evil.example")], UNIX, false),
    ];
    for (pairs, arrival, allowed) in cases {
        let verdict = check_request(&policy(), &headers(pairs), *arrival);
        assert_eq!(verdict.is_ok(), *allowed, "{pairs:?} {arrival:?}: {verdict:?}");
        if let Err(e) = verdict {
            assert_eq!(e.error().status(), http::StatusCode::FORBIDDEN);
        }
    }
}

/// The own-origin rule: what websocket-client (python-ethgas's `WsClient`)
/// sends is served; every web page that could try is not.
#[test]
fn the_listeners_own_origin_is_a_program_and_every_page_stays_refused() {
    let v4 = tcp("127.0.0.1:8080");
    let v6 = tcp("[::1]:8080");
    let cases: &[Case] = &[
        // What websocket-client sends for ws://127.0.0.1:8080/ws, ws://localhost:8080/ws, ws://[::1]:8080/ws.
        (
            &[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")],
            v4,
            true,
        ),
        (
            &[("host", "localhost:8080"), ("origin", "http://localhost:8080")],
            v4,
            true,
        ),
        (
            &[("host", "LocalHost:8080"), ("origin", "http://localhost:8080")],
            v4,
            true,
        ),
        (&[("host", "[::1]:8080"), ("origin", "http://[::1]:8080")], v6, true),
        (
            &[
                ("host", "sidecar.internal:8080"),
                ("origin", "http://sidecar.internal:8080"),
            ],
            v4,
            true,
        ),
        // A browser's own-page marks are fine; the CSP sandbox keeps such pages from existing.
        (
            &[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080"),
                ("sec-fetch-site", "same-origin"),
            ],
            v4,
            true,
        ),
        (
            &[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080"),
                ("sec-fetch-site", "none"),
            ],
            v4,
            true,
        ),
        // Marked by a browser as coming from another site: refused.
        (
            &[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080"),
                ("sec-fetch-site", "cross-site"),
            ],
            v4,
            false,
        ),
        (
            &[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080"),
                ("sec-fetch-site", "same-site"),
            ],
            v4,
            false,
        ),
        (
            &[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080"),
                ("sec-fetch-site", "whatever"),
            ],
            v4,
            false,
        ),
        // DNS rebinding: the attacker's name with our port.
        (
            &[("host", "127.0.0.1:8080"), ("origin", "http://evil.example:8080")],
            v4,
            false,
        ),
        (
            &[("host", "evil.example:8080"), ("origin", "http://evil.example:8080")],
            v4,
            false,
        ),
        // Other local web servers: another port, another loopback address.
        (
            &[("host", "127.0.0.1:8080"), ("origin", "http://localhost:3000")],
            v4,
            false,
        ),
        (
            &[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:3000")],
            v4,
            false,
        ),
        (
            &[("host", "127.0.0.2:8080"), ("origin", "http://127.0.0.2:8080")],
            v4,
            false,
        ),
        // A page at http://localhost:8080 served by another server on ::1 calling 127.0.0.1.
        (
            &[("host", "127.0.0.1:8080"), ("origin", "http://localhost:8080")],
            v4,
            false,
        ),
        // No port means 80; https is never this listener; nothing but an origin.
        (&[("host", "127.0.0.1"), ("origin", "http://127.0.0.1")], v4, false),
        (
            &[("host", "127.0.0.1:80"), ("origin", "http://127.0.0.1")],
            tcp("127.0.0.1:80"),
            false,
        ),
        (
            &[("host", "127.0.0.1"), ("origin", "http://127.0.0.1")],
            tcp("127.0.0.1:80"),
            true,
        ),
        (
            &[("host", "127.0.0.1:8080"), ("origin", "https://127.0.0.1:8080")],
            v4,
            false,
        ),
        (
            &[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080/x")],
            v4,
            false,
        ),
        (
            &[("host", "127.0.0.1:8080"), ("origin", "http://u@127.0.0.1:8080")],
            v4,
            false,
        ),
        (&[("host", "127.0.0.1:8080"), ("origin", "null")], v4, false),
        (&[("origin", "http://127.0.0.1:8080")], v4, false),
        // The unix socket has no port of its own.
        (
            &[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")],
            UNIX,
            false,
        ),
        // Two origins: each must pass.
        (
            &[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080"),
                ("origin", "https://evil.example"),
            ],
            v4,
            false,
        ),
    ];
    for (pairs, arrival, allowed) in cases {
        let verdict = check_request(&policy(), &headers(pairs), *arrival);
        assert_eq!(verdict.is_ok(), *allowed, "{pairs:?} {arrival:?}: {verdict:?}");
    }
}

#[test]
fn refusals_name_what_would_allow_them_and_quote_a_bounded_escaped_text() {
    let on = tcp("127.0.0.1:8080");
    let long = format!("https://{}.example", "a".repeat(5000));
    let refusal = check_request(&policy(), &headers(&[("origin", &long)]), on).unwrap_err();
    let Refusal::Origin(text) = &refusal else {
        panic!("{refusal:?}")
    };
    assert!(text.chars().count() <= QUOTED_MAX + 1, "{}", text.len());
    let message = refusal.error().to_string();
    assert!(message.contains("proxy.allowed_origins"), "{message}");
    assert!(message.len() < 400, "{}", message.len());

    let host = check_request(&policy(), &headers(&[("host", "evil.example\t:1")]), on).unwrap_err();
    assert!(host.error().to_string().contains("proxy.allowed_hosts"));
    assert_eq!(host.memo().unwrap().1, Some("proxy.allowed_hosts"));
    // A control character is shown escaped wherever the text is quoted.
    assert!(host.error().to_string().contains("\\t"), "{}", host.error());

    let site = check_request(&policy(), &headers(&[("sec-fetch-site", "cross-site")]), on).unwrap_err();
    assert_eq!(site, Refusal::Site("cross-site".into()));
    assert_eq!(site.memo().unwrap().1, None);
}

#[test]
fn each_refused_origin_is_logged_once_and_the_memory_is_bounded() {
    let refusals = Refusals::default();
    let evil = Refusal::Origin("https://evil.example".into());
    assert!(refusals.log(&evil), "the first refusal of an origin is logged");
    assert!(!refusals.log(&evil), "and not again");
    assert!(
        refusals.log(&Refusal::Host("evil.example".into())),
        "a host is its own entry"
    );
    for i in 0..1000 {
        refusals.log(&Refusal::Origin(format!("https://{i}.example")));
    }
    let remembered = refusals.logged.lock().unwrap().len();
    assert_eq!(
        remembered,
        REMEMBERED_REFUSALS + 1,
        "64 origins and the note that the rest go quiet"
    );
    assert!(!refusals.log(&Refusal::Origin("https://new.example".into())));
}

#[test]
fn peers() {
    let p = policy();
    assert!(peer_allowed(&p, "127.0.0.1:5".parse().unwrap()));
    assert!(peer_allowed(&p, "[::ffff:127.0.0.1]:5".parse().unwrap()));
    assert!(!peer_allowed(&p, "10.0.0.1:5".parse().unwrap()));
}

mod gate;

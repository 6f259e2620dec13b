//! Unit tests of `access`: a table of requests and the verdict on each.

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

/// Request headers, whether they came over the unix listener, and whether
/// the request is allowed.
type Case = (&'static [(&'static str, &'static str)], bool, bool);

#[test]
fn hosts_and_browser_marks() {
    let cases: &[Case] = &[
        // (headers, unix listener, allowed)
        (&[("host", "127.0.0.1:8080")], false, true),
        (&[("host", "localhost")], false, true),
        (&[("host", "LOCALHOST:1")], false, true),
        (&[("host", "[::1]:8080")], false, true),
        (&[("host", "127.0.0.5")], false, true),
        (&[("host", "api.ethgas.com")], false, true),
        (&[("host", "sidecar.internal:8080")], false, true),
        (&[], false, true),
        (&[("host", "rebind.attacker.example:8080")], false, false),
        (&[("host", "127.0.0.1.nip.io")], false, false),
        (&[("host", "rebind.attacker.example")], true, true),
        (
            &[("host", "localhost"), ("origin", "https://evil.example")],
            false,
            false,
        ),
        (&[("host", "localhost"), ("origin", "null")], false, false),
        (
            &[("host", "localhost"), ("origin", "https://dash.example")],
            false,
            true,
        ),
        (&[("host", "localhost"), ("sec-fetch-site", "cross-site")], false, false),
        (&[("host", "localhost"), ("sec-fetch-site", "same-site")], false, false),
        (&[("host", "localhost"), ("sec-fetch-site", "same-origin")], false, true),
        (&[("host", "localhost"), ("sec-fetch-site", "none")], false, true),
        (&[("origin", "https://evil.example")], true, false),
    ];
    for (headers, unix, allowed) in cases {
        let mut map = HeaderMap::new();
        for (k, v) in *headers {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        let verdict = check_request(&policy(), &map, "api.ethgas.com", *unix, false);
        assert_eq!(verdict.is_ok(), *allowed, "{headers:?} unix={unix}: {verdict:?}");
        if let Err(e) = verdict {
            assert_eq!(e.status(), http::StatusCode::FORBIDDEN);
        }
    }
}

#[test]
fn peers() {
    let p = policy();
    assert!(peer_allowed(&p, "127.0.0.1:5".parse().unwrap()));
    assert!(peer_allowed(&p, "[::ffff:127.0.0.1]:5".parse().unwrap()));
    assert!(!peer_allowed(&p, "10.0.0.1:5".parse().unwrap()));
}

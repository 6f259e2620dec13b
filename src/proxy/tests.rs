//! Unit tests of `proxy`.

use super::*;

#[test]
fn hop_by_hop_and_connection_named_headers_are_dropped() {
    let mut h = HeaderMap::new();
    h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, X-Secret-Hop"));
    h.insert("x-secret-hop", HeaderValue::from_static("1"));
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert(header::TE, HeaderValue::from_static("trailers"));
    h.insert(header::PROXY_AUTHORIZATION, HeaderValue::from_static("Basic x"));
    h.insert("x-kept", HeaderValue::from_static("1"));
    strip_hop_by_hop(&mut h);
    let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
    assert_eq!(left, vec!["x-kept"]);
}

#[test]
fn every_error_maps_to_its_status_and_an_envelope() {
    let cases = [
        (ProxyError::Connect, 405),
        (ProxyError::BadRequest("x".into()), 400),
        (ProxyError::HeadersTooLarge { limit: 1 }, 431),
        (ProxyError::UriTooLong { limit: 1 }, 414),
        (
            ProxyError::Timeout {
                origin: "o".into(),
                limit: Duration::from_secs(1),
            },
            504,
        ),
        (
            ProxyError::NoToken {
                username: "u".into(),
                reason: "r".into(),
                retry_after: 3,
            },
            503,
        ),
    ];
    for (e, status) in cases {
        let resp = error_response(&e);
        assert_eq!(resp.status().as_u16(), status);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
    }
    let resp = error_response(&ProxyError::NoToken {
        username: "u".into(),
        reason: "r".into(),
        retry_after: 3,
    });
    assert_eq!(resp.headers()[header::RETRY_AFTER], "3");
}

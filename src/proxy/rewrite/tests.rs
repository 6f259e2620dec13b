//! Unit tests of `proxy::rewrite`.

use super::*;
use http_body_util::BodyExt;

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

#[tokio::test]
async fn a_replayed_request_is_the_original_with_the_fresh_token() {
    let (mut parts, ()) = Request::builder()
        .method(Method::POST)
        .uri("https://api.ethgas.com/api/v1/user/order?market=ETH-PERP&x=%20")
        .header("x-client", "bot-7")
        .header("x-multi", "a")
        .header("x-multi", "b")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, "Bearer old-token")
        .body(())
        .unwrap()
        .into_parts();
    let body = Bytes::from_static(br#"{"side":"buy","qty":1}"#);
    let replay = Replay::new(&parts, &body);
    let replay_again = replay.clone();
    // The original is sent (and dropped) before the replay is needed.
    parts.headers.clear();
    drop(parts);

    let fresh = HeaderValue::from_static("Bearer fresh-token");
    let again = replay.request(Some(&fresh));
    assert_eq!(again.method(), Method::POST);
    assert_eq!(
        again.uri().to_string(),
        "https://api.ethgas.com/api/v1/user/order?market=ETH-PERP&x=%20"
    );
    let h = again.headers();
    assert_eq!(h.get("x-client").unwrap(), "bot-7");
    let multi: Vec<_> = h.get_all("x-multi").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(multi, ["a", "b"]);
    assert_eq!(h.get(header::CONTENT_TYPE).unwrap(), "application/json");
    let auth: Vec<_> = h.get_all(header::AUTHORIZATION).iter().collect();
    assert_eq!(auth, [&fresh], "exactly one Authorization, the fresh one");
    let sent = again.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(sent, body);
    let public = replay_again.request(None);
    assert!(
        public.headers().get(header::AUTHORIZATION).is_none(),
        "a replay without a token carries none, not the one the request went with"
    );
}

#[test]
fn response_headers_carrying_the_token_are_removed() {
    let token = b"eyJ.real-token.sig";
    let mut h = HeaderMap::new();
    h.insert(
        "x-echo-authorization",
        HeaderValue::from_static("Bearer eyJ.real-token.sig"),
    );
    h.append("x-multi", HeaderValue::from_static("fine"));
    h.append("x-multi", HeaderValue::from_static("prefix eyJ.real-token.sig suffix"));
    h.append(
        header::SET_COOKIE,
        HeaderValue::from_static("x_auth_refresh_token=abc; Path=/"),
    );
    h.append(header::SET_COOKIE, HeaderValue::from_static("theme=dark"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    assert_eq!(scrub_response_headers(&mut h, Some(token)), 3);
    assert!(h.get("x-echo-authorization").is_none());
    let multi: Vec<_> = h.get_all("x-multi").iter().collect();
    assert_eq!(multi, ["fine"]);
    let cookies: Vec<_> = h.get_all(header::SET_COOKIE).iter().collect();
    assert_eq!(cookies, ["theme=dark"]);
    assert_eq!(h.len(), 4 - 1 - 1 + 1, "{h:?}");
    assert_eq!(scrub_response_headers(&mut h, None), 0);
}

#[test]
fn a_rewritten_request_no_longer_holds_the_client_connections_read_buffer() {
    // As hyper parses it: the path and every header value are slices of the
    // connection's read buffer.
    let buffer = Bytes::from_static(b"/api/v1/user/info?x=1bot-7a1b2application/json").to_vec();
    let buffer = Bytes::from(buffer);
    let mut parts = Request::builder().body(()).unwrap().into_parts().0;
    parts.uri = Uri::from_maybe_shared(buffer.slice(0..21)).unwrap();
    let value = |r: std::ops::Range<usize>| HeaderValue::from_maybe_shared(buffer.slice(r)).unwrap();
    parts.headers.insert("x-client", value(21..26));
    parts.headers.append("x-multi", value(26..28));
    parts.headers.append("x-multi", value(28..30));
    parts.headers.insert(header::CONTENT_TYPE, value(30..46));
    parts.headers.insert(header::AUTHORIZATION, value(21..26));
    let config =
        crate::config::Config::for_account("http://127.0.0.1:7000", "u", crate::secret::Secret::new("p")).unwrap();
    let target = Target::new(&config.restart.upstream);
    let token = HeaderValue::from_static("Bearer t");
    rewrite_request(&mut parts, &target, Some(&token), &Placeholders::default());

    // Same request...
    assert_eq!(parts.uri.to_string(), "http://127.0.0.1:7000/api/v1/user/info?x=1");
    assert_eq!(parts.headers.get("x-client").unwrap(), "bot-7");
    let multi: Vec<_> = parts.headers.get_all("x-multi").iter().collect();
    assert_eq!(multi, ["a1", "b2"]);
    assert_eq!(parts.headers.get(header::CONTENT_TYPE).unwrap(), "application/json");
    assert_eq!(parts.headers.get(header::AUTHORIZATION).unwrap(), "Bearer t");
    // ...and the buffer is hyper's alone again: it can reuse it for the
    // next read instead of allocating another.
    assert!(
        buffer.is_unique(),
        "the rewritten request still points into the read buffer"
    );
}

#[test]
fn only_the_methods_the_api_uses_are_forwarded() {
    for m in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        assert!(forwarded_method(&Method::from_bytes(m.as_bytes()).unwrap()), "{m}");
    }
    for m in ["TRACE", "CONNECT", "PROPFIND", "BREW", "get", "TRACK"] {
        assert!(!forwarded_method(&Method::from_bytes(m.as_bytes()).unwrap()), "{m}");
    }
}

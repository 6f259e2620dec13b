//! Unit tests of `intercept`.

use super::*;

#[test]
fn placeholders_are_unique_recognised_and_carry_the_expiry() {
    let p = Placeholders::new();
    let a = p.grant("alice", 1000, 60);
    let b = p.grant("alice", 1000, 60);
    let ta = a["accessToken"].as_str().unwrap();
    assert_ne!(ta, b["accessToken"].as_str().unwrap());
    assert!(p.is_placeholder(format!("Bearer {ta}").as_bytes()));
    assert!(!p.is_placeholder(b"Bearer some.real.jwt"));
    assert!(!Placeholders::new().is_placeholder(format!("Bearer {ta}").as_bytes()));
    assert_eq!(crate::auth::jwt_exp(ta), Some(1060));
    assert_eq!(a["expiresIn"], 60);
}

#[test]
fn public_paths_are_matched_as_sent_and_as_normalised() {
    let prefixes = vec!["/api/v1/p/".to_string()];
    let public = [
        "/api/v1/p/",
        "/api/v1/p/ticker",
        "/api/v1/p/inplay/markets/",
        "/api/v1/p/BTC",
        "/api/v1/p/x/../y",
    ];
    for path in public {
        assert!(is_public(&prefixes, path), "{path} is public");
    }
    let private = [
        "/api/v1/user/info",
        "/api/v1/p",
        "/api/v1/pp/x",
        "/API/V1/P/x",
        "/Api/v1/p/x",
        "//api/v1/p/x",
        "/api/v1/p/../user/info",
        "/api/v1/p/./../user/info",
        "/api/v1/p/%2e%2e/user/info",
        "/api/v1/p/%2E%2E/user/info",
        "/api/v1/p/%252e%252e/user/info",
        "/api/v1/p/..;/user/info",
        "/api/v1/p/..%2fuser/info",
        "/api/v1/p/..\\user/info",
        "/api/v1/p/x/../../user/info",
    ];
    for path in private {
        assert!(!is_public(&prefixes, path), "{path} is not public");
    }
    assert!(!is_public(&[], "/api/v1/p/ticker"), "an empty list turns it off");
}

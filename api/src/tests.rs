//! Unit tests of `ethgas-api`.

use super::*;

/// The login typed data as `ethgas-api.md` publishes it ("Live API").
const PUBLISHED_LOGIN: &str = r#"{"types":{"EIP712Domain":[{"name":"name","type":"string"},{"name":"version","type":"string"},
  {"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"}],
 "data":[{"name":"hash","type":"string"},{"name":"message","type":"string"},{"name":"domain","type":"string"}]},
 "primaryType":"data",
 "message":{"hash":"52a90c73","message":"Please sign this message to verify account ownership","domain":"ethgas.com"},
 "domain":{"name":"ETHGas Login","version":"1","chainId":32382,"verifyingContract":"0x0000000000000000000000000000000000000000"}}"#;

#[test]
fn login_typed_data_is_the_published_challenge() {
    let built: serde_json::Value = serde_json::from_str(&login_typed_data("52a90c73", 32382)).unwrap();
    let published: serde_json::Value = serde_json::from_str(PUBLISHED_LOGIN).unwrap();
    assert_eq!(built, published);
    // Byte for byte, too, in the published key order (without the line breaks).
    let compact: String = PUBLISHED_LOGIN.lines().map(str::trim_start).collect();
    assert_eq!(login_typed_data("52a90c73", 32382), compact);
}

#[test]
fn login_typed_data_escapes_the_nonce() {
    let nonce = "a\"b\\c}\n@CHAIN_ID@";
    let json = login_typed_data(nonce, 1);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["message"]["hash"], nonce);
    assert_eq!(value["domain"]["chainId"], 1);
}

#[test]
fn paths_are_normalised_as_a_lenient_upstream_would() {
    let cases = [
        ("/api/v1/user/logout", "/api/v1/user/logout"),
        ("//api//v1/user/logout/", "/api/v1/user/logout"),
        ("/api/v1/user/logout;jsessionid=x", "/api/v1/user/logout"),
        ("/api/v1/user/%6C%6Fgout", "/api/v1/user/logout"),
        ("/api/v1/user/%256Cogout", "/api/v1/user/logout"),
        ("/api/v1/./user/x/../logout", "/api/v1/user/logout"),
        ("/api/v1/user\\logout", "/api/v1/user/logout"),
        ("/API/v1/User/Logout", "/api/v1/user/logout"),
        ("/../../api/v1/user/logout", "/api/v1/user/logout"),
        ("/", "/"),
        ("", "/"),
        // Escapes that are not escapes stay as they are.
        ("%zz/%", "/%zz/%"),
        ("/api/%4", "/api/%4"),
    ];
    for (path, normal) in cases {
        assert_eq!(normalize_path(path), normal, "{path}");
    }
}

#[test]
fn look_alikes_of_an_account_path_normalise_to_it() {
    // Every spelling a lenient upstream routes to the logout endpoint: a
    // recogniser comparing normalised paths cannot be walked around.
    let look_alikes = [
        "/api/v1/p/../user/logout",
        "/api/v1/p/%2e%2e/user/logout",
        "/api/v1/p/%2E%2E/user/logout",
        "/api/v1/p/%252e%252e/user/logout",
        "/api/v1/p/..;/user/logout",
        "/api/v1/p/..%2fuser/logout",
        "/api/v1/p/..%2Fuser%2Flogout",
        "/api/v1/p/..%5cuser%5clogout",
        "/api/v1/user/%2e/logout",
        "/api/v1//user///logout",
        "/Api/V1/USER/LOGOUT",
        "/api/v1/user/%4C%4F%47%4F%55%54",
    ];
    for path in look_alikes {
        assert_eq!(normalize_path(path), LOGOUT_PATH, "{path}");
    }
    // And what is not the endpoint stays apart from it.
    for path in [
        "/api/v1/user/logout2",
        "/api/v1/user/log%20out",
        "/api/v1/logout",
        "/api/v1/user/logout/..",
    ] {
        assert_ne!(normalize_path(path), LOGOUT_PATH, "{path}");
    }
}

#[test]
fn the_default_paths_are_already_normal() {
    for path in [LOGIN_PATH, REFRESH_PATH, VERIFY_PATH, LOGOUT_PATH] {
        assert_eq!(normalize_path(path), path);
    }
    for prefix in [PUBLIC_PREFIX, API_PREFIX] {
        assert_eq!(normalize_path(prefix) + "/", prefix);
        assert!(prefix.starts_with(API_PREFIX));
    }
}

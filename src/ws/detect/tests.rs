//! Unit tests of `ws::detect`.

use super::*;

#[test]
fn both_login_formats_are_recognised() {
    let cases = [
        (r#"{"cmd":"login","data":{"accessToken":"x"}}"#, Some(LoginStyle::Cmd)),
        (
            r#"  {"data":{"accessToken":"x"}, "cmd" : "login"}"#,
            Some(LoginStyle::Cmd),
        ),
        (r#"{"op":"login","args":[{"accessToken":"x"}]}"#, Some(LoginStyle::Op)),
        // A repeated key counts with its last value, as serde_json::Value reads it.
        (r#"{"cmd":"whoami","cmd":"login"}"#, Some(LoginStyle::Cmd)),
        (r#"{"cmd":"login","cmd":"whoami"}"#, None),
        // The word elsewhere is not a login.
        (r#"{"cmd":"subscribe","channel":"login"}"#, None),
        (r#"{"op":"subscribe","args":[{"login":"x"}]}"#, None),
        (r#"{"cmd":{"name":"login"}}"#, None),
        (r#"["login"]"#, None),
        (r#""login""#, None),
        // Not JSON, or truncated.
        (r#"{"cmd":"login""#, None),
        ("login", None),
        ("", None),
    ];
    for (text, want) in cases {
        assert_eq!(client_login(text), want, "{text}");
    }
}

#[test]
fn a_large_message_is_not_looked_into() {
    let pad = "0".repeat(PROBE_MAX);
    let big = format!(r#"{{"cmd":"login","data":{{"accessToken":"x"}},"pad":"{pad}"}}"#);
    assert_eq!(client_login(&big), None);
    let small = format!(r#"{{"cmd":"login","pad":"{}"}}"#, &pad[..PROBE_MAX / 2]);
    assert_eq!(client_login(&small), Some(LoginStyle::Cmd));
    let push = format!(r#"{{"cmd":"token_expired","pad":"{pad}"}}"#);
    assert_eq!(api_push(&push), None);
}

#[test]
fn api_pushes_are_classified_by_their_first_command_key() {
    let cases = [
        (
            r#"{"cmd":"token_expired","message":"send login again"}"#,
            Some(ApiPush::TokenExpired),
        ),
        (r#"{"type":"token_expired"}"#, Some(ApiPush::TokenExpired)),
        (
            r#"{"cmd":"login","code":200,"message":"OK"}"#,
            Some(ApiPush::LoginReply),
        ),
        (
            r#"{"event":"login","code":0,"msg":"","connId":"c1"}"#,
            Some(ApiPush::LoginReply),
        ),
        // cmd before event before type, as before.
        (r#"{"type":"token_expired","cmd":"login"}"#, Some(ApiPush::LoginReply)),
        (r#"{"cmd":7,"event":"login"}"#, Some(ApiPush::LoginReply)),
        (r#"{"cmd":"ticker","data":{"last":"token_expired"}}"#, None),
        (r#"{"cmd":"whoami","authenticated":true}"#, None),
        ("[1,2,3]", None),
    ];
    for (text, want) in cases {
        assert_eq!(api_push(text), want, "{text}");
    }
}

#[test]
fn values_that_are_skipped_may_be_anything() {
    let text = r#"{"a":[1,{"b":null},"c\"login"],"n":-1.5e3,"t":true,"f":false,"z":null,"s":"\u00e9","cmd":"login"}"#;
    assert_eq!(client_login(text), Some(LoginStyle::Cmd));
    // Skipping is iterative in serde_json: deep nesting costs no stack.
    let deep = format!(r#"{{"x":{}{},"cmd":"login"}}"#, "[".repeat(20_000), "]".repeat(20_000));
    assert_eq!(client_login(&deep), Some(LoginStyle::Cmd));
}

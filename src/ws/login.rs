//! The in-socket login, in both of the API's formats: a program's own login
//! rewritten to carry the account's token, and the login the sidecar sends
//! itself after every renewal.
//!
//! Documented API: `{"cmd":"login","data":{"accessToken":"…"}}`. Live API:
//! `{"op":"login","args":[{"accessToken":"…"}]}`. Only messages that
//! [`super::detect`] found to be logins get here, so parsing them whole is
//! cheap (they are at most `PROBE_MAX` bytes).

use serde_json::{Value, json};

use super::detect::LoginStyle;

/// `text` (a program's login of `style`) with `token` as its access token;
/// `None` if it is not a login of that style after all.
pub(super) fn rewrite(text: &str, style: LoginStyle, token: &str) -> Option<String> {
    let mut v: Value = serde_json::from_str(text).ok()?;
    let obj = v.as_object_mut()?;
    match style {
        LoginStyle::Cmd => {
            if obj.get("cmd").and_then(Value::as_str) != Some("login") {
                return None;
            }
            let data = obj.entry("data").or_insert_with(|| json!({}));
            if !data.is_object() {
                *data = json!({});
            }
            data.as_object_mut()?
                .insert("accessToken".into(), Value::String(token.to_string()));
        }
        LoginStyle::Op => {
            if obj.get("op").and_then(Value::as_str) != Some("login") {
                return None;
            }
            let args = obj.entry("args").or_insert_with(|| json!([{}]));
            if !args.as_array().is_some_and(|a| a.first().is_some_and(Value::is_object)) {
                *args = json!([{}]);
            }
            args.as_array_mut()?
                .first_mut()?
                .as_object_mut()?
                .insert("accessToken".into(), Value::String(token.to_string()));
        }
    }
    Some(v.to_string())
}

/// The sidecar's own login with `token`, in `style`.
pub(super) fn own(style: LoginStyle, token: &str) -> String {
    match style {
        LoginStyle::Cmd => json!({ "cmd": "login", "data": { "accessToken": token } }),
        LoginStyle::Op => json!({ "op": "login", "args": [{ "accessToken": token }] }),
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_are_rewritten_and_others_left_alone() {
        let out = rewrite(
            r#"{"cmd":"login","data":{"accessToken":"ph"}}"#,
            LoginStyle::Cmd,
            "real",
        )
        .unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["data"]["accessToken"], "real");
        let out = rewrite(
            r#"{"op":"login","args":[{"accessToken":"ph","x":1}]}"#,
            LoginStyle::Op,
            "real",
        )
        .unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["args"][0]["accessToken"], "real");
        assert_eq!(v["args"][0]["x"], 1);
        let out = rewrite(r#"{"op":"login","args":"bogus"}"#, LoginStyle::Op, "real").unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["args"][0]["accessToken"], "real");
        assert!(rewrite(r#"{"cmd":"subscribe"}"#, LoginStyle::Cmd, "real").is_none());
        assert!(rewrite(r#"{"op":"subscribe"}"#, LoginStyle::Op, "real").is_none());
        assert!(rewrite("not json", LoginStyle::Cmd, "real").is_none());
        let own: Value = serde_json::from_str(&own(LoginStyle::Op, "t")).unwrap();
        assert_eq!(own, json!({"op":"login","args":[{"accessToken":"t"}]}));
    }
}

//! The in-socket login, in both of the API's formats: a program's own login
//! rewritten to carry the account's token, and the login the sidecar sends
//! itself after every renewal.
//!
//! Documented API: `{"cmd":"login","data":{"accessToken":"…"}}`. Live API:
//! `{"op":"login","args":[{"accessToken":"…"}]}`. Only messages that
//! [`super::detect`] found to be logins get here, so parsing them whole is
//! cheap (they are at most `PROBE_MAX` bytes).

use serde_json::{Map, Value, json};

use super::detect::LoginStyle;

/// `text` (a program's login of `style`) with `token` as its access token
/// and no credential of the program's left: in the login's object (`data`,
/// or the first of `args`) and at the top level, every key that names a
/// credential ([`is_credential`]) is dropped before the token goes in, and a
/// live login's further `args` are dropped whole. `None` if it is not a login
/// of that style after all.
pub(super) fn rewrite(text: &str, style: LoginStyle, token: &str) -> Option<String> {
    let mut v: Value = serde_json::from_str(text).ok()?;
    let obj = v.as_object_mut()?;
    let (command, holder) = match style {
        LoginStyle::Cmd => ("cmd", "data"),
        LoginStyle::Op => ("op", "args"),
    };
    if obj.get(command).and_then(Value::as_str) != Some("login") {
        return None;
    }
    obj.retain(|key, _| !is_credential(key));
    let mut login = match obj.remove(holder) {
        Some(Value::Object(data)) if style == LoginStyle::Cmd => data,
        Some(Value::Array(args)) if style == LoginStyle::Op => match args.into_iter().next() {
            Some(Value::Object(first)) => first,
            _ => Map::new(),
        },
        _ => Map::new(),
    };
    login.retain(|key, _| !is_credential(key));
    login.insert("accessToken".into(), Value::String(token.to_string()));
    let login = Value::Object(login);
    obj.insert(
        holder.into(),
        match style {
            LoginStyle::Cmd => login,
            LoginStyle::Op => Value::Array(vec![login]),
        },
    );
    Some(v.to_string())
}

/// Whether a key of a login names a credential of the program's, which must
/// not reach the API beside the account's token: any spelling of a token, a
/// key, a secret, a signature, a password or a session.
fn is_credential(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "token", "key", "secret", "sign", "pass", "auth", "session", "cookie", "bearer", "jwt",
    ]
    .iter()
    .any(|word| key.contains(word))
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

    #[test]
    fn no_credential_of_the_program_survives_a_rewrite() {
        let out = rewrite(
            r#"{"op":"login","id":"7","token":"own0","args":[{"accessToken":"own1","refreshToken":"own2","x":1},{"accessToken":"own3"},"own4"]}"#,
            LoginStyle::Op,
            "real",
        )
        .unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v, json!({"op":"login","id":"7","args":[{"accessToken":"real","x":1}]}));
        let out = rewrite(
            r#"{"cmd":"login","apiKey":"own0","data":{"accessToken":"own1","Signature":"own2","sessionId":"own3","lang":"en"}}"#,
            LoginStyle::Cmd,
            "real",
        )
        .unwrap();
        assert!(!out.contains("own"), "{out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v, json!({"cmd":"login","data":{"accessToken":"real","lang":"en"}}));
    }
}

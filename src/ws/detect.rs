//! What a WebSocket text message means to the relay, found without parsing
//! every message.
//!
//! The relay must spot two things in a stream of messages that are mostly
//! market data: a program's in-socket login (to put the real token in it)
//! and, from the API, a `token_expired` push or the reply to a login. Parsing
//! each message into a `serde_json::Value` to find them cost ~17 bytes of
//! heap per byte of message (a 60 MiB `[0,0,…]` took the sidecar from 8 MiB
//! to 1 GiB), so a message is only looked into when it is small
//! ([`PROBE_MAX`]), is a JSON object and contains the word searched for. Even
//! then it is not built into a tree: [`Probe`] reads the top-level keys that
//! name a command and skips every other value without allocating.
//!
//! Both login formats are recognised: the documented API's
//! `{"cmd":"login","data":{"accessToken":…}}` and the live API's
//! `{"op":"login","args":[{"accessToken":…}]}` (answered
//! `{"event":"login","code":0,…}`). A word written with JSON escapes
//! (`"log\u0069n"`) is not recognised; no program writes it so, and a login
//! that is missed only means the program's own placeholder reaches the API,
//! which refuses it.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Messages longer than this are relayed without being looked into. A login
/// is a few hundred bytes plus a JWT (~1 KiB); the API's pushes that matter
/// are smaller still.
pub(crate) const PROBE_MAX: usize = 64 * 1024;

/// The format of a program's in-socket login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginStyle {
    /// `{"cmd":"login","data":{"accessToken":…}}` (the documented API).
    Cmd,
    /// `{"op":"login","args":[{"accessToken":…}]}` (the live API).
    Op,
}

/// A message from the API that the relay acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiPush {
    /// The socket's token expired; the API wants a new login.
    TokenExpired,
    /// The answer to a login (`"cmd":"login"` or `"event":"login"`).
    LoginReply,
}

/// Whether a program's text message is a login, and in which format.
pub(crate) fn client_login(text: &str) -> Option<LoginStyle> {
    if !worth_probing(text, &["login"]) {
        return None;
    }
    let probe = Probe::of(text)?;
    if probe.cmd == Some(Word::Login) {
        Some(LoginStyle::Cmd)
    } else if probe.op == Some(Word::Login) {
        Some(LoginStyle::Op)
    } else {
        None
    }
}

/// Whether a text message from the API is one the relay acts on. The
/// command is the first string among `cmd`, `event` and `type`.
pub(crate) fn api_push(text: &str) -> Option<ApiPush> {
    if !worth_probing(text, &["token_expired", "login"]) {
        return None;
    }
    let probe = Probe::of(text)?;
    match [probe.cmd, probe.event, probe.kind].into_iter().flatten().next()? {
        Word::TokenExpired => Some(ApiPush::TokenExpired),
        Word::Login => Some(ApiPush::LoginReply),
        Word::Other => None,
    }
}

/// The cheap test before any parsing: small, a JSON object, and containing
/// one of `words`.
fn worth_probing(text: &str, words: &[&str]) -> bool {
    text.len() <= PROBE_MAX && text.trim_start().starts_with('{') && words.iter().any(|w| text.contains(w))
}

/// A string value the relay cares about; any other string is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Word {
    Login,
    TokenExpired,
    Other,
}

/// The top-level keys of a JSON object that name a command. A key given
/// twice counts with its last value, as `serde_json::Value` reads it; a key
/// whose value is not a string counts as absent.
#[derive(Debug, Default, PartialEq, Eq)]
struct Probe {
    cmd: Option<Word>,
    op: Option<Word>,
    event: Option<Word>,
    kind: Option<Word>,
}

impl Probe {
    fn of(text: &str) -> Option<Probe> {
        serde_json::from_str(text).ok()
    }
}

impl<'de> Deserialize<'de> for Probe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Probe, D::Error> {
        d.deserialize_map(ProbeVisitor)
    }
}

struct ProbeVisitor;

impl<'de> Visitor<'de> for ProbeVisitor {
    type Value = Probe;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Probe, A::Error> {
        let mut probe = Probe::default();
        while let Some(key) = map.next_key::<Key>()? {
            let slot = match key {
                Key::Cmd => &mut probe.cmd,
                Key::Op => &mut probe.op,
                Key::Event => &mut probe.event,
                Key::Type => &mut probe.kind,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = map.next_value::<Value>()?.0;
        }
        Ok(probe)
    }
}

/// A top-level key, read without allocating.
enum Key {
    Cmd,
    Op,
    Event,
    Type,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "cmd" => Key::Cmd,
                    "op" => Key::Op,
                    "event" => Key::Event,
                    "type" => Key::Type,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

/// Any JSON value: a string becomes a [`Word`], anything else is skipped.
struct Value(Option<Word>);

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value(Some(match v {
            "login" => Word::Login,
            "token_expired" => Word::TokenExpired,
            _ => Word::Other,
        })))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Value, E> {
        Ok(Value(None))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Value, E> {
        Ok(Value(None))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Value, E> {
        Ok(Value(None))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Value, E> {
        Ok(Value(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Value(None))
    }
}

#[cfg(test)]
mod tests;

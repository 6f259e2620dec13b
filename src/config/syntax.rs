//! A TOML error as the sidecar reports it: where (line, column, and the
//! `section.key` written there) and what was wrong, never the text of the
//! file. The toml crate's own message shows the offending line and quotes
//! wrong-typed values (`invalid type: string "…"`), and a line of a config
//! file may hold a secret someone pasted in the wrong place; neither may
//! reach stderr or the journal.

/// `TOML parse error at line L, column C (`section.key`): what was wrong`.
pub(super) fn describe(text: &str, e: &toml::de::Error) -> String {
    let what = without_values(e.message());
    let Some(span) = e.span() else {
        return what;
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    match key_at(text, line) {
        Some(key) => format!("TOML parse error at line {line}, column {column} (`{key}`): {what}"),
        None => format!("TOML parse error at line {line}, column {column}: {what}"),
    }
}

/// A serde message with any quoted value replaced by what was expected:
/// `invalid type: string "hunter2", expected u64` → `wrong type or value;
/// expected u64`. Messages that name only keys (`unknown field`, `missing
/// field`, syntax errors) are kept.
fn without_values(message: &str) -> String {
    let message = message.trim();
    let quotes_a_value = ["invalid type", "invalid value", "invalid length"]
        .iter()
        .any(|p| message.starts_with(p));
    if !quotes_a_value {
        return message.to_string();
    }
    // The value comes first, what was expected (the type's own words) last.
    match message.rsplit_once(", expected ") {
        Some((_, expected)) if !expected.contains(['"', '\'']) => {
            format!("wrong type or value; expected {expected}")
        }
        _ => "wrong type or value".to_string(),
    }
}

/// The key written on line `line` (1-based), with the `[section]` above it:
/// key names are safe to show, values are not.
fn key_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let here = lines.get(line.checked_sub(1)?)?;
    let bare = |k: &str| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    let key = here.split_once('=').map(|(k, _)| k.trim()).filter(|k| bare(k))?;
    let section = lines[..line - 1].iter().rev().find_map(|l| {
        let l = l.trim();
        l.strip_prefix('[')
            .and_then(|l| l.strip_suffix(']'))
            .map(str::trim)
            .filter(|s| bare(s))
    });
    Some(match section {
        Some(s) => format!("{s}.{key}"),
        None => key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        let e = toml::from_str::<super::super::raw::RawConfig>(text).expect_err("refused");
        describe(text, &e)
    }

    #[test]
    fn a_wrong_typed_value_is_named_by_key_never_quoted() {
        let err = error_of("[proxy]\nreplay_buffer_bytes = \"hunter2-secret\"\n");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(
            err.contains("line 2") && err.contains("`proxy.replay_buffer_bytes`"),
            "{err}"
        );
        assert!(err.contains("expected u64"), "{err}");
    }

    #[test]
    fn a_secret_pasted_as_a_key_or_broken_line_is_not_shown() {
        // A password written where its file name belongs, unquoted.
        let err = error_of("[auth]\nusername = \"alice\"\npassword_file = hunter2-secret\n");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        // A password given as a key the file does not have.
        let err = error_of("[auth]\npassword = \"hunter2-secret\"\n");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("unknown field `password`"), "{err}");
    }
}

//! Logs under systemd: the real binary with its stderr connected to a unix
//! stream socket that stands in for journald, and `JOURNAL_STREAM` naming
//! that socket's device and inode as systemd does. Each line must carry the
//! sd-daemon priority of its level (`<3>` error, `<4>` warning, `<6>` info,
//! `<7>` debug), which is what `journalctl -p warning` filters on; without
//! the variable, or when it names another file, the lines are plain.

mod common;

use std::io::BufRead;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use ethgas_mock::Fault;

/// The binary running with stderr on a socket; its lines as they arrive.
struct Journaled {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Journaled {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Journaled {
    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    async fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) {
        eventually(Duration::from_secs(15), what, || self.lines().iter().any(|l| pred(l))).await;
    }
}

/// What `JOURNAL_STREAM` should say.
enum Stream {
    /// The device and inode of the socket given as stderr: systemd's journal.
    ThisSocket,
    /// Inherited from a parent whose stderr was the journal; ours is not.
    Another,
    Unset,
}

fn spawn(config: &Path, stream: Stream) -> Journaled {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let meta = theirs
        .try_clone()
        .map(OwnedFd::from)
        .map(std::fs::File::from)
        .unwrap()
        .metadata()
        .unwrap();
    let mut cmd = std::process::Command::new(binary());
    cmd.arg("run")
        .arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_FDS")
        .env_remove("JOURNAL_STREAM")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(OwnedFd::from(theirs));
    match stream {
        Stream::ThisSocket => {
            cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
        }
        Stream::Another => {
            cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino() + 1));
        }
        Stream::Unset => {}
    }
    let child = cmd.spawn().expect("binary starts");
    drop(cmd); // our copy of the child's end, so EOF comes when it exits
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(ours).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    Journaled { child, lines }
}

/// The priority a line starts with, and the rest.
fn priority(line: &str) -> Option<(u8, &str)> {
    let rest = line.strip_prefix('<')?;
    let (n, rest) = rest.split_once('>')?;
    Some((n.parse().ok()?, rest))
}

/// The priority the text format's level word calls for.
fn expected_priority(text: &str) -> Option<u8> {
    match text.split_whitespace().next()? {
        "ERROR" => Some(3),
        "WARN" => Some(4),
        "INFO" => Some(6),
        "DEBUG" | "TRACE" => Some(7),
        _ => None,
    }
}

/// A login the API fails with 503 (a warning), then one it refuses because
/// the password is wrong (an error); start-up lines are info, requests debug.
async fn warn_then_error(api: &Api, proc: &Journaled) {
    proc.wait_for("a failed login (warning)", |l| l.contains("login failed"))
        .await;
    api.mock.set_password("another password");
    api.mock.set_login_fault(Fault::None);
    proc.wait_for("a refused login (error)", |l| l.contains("login refused"))
        .await;
}

#[tokio::test]
async fn every_line_carries_its_priority_when_stderr_is_the_journal() {
    let api = start_api(Duration::from_secs(3600)).await;
    api.mock.set_login_fault(Fault::Status(503));
    let files = write_config(api.addr, PASSWORD, &Extra::default());
    let proc = spawn(&files.config, Stream::ThisSocket);
    warn_then_error(&api, &proc).await;

    let lines = proc.lines();
    let log = lines.join("\n");
    let mut seen = std::collections::BTreeSet::new();
    for line in &lines {
        let (p, text) = priority(line).unwrap_or_else(|| panic!("no priority on {line:?} in:\n{log}"));
        // journald stamps entries itself: no timestamp of our own.
        assert!(!text.starts_with(char::is_numeric), "{line:?}");
        if let Some(want) = expected_priority(text) {
            assert_eq!(p, want, "{line:?}");
        }
        seen.insert(p);
    }
    let with = |p: u8, needle: &str| {
        lines
            .iter()
            .any(|l| l.starts_with(&format!("<{p}>")) && l.contains(needle))
    };
    assert!(with(6, "proxy listening"), "{log}");
    assert!(with(4, "login failed"), "{log}");
    assert!(with(3, "login refused"), "{log}");
    assert!(seen.contains(&7), "debug lines are <7>: {log}");
    // `journalctl -p warning` = priorities 0..=4: the warnings and errors, nothing else.
    for line in lines.iter().filter(|l| priority(l).is_some_and(|(p, _)| p <= 4)) {
        let text = priority(line).unwrap().1;
        assert!(matches!(expected_priority(text), Some(3 | 4)), "{line:?}");
    }
    // The fields stay in the message, for `journalctl -g`.
    assert!(with(3, &format!("username={USER}")), "{log}");
}

#[tokio::test]
async fn json_lines_get_the_prefix_too_and_stay_json() {
    let api = start_api(Duration::from_secs(3600)).await;
    api.mock.set_login_fault(Fault::Status(503));
    let files = write_config(api.addr, PASSWORD, &Extra::default());
    let text = std::fs::read_to_string(&files.config).unwrap() + "format = \"json\"\n";
    std::fs::write(&files.config, text).unwrap();
    let proc = spawn(&files.config, Stream::ThisSocket);
    warn_then_error(&api, &proc).await;

    for line in proc.lines() {
        let (p, text) = priority(&line).unwrap_or_else(|| panic!("no priority on {line:?}"));
        let v: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let want = match v["level"].as_str().unwrap() {
            "ERROR" => 3,
            "WARN" => 4,
            "INFO" => 6,
            _ => 7,
        };
        assert_eq!(p, want, "{line}");
    }
}

#[tokio::test]
async fn plain_stderr_has_no_prefixes() {
    for stream in [Stream::Unset, Stream::Another] {
        let api = start_api(Duration::from_secs(3600)).await;
        api.mock.set_login_fault(Fault::Status(503));
        let files = write_config(api.addr, PASSWORD, &Extra::default());
        let proc = spawn(&files.config, stream);
        warn_then_error(&api, &proc).await;
        let lines = proc.lines();
        assert!(lines.len() > 3, "{lines:?}");
        for line in &lines {
            assert!(priority(line).is_none(), "{line:?}");
            // As before: an RFC 3339 timestamp, then the level.
            assert!(line.starts_with(|c: char| c.is_ascii_digit()), "{line:?}");
        }
    }
}

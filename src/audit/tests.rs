use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Full};
use tokio::time::Instant;

use super::*;

/// A writer the test can read back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn lines(&self) -> Vec<serde_json::Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

fn record(peer: Peer) -> Record {
    Record {
        time: UNIX_EPOCH + Duration::from_millis(1_764_868_000_123),
        listener: "bot".into(),
        peer: Arc::new(peer),
        method: Method::POST,
        path: "/api/v1/user/funding/withdraw".into(),
        class: Class::Funds,
        decision: Decision::Refused,
        status: Some(403),
        error_code: None,
        duration: Duration::from_micros(1250),
    }
}

#[test]
fn a_record_is_one_json_line_with_every_part_and_no_more() {
    let unix = record(Peer::Unix {
        uid: Some(1000),
        pid: Some(4242),
        command: Some("trader".into()),
    });
    let v: serde_json::Value = serde_json::from_str(&unix.to_json()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "time": "2025-12-04T17:06:40.123Z",
            "listener": "bot",
            "peer_uid": 1000, "peer_pid": 4242, "peer_command": "trader",
            "method": "POST",
            "path": "/api/v1/user/funding/withdraw",
            "class": "funds",
            "decision": "refused",
            "status": 403,
            "error_code": null,
            "duration_ms": 1.25
        })
    );
    let tcp = record(Peer::Tcp("127.0.0.1:5555".parse().unwrap()));
    let v: serde_json::Value = serde_json::from_str(&tcp.to_json()).unwrap();
    assert_eq!(v["peer_addr"], "127.0.0.1:5555");
    assert!(v.get("peer_pid").is_none());
}

#[test]
fn the_error_code_comes_from_either_envelope() {
    let live = br#"{"success":false,"errorCode":1002,"errorMsgKey":"error.operation.failed","data":{}}"#;
    assert_eq!(envelope_error_code(live), Some(1002));
    assert_eq!(
        envelope_error_code(br#"{"code":1001,"message":"bad","data":null}"#),
        Some(1001)
    );
    assert_eq!(envelope_error_code(br#"{"code":200,"message":"OK","data":{}}"#), None);
    assert_eq!(envelope_error_code(br#"{"success":true,"data":{}}"#), None);
    assert_eq!(envelope_error_code(b"not json"), None);
}

#[tokio::test]
async fn an_audited_body_writes_its_record_when_it_ends_with_the_apis_error_code() {
    let out = Shared::default();
    let sink = Arc::new(Sink::lines(Box::new(out.clone())));
    let mut r = record(Peer::Tcp("127.0.0.1:1".parse().unwrap()));
    r.decision = Decision::Allowed;
    r.status = Some(200);
    let inner = Full::new(Bytes::from_static(br#"{"success":false,"errorCode":1002,"data":{}}"#));
    let body = Audited::new(inner, r, sink, Instant::now());
    assert!(
        out.lines().is_empty(),
        "nothing is written before the body has gone out"
    );
    let bytes = body.collect().await.unwrap().to_bytes();
    assert!(bytes.starts_with(b"{\"success\":false"), "the body passes unchanged");
    let lines = out.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["error_code"], 1002);
    assert_eq!(lines[0]["decision"], "allowed");
}

#[test]
fn a_body_the_client_never_read_still_leaves_its_record() {
    let out = Shared::default();
    let sink = Arc::new(Sink::lines(Box::new(out.clone())));
    let body = Audited::new(
        Full::new(Bytes::new()),
        record(Peer::Tcp("127.0.0.1:1".parse().unwrap())),
        sink,
        Instant::now(),
    );
    drop(body);
    assert_eq!(out.lines().len(), 1);
}

#[tokio::test]
async fn a_unix_peer_is_named_by_its_pid_uid_and_command() {
    let (a, _b) = tokio::net::UnixStream::pair().unwrap();
    let Peer::Unix { uid, pid, command } = Peer::of_unix(&a) else {
        panic!("not a unix peer")
    };
    assert_eq!(pid, Some(std::process::id() as i32));
    assert!(uid.is_some());
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    assert_eq!(command.as_deref(), Some(comm.trim_end()));
}

#[test]
fn outputs_parse_and_refuse_relative_paths() {
    assert_eq!(Output::parse("auto"), Ok(Output::Auto));
    assert_eq!(
        Output::parse("/var/log/audit.jsonl"),
        Ok(Output::File("/var/log/audit.jsonl".into()))
    );
    assert!(Output::parse("audit.jsonl").unwrap_err().contains("absolute"));
}

/// The journal entry, as journald would receive it: on a machine without
/// journald (CI) the test stands in for it on its socket.
#[test]
fn a_journal_entry_carries_its_own_identifier_and_a_field_per_part() {
    let path = std::path::Path::new("/run/systemd/journal/socket");
    if path.exists() {
        eprintln!("skipped: a real journald listens on {}", path.display());
        return;
    }
    if std::fs::create_dir_all(path.parent().unwrap()).is_err() {
        eprintln!("skipped: cannot create {}", path.display());
        return;
    }
    let Ok(journald) = std::os::unix::net::UnixDatagram::bind(path) else {
        eprintln!("skipped: cannot bind {}", path.display());
        return;
    };
    let sink = Sink::open(&Output::Journal, false).unwrap();
    sink.write(&record(Peer::Unix {
        uid: Some(1000),
        pid: Some(4242),
        command: Some("trader".into()),
    }));
    journald.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 65536];
    // The layer's empty probe when it opened, then the entry.
    let mut n = 0;
    for _ in 0..3 {
        n = journald.recv(&mut buf).unwrap();
        if n > 0 {
            break;
        }
    }
    let _ = std::fs::remove_file(path);
    let entry = native_fields(&buf[..n]);
    for (key, value) in [
        ("SYSLOG_IDENTIFIER", "ethgas-sidecar-audit"),
        ("CLASS", "funds"),
        ("DECISION", "refused"),
        ("PEER_UID", "1000"),
        ("PEER_PID", "4242"),
        ("PEER_COMMAND", "trader"),
        ("PATH", "/api/v1/user/funding/withdraw"),
        ("STATUS", "403"),
    ] {
        assert_eq!(entry.get(key).map(String::as_str), Some(value), "{key} in {entry:?}");
    }
}

/// journald's native protocol: `KEY=value\n`, or `KEY\n` + a 64-bit
/// little-endian length + the value + `\n`.
fn native_fields(mut data: &[u8]) -> std::collections::HashMap<String, String> {
    let mut fields = std::collections::HashMap::new();
    while !data.is_empty() {
        let end = data.iter().position(|&b| b == b'\n').unwrap();
        let line = &data[..end];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            let (k, v) = (&line[..eq], &line[eq + 1..]);
            fields.insert(String::from_utf8_lossy(k).into(), String::from_utf8_lossy(v).into());
            data = &data[end + 1..];
        } else {
            let rest = &data[end + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            let value = &rest[8..8 + len];
            fields.insert(
                String::from_utf8_lossy(line).into(),
                String::from_utf8_lossy(value).into(),
            );
            data = &rest[8 + len + 1..];
        }
    }
    fields
}

/// `auto` never keeps the sidecar from starting: when stderr is the journal
/// but journald's socket cannot be reached, the records go to stderr.
#[test]
fn auto_falls_back_to_stderr_when_the_journal_cannot_be_reached() {
    assert!(Sink::open(&Output::Auto, true).is_ok());
    assert!(Sink::open(&Output::Auto, false).is_ok());
}

//! The log level as people write it: `warning` (what `journalctl -p
//! warning` teaches) and the other syslog spellings are levels, in
//! `log.level` and in `RUST_LOG`; a word that is no level is refused by
//! `check-config` and `run`, naming the valid ones. The sidecar never runs
//! with its logging silently off.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A config with `log.level = level` whose start logs a warning: a
/// `ca_file` that a plain-http API does not use.
fn config_with_level(dir: &std::path::Path, level: &str) -> std::path::PathBuf {
    let pw = dir.join("pw");
    write_private(&pw, "pw\n");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, "").unwrap();
    let config = dir.join(format!("config-{level}.toml"));
    std::fs::write(
        &config,
        format!(
            "[proxy]\nlisten = \"127.0.0.1:0\"\n[upstream]\nbase_url = \"http://127.0.0.1:9\"\nca_file = {:?}\n\
             [auth]\nusername = \"alice\"\npassword_file = {:?}\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [log]\nlevel = \"{level}\"\n",
            ca.display().to_string(),
            pw.display().to_string()
        ),
    )
    .unwrap();
    config
}

/// Runs the sidecar until its stderr has a line containing `want` (true),
/// or 20 s pass or it exits (false); then stops it. Returns the log.
fn run_until(config: &std::path::Path, envs: &[(&str, &str)], want: &str) -> (bool, String) {
    let mut cmd = Command::new(binary());
    cmd.args(["run", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_FDS")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut log = String::new();
    let mut found = false;
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        log.push_str(&line);
        log.push('\n');
        if line.contains(want) {
            found = true;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    (found, log)
}

#[test]
fn log_level_warning_logs_warnings_and_nothing_quieter() {
    let dir = tempfile::tempdir().unwrap();
    for (level, env) in [
        ("warning", None),
        ("info", Some("warning")),
        ("info", Some("err,ethgas_sidecar=warning")),
    ] {
        let config = config_with_level(dir.path(), level);
        let envs: Vec<(&str, &str)> = env.map(|e| ("RUST_LOG", e)).into_iter().collect();
        let (found, log) = run_until(&config, &envs, "upstream.ca_file is set");
        assert!(
            found,
            "log.level = {level:?}, RUST_LOG = {env:?}: no warning logged:\n{log}"
        );
        assert!(
            !log.contains(" INFO "),
            "log.level = {level:?}, RUST_LOG = {env:?}: info lines:\n{log}"
        );
    }
}

#[test]
fn a_word_that_is_no_level_is_refused_by_check_config_and_run_naming_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    // Accepted spellings pass check-config.
    for level in ["warning", "err", "notice", "WARN", "info,hyper_util=warning"] {
        let (code, _, err) = check_config(&config_with_level(dir.path(), level), &[]);
        assert_eq!(code, Some(0), "{level}: {err}");
    }
    // A word that is no level: refused in the file and in RUST_LOG.
    let bad = config_with_level(dir.path(), "verbose");
    let (code, _, err) = check_config(&bad, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("`log.level`") && err.contains("warn"), "{err}");
    let good = config_with_level(dir.path(), "info");
    let (code, _, err) = check_config(&good, &[("RUST_LOG", "verbose")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("RUST_LOG") && err.contains("not a level"), "{err}");
    let (code, _, err) = check_config(&good, &[("RUST_LOG", "debug")]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("RUST_LOG=\"debug\" is set and takes precedence"), "{err}");

    // `run` refuses them too, before anything is served.
    for (config, env) in [(&bad, None), (&good, Some("verbose")), (&good, Some("off"))] {
        let mut cmd = Command::new(binary());
        cmd.args(["run", "--config"]).arg(config).env_remove("RUST_LOG");
        if let Some(e) = env {
            cmd.env("RUST_LOG", e);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("level") && !err.contains("listening"), "{err}");
    }
}

//! Signals against a sidecar whose configuration is slow to load (a
//! keystore: its KDF takes about a second by design): a SIGHUP while it
//! starts must not end it, and a burst of SIGHUPs must cost a bounded number
//! of reloads (one running, at most one pending), not one unlock each.
//! Counted from the process's own log lines.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// PBKDF2 rounds of the test keystore: about a second of CPU to unlock in a
/// debug build.
const ROUNDS: u32 = 1 << 18;

/// A Web3 Secret Storage (V3) keystore of `secret` under `password`, with
/// PBKDF2-HMAC-SHA256 at `rounds`.
fn keystore(secret: &[u8], password: &str, rounds: u32) -> String {
    use alloy_primitives::hex;
    use ctr::cipher::{KeyIvInit, StreamCipher};
    let (salt, iv) = ([7u8; 32], [9u8; 16]);
    let mut dk = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), &salt, rounds, &mut dk);
    let mut ciphertext = secret.to_vec();
    ctr::Ctr128BE::<aes::Aes128>::new_from_slices(&dk[..16], &iv)
        .unwrap()
        .apply_keystream(&mut ciphertext);
    let mac = alloy_primitives::keccak256([&dk[16..], &ciphertext[..]].concat());
    format!(
        r#"{{"version": 3, "crypto": {{"cipher": "aes-128-ctr", "cipherparams": {{"iv": "{}"}},
        "ciphertext": "{}", "kdf": "pbkdf2", "kdfparams": {{"c": {rounds}, "dklen": 32,
        "prf": "hmac-sha256", "salt": "{}"}}, "mac": "{}"}}}}"#,
        hex::encode(iv),
        hex::encode(&ciphertext),
        hex::encode(salt),
        hex::encode(mac)
    )
}

/// A wallet config with a slow keystore, in front of a live mock that
/// accepts its key.
async fn keystore_setup() -> (Api, tempfile::TempDir, PathBuf) {
    let (key_hex, key) = random_key_hex();
    let api = start_live_api(key.address(), Duration::from_secs(3600), Duration::from_secs(7 * 86400)).await;
    let dir = tempfile::tempdir().unwrap();
    let secret: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&key_hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let ks = dir.path().join("keystore.json");
    write_private(&ks, &keystore(&secret, "pw", ROUNDS));
    let pw = dir.path().join("keystore.password");
    write_private(&pw, "pw\n");
    let lines = format!(
        "keystore_file = {:?}\nkeystore_password_file = {:?}",
        ks.display().to_string(),
        pw.display().to_string()
    );
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        wallet_config_text(api.addr, &lines, &Extra::default()).replace("\"debug\"", "\"info\""),
    )
    .unwrap();
    (api, dir, config)
}

/// CPU time the process has used (user + system), from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    // After the command name: state is field 3, utime 14 and stime 15 (1-based).
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

fn kill(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -s {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sighup_while_the_keystore_unlocks_at_start_does_not_end_the_process_and_is_applied_after_start() {
    let (_api, _dir, config) = keystore_setup().await;
    let mut child = Command::new(binary())
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_FDS")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    // Deep in the start: 150 ms of CPU spent (the unlock), nothing served yet.
    let started = Instant::now();
    while cpu_time(pid) < Duration::from_millis(150) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "ended early: {}",
            log.lock().unwrap()
        );
        assert!(started.elapsed() < Duration::from_secs(30), "no CPU spent");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!log.lock().unwrap().contains("listening"), "the start was over already");
    kill(pid, "HUP");
    let applied = |log: &str| log.contains("configuration reloaded");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !applied(&log.lock().unwrap()) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the SIGHUP during the start ended the process ({status:?}); log:\n{}",
                log.lock().unwrap()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no reload after start; log:\n{}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = log.lock().unwrap().clone();
    assert!(text.contains("SIGHUP arrived while starting"), "{text}");
    kill(pid, "TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
}

/// Reloads the log shows as started.
fn reloads(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("reloading") && l.contains("config="))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_sighups_during_a_keystore_unlock_are_coalesced_into_at_most_two_reloads() {
    let (_api, _dir, config) = keystore_setup().await;
    let mut proc = Proc::spawn(&config, &[]).await;
    let started = Instant::now();
    for _ in 0..30 {
        proc.signal("HUP");
    }
    let burst = started.elapsed();
    eventually(Duration::from_secs(60), "a reload is applied", || {
        proc.log().contains("configuration reloaded")
    })
    .await;
    // Now the file breaks: every reload from here on is refused at once, so
    // any queued reloads would show up as refusals in no time.
    std::fs::write(&config, "not toml [").unwrap();
    proc.signal("HUP");
    eventually(Duration::from_secs(60), "the broken file is refused", || {
        proc.log().contains("reload rejected")
    })
    .await;
    proc.signal("TERM");
    let status = proc.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}");
    let log = proc.log();
    let n = reloads(&log);
    println!("30 SIGHUPs in {} ms, then one more: {n} reloads", burst.as_millis());
    // One for the first SIGHUP, one for the rest of the burst (at most one
    // more should the burst outlast an unlock), one for the last SIGHUP.
    assert!(n <= 4, "{n} reloads for 31 SIGHUPs; log:\n{log}");
}

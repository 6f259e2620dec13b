//! Config files from `tests/configs/`: every valid one loads, every invalid
//! one is refused with a message that names the key (each file says what it
//! expects in `# expect:` lines) and the file. The shipped
//! `config.toml.example` is checked too.

use std::path::{Path, PathBuf};

mod common;

use ethgas_sidecar::config::{Config, Listen};

/// A copy of `tests/configs` whose password files only their owner can read
/// (git keeps no such mode, and the sidecar refuses a password file that
/// others can read).
fn fixtures() -> &'static Path {
    static COPY: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs");
        let dst = tempfile::tempdir().unwrap();
        for sub in ["", "valid", "invalid"] {
            std::fs::create_dir_all(dst.path().join(sub)).unwrap();
            for entry in std::fs::read_dir(src.join(sub)).unwrap() {
                let path = entry.unwrap().path();
                if path.is_file() {
                    let to = dst.path().join(sub).join(path.file_name().unwrap());
                    std::fs::copy(&path, &to).unwrap();
                    let mode = if sub.is_empty() { 0o600 } else { 0o644 };
                    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).unwrap();
                }
            }
        }
        dst
    })
    .path()
}

fn toml_files(dir: &str) -> Vec<PathBuf> {
    let dir = fixtures().join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn valid_configs_load() {
    let files = toml_files("valid");
    assert!(files.len() >= 2, "the valid folder is read: {files:?}");
    for f in files {
        if let Err(e) = Config::load(&f) {
            panic!("{} should load: {e}", f.display());
        }
    }
}

#[test]
fn full_config_sets_every_key() {
    let path = fixtures().join("valid/full.toml");
    let c = Config::load(&path).unwrap();
    assert_eq!(
        c.restart.proxy.listen,
        Listen::Unix("/run/ethgas-sidecar/proxy.sock".into())
    );
    assert_eq!(c.restart.proxy.unix_mode, 0o600);
    assert_eq!(c.live.proxy.allowed_clients.len(), 2);
    assert!(!c.live.proxy.intercept_login);
    assert_eq!(c.live.proxy.host_aliases, vec!["api.ethgas.com", "api.ethgas.com"]);
    assert_eq!(c.live.proxy.replay_buffer, 131072);
    assert_eq!(c.live.proxy.public_prefixes, ["/api/v1/p/", "/api/v2/public/"]);
    assert_eq!(
        c.restart.upstream.base_url.origin.to_string(),
        "https://testnet-api.ethgas.com/"
    );
    assert_eq!(
        c.restart.upstream.websocket_url.to_string(),
        "wss://testnet-ws.ethgas.com/"
    );
    assert_eq!(c.live.auth.refresh_ratio, 0.8);
    assert_eq!(c.live.auth.credential_retry_max, std::time::Duration::from_secs(600));
    assert_eq!(c.restart.admin.listen, Listen::Tcp("[::1]:9090".parse().unwrap()));
    let shown = c.render_redacted();
    assert!(!shown.contains("not-a-real-password"), "{shown}");
}

#[test]
fn invalid_configs_are_refused_naming_the_key_and_file() {
    let files = toml_files("invalid");
    assert!(files.len() >= 15, "the invalid folder is read: {files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let expects: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# expect: ")).collect();
        assert!(!expects.is_empty(), "{} has no `# expect:` line", f.display());
        let err = match Config::load(&f) {
            Ok(_) => panic!("{} should be refused", f.display()),
            Err(e) => e.to_string(),
        };
        for want in expects {
            assert!(
                err.contains(want),
                "{}: error should mention {want:?}, got: {err}",
                f.display()
            );
        }
        assert!(err.contains(&f.display().to_string()), "names the file: {err}");
        assert!(!err.contains("not-a-real-password"), "no secret in errors: {err}");
    }
}

#[test]
fn shipped_example_is_valid_apart_from_its_password_path() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("config.toml.example")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("password"), "x\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path().join("password"), std::fs::Permissions::from_mode(0o600)).unwrap();
    // Its default source is the systemd credential; read a file here instead.
    // And its username is a placeholder that must be replaced.
    let text = text
        .replace("password_credential = \"password\"", "password_file = \"password\"")
        .replace("\"your_username\"", "\"alice\"");
    let c = Config::from_toml(&text, &dir.path().join("config.toml")).unwrap();
    assert_eq!(
        c.restart.upstream.base_url.origin.to_string(),
        "https://api.ethgas.com/"
    );
    assert_eq!(c.restart.proxy.listen, Listen::Tcp("127.0.0.1:8080".parse().unwrap()));
    // Every key it shows commented out is a real key: uncomment them all.
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            // The sections shown commented out (`# [[listeners]]`, `# [policy]`) too.
            Some(rest) if rest.starts_with("[[") || rest == "[policy]" => rest,
            Some(rest)
                if is_setting(rest)
                    && !rest.starts_with("base_url")
                    && !rest.starts_with("password_")
                    && !rest.starts_with("ca_file") =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    if let Err(e) = Config::from_toml(&uncommented, &dir.path().join("config.toml")) {
        panic!("an example key is not accepted: {e}");
    }
}

/// `key = value` with a plain key (not prose that happens to hold " = ").
fn is_setting(line: &str) -> bool {
    line.split_once(" = ")
        .is_some_and(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
}

#[test]
fn password_credential_reads_credentials_directory() {
    // The systemd path, without systemd: CREDENTIALS_DIRECTORY is read by the
    // child process only, so run the binary.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("password"), "from-credential\n").unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[upstream]\nbase_url = \"https://api.ethgas.com\"\n[auth]\nusername = \"u\"\npassword_credential = \"password\"\n",
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_ethgas-sidecar");
    let ok = std::process::Command::new(bin)
        .args(["check-config", "--config"])
        .arg(&cfg)
        .env("CREDENTIALS_DIRECTORY", dir.path())
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let shown = String::from_utf8_lossy(&ok.stdout);
    assert!(shown.contains("password_credential = \"password\""), "{shown}");
    assert!(!shown.contains("from-credential"));

    // check-config outside systemd (as before installing): a pass, with a
    // note that the credential is read at start and how to check it.
    let (code, out, err) = common::check_config(&cfg, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("note: auth.password_credential = \"password\"") && err.contains("CREDENTIALS_DIRECTORY="),
        "{err}"
    );
    assert!(out.contains("password_credential = \"password\""), "{out}");

    // `run` cannot start without it: exit 1 naming the key.
    let missing = std::process::Command::new(bin)
        .args(["run", "--config"])
        .arg(&cfg)
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("auth.password_credential") && err.contains("CREDENTIALS_DIRECTORY"),
        "{err}"
    );
}

#[test]
fn check_config_passes_the_shipped_example_once_its_username_is_set() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(root.join("config.toml.example")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");

    // As shipped: the placeholder username is refused, by check-config and run.
    std::fs::write(&cfg, &example).unwrap();
    let (code, _, err) = common::check_config(&cfg, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("`auth.username`") && err.contains("placeholder"), "{err}");
    let run = std::process::Command::new(common::binary())
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("`auth.username`"));

    // With a username: a pass outside systemd, the credential left for the start.
    std::fs::write(&cfg, example.replace("\"your_username\"", "\"alice\"")).unwrap();
    let (code, out, err) = common::check_config(&cfg, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("note: auth.password_credential"), "{err}");
    assert!(out.contains("username = \"alice\""), "{out}");

    // The wallet setup with its key in a credential: the address is named
    // as not yet known, never made up.
    let wallet = example
        .lines()
        .filter(|l| !l.starts_with("username") && !l.starts_with("password_"))
        .map(|l| match l.strip_prefix("## ") {
            Some(rest) if rest.starts_with("method") || rest.starts_with("private_key_credential") => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&cfg, wallet).unwrap();
    let (code, out, err) = common::check_config(&cfg, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("note: auth.private_key_credential = \"wallet-key\""),
        "{err}"
    );
    assert!(
        out.contains("address = \"<known once the key is read at start>\""),
        "{out}"
    );
}

#[test]
fn run_with_a_bad_config_exits_1_before_binding() {
    let bin = env!("CARGO_BIN_EXE_ethgas-sidecar");
    let bad = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/invalid/bad_url.toml");
    let out = std::process::Command::new(bin)
        .args(["run", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("upstream.base_url"), "{err}");
    assert!(!err.contains("listening"), "nothing was bound: {err}");

    let out = std::process::Command::new(bin)
        .args(["check-config", "--config", "/nonexistent/config.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/config.toml"));
}

#[test]
fn shipped_example_wallet_block_is_valid() {
    use std::os::unix::fs::PermissionsExt;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("config.toml.example")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hex = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
    std::fs::write(dir.path().join("wallet.key"), format!("0x{hex}\n")).unwrap();
    std::fs::set_permissions(dir.path().join("wallet.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let address = ethgas_sidecar::eth::WalletKey::from_hex(hex)
        .unwrap()
        .address()
        .to_string();
    // The wallet block replaces the username and password lines.
    let wallet: String = text
        .lines()
        .filter(|l| !l.starts_with("username"))
        .filter(|l| !l.starts_with("username") && !l.starts_with("password_"))
        .map(|l| match l.strip_prefix("## ") {
            Some(rest) if is_setting(rest) => rest
                .replace(
                    "private_key_credential = \"wallet-key\"",
                    "private_key_file = \"wallet.key\"",
                )
                .replace("0x0000000000000000000000000000000000000000", &address),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let c = Config::from_toml(&wallet, &dir.path().join("config.toml"))
        .unwrap_or_else(|e| panic!("the wallet block does not load: {e}\n{wallet}"));
    assert_eq!(c.live.auth.account(), address);
    let shown = c.render_redacted();
    assert!(
        shown.contains("method = \"wallet\"") && shown.contains(&address),
        "{shown}"
    );
    assert!(!shown.contains(hex), "{shown}");
}

//! The Debian package's recipe (`[package.metadata.deb]` in Cargo.toml)
//! against the checkout: every file it ships is committed (so `cargo deb`
//! works from a clean clone), its changelog names this version, and the
//! shipped unit, binary path and example config agree with each other.
//! CI builds the package itself and checks it with lintian and
//! systemd-analyze (contrib/debian/check-deb.sh).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn deb_metadata() -> toml::Table {
    let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).unwrap();
    manifest["package"]["metadata"]["deb"].as_table().unwrap().clone()
}

/// `(source, destination)` of every asset.
fn assets() -> Vec<(String, String)> {
    deb_metadata()["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_array().expect("assets as [source, dest, mode]");
            (a[0].as_str().unwrap().to_string(), a[1].as_str().unwrap().to_string())
        })
        .collect()
}

/// Files matching a source that may end in `*.ext` (the only glob used).
fn matches(source: &str) -> Vec<PathBuf> {
    match source.rsplit_once("/*") {
        Some((dir, suffix)) => std::fs::read_dir(root().join(dir))
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(suffix))
            .collect(),
        None => vec![root().join(source)].into_iter().filter(|p| p.is_file()).collect(),
    }
}

#[test]
fn every_shipped_file_is_in_the_checkout() {
    let assets = assets();
    assert!(assets.len() >= 10, "{assets:?}");
    for (source, dest) in &assets {
        if source.starts_with("target/release/") {
            // Built by `cargo deb`; cargo-deb maps the path to the profile's.
            assert_eq!(source, "target/release/ethgas-sidecar");
            assert_eq!(dest, "usr/bin/");
            continue;
        }
        assert!(
            !matches(source).is_empty(),
            "asset {source:?} matches no committed file"
        );
    }
    let changelog = deb_metadata()["changelog"].as_str().unwrap().to_string();
    assert!(root().join(&changelog).is_file(), "{changelog}");
    // The man pages and completions are generated (tests/cli.rs) and all shipped.
    assert_eq!(matches("contrib/man/*.1").len(), 6);
    for shell in ["ethgas-sidecar.bash", "_ethgas-sidecar", "ethgas-sidecar.fish"] {
        assert!(assets.iter().any(|(s, _)| s.ends_with(shell)), "{shell} not shipped");
    }
}

#[test]
fn the_changelog_names_this_version() {
    let changelog = read("contrib/debian/changelog");
    let first = changelog.lines().next().unwrap();
    let revision = deb_metadata()
        .get("revision")
        .and_then(|r| r.as_str().map(str::to_string))
        .unwrap_or_else(|| "1".into());
    let version = format!("{}-{revision}", env!("CARGO_PKG_VERSION"));
    assert!(
        first.starts_with(&format!("ethgas-sidecar ({version}) ")),
        "contrib/debian/changelog starts with {first:?}; add an entry for {version}"
    );
}

#[test]
fn unit_binary_and_config_agree() {
    let unit = read("systemd/ethgas-sidecar.service");
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
    assert!(
        exec.starts_with("/usr/bin/ethgas-sidecar run --config /etc/ethgas-sidecar/config.toml"),
        "{exec}"
    );
    assert!(
        assets()
            .iter()
            .any(|(s, d)| s == "config.toml.example" && d == "etc/ethgas-sidecar/config.toml")
    );
    // The unit hands the password over as a credential; the shipped config
    // reads that very credential by default.
    let credential = unit
        .lines()
        .find_map(|l| l.strip_prefix("LoadCredential="))
        .and_then(|c| c.split_once(':'))
        .map(|(name, _)| name.to_string())
        .unwrap();
    let example: toml::Table = toml::from_str(&read("config.toml.example")).unwrap();
    assert_eq!(
        example["auth"]["password_credential"].as_str(),
        Some(credential.as_str())
    );
    assert!(example["auth"].get("password_file").is_none());
    // The units are found by cargo-deb under the package's name.
    let units = deb_metadata()["systemd-units"].clone();
    let dir = units["unit-scripts"].as_str().unwrap();
    for unit in ["ethgas-sidecar.service", "ethgas-sidecar.socket"] {
        assert!(Path::new(&root().join(dir).join(unit)).is_file(), "{unit}");
    }
    assert_eq!(units["enable"].as_bool(), Some(false), "documented as not enabled");
}

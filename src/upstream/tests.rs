//! Unit tests of `upstream`.

use super::*;
use crate::config::Config;

fn settings(base: &str) -> UpstreamSettings {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "x").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path().join("pw"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = format!("[upstream]\nbase_url = {base:?}\n[auth]\nusername = \"u\"\npassword_file = \"pw\"\n");
    Config::from_toml(&text, &dir.path().join("c.toml"))
        .unwrap()
        .restart
        .upstream
}

#[test]
fn joins_path_and_query_to_the_base() {
    let t = Target::new(&settings("https://api.ethgas.com"));
    let uri = t.uri(Some(PathAndQuery::from_static("/api/v1/user/info?x=1")));
    assert_eq!(uri.to_string(), "https://api.ethgas.com/api/v1/user/info?x=1");
    assert_eq!((t.host.as_str(), t.port), ("api.ethgas.com", 443));

    let t = Target::new(&settings("http://127.0.0.1:7000/"));
    let uri = t.uri(Some(PathAndQuery::from_static("/api/v1/p/x")));
    assert_eq!(uri.to_string(), "http://127.0.0.1:7000/api/v1/p/x");
    assert_eq!(t.port, 7000);
}

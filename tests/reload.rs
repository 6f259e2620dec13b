//! Reload (SIGHUP) as an operator meets it: one path, and no setting half
//! applied. A key that hyper fixes when a worker starts (the header limit)
//! is named as needing a restart and keeps its running value, while the
//! keys a reload can apply (the token wait, the interception switch) change
//! at once.

mod common;

use std::time::Duration;

use common::*;
use http::Request;
use http_body_util::Full;

async fn with_header(c: &TestClient, url: &str, bytes: usize) -> Reply {
    let req = Request::get(url)
        .header("x-padding", "a".repeat(bytes))
        .body(Full::default())
        .unwrap();
    send(c, req).await
}

#[tokio::test]
async fn a_header_limit_change_is_named_as_needing_a_restart_and_never_half_applied() {
    let api = start_api(Duration::from_secs(3600)).await;
    let files = write_config(api.addr, PASSWORD, &Extra::proxy("max_header_bytes = 4096\n"));
    let proc = Proc::spawn(&files.config, &[]).await;
    let c = client();
    wait_ready(&c, proc.admin).await;
    let url = format!("http://{}/api/v1/user/info", proc.proxy);
    assert_eq!(with_header(&c, &url, 1000).await.status, 200);
    assert_eq!(with_header(&c, &url, 6000).await.status, 431, "over the 4 KiB limit");

    // Raise the limit and switch interception off, then reload.
    let text = std::fs::read_to_string(&files.config).unwrap();
    let text = text.replace(
        "max_header_bytes = 4096",
        "max_header_bytes = 65536\nintercept_login = false",
    );
    std::fs::write(&files.config, text).unwrap();
    proc.signal("HUP");
    eventually(Duration::from_secs(10), "the reload", || {
        proc.log().contains("configuration reloaded")
    })
    .await;
    let log = proc.log();
    let warning = log
        .lines()
        .find(|l| l.contains("take effect only after a restart"))
        .unwrap_or_else(|| panic!("no restart warning in:\n{log}"));
    assert!(warning.contains("proxy.max_header_bytes"), "{warning}");
    assert!(
        !warning.contains("intercept_login"),
        "a reloadable key is not reported as needing a restart: {warning}"
    );

    // The running limit stays whole: still 431, not accepted by one layer
    // and refused by another.
    assert_eq!(with_header(&c, &url, 6000).await.status, 431);
    assert_eq!(with_header(&c, &url, 1000).await.status, 200);
    // The reloadable key took effect: a program's login now reaches the API.
    let before = api.mock.counts().logins_refused;
    let r = post_json(
        &c,
        &format!("http://{}/api/v1/user/login", proc.proxy),
        r#"{"username":"alice","password":"wrong"}"#,
    )
    .await;
    assert_eq!(r.status, 401, "forwarded, not intercepted: {:?}", r.body);
    assert!(
        api.mock.counts().logins_refused > before,
        "the API saw the program's login"
    );
}

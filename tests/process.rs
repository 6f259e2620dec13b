//! The binary as a process: signals, shutdown, and what it writes to its log.
//! The mock API runs in the test process and counts what it saw.

mod common;

use std::time::Duration;

use common::*;
use http::Request;
use http_body_util::Full;

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish_then_logs_out() {
    let api = start_api(Duration::from_secs(3600)).await;
    let files = write_config(api.addr, PASSWORD, &Extra::default());
    let mut proc = Proc::spawn(&files.config, &[]).await;
    let c = client();
    wait_ready(&c, proc.admin).await;

    let url = format!("http://{}/api/v1/mock/slow?ms=1500", proc.proxy);
    let c2 = c.clone();
    let in_flight = tokio::spawn(async move { get(&c2, &url).await });
    eventually(Duration::from_secs(5), "the slow request to reach the API", || {
        api.mock.counts().private_ok == 1
    })
    .await;

    proc.signal("TERM");
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200, "the request in flight finished: {:?}", reply.body);
    assert_eq!(reply.json()["data"]["slow"], true);

    let status = proc.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(0), "clean exit; log:\n{}", proc.log());
    assert_eq!(api.mock.counts().logouts, 1, "logged out upstream");
    assert_eq!(api.mock.counts().logins_ok, 1);
    let log = proc.log();
    assert!(log.contains("logged out"), "{log}");
    // The listener is gone.
    assert!(std::net::TcpStream::connect(proc.proxy).is_err());
}

#[tokio::test]
async fn sigint_stops_too_and_a_second_signal_does_not_hang() {
    let api = start_api(Duration::from_secs(3600)).await;
    let files = write_config(api.addr, PASSWORD, &Extra::default());
    let mut proc = Proc::spawn(&files.config, &[]).await;
    let c = client();
    wait_ready(&c, proc.admin).await;
    proc.signal("INT");
    let status = proc.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(0), "{}", proc.log());
    assert_eq!(api.mock.counts().logouts, 1);
}

#[tokio::test]
async fn trace_logs_never_contain_the_password_or_a_token() {
    let api = start_api(Duration::from_secs(2)).await;
    let files = write_config(api.addr, PASSWORD, &Extra::default());
    let mut proc = Proc::spawn(&files.config, &[("RUST_LOG", "trace")]).await;
    let c = client();
    wait_ready(&c, proc.admin).await;
    let base = format!("http://{}", proc.proxy);

    // Several refresh cycles of ordinary traffic, plus the calls that carry
    // secrets: a program's own login (with a password), refresh and logout,
    // a request with its own bearer token, and one the API rejects.
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut placeholders = Vec::new();
    while tokio::time::Instant::now() < until {
        assert_eq!(get(&c, &format!("{base}/api/v1/user/info")).await.status, 200);
        let login = post_json(
            &c,
            &format!("{base}/api/v1/user/login"),
            &format!(r#"{{"username":"{USER}","password":"{PASSWORD}"}}"#),
        )
        .await;
        assert_eq!(login.status, 200);
        let token = login.json()["data"]["accessToken"].as_str().unwrap().to_string();
        let req = Request::get(format!("{base}/api/v1/mock/echo"))
            .header("authorization", format!("Bearer {token}"))
            .body(Full::default())
            .unwrap();
        assert_eq!(send(&c, req).await.status, 200);
        placeholders.push(token);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    api.mock.revoke_access_tokens();
    assert_eq!(
        get(&c, &format!("{base}/api/v1/user/info")).await.status,
        200,
        "replayed"
    );
    proc.signal("TERM");
    assert_eq!(proc.wait_exit(Duration::from_secs(15)).await.code(), Some(0));

    let log = proc.log();
    assert!(log.contains("TRACE") || log.contains("DEBUG"), "trace logging was on");
    assert!(log.contains("token refreshed"), "refreshes happened: {log}");
    let counts = api.mock.counts();
    assert!(counts.refreshes_ok >= 2, "{counts:?}");
    assert!(!log.contains(PASSWORD), "the password leaked into the log");
    let tokens = api.mock.issued_tokens();
    assert!(tokens.len() >= 4);
    for t in &tokens {
        assert!(!log.contains(t.as_str()), "a token leaked into the log");
        // Not even its signature segment.
        let sig = t.rsplit('.').next().unwrap();
        assert!(!log.contains(sig), "a token's signature leaked into the log");
    }
}

#[tokio::test]
async fn json_logs_are_one_object_a_line_with_filterable_fields() {
    let api = start_api(Duration::from_secs(2)).await;
    let files = write_config(api.addr, PASSWORD, &Extra::default());
    let text = std::fs::read_to_string(&files.config)
        .unwrap()
        .replace("[log]\n", "[log]\nformat = \"json\"\n");
    std::fs::write(&files.config, text).unwrap();
    let mut proc = Proc::spawn_command(
        std::process::Command::new(binary())
            .arg("run")
            .arg("--config")
            .arg(&files.config),
        &[],
    )
    .await;
    let c = client();
    wait_ready(&c, proc.admin).await;
    assert_eq!(
        get(&c, &format!("http://{}/api/v1/user/info", proc.proxy)).await.status,
        200
    );
    eventually(Duration::from_secs(5), "a refresh", || {
        api.mock.counts().refreshes_ok >= 1
    })
    .await;
    proc.signal("TERM");
    assert_eq!(proc.wait_exit(Duration::from_secs(15)).await.code(), Some(0));

    let log = proc.log();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert!(events.len() >= 4);
    for e in &events {
        assert!(
            e["timestamp"].is_string() && e["level"].is_string() && e["message"].is_string(),
            "{e}"
        );
    }
    let login = events
        .iter()
        .find(|e| e["message"].as_str().unwrap().starts_with("logged in"))
        .expect("a login event");
    assert_eq!(login["level"], "INFO");
    assert_eq!(login["username"], USER);
    assert!(login["next_refresh_in_ms"].as_u64().unwrap() > 0);
    assert!(
        events
            .iter()
            .any(|e| e["message"].as_str().unwrap().starts_with("token refreshed"))
    );
    // One line per request, at debug level only.
    let requests: Vec<_> = events.iter().filter(|e| e["message"] == "request").collect();
    assert_eq!(requests.len(), 1, "one line for the one request");
    assert_eq!(requests[0]["level"], "DEBUG");
    assert_eq!(requests[0]["status"], 200);
    assert_eq!(requests[0]["path"], "/api/v1/user/info");
}

//! The Grafana dashboard (contrib/grafana/ethgas-sidecar.json) and the alert
//! rules (contrib/alerts.yml) may only name metrics that `/metrics` exports,
//! so that a renamed metric cannot leave a panel or an alert silently empty.
//! Also checks that the dashboard is importable: one `${DS_PROMETHEUS}`
//! input that every panel and query uses, unique panel ids, a query in every
//! panel; and that every query of both parses as PromQL (promtool).

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use ethgas_sidecar::app::{self, Control, Listeners};
use ethgas_sidecar::config::Config;
use ethgas_sidecar::server::Listener;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const DATASOURCE: &str = "${DS_PROMETHEUS}";

fn contrib(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contrib").join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every identifier in `text` that starts with one of `prefixes`
/// (`ethgas_sidecar_…`, `process_…`).
fn metric_names(text: &str, prefixes: &[&str]) -> BTreeSet<String> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| is_ident(c)) {
        // Only whole identifiers: `xprocess_a` is not `process_a`.
        let tail = &rest[start..];
        let end = tail.find(|c: char| !is_ident(c)).unwrap_or(tail.len());
        let word = &tail[..end];
        if prefixes.iter().any(|p| word.starts_with(p) && word.len() > p.len()) {
            names.insert(word.to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// Sample names (`x_bucket`, `x_sum`, `x_count` for a histogram) and family
/// names (`# TYPE x histogram`) in a Prometheus text exposition.
fn exported(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(family) = line.strip_prefix("# TYPE ") {
            names.extend(family.split_whitespace().next().map(str::to_string));
        } else if !line.starts_with('#') && !line.is_empty() {
            names.extend(line.split(['{', ' ']).next().map(str::to_string));
        }
    }
    names
}

/// Every string value in the JSON document under a key in `keys`.
fn strings_under<'a>(v: &'a Value, keys: &[&str], out: &mut Vec<&'a str>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::String(s) if keys.contains(&k.as_str()) => out.push(s),
                    _ => strings_under(v, keys, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| strings_under(v, keys, out)),
        _ => {}
    }
}

/// A ready sidecar that has also applied one reload, so that series created
/// on first use (`reloads_total{result}`) exist; its `/metrics` text.
async fn scrape() -> String {
    let api = start_api(Duration::from_secs(3600)).await;
    let files = write_config(api.addr, PASSWORD, &Extra::default());
    let config = Config::load(&files.config).unwrap();
    let proxy = Listener::bind(&config.restart.proxy.listen, 0o660).await.unwrap();
    let admin_l = Listener::bind(&config.restart.admin.listen, 0o660).await.unwrap();
    let admin = admin_l.tcp_addr().unwrap();
    let proxy_addr = proxy.tcp_addr().unwrap();
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    let (reload, reloads) = tokio::sync::mpsc::unbounded_channel();
    let control = Control {
        reload: Some(reloads),
        ..Control::new(stop)
    };
    let listeners = Listeners {
        proxy,
        admin: Some(admin_l),
        more: Vec::new(),
    };
    tokio::spawn(app::run(config, listeners, control));
    let c = client();
    wait_ready(&c, admin).await;
    // One request through the proxy, so the latency histogram has a sample.
    let through = get(&c, &format!("http://{proxy_addr}/api/v1/user/info")).await;
    assert_eq!(through.status, 200);

    reload.send(()).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = String::from_utf8(get(&c, &format!("http://{admin}/metrics")).await.body.to_vec()).unwrap();
        if text.contains("ethgas_sidecar_reloads_total{") {
            return text;
        }
        assert!(tokio::time::Instant::now() < deadline, "reload not counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_metric_the_dashboard_and_the_alerts_use_is_exported() {
    let exposition = scrape().await;
    let exported = exported(&exposition);
    assert!(exported.contains("ethgas_sidecar_ready"), "{exposition}");
    assert!(exported.contains("ethgas_sidecar_upstream_request_duration_seconds_bucket"));

    let dashboard: Value =
        serde_json::from_str(&contrib("grafana/ethgas-sidecar.json")).expect("the dashboard is JSON");
    let mut texts = Vec::new();
    strings_under(
        &dashboard,
        &["expr", "query", "definition", "description", "title"],
        &mut texts,
    );
    let in_dashboard = metric_names(&texts.join("\n"), &["ethgas_sidecar_", "process_"]);
    let in_alerts = metric_names(&contrib("alerts.yml"), &["ethgas_sidecar_", "process_"]);
    // A scanner that finds nothing would check nothing.
    assert!(in_dashboard.len() >= 20, "{in_dashboard:?}");
    assert!(in_alerts.len() >= 5, "{in_alerts:?}");

    let missing = |used: &BTreeSet<String>| used.difference(&exported).cloned().collect::<Vec<_>>();
    assert!(
        missing(&in_dashboard).is_empty(),
        "contrib/grafana/ethgas-sidecar.json uses metrics /metrics does not export: {:?}",
        missing(&in_dashboard)
    );
    assert!(
        missing(&in_alerts).is_empty(),
        "contrib/alerts.yml uses metrics /metrics does not export: {:?}",
        missing(&in_alerts)
    );
}

#[test]
fn the_dashboard_is_importable() {
    let d: Value = serde_json::from_str(&contrib("grafana/ethgas-sidecar.json")).unwrap();
    let inputs = d["__inputs"].as_array().expect("__inputs");
    assert_eq!(inputs.len(), 1);
    assert_eq!(inputs[0]["name"], "DS_PROMETHEUS");
    assert_eq!(inputs[0]["type"], "datasource");
    assert_eq!(inputs[0]["pluginId"], "prometheus");
    assert!(d["id"].is_null(), "an exported dashboard has no id");
    assert_eq!(d["uid"], "ethgas-sidecar");

    let panels = d["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    let mut queries = 0;
    for p in panels {
        let title = p["title"].as_str().unwrap();
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate id on {title:?}");
        for k in ["x", "y", "w", "h"] {
            assert!(p["gridPos"][k].is_u64(), "{title:?} gridPos.{k}");
        }
        assert!(
            p["gridPos"]["x"].as_u64().unwrap() + p["gridPos"]["w"].as_u64().unwrap() <= 24,
            "{title:?}"
        );
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], DATASOURCE, "{title:?}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title:?} has no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], DATASOURCE, "{title:?}");
            let expr = t["expr"].as_str().unwrap();
            assert!(
                expr.contains("job=~\"$job\",instance=~\"$instance\""),
                "{title:?}: {expr}"
            );
            queries += 1;
        }
    }
    assert!(queries >= 20, "{queries}");
    for var in d["templating"]["list"].as_array().unwrap() {
        assert_eq!(var["datasource"]["uid"], DATASOURCE);
    }
}

/// promtool: `$PROMTOOL`, else on the PATH. CI provides it (.ci/run unpacks
/// Debian's prometheus package); elsewhere the test is skipped without it.
fn promtool() -> Option<PathBuf> {
    let candidate = std::env::var_os("PROMTOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("promtool"));
    let found = std::process::Command::new(&candidate)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(candidate);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "promtool not found (set PROMTOOL); CI must check the PromQL"
    );
    eprintln!("skipped: no promtool (set PROMTOOL=/path/to/promtool)");
    None
}

fn check_rules(promtool: &std::path::Path, file: &std::path::Path) {
    let out = std::process::Command::new(promtool)
        .args(["check", "rules"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules {}:\n{}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_promql_of_the_alerts_and_the_dashboard_parses() {
    let Some(promtool) = promtool() else { return };
    check_rules(
        &promtool,
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contrib/alerts.yml"),
    );

    // Every dashboard query as a recording rule, Grafana's variables filled
    // in as Grafana would (a JSON string is a valid YAML string).
    let dashboard: Value = serde_json::from_str(&contrib("grafana/ethgas-sidecar.json")).unwrap();
    let mut exprs = Vec::new();
    strings_under(&dashboard, &["expr"], &mut exprs);
    assert!(exprs.len() >= 20, "{}", exprs.len());
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in exprs.iter().enumerate() {
        let expr = expr
            .replace("$__rate_interval", "1m")
            .replace("$job", ".*")
            .replace("$instance", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            Value::String(expr)
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-rules.yml");
    std::fs::write(&file, rules).unwrap();
    check_rules(&promtool, &file);
}

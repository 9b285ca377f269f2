//! The Grafana dashboard (deploy/grafana/sfu-dashboard.json) only queries
//! metrics that a real server exports: every `sfu_*` and `process_*` name
//! in every panel's PromQL must be a metric family (`# TYPE <name>`) in a
//! scrape of `/metrics`, with `_bucket`, `_sum` and `_count` mapped back to
//! their histogram.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::*;
use serde_json::Value;

/// Suffixes of a histogram's series.
const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

/// Metric name prefixes the dashboard's queries are checked for.
const PREFIXES: [&str; 2] = ["sfu_", "process_"];

fn dashboard() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("deploy")
        .join("grafana")
        .join("sfu-dashboard.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every panel, including those nested in (collapsed) rows.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            if let Some(nested) = panel.get("panels") {
                walk(nested, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// The metric names in a PromQL expression: identifiers matching
/// `(sfu|process)_[a-z0-9_]+` that are not part of a longer identifier.
fn metric_names(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let mut names = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_here = (i == 0 || !is_ident_char(bytes[i - 1]))
            && PREFIXES
                .iter()
                .any(|p| bytes[i..].starts_with(p.as_bytes()));
        if !starts_here {
            i += 1;
            continue;
        }
        let end = bytes[i..]
            .iter()
            .position(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_'))
            .map_or(bytes.len(), |n| i + n);
        // `sfu_Foo` or `sfu_x:y` is some other identifier, not a metric name.
        if end == bytes.len() || !is_ident_char(bytes[end]) {
            names.push(expr[i..end].to_owned());
        }
        i = end.max(i + 1);
    }
    names
}

/// Family name and type of every `# TYPE` line in a scrape.
fn families(scrape: &str) -> Vec<(String, String)> {
    scrape
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| {
            let mut parts = rest.split_whitespace();
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect()
}

/// The family a series name belongs to: a histogram's `_bucket`, `_sum`
/// and `_count` series map to the histogram.
fn family_of(name: &str, families: &[(String, String)]) -> String {
    for suffix in HISTOGRAM_SUFFIXES {
        if let Some(base) = name.strip_suffix(suffix) {
            if families
                .iter()
                .any(|(n, t)| n == base && (t == "histogram" || t == "summary"))
            {
                return base.to_owned();
            }
        }
    }
    name.to_owned()
}

#[test]
fn metric_names_are_extracted_from_promql() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.99, sum by (le) (rate(sfu_forward_latency_seconds_bucket{job=~"$job"}[$__rate_interval])))"#
        ),
        vec!["sfu_forward_latency_seconds_bucket"]
    );
    assert_eq!(
        metric_names(
            r#"sum by (kind) (rate(sfu_rtp_bytes_in_total{kind="audio"}[1m])) * 8 / process_threads"#
        ),
        vec!["sfu_rtp_bytes_in_total", "process_threads"]
    );
    assert!(metric_names(r#"up{job="sfu", reason="send_failed"} + my_sfu_x + sfu_Y"#).is_empty());
    let fams = vec![
        ("sfu_a_seconds".to_owned(), "histogram".to_owned()),
        ("sfu_b_count".to_owned(), "counter".to_owned()),
    ];
    assert_eq!(family_of("sfu_a_seconds_bucket", &fams), "sfu_a_seconds");
    assert_eq!(family_of("sfu_a_seconds_sum", &fams), "sfu_a_seconds");
    assert_eq!(family_of("sfu_b_count", &fams), "sfu_b_count");
}

#[test]
fn dashboard_panels_have_titles_and_queries() {
    let dashboard = dashboard();
    assert!(
        dashboard["title"].as_str().is_some_and(|t| !t.is_empty()),
        "dashboard has no title"
    );
    let panels = panels(&dashboard);
    assert!(!panels.is_empty(), "dashboard has no panels");
    let mut with_targets = 0;
    for panel in &panels {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(!title.trim().is_empty(), "panel without a title: {panel}");
        let Some(targets) = panel.get("targets") else {
            continue;
        };
        let targets = targets
            .as_array()
            .unwrap_or_else(|| panic!("panel {title:?}: targets is not an array"));
        assert!(!targets.is_empty(), "panel {title:?} has no targets");
        with_targets += 1;
        for target in targets {
            let expr = target["expr"].as_str().unwrap_or_default();
            assert!(
                !expr.trim().is_empty(),
                "panel {title:?} has a target without an expr: {target}"
            );
        }
    }
    assert!(
        with_targets >= 10,
        "only {with_targets} panels have queries"
    );
}

#[tokio::test]
async fn dashboard_queries_only_exported_metrics() {
    let server = start_server().await;

    // The signaling counters are vectors whose series appear on first use:
    // one message and one error make both families part of the scrape.
    let mut ws = connect(server.http_addr).await;
    send_text(&mut ws, "not json").await;
    expect_error(&mut ws, "bad_json").await;
    ping_pong(&mut ws).await;

    let scrape = metrics(server.http_addr).await;
    let families = families(&scrape);
    assert!(
        !families.is_empty(),
        "no # TYPE lines in the scrape:\n{scrape}"
    );

    let dashboard = dashboard();
    let mut checked = BTreeSet::new();
    let mut missing = Vec::new();
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().unwrap_or_default();
        for target in panel
            .get("targets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let expr = target["expr"].as_str().unwrap_or_default();
            for name in metric_names(expr) {
                // The process collector exists on Linux only.
                if cfg!(not(target_os = "linux")) && name.starts_with("process_") {
                    continue;
                }
                let family = family_of(&name, &families);
                if !families.iter().any(|(n, _)| *n == family) {
                    missing.push(format!("{name} (panel {title:?})"));
                }
                checked.insert(family);
            }
        }
    }
    // Template variables query metrics too.
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let query = variable["definition"].as_str().unwrap_or_default();
        for name in metric_names(query) {
            let family = family_of(&name, &families);
            if !families.iter().any(|(n, _)| *n == family) {
                missing.push(format!("{name} (variable {})", variable["name"]));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics the server does not export: {missing:?}\nexported: {:?}",
        families.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    assert!(
        checked.len() >= 10,
        "only {} distinct metrics checked: {checked:?}",
        checked.len()
    );
    for must in [
        "sfu_rtp_bytes_in_total",
        "sfu_rtp_bytes_out_total",
        "sfu_forward_latency_seconds",
        "sfu_subscriber_loss_ratio",
        "sfu_ws_errors_total",
    ] {
        assert!(
            checked.contains(must),
            "the dashboard does not chart {must}"
        );
    }
    #[cfg(target_os = "linux")]
    for must in [
        "sfu_process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ] {
        assert!(
            checked.contains(must),
            "the dashboard does not chart {must}"
        );
    }

    drop(ws);
    stop_server(server).await;
}

//! `modelctl report`, called as a user would: the page of a registry
//! model, with live statistics from a file, and what it refuses.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn modelctl(registry: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelctl"))
        .arg("--registry")
        .arg(registry)
        .args(args)
        .output()
        .expect("modelctl runs")
}

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/format-1")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn report_writes_one_page_and_refuses_what_it_cannot_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reg = dir.path().join("registry");
    assert_eq!(modelctl(&reg, &["init"]).status.code(), Some(0));
    let out = modelctl(&reg, &["publish", &fixture("forest-v1-level3.bundle")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = modelctl(&reg, &["promote", "golden_forest", "production", "1.0.0"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // Live statistics as a server's status holds them, under `drift`.
    let card: serde_json::Value =
        serde_json::from_slice(&modelctl(&reg, &["show", "golden_forest"]).stdout).expect("card");
    let features: Vec<serde_json::Value> = card["feature_stats"]
        .as_array()
        .expect("stats")
        .iter()
        .map(|s| serde_json::json!({"name": s["name"], "psi": 0.5, "drifting": true, "live_fractions": vec![0.1; 10]}))
        .collect();
    let live = dir.path().join("status.json");
    std::fs::write(
        &live,
        serde_json::json!({"drift": {"window": 77, "features": features}}).to_string(),
    )
    .expect("live");
    let page = dir.path().join("report.html");
    let out = modelctl(
        &reg,
        &[
            "report",
            "golden_forest@production",
            "-o",
            &page.to_string_lossy(),
            "--live",
            &live.to_string_lossy(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let html = std::fs::read_to_string(&page).expect("the page");
    assert!(
        html.contains("golden_forest 1.0.0") && html.contains("Live window: 77 rows"),
        "{html}"
    );

    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"drift\": 3}").expect("junk");
    for args in [
        vec!["report", "nobody", "-o", "x.html"],
        vec!["report", "golden_forest@staging", "-o", "x.html"],
        vec![
            "report",
            "golden_forest",
            "-o",
            "x.html",
            "--live",
            &junk.to_string_lossy(),
        ],
    ] {
        let out = modelctl(&reg, &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).is_empty());
    }
}

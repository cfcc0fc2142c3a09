//! `modelctl card` and `modelctl verify`, called as a user would.

use std::path::PathBuf;
use std::process::{Command, Output};

fn modelctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelctl"))
        .args(args)
        .output()
        .expect("modelctl runs")
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/format-1")
        .join(name)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn card_prints_the_card_as_json() {
    let out = modelctl(&["card", fixture("linear-level9.bundle").to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let card: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(card["name"], "linear");
    assert_eq!(card["version"], "1.2.3");
    assert_eq!(card["kind"], "test.linear.v1");
    assert_eq!(card["metrics"]["mse"], 0.25);
}

/// `modelctl card B | head -c 300`: a reader that has gone before modelctl
/// writes (the pipe's read end is closed before it starts) ends modelctl
/// quietly, exit 0 and nothing on stderr, not with a panic (exit 101).
#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    for args in [vec!["card"], vec!["verify"], vec!["verify", "--json"]] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let bundle = fixture("linear-level9.bundle");
        let out = Command::new(env!("CARGO_BIN_EXE_modelctl"))
            .args(&args)
            .arg(&bundle)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("modelctl runs");
        assert_eq!(out.status.code(), Some(0), "{args:?}: stderr: {}", text(&out.stderr));
        assert!(out.stderr.is_empty(), "{args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn verify_accepts_a_sound_bundle_with_a_one_line_summary() {
    let out = modelctl(&["verify", fixture("tree-level3.bundle").to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("ok: "), "{stdout}");
    assert!(stdout.contains("golden_tree v1.0.0"), "{stdout}");
}

#[test]
fn verify_json_is_machine_readable() {
    let out = modelctl(&[
        "verify",
        "--json",
        fixture("linear-level0.bundle").to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(summary["format"], serde_json::json!([1, 0]));
    assert_eq!(summary["content_id"].as_str().map(str::len), Some(64));
}

#[test]
fn verify_refuses_a_damaged_bundle_with_exit_1_and_the_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("damaged.bundle");
    let mut bytes = std::fs::read(fixture("linear-level9.bundle")).expect("fixture");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&path, bytes).expect("write");
    let out = modelctl(&["verify", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("payload checksum mismatch"), "{stderr}");
    // The card is still readable: it lives in the header.
    assert_eq!(
        modelctl(&["card", path.to_str().expect("utf-8 path")]).status.code(),
        Some(0)
    );
}

#[test]
fn a_missing_file_is_exit_1_naming_the_path() {
    let out = modelctl(&["verify", "/nonexistent/model.bundle"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/model.bundle"));
}

#[test]
fn a_future_format_is_named_in_plain_words() {
    let out = modelctl(&["verify", fixture("format-2.0.bundle").to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unsupported bundle format 2.0"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(modelctl(&[]).status.code(), Some(2));
    assert_eq!(modelctl(&["card"]).status.code(), Some(2));
    assert_eq!(modelctl(&["promote", "only-model"]).status.code(), Some(2));
    assert_eq!(modelctl(&["no-such-command"]).status.code(), Some(2));
}

#[test]
fn progress_is_drawn_on_request_and_help_documents_exit_codes() {
    let out = modelctl(&[
        "verify",
        "--progress",
        fixture("linear-level9.bundle").to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("100%"), "{}", text(&out.stderr));
    // Without a terminal and without --progress, stderr stays clean for scripts.
    let out = modelctl(&["verify", fixture("linear-level9.bundle").to_str().expect("utf-8 path")]);
    assert!(out.stderr.is_empty());
    let help = modelctl(&["--help"]);
    assert!(text(&help.stdout).contains("Exit codes"), "{}", text(&help.stdout));
    for command in [
        "card", "verify", "versions", "promote", "rollback", "history", "compare", "best", "prune",
    ] {
        let out = modelctl(&[command, "--help"]);
        assert_eq!(out.status.code(), Some(0), "{command} --help");
    }
}

/// A scikit-learn classifier trained on string labels: `import-onnx` keeps
/// the class names (the card's `classes`), `predict` prints them, as
/// onnxruntime gives them.
#[test]
fn import_onnx_and_predict_name_the_classes_of_string_labels() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures.join("random_forest_string_labels.json")).expect("fixture"))
            .expect("json");
    let dir = tempfile::tempdir().expect("temp dir");
    // Missing values as NaN in the CSV.
    let csv: String = json["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            let cells: Vec<String> = r
                .as_array()
                .expect("row")
                .iter()
                .map(|x| x.as_f64().map_or_else(|| "NaN".to_owned(), |x| format!("{x}")))
                .collect();
            cells.join(",") + "\n"
        })
        .collect();
    let csv_path = dir.path().join("rows.csv");
    std::fs::write(&csv_path, csv).expect("csv");
    let bundle = dir.path().join("named.bundle");
    let graph = fixtures.join("random_forest_string_labels.onnx");
    let out = modelctl(&[
        "import-onnx",
        graph.to_str().expect("utf-8 path"),
        "--name",
        "named",
        "--output",
        bundle.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let card: serde_json::Value =
        serde_json::from_slice(&modelctl(&["card", bundle.to_str().expect("utf-8 path")]).stdout).expect("card");
    assert_eq!(card["kind"], "onnx.tree_ensemble.v3");
    let classes = card["classes"].as_array().expect("classes").clone();
    assert_eq!(classes.len(), 3, "{card}");
    let out = modelctl(&[
        "predict",
        bundle.to_str().expect("utf-8 path"),
        "--input",
        csv_path.to_str().expect("utf-8 path"),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let got: Vec<&serde_json::Value> = v["predictions"]
        .as_array()
        .expect("predictions")
        .iter()
        .map(|p| &p["label"])
        .collect();
    let want: Vec<&serde_json::Value> = json["labels"].as_array().expect("labels").iter().collect();
    assert_eq!(got, want, "onnxruntime's labels");
    assert!(want.iter().all(|l| classes.contains(l)));
}

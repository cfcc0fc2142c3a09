//! The registry commands of `modelctl`, called as a user would.
//!
//! One file over 500 lines, on purpose: every test drives the same small
//! harness (a registry folder, the binary, the format-1 fixtures).

mod common;

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

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn publish_list_promote_history_verify() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reg = dir.path();
    let out = modelctl(reg, &["init"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = modelctl(reg, &["publish", &fixture("linear-level0.bundle")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("published linear 1.2.3"), "{}", stdout(&out));

    // The same version again is refused, never overwritten.
    let out = modelctl(reg, &["publish", &fixture("linear-level9.bundle")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));

    let out = modelctl(reg, &["publish", &fixture("tree-level3.bundle")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let out = modelctl(reg, &["models", "--json"]);
    let models: Vec<String> = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(models, ["golden_tree", "linear"]);

    let out = modelctl(reg, &["promote", "linear", "production", "1.2.3", "--expect", "none"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = modelctl(reg, &["versions", "linear"]);
    let text = stdout(&out);
    let header = text.lines().next().expect("header");
    let row = text.lines().nth(1).expect("one version");
    assert_eq!(header.find("aliases"), row.find("production"), "{text}");
    assert_eq!(header.find("published"), row.find("20"), "{text}");

    let out = modelctl(reg, &["show", "linear@production"]);
    let card: serde_json::Value = serde_json::from_slice(&out.stdout).expect("card JSON");
    assert_eq!(card["version"], "1.2.3");

    let out = modelctl(reg, &["rollback", "linear", "production"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no earlier target"), "{}", stderr(&out));

    let out = modelctl(reg, &["history", "linear", "--json"]);
    let events: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["kind"]["event"], "alias_moved");
    let out = modelctl(reg, &["history", "linear"]);
    for line in stdout(&out).lines() {
        let at = line.split_whitespace().next().expect("a time");
        assert!(
            time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).is_ok(),
            "{line}"
        );
        assert!(at.ends_with('Z') && at.len() == 20, "{line}");
    }

    let out = modelctl(reg, &["best", "golden_tree", "accuracy"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("golden_tree 1.0.0: accuracy = 0.9\n"),
        "{}",
        stdout(&out)
    );
    assert_eq!(modelctl(reg, &["best", "golden_tree", "f1"]).status.code(), Some(1));

    let out = modelctl(reg, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("checked 2 versions, 0 damaged"),
        "{}",
        stdout(&out)
    );

    // Damage a stored bundle: verify names it and exits 1.
    let bundle = reg.join("linear/versions/1.2.3/model.bundle");
    let mut bytes = std::fs::read(&bundle).expect("stored bundle");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&bundle, bytes).expect("write");
    let out = modelctl(reg, &["verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("damaged: linear 1.2.3"), "{}", stdout(&out));
}

#[test]
fn registry_commands_without_a_registry_say_how_to_give_one() {
    let out = Command::new(env!("CARGO_BIN_EXE_modelctl"))
        .args(["models"])
        .env_remove("MODELCTL_REGISTRY")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--registry"), "{}", stderr(&out));
}

#[test]
fn a_missing_registry_is_refused_not_created() {
    let dir = tempfile::tempdir().expect("temp dir");
    let typo = dir.path().join("regsitry");
    let out = modelctl(&typo, &["models"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no registry at"), "{}", stderr(&out));
    assert!(!typo.exists(), "a mistyped registry path was created");
    let out = modelctl(dir.path(), &["models"]);
    assert_eq!(out.status.code(), Some(1), "an empty directory is not a registry");
}

#[test]
fn a_model_that_does_not_exist_is_an_error_everywhere() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reg = dir.path();
    assert_eq!(modelctl(reg, &["init"]).status.code(), Some(0));
    for args in [
        &["versions", "nosuch"][..],
        &["history", "nosuch"],
        &["best", "nosuch", "f1"],
        &["prune", "nosuch", "--keep", "1"],
        &["rollback", "nosuch", "production"],
        &["promote", "nosuch", "production", "1.0.0"],
        &["compare", "nosuch", "1.0.0", "1.1.0"],
        &["verify", "--model", "nosuch"],
        &["show", "nosuch"],
    ] {
        let out = modelctl(reg, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
        assert!(stderr(&out).contains("nosuch"), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn hostile_names_are_refused_in_plain_words() {
    let dir = tempfile::tempdir().expect("temp dir");
    assert_eq!(modelctl(dir.path(), &["init"]).status.code(), Some(0));
    let out = modelctl(dir.path(), &["versions", "../../etc"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("invalid model name"), "{}", stderr(&out));
}

#[test]
fn repair_cleans_up_and_versions_names_a_damaged_version() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reg = dir.path();
    assert_eq!(modelctl(reg, &["init"]).status.code(), Some(0));
    assert_eq!(
        modelctl(reg, &["publish", &fixture("linear-level0.bundle")])
            .status
            .code(),
        Some(0)
    );
    std::fs::write(reg.join("linear/versions/1.2.3/version.json"), b"{").expect("damage");
    let out = modelctl(reg, &["versions", "linear"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("DAMAGED"), "{}", stdout(&out));
    assert_eq!(modelctl(reg, &["verify"]).status.code(), Some(1));
    let out = modelctl(reg, &["repair"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("rebuilt"), "{}", stdout(&out));
    assert_eq!(modelctl(reg, &["verify"]).status.code(), Some(0));
}

#[cfg(unix)]
#[test]
fn a_fifo_given_as_a_bundle_is_refused_without_hanging() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reg = dir.path().join("registry");
    assert_eq!(modelctl(&reg, &["init"]).status.code(), Some(0));
    let fifo = dir.path().join("pipe.bundle");
    assert!(Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    let fifo = fifo.to_string_lossy().into_owned();
    for args in [&["publish", fifo.as_str()][..], &["verify", &fifo], &["card", &fifo]] {
        let out = modelctl(&reg, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains("FIFO"), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn predict_gives_labels_and_scores_from_a_file_or_an_alias() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reg = dir.path().join("registry");
    assert_eq!(modelctl(&reg, &["init"]).status.code(), Some(0));
    let tree = fixture("tree-level3.bundle");
    let csv = dir.path().join("rows.csv");
    std::fs::write(&csv, "0,0,0\n6,6,6\n1.5,2.5,3.5\n").expect("csv");
    let out = modelctl(&reg, &["predict", &tree, "--input", &csv.to_string_lossy(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["kind"], "linfa.decision_tree.v1");
    assert_eq!(v["predictions"].as_array().map(Vec::len), Some(3));
    // Through the registry and an alias.
    assert_eq!(modelctl(&reg, &["publish", &tree]).status.code(), Some(0));
    assert_eq!(
        modelctl(&reg, &["promote", "golden_tree", "production", "1.0.0"])
            .status
            .code(),
        Some(0)
    );
    let out = modelctl(
        &reg,
        &["predict", "golden_tree@production", "--input", &csv.to_string_lossy()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 4, "{}", stdout(&out));
    // The rows file as a positional argument gives the same answer.
    let positional = modelctl(&reg, &["predict", "golden_tree@production", &csv.to_string_lossy()]);
    assert_eq!(positional.status.code(), Some(0), "{}", stderr(&positional));
    assert_eq!(stdout(&positional), stdout(&out));
    // The wrong width is a message, not a panic.
    std::fs::write(&csv, "1,2\n").expect("csv");
    let out = modelctl(&reg, &["predict", &tree, "--input", &csv.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("takes 3 features"), "{}", stderr(&out));
}

#[test]
fn an_onnx_graph_from_scikit_learn_is_imported_published_and_predicts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reg = dir.path().join("registry");
    assert_eq!(modelctl(&reg, &["init"]).status.code(), Some(0));
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures.join("random_forest.json")).expect("fixture")).expect("json");
    let rows: Vec<Vec<f64>> = serde_json::from_value(json["rows"].clone()).expect("rows");
    let csv: String = rows
        .iter()
        .map(|r| r.iter().map(|x| format!("{x}")).collect::<Vec<_>>().join(",") + "\n")
        .collect();
    let csv_path = dir.path().join("rows.csv");
    std::fs::write(&csv_path, csv).expect("csv");
    let bundle = dir.path().join("forest.bundle");
    let graph = fixtures.join("random_forest.onnx");
    let out = modelctl(
        &reg,
        &[
            "import-onnx",
            &graph.to_string_lossy(),
            "--name",
            "fraud",
            "--version",
            "2.0.0",
            "--metric",
            "f1=0.8",
            "--train-data",
            &csv_path.to_string_lossy(),
            "--output",
            &bundle.to_string_lossy(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = modelctl(&reg, &["card", &bundle.to_string_lossy()]);
    let card: serde_json::Value = serde_json::from_slice(&out.stdout).expect("card");
    // A lone tree ensemble is stored lowered, with the graph's description.
    assert_eq!(card["kind"], "onnx.tree_ensemble.v3");
    assert!(card["extensions"]["onnx"]["sha256"].is_string());
    assert_eq!(card["extensions"]["onnx"]["inputs"][0]["shape"][1], 20);
    assert!(card["extensions"]["onnx"]["producer"]
        .as_str()
        .is_some_and(|p| p.contains("skl2onnx")));
    assert_eq!(
        modelctl(&reg, &["publish", &bundle.to_string_lossy()]).status.code(),
        Some(0)
    );
    let out = modelctl(
        &reg,
        &[
            "predict",
            "fraud@2.0.0",
            "--input",
            &csv_path.to_string_lossy(),
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let labels: Vec<i64> = v["predictions"]
        .as_array()
        .expect("predictions")
        .iter()
        .map(|p| p["label"].as_i64().expect("label"))
        .collect();
    let expected: Vec<i64> = serde_json::from_value(json["labels"].clone()).expect("labels");
    assert_eq!(labels, expected, "labels differ from onnxruntime's");
    // A file that is not ONNX is a message.
    let out = modelctl(&reg, &["import-onnx", &csv_path.to_string_lossy(), "--name", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not an ONNX model"), "{}", stderr(&out));
}

#[test]
fn watch_prints_each_event_once_and_resumes_from_its_cursor() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reg = dir.path().join("registry");
    let cursor = dir.path().join("watch.cursor");
    assert_eq!(modelctl(&reg, &["init"]).status.code(), Some(0));
    assert_eq!(
        modelctl(&reg, &["publish", &fixture("linear-level0.bundle")])
            .status
            .code(),
        Some(0)
    );
    let watch = |extra: &[&str]| {
        let mut args = vec!["watch", "linear", "--json", "--interval-ms", "50", "--cursor"];
        args.push(cursor.to_str().expect("utf-8 path"));
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_modelctl"))
            .arg("--registry")
            .arg(&reg)
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("modelctl watch runs")
    };
    let lines = |child: std::process::Child| -> Vec<serde_json::Value> {
        let out = child.wait_with_output().expect("watch ends");
        assert_eq!(out.status.code(), Some(0));
        stdout(&out)
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect()
    };
    // From the start: the publication, then a promotion made while watching.
    let child = watch(&["--from-start", "--max-events", "2", "--timeout", "60"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        modelctl(&reg, &["promote", "linear", "production", "1.2.3"])
            .status
            .code(),
        Some(0)
    );
    let first = lines(child);
    assert_eq!(first.len(), 2, "{first:?}");
    assert_eq!(first[0]["kind"]["event"], "published");
    assert_eq!(first[1]["kind"]["event"], "alias_moved");
    assert_eq!(first[1]["model"], "linear");
    // Restarted from its cursor: nothing twice, then only what is new.
    assert!(
        lines(watch(&["--timeout", "1"])).is_empty(),
        "nothing is delivered twice"
    );
    assert_eq!(
        modelctl(&reg, &["promote", "linear", "staging", "1.2.3"]).status.code(),
        Some(0)
    );
    let next = lines(watch(&["--max-events", "1", "--timeout", "60"]));
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(next[0]["kind"]["alias"], "staging");
    assert_ne!(next[0]["id"], first[0]["id"]);
}

/// `modelctl serve` as operators run it: it prints where it listens, answers
/// the protocol, and on SIGTERM stops and exits 0.
#[cfg(unix)]
#[test]
fn serve_answers_and_stops_on_sigterm() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().expect("temp dir");
    let reg = dir.path();
    assert_eq!(modelctl(reg, &["init"]).status.code(), Some(0));
    // A linfa tree: a kind the modelctl binary knows (the test models are not built into it).
    assert_eq!(
        modelctl(reg, &["publish", &fixture("tree-level3.bundle")])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        modelctl(reg, &["promote", "golden_tree", "production", "1.0.0"])
            .status
            .code(),
        Some(0)
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_modelctl"));
    command
        .arg("--registry")
        .arg(reg)
        .args([
            "serve",
            "--model",
            "golden_tree@production",
            "--listen",
            "127.0.0.1:0",
            "--poll-ms",
            "50",
        ])
        .env("RUST_LOG", "warn");
    let (mut child, addr) = common::spawn_serve(&mut command);
    let request = |path: &str, body: &str| -> String {
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        let method = if body.is_empty() { "GET" } else { "POST" };
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !request("/v2/health/ready", "").starts_with("HTTP/1.1 200") {
        assert!(std::time::Instant::now() < deadline, "never ready");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let width = serde_json::from_slice::<serde_json::Value>(&modelctl(reg, &["show", "golden_tree@production"]).stdout)
        .expect("card")["n_features"]
        .as_u64()
        .expect("width") as usize;
    let body = serde_json::json!({"inputs": [{"name": "input", "shape": [1, width], "datatype": "FP64", "data": vec![0.5; width]}]});
    let answer = request("/v2/models/golden_tree/infer", &body.to_string());
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"model_version\":\"1.0.0\""), "{answer}");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("modelctl serve did not stop on SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "a clean exit after SIGTERM");
}

/// `modelctl init PATH`, as the error for a missing registry says, and
/// `--registry PATH init`, are the same; two different registries are
/// refused.
#[test]
fn init_takes_the_registry_as_an_argument_or_a_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("positional");
    let out = modelctl(&missing, &["models"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("modelctl init"), "{}", stderr(&out));
    let out = Command::new(env!("CARGO_BIN_EXE_modelctl"))
        .arg("init")
        .arg(&missing)
        .output()
        .expect("modelctl runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(modelctl(&missing, &["models"]).status.code(), Some(0));
    let flag = dir.path().join("flag");
    assert_eq!(modelctl(&flag, &["init"]).status.code(), Some(0));
    let other = dir.path().join("other");
    let out = modelctl(&flag, &["init", &other.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("two registries"), "{}", stderr(&out));
    assert!(!other.exists(), "nothing created for a refused init");
}

/// `--json` is global: before the command or after it, the same JSON.
#[test]
fn json_is_accepted_before_or_after_the_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reg = dir.path().join("registry");
    assert_eq!(modelctl(&reg, &["init"]).status.code(), Some(0));
    assert_eq!(
        modelctl(&reg, &["publish", &fixture("tree-level3.bundle")])
            .status
            .code(),
        Some(0)
    );
    let before = modelctl(&reg, &["--json", "versions", "golden_tree"]);
    let after = modelctl(&reg, &["versions", "golden_tree", "--json"]);
    assert_eq!(before.status.code(), Some(0), "{}", stderr(&before));
    assert_eq!(stdout(&before), stdout(&after));
    let listed: serde_json::Value = serde_json::from_slice(&before.stdout).expect("JSON");
    assert_eq!(listed[0]["version"], "1.0.0", "{listed}");
}

/// `--registry-option` configures the object store from the command line:
/// with the endpoint and plain HTTP given only as options (removed from the
/// environment), a registry on the S3 test server is created and listed; an
/// option the store does not know is named in the error, and options for a
/// directory are refused rather than ignored.
#[test]
fn registry_options_reach_the_object_store() {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: this test needs the S3 test server. Run `bash scripts/test.sh`, \
                 or start it with `eval \"$(scripts/s3-server.sh start)\"`"
            )
        })
    };
    let (base, endpoint) = (var("MP_TEST_S3_URL"), var("AWS_ENDPOINT"));
    let url = format!("{}/cli-options-{}", base.trim_end_matches('/'), std::process::id());
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_modelctl"))
            .args(args)
            .env_remove("AWS_ENDPOINT")
            .env_remove("AWS_ALLOW_HTTP")
            .env_remove("MODELCTL_REGISTRY")
            .output()
            .expect("modelctl runs")
    };
    let endpoint_opt = format!("endpoint={endpoint}");
    let with_options = |command: &str| {
        run(&[
            "--registry",
            &url,
            "--registry-option",
            &endpoint_opt,
            "--registry-option",
            "allow_http=true",
            command,
        ])
    };
    let init = with_options("init");
    assert!(init.status.success(), "init: {}", stderr(&init));
    let models = with_options("models");
    assert!(models.status.success(), "models: {}", stderr(&models));
    // Without the options, the environment has no endpoint: not this server.
    let without = run(&["--registry", &url, "models"]);
    assert!(!without.status.success(), "the options were what reached the server");
    let unknown = run(&["--registry", &url, "--registry-option", "no_such_option=1", "models"]);
    assert!(!unknown.status.success());
    assert!(stderr(&unknown).contains("no_such_option"), "{}", stderr(&unknown));
    let dir = tempfile::tempdir().expect("temp dir");
    let on_dir = run(&[
        "--registry",
        dir.path().to_str().expect("utf-8"),
        "--registry-option",
        "region=x",
        "init",
    ]);
    assert!(!on_dir.status.success());
    assert!(stderr(&on_dir).contains("takes no options"), "{}", stderr(&on_dir));
}

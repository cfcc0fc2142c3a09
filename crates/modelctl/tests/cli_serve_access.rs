//! `modelctl serve` with tokens, a payload log and JSON logs, as an
//! operator runs it: every line it writes is one JSON object, no token ever
//! appears in its logs or payload records, `modelctl logs` reads back what
//! was asked and answered with its outcome, and the server refuses to
//! listen beyond loopback with no tokens unless told `--insecure-open`.
#![cfg(unix)]

mod common;

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{modelctl, ok};

const SECRET: &str = "tok-5f1d2c9a8b7e6d4c3b2a1f0e9d8c7b6a";

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn request(addr: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n\
         traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out)
}

/// Kills a process by its pid when dropped (a failing test's server).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-9", &self.0.to_string()]).status();
    }
}

#[test]
fn serve_with_tokens_writes_json_lines_never_a_token_and_logs_read_back_with_outcomes() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    ok(d, &["init", "reg"]);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/format-1/tree-level3.bundle");
    ok(d, &["--registry", "reg", "publish", fixture.to_str().expect("utf-8")]);
    let tokens = format!(
        "[[token]]\nname = \"ops\"\nsha256 = \"{}\"\nscopes = [\"infer\", \"outcomes\", \"read\"]\n",
        sha256_hex(SECRET)
    );
    std::fs::write(d.join("tokens.toml"), tokens).expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_modelctl"))
        .current_dir(d)
        .env("RUST_LOG", "trace")
        .args([
            "--registry",
            "reg",
            "serve",
            "--model",
            "golden_tree",
            "--listen",
            "127.0.0.1:0",
            "--tokens",
            "tokens.toml",
            "--payload-log",
            "payload",
            "--payload-sample",
            "1",
            "--log-format",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("modelctl serve starts");
    // Killed by its pid if the test fails before it stops the server itself.
    let guard = KillOnDrop(child.id());
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("the listening line");
    let listening: serde_json::Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("{e}: {first}"));
    let addr = listening["addr"].as_str().expect("addr").to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while request(&addr, "GET", "/v2/health/ready", None, "").0 != 200 {
        assert!(std::time::Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, meta) = request(&addr, "GET", "/v2/models/golden_tree", Some(SECRET), "");
    assert_eq!(status, 200, "{meta}");
    let n = meta
        .split("\"shape\":[-1,")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .and_then(|s| s.parse::<usize>().ok())
        .expect("width");
    let row: Vec<String> = (0..n).map(|i| format!("{}.5", i % 3)).collect();
    let body = format!(
        r#"{{"id":"audit-1","inputs":[{{"name":"input","shape":[1,{n}],"datatype":"FP64","data":[{}]}}]}}"#,
        row.join(",")
    );
    assert_eq!(
        request(&addr, "POST", "/v2/models/golden_tree/infer", None, &body).0,
        401
    );
    assert_eq!(
        request(
            &addr,
            "POST",
            "/v2/models/golden_tree/infer",
            Some("wrong-token"),
            &body
        )
        .0,
        401
    );
    let (status, answer) = request(&addr, "POST", "/v2/models/golden_tree/infer", Some(SECRET), &body);
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = request(
        &addr,
        "POST",
        "/v2/models/golden_tree/outcomes",
        Some(SECRET),
        r#"{"outcomes":[{"id":"audit-1","outcome":1}]}"#,
    );
    assert_eq!(status, 200, "{answer}");
    // SIGTERM: the server writes out its payload queue and stops.
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let status = child.wait().expect("exits");
    std::mem::forget(guard);
    assert!(status.success(), "{status}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("stdout");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    for line in first.lines().chain(rest.lines()).chain(stderr.lines()) {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
    }
    assert!(
        stderr.contains("\"message\":\"answered\""),
        "the request event was expected:\n{stderr}"
    );
    let mut everything = format!("{first}{rest}{stderr}");
    for f in std::fs::read_dir(d.join("payload")).expect("payload dir") {
        everything.push_str(&std::fs::read_to_string(f.expect("entry").path()).expect("read"));
    }
    assert!(!everything.contains(SECRET), "the token was written somewhere");
    assert!(
        !everything.contains("wrong-token"),
        "a presented token was written somewhere"
    );

    // modelctl logs reads it back, with the outcome joined.
    let out = ok(
        d,
        &["--json", "logs", "payload", "--model", "golden_tree", "--id", "audit-1"],
    );
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    let [p] = lines.as_slice() else { panic!("{out}") };
    assert_eq!(p["version"], "1.0.0");
    assert_eq!(p["trace_id"], "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(p["outcomes"]["audit-1"], 1);
    let text = ok(d, &["logs", "payload", "--since", "1h"]);
    assert!(
        text.contains("audit-1 golden_tree@1.0.0") && text.contains("audit-1=1"),
        "{text}"
    );
    assert!(ok(d, &["logs", "payload", "--version", "9.9.9"]).is_empty());
    let bad = modelctl(d, &["logs", "payload", "--since", "yesterday"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("RFC 3339"));
}

#[test]
fn serve_refuses_a_non_loopback_address_without_tokens_unless_told() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    ok(d, &["init", "reg"]);
    let out = modelctl(
        d,
        &["--registry", "reg", "serve", "--model", "m", "--listen", "0.0.0.0:0"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--insecure-open") && err.contains("0.0.0.0"), "{err}");
}

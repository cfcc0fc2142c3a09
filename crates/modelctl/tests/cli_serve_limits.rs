//! `modelctl serve` against slow and idle clients, over real connections to
//! the real process: a client trickling its head or its body is cut off, a
//! connection beyond the cap is answered 503 and closed, and a well-behaved
//! client is answered all the while.
#![cfg(unix)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn modelctl(registry: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_modelctl"))
        .arg("--registry")
        .arg(registry)
        .args(args)
        .output()
        .expect("modelctl runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `modelctl serve` on a port the OS picks, killed by pid on drop.
struct Serving {
    child: Child,
    addr: String,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, limits: &str) -> Serving {
    let registry = dir.join("registry");
    modelctl(&registry, &["init"]);
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/format-1/tree-level3.bundle");
    modelctl(&registry, &["publish", fixture.to_str().expect("utf-8")]);
    modelctl(&registry, &["promote", "golden_tree", "production", "1.0.0"]);
    let config = dir.join("serve.toml");
    std::fs::write(&config, limits).expect("config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_modelctl"));
    command
        .arg("--registry")
        .arg(&registry)
        .args([
            "serve",
            "--model",
            "golden_tree@production",
            "--listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&config)
        .env("RUST_LOG", "error");
    let (child, addr) = common::spawn_serve(&mut command);
    let serving = Serving { child, addr };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !get(&serving.addr, "/v2/health/ready").starts_with("HTTP/1.1 200") {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    serving
}

/// A whole request, sent at once, and the whole answer.
fn get(addr: &str, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Reads until the server closes the connection (or 20 s pass) and says
/// what came and how long it took.
fn until_closed(mut s: TcpStream) -> (String, Duration) {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    (String::from_utf8_lossy(&out).into_owned(), start.elapsed())
}

#[test]
fn slow_heads_and_bodies_are_cut_off_and_others_are_answered() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = serve(
        dir.path(),
        "header_timeout_ms = 500\nbody_timeout_ms = 500\nmax_connections = 64\n",
    );
    // A head trickled a byte at a time, slower than the header timeout.
    let mut trickle = TcpStream::connect(&server.addr).expect("connect");
    trickle
        .write_all(b"GET /v2/health/live HTTP/1.1\r\nX-Slow: ")
        .expect("write");
    // A body announced at 100 bytes, of which 10 come.
    let mut slow_body = TcpStream::connect(&server.addr).expect("connect");
    write!(
        slow_body,
        "POST /v2/models/golden_tree/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{\"inputs\":"
    )
    .expect("write");
    // An idle connection that never sends anything.
    let idle = TcpStream::connect(&server.addr).expect("connect");
    // Meanwhile a well-behaved client is answered.
    assert!(get(&server.addr, "/v2/health/live").starts_with("HTTP/1.1 200"));

    let (said, took) = until_closed(idle);
    assert!(said.is_empty(), "{said}");
    assert!(
        took < Duration::from_secs(15),
        "the idle connection stayed open {took:?}"
    );
    let _ = trickle.write_all(b"x");
    let (said, took) = until_closed(trickle);
    assert!(!said.contains("200 OK"), "{said}");
    assert!(
        took < Duration::from_secs(15),
        "the trickling head stayed open {took:?}"
    );
    let (said, took) = until_closed(slow_body);
    assert!(said.starts_with("HTTP/1.1 408"), "{said}");
    assert!(said.contains("\"error\""), "the protocol's error body: {said}");
    assert!(took < Duration::from_secs(15), "the slow body stayed open {took:?}");
    let metrics = get(&server.addr, "/metrics");
    assert!(metrics.contains("mp_slow_bodies_total 1"), "{metrics}");
}

#[test]
fn connections_beyond_the_cap_get_503_and_the_server_recovers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = serve(
        dir.path(),
        "header_timeout_ms = 3000\nbody_timeout_ms = 3000\nmax_connections = 4\n",
    );
    let held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(&server.addr).expect("connect"))
        .collect();
    // All four accepted; they stay held for the header timeout (3 s, room
    // for a busy machine) while the fifth is refused.
    std::thread::sleep(Duration::from_millis(200));
    let answer = get(&server.addr, "/v2/health/live");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");
    // The held connections are idle: the header timeout frees their slots.
    for s in held {
        let (_, took) = until_closed(s);
        assert!(took < Duration::from_secs(15), "a held connection stayed open {took:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = get(&server.addr, "/v2/health/live");
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still refused after the slots were freed: {answer}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics = get(&server.addr, "/metrics");
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mp_connections_refused_total "))
        .and_then(|n| n.trim().parse().ok())
        .expect("the mp_connections_refused_total counter");
    assert!(refused >= 1, "{metrics}");
}

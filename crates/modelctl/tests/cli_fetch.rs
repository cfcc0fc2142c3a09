//! `modelctl fetch` (a storage initializer) and `modelctl serve
//! --bundle-dir` (serving what it fetched, with no registry): verified
//! before a byte is written, refusals leave nothing, a kill -9 leaves the
//! earlier files or the whole new ones, and the served bundle is held to
//! `--trust`.
#![cfg(unix)]

mod common;

use common::{modelctl, ok};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/format-1")
        .join(name)
}

/// Files in `dir` not starting with `.`, sorted.
fn visible(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A registry with the golden tree signed by `release` at
/// `golden_tree@production`, and the golden linear model (`linear`) unsigned.
fn setup(dir: &Path) -> Vec<u8> {
    ok(dir, &["init", "reg"]);
    ok(dir, &["keygen", "release"]);
    std::fs::copy(fixture("tree-level3.bundle"), dir.join("tree.bundle")).expect("copy");
    ok(dir, &["sign", "tree.bundle", "--key", "release.pem"]);
    ok(dir, &["--registry", "reg", "publish", "tree.bundle"]);
    ok(
        dir,
        &["--registry", "reg", "promote", "golden_tree", "production", "1.0.0"],
    );
    ok(
        dir,
        &[
            "--registry",
            "reg",
            "publish",
            fixture("linear-level0.bundle").to_str().expect("utf-8"),
        ],
    );
    std::fs::read(dir.join("tree.bundle")).expect("bundle")
}

#[test]
fn fetch_writes_the_verified_bundle_and_its_signature_and_refuses_what_does_not_verify() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let bundle = setup(d);
    let trusted = ["--registry", "reg", "--trust", "release.pub.pem"];

    let out = ok(
        d,
        &[&trusted[..], &["--json", "fetch", "golden_tree@production", "out"]].concat(),
    );
    let seen: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(seen["version"], "1.0.0", "{seen}");
    assert_eq!(std::fs::read(d.join("out/model.bundle")).expect("bundle"), bundle);
    assert_eq!(
        std::fs::read(d.join("out/model.bundle.sig")).expect("signature"),
        std::fs::read(d.join("tree.bundle.sig")).expect("signature")
    );
    assert_eq!(visible(&d.join("out")), ["model.bundle", "model.bundle.sig"]);

    // Refusals write nothing: a missing alias, an unsigned version under
    // --trust, a bundle changed in the registry.
    for (args, words) in [
        (vec!["fetch", "golden_tree@nope", "none"], "nope"),
        (vec!["fetch", "linear", "none"], "not signed"),
    ] {
        let out = modelctl(d, &[&trusted[..], &args].concat());
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(words), "{args:?}: {err}");
        assert!(
            visible(&d.join("none")).is_empty(),
            "{args:?} wrote {:?}",
            visible(&d.join("none"))
        );
    }
    let stored = walk(&d.join("reg"))
        .into_iter()
        .find(|p| p.to_string_lossy().contains("golden_tree") && p.extension().is_some_and(|x| x == "bundle"))
        .expect("the stored bundle");
    let mut bytes = std::fs::read(&stored).expect("stored");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&stored, &bytes).expect("tamper");
    let out = modelctl(d, &["--registry", "reg", "fetch", "golden_tree@production", "none"]);
    assert!(!out.status.success(), "a tampered bundle was fetched");
    assert!(visible(&d.join("none")).is_empty());
    // What was fetched before is untouched by the refused fetch into it.
    let out = modelctl(d, &["--registry", "reg", "fetch", "golden_tree@production", "out"]);
    assert!(!out.status.success());
    assert_eq!(std::fs::read(d.join("out/model.bundle")).expect("bundle"), bundle);
}

/// As KServe's storage initializer runs it (deploy/kserve/storage-container.yaml):
/// `fetch URI /mnt/models`, with the registry and the trusted key from the
/// environment.
fn storage_initializer(dir: &Path, uri: &str, trust: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_modelctl"))
        .current_dir(dir)
        .env("MODELCTL_REGISTRY", "reg")
        .env("MODELCTL_TRUST", trust)
        .args(["fetch", uri, "models"])
        .output()
        .expect("modelctl runs")
}

#[test]
fn fetch_takes_a_kserve_storage_uri_with_registry_and_trust_from_the_environment() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let bundle = setup(d);
    let out = storage_initializer(d, "mp://golden_tree@production", "release.pub.pem");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(d.join("models/model.bundle")).expect("bundle"), bundle);
    assert_eq!(visible(&d.join("models")), ["model.bundle", "model.bundle.sig"]);

    // MODELCTL_TRUST is enforced as --trust is: the unsigned model is refused.
    std::fs::remove_dir_all(d.join("models")).expect("clean");
    let out = storage_initializer(d, "mp://linear", "release.pub.pem");
    assert!(!out.status.success(), "an unsigned version passed MODELCTL_TRUST");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not signed"));
    assert!(visible(&d.join("models")).is_empty());
    // A key that signed nothing here is refused; of two keys, comma-separated,
    // one that signed is enough.
    ok(d, &["keygen", "other"]);
    let out = storage_initializer(d, "mp://golden_tree@production", "other.pub.pem");
    assert!(!out.status.success(), "a bundle signed by an untrusted key passed");
    assert!(visible(&d.join("models")).is_empty());
    let out = storage_initializer(d, "mp://golden_tree@production", "other.pub.pem,release.pub.pem");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_fetch_killed_at_any_moment_leaves_the_earlier_files_or_the_whole_new_ones() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let bundle = setup(d);
    let signature = std::fs::read(d.join("tree.bundle.sig")).expect("signature");
    for round in 0..40_u64 {
        let target = d.join(format!("kill-{}", round % 4));
        let mut child = Command::new(env!("CARGO_BIN_EXE_modelctl"))
            .current_dir(d)
            .args(["--registry", "reg", "fetch", "golden_tree@production"])
            .arg(&target)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("fetch starts");
        std::thread::sleep(Duration::from_micros(round * 700 % 12_000));
        let _ = child.kill();
        let _ = child.wait();
        let names = visible(&target);
        match names.as_slice() {
            [] => {}
            [one] => {
                assert_eq!(one, "model.bundle", "round {round}: {names:?}");
                assert_eq!(
                    std::fs::read(target.join(one)).expect("bundle"),
                    bundle,
                    "round {round}"
                );
            }
            [_, _] => {
                assert_eq!(names, ["model.bundle", "model.bundle.sig"], "round {round}");
                assert_eq!(std::fs::read(target.join("model.bundle")).expect("bundle"), bundle);
                assert_eq!(std::fs::read(target.join("model.bundle.sig")).expect("sig"), signature);
            }
            more => panic!("round {round}: {more:?}"),
        }
    }
}

#[test]
fn fetches_into_one_directory_at_once_never_pair_a_bundle_with_another_signature() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let tree = setup(d);
    let tree_sig = std::fs::read(d.join("tree.bundle.sig")).expect("signature");
    let linear = std::fs::read(fixture("linear-level0.bundle")).expect("bundle");
    for round in 0..12 {
        let children: Vec<_> = (0..4)
            .map(|i| {
                let reference = if i % 2 == 0 { "golden_tree@production" } else { "linear" };
                Command::new(env!("CARGO_BIN_EXE_modelctl"))
                    .current_dir(d)
                    .args(["--registry", "reg", "fetch", reference, "shared"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("fetch starts")
            })
            .collect();
        for mut c in children {
            assert!(c.wait().expect("fetch ends").success(), "round {round}: a fetch failed");
        }
        let bundle = std::fs::read(d.join("shared/model.bundle")).expect("a bundle");
        let sig = std::fs::read(d.join("shared/model.bundle.sig")).ok();
        if bundle == tree {
            assert_eq!(
                sig.as_deref(),
                Some(&tree_sig[..]),
                "round {round}: the tree without its signature"
            );
        } else {
            assert_eq!(bundle, linear, "round {round}: a bundle of neither");
            assert_eq!(sig, None, "round {round}: the unsigned model beside a signature");
        }
    }
}

#[test]
fn serve_bundle_dir_serves_the_fetched_bundle_without_a_registry_and_holds_it_to_trust() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    setup(d);
    ok(d, &["--registry", "reg", "fetch", "golden_tree@production", "mnt"]);
    // The golden tree unsigned, in a directory of its own.
    std::fs::create_dir_all(d.join("unsigned")).expect("dir");
    std::fs::copy(fixture("tree-level3.bundle"), d.join("unsigned/fraud.bundle")).expect("copy");

    let start = |bundle_dir: &str, trust: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelctl"));
        cmd.current_dir(d);
        if trust {
            cmd.args(["--trust", "release.pub.pem"]);
        }
        cmd.args([
            "serve",
            "--bundle-dir",
            bundle_dir,
            "--model-name",
            "fraud",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "error")
        .env_remove("MODELCTL_REGISTRY");
        common::spawn_serve(&mut cmd)
    };

    let (mut child, addr) = start("mnt", true);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http(&addr, "GET", "/v2/models/fraud/ready", "").starts_with("HTTP/1.1 200") {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let meta = http(&addr, "GET", "/v2/models/fraud", "");
    let width: usize = meta
        .split("\"shape\":[-1,")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .and_then(|s| s.parse().ok())
        .expect(&meta);
    let zeros = vec!["0"; width].join(",");
    let body = format!(r#"{{"inputs":[{{"name":"x","shape":[1,{width}],"datatype":"FP64","data":[{zeros}]}}]}}"#);
    let answer = http(&addr, "POST", "/v2/models/fraud/infer", &body);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"model_version\":\"1.0.0\""), "{answer}");
    let _ = child.kill();
    let _ = child.wait();

    // Under --trust, an unsigned bundle is never served.
    let (mut child, addr) = start("unsigned", true);
    std::thread::sleep(Duration::from_millis(1500));
    let ready = http(&addr, "GET", "/v2/models/fraud/ready", "");
    let refused = http(&addr, "POST", "/v2/models/fraud/infer", &body);
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready.contains("\"ready\":false"), "{ready}");
    assert!(
        refused.starts_with("HTTP/1.1 400") && refused.contains("signature"),
        "{refused}"
    );
}

fn http(addr: &str, method: &str, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

//! Signing with `modelctl`, checked against the OpenSSF `model_signing` tool
//! (`model-signing` from PyPI, installed into target/venv by
//! `scripts/test.sh`): each verifies what the other signed; `--trust`
//! refuses unsigned and wrongly signed bundles on verify, publish and
//! promote.

mod common;

use common::modelctl;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn model_signing() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/venv/bin/python");
    let py = std::env::var_os("MP_PYTHON").map_or(venv, PathBuf::from);
    let tool = py.with_file_name("model_signing");
    let works = Command::new(&tool)
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        works,
        "{} does not run: run `bash scripts/test.sh` (it installs model-signing==1.1.1 and pyopenssl into \
         target/venv), or set MP_PYTHON to a venv's python that has them",
        tool.display()
    );
    tool
}

fn fixture(dir: &Path) -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/format-1/linear-level0.bundle");
    let dst = dir.join("linear.bundle");
    std::fs::copy(src, &dst).expect("copy the fixture");
    dst
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn model_signing_verifies_what_modelctl_signed() {
    let tool = model_signing();
    let dir = tempfile::tempdir().expect("dir");
    let bundle = fixture(dir.path());
    let out = modelctl(dir.path(), &["keygen", "release"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = modelctl(dir.path(), &["sign", "linear.bundle", "--key", "release.pem"]);
    assert!(out.status.success(), "{}", text(&out));
    let verify = |public: &str| {
        Command::new(&tool)
            .current_dir(dir.path())
            .args([
                "verify",
                "key",
                "linear.bundle",
                "--signature",
                "linear.bundle.sig",
                "--public_key",
                public,
            ])
            .output()
            .expect("model_signing runs")
    };
    let out = verify("release.pub.pem");
    assert!(
        out.status.success(),
        "model_signing refused modelctl's signature: {}",
        text(&out)
    );
    // The tool refuses it for another key, and for a changed bundle.
    assert!(modelctl(dir.path(), &["keygen", "other"]).status.success());
    assert!(!verify("other.pub.pem").status.success());
    let mut bytes = std::fs::read(&bundle).expect("bundle");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&bundle, bytes).expect("tamper");
    assert!(!verify("release.pub.pem").status.success());
}

#[test]
fn modelctl_verifies_what_model_signing_signed_and_trust_gates_the_registry() {
    let tool = model_signing();
    let dir = tempfile::tempdir().expect("dir");
    fixture(dir.path());
    assert!(modelctl(dir.path(), &["keygen", "release"]).status.success());
    assert!(modelctl(dir.path(), &["keygen", "other"]).status.success());
    let out = Command::new(&tool)
        .current_dir(dir.path())
        .args([
            "sign",
            "key",
            "linear.bundle",
            "--private_key",
            "release.pem",
            "--signature",
            "linear.bundle.sig",
        ])
        .output()
        .expect("model_signing runs");
    assert!(out.status.success(), "{}", text(&out));

    let out = modelctl(dir.path(), &["--trust", "release.pub.pem", "verify", "linear.bundle"]);
    assert!(
        out.status.success(),
        "modelctl refused model_signing's signature: {}",
        text(&out)
    );
    assert!(text(&out).contains("signed by the trusted key"), "{}", text(&out));
    let out = modelctl(dir.path(), &["--trust", "other.pub.pem", "verify", "linear.bundle"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no trusted key"), "{}", text(&out));

    // The registry: publish with --trust takes the signature beside the bundle.
    let reg = dir.path().join("registry");
    let reg = reg.to_str().expect("utf-8");
    assert!(modelctl(dir.path(), &["--registry", reg, "init"]).status.success());
    let out = modelctl(
        dir.path(),
        &[
            "--registry",
            reg,
            "--trust",
            "other.pub.pem",
            "publish",
            "linear.bundle",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("signature refused"), "{}", text(&out));
    let out = modelctl(
        dir.path(),
        &[
            "--registry",
            reg,
            "--trust",
            "release.pub.pem",
            "publish",
            "linear.bundle",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = modelctl(
        dir.path(),
        &[
            "--registry",
            reg,
            "--trust",
            "release.pub.pem",
            "promote",
            "linear",
            "production",
            "1.2.3",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = modelctl(
        dir.path(),
        &[
            "--registry",
            reg,
            "--trust",
            "other.pub.pem",
            "promote",
            "linear",
            "staging",
            "1.2.3",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // A truncated signature file is a clear error, not a crash.
    let sig = std::fs::read(dir.path().join("linear.bundle.sig")).expect("sig");
    std::fs::write(dir.path().join("linear.bundle.sig"), &sig[..sig.len() / 3]).expect("truncate");
    let out = modelctl(dir.path(), &["--trust", "release.pub.pem", "verify", "linear.bundle"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("malformed signature"), "{}", text(&out));
}

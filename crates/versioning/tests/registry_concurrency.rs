//! Concurrent publishers and killed publishers on the local directory.
//!
//! A custom harness: the binary re-runs itself as child processes.
//! - 4 threads each publish 25 auto-bumped versions of one model: 100 distinct versions.
//! - 4 processes do the same: 100 distinct versions, none lost or overwritten.
//! - A publisher (which also moves the `production` alias) is killed at random
//!   moments: no visible half-written version, and the alias always points at
//!   a version that exists and verifies.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{card, model, Linear};
use model_persistence_testkit::SplitMix64;
use model_persistence_versioning::{Bump, Registry, VersionSpec};

const PER_PUBLISHER: usize = 25;

fn publish_many(root: &Path, publisher: usize) {
    let reg = Registry::create(root).expect("registry");
    for i in 0..PER_PUBLISHER {
        let m = model((publisher * 1000 + i) as f64);
        let c = card("shared", &m, &[("publisher", publisher as f64), ("index", i as f64)]);
        reg.publish_model(&m, &c, VersionSpec::Bump(Bump::Patch))
            .expect("publish");
    }
}

fn check_all_distinct(root: &Path, publishers: usize) -> Result<(), String> {
    let reg = Registry::create(root).expect("registry");
    let versions = reg.versions("shared").map_err(|e| e.to_string())?;
    if versions.len() != publishers * PER_PUBLISHER {
        return Err(format!(
            "{} versions, expected {}",
            versions.len(),
            publishers * PER_PUBLISHER
        ));
    }
    let mut seen = BTreeSet::new();
    for info in &versions {
        let loaded = reg
            .load::<Linear>(&format!("shared@{}", info.version).parse().expect("ref"))
            .map_err(|e| format!("{}: {e}", info.version))?;
        let key = (
            loaded.card().metrics["publisher"] as usize,
            loaded.card().metrics["index"] as usize,
        );
        if !seen.insert(key) {
            return Err(format!("publish {key:?} appears twice: one was overwritten"));
        }
    }
    Ok(())
}

fn threads() -> Result<(), String> {
    let dir = tempfile::tempdir().expect("temp dir");
    std::thread::scope(|s| {
        for p in 0..4 {
            let root = dir.path();
            s.spawn(move || publish_many(root, p));
        }
    });
    check_all_distinct(dir.path(), 4)
}

fn processes(exe: &Path) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let children: Vec<_> = (0..4)
        .map(|p| {
            Command::new(exe)
                .args(["--publish-child", dir.path().to_str().expect("utf-8"), &p.to_string()])
                .stdout(Stdio::null())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for mut child in children {
        let status = child.wait().expect("wait");
        if !status.success() {
            return Err(format!("a publisher process failed: {status}"));
        }
    }
    check_all_distinct(dir.path(), 4)
}

fn kill_child(root: &Path) -> ! {
    let reg = Registry::create(root).expect("registry");
    let mut rng = SplitMix64::new(std::process::id().into());
    loop {
        let m = Linear {
            weights: (0..20_000).map(|_| rng.next_normal()).collect(),
            bias: 0.0,
        };
        let c = model_persistence_core::ModelCard::builder("killed", &m)
            .build()
            .expect("card");
        let info = reg
            .publish_model(&m, &c, VersionSpec::Bump(Bump::Patch))
            .expect("publish");
        reg.set_alias("killed", "production", &info.version).expect("alias");
    }
}

fn kills(exe: &Path) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let reg = Registry::create(dir.path()).expect("registry");
    let mut rng = SplitMix64::new(99);
    for kill in 0..25 {
        let mut child = Command::new(exe)
            .args(["--kill-child", dir.path().to_str().expect("utf-8")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(30 + rng.next_below(300) as u64));
        child.kill().expect("kill");
        child.wait().expect("reap");
        let report = reg.verify("killed").map_err(|e| e.to_string())?;
        if let Some(d) = report.damaged.first() {
            return Err(format!("kill {kill}: {} is damaged: {}", d.key, d.error));
        }
        if let Some(target) = reg.alias("killed", "production").map_err(|e| e.to_string())? {
            reg.load::<Linear>(&"killed@production".parse().expect("ref"))
                .map_err(|e| format!("kill {kill}: production -> {} does not load: {e}", target.version))?;
        }
    }
    let published = reg.versions("killed").map_err(|e| e.to_string())?.len();
    if published == 0 {
        return Err("no version was ever published: the kills prove nothing".into());
    }
    println!("killed publishers: 25 kills, {published} complete versions, all verified");
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--publish-child") {
        publish_many(Path::new(&args[i + 1]), args[i + 2].parse().expect("publisher index"));
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--kill-child") {
        kill_child(Path::new(&args[i + 1]));
    }
    let exe = std::env::current_exe().expect("own path");
    let results = [
        ("four_threads_publish_100_distinct_versions", threads()),
        ("four_processes_publish_100_distinct_versions", processes(&exe)),
        ("killed_publishers_leave_no_half_version", kills(&exe)),
    ];
    let mut failed = 0;
    for (name, result) in &results {
        match result {
            Ok(()) => println!("test {name} ... ok"),
            Err(e) => {
                failed += 1;
                println!("test {name} ... FAILED: {e}");
            }
        }
    }
    println!(
        "test result: {}. {} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out",
        if failed == 0 { "ok" } else { "FAILED" },
        results.len() - failed
    );
    std::process::exit(i32::from(failed > 0));
}

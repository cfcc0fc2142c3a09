//! kill -9 at random moments of publish, promote, rollback and prune, on
//! the directory and on the S3 test server, and prune racing promote.
//!
//! A custom harness: the binary re-runs itself as a child that repeats one
//! operation until it is killed. After every kill the parent checks the
//! registry's promises:
//!
//! - every committed version is intact and listed (`verify` finds nothing
//!   damaged, every listed version loads);
//! - no version number is blocked: every number a dead writer claimed can be
//!   published again;
//! - no temporary file of a dead writer is left once the next operation ran
//!   in its place;
//! - the index lists exactly what the version records say;
//! - the history's last move of `production` is where it points;
//! - no alias points at a missing version.
//!
//! Kills per operation: `MP_KILLS` (default 100) on the directory, a third
//! of that (at least 30 by default) on S3.
//!
//! The directory registries live in `/dev/shm` where there is one: a kill
//! -9 stops a process, not the machine, so what is tested is the order of
//! the writes and the recovery, not `fsync` (which is what makes the
//! directory backend slow, and which only a power loss would exercise).

// Registry errors carry the model and versions they concern; their size is
// not what costs time in a test.
#![allow(clippy::result_large_err)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{card, model, Linear};
use model_persistence_testkit::SplitMix64;
use model_persistence_versioning::{Bump, Error, EventKind, Registry, VersionSpec};
use semver::Version;

const OPS: [&str; 4] = ["publish", "promote", "rollback", "prune"];

fn open(location: &str) -> Registry {
    let reg = if location.contains("://") {
        Registry::open_url(location)
    } else {
        Registry::open(location)
    };
    reg.expect("registry")
}

/// A model large enough (16 KB of weights) that a publish takes a few
/// milliseconds, so kills land inside publishes rather than between them;
/// its card stays small (no probe) so that checking stays quick.
fn big(rng: &mut SplitMix64) -> (Linear, model_persistence_core::ModelCard) {
    const N: usize = 2_000;
    let m = Linear {
        weights: (0..N).map(|_| rng.next_normal()).collect(),
        bias: 0.0,
    };
    let c = model_persistence_core::ModelCard::builder("m", &m)
        .n_features(N)
        .metric("f1", rng.next_f64())
        .build()
        .expect("card");
    (m, c)
}

/// The child: repeats `op` until killed.
fn child(op: &str, location: &str, seed: u64) -> ! {
    let reg = open(location);
    let mut rng = SplitMix64::new(seed);
    loop {
        let versions: Vec<Version> = reg
            .versions("m")
            .unwrap_or_default()
            .into_iter()
            .map(|i| i.version)
            .collect();
        let pick = |rng: &mut SplitMix64| versions.get(rng.next_below(versions.len().max(1))).cloned();
        let _ = match op {
            "publish" => {
                let (m, c) = big(&mut rng);
                reg.publish_model(&m, &c, VersionSpec::Bump(Bump::Patch)).map(|_| ())
            }
            "promote" => match pick(&mut rng) {
                Some(v) => reg.set_alias("m", "production", &v).map(|_| ()),
                None => Ok(()),
            },
            "rollback" => match pick(&mut rng) {
                Some(v) => reg
                    .set_alias("m", "production", &v)
                    .and_then(|_| reg.rollback("m", "production"))
                    .map(|_| ()),
                None => Ok(()),
            },
            "prune" => {
                let (m, c) = big(&mut rng);
                reg.publish_model(&m, &c, VersionSpec::Bump(Bump::Patch))
                    .and_then(|_| reg.prune("m", 3))
                    .map(|_| ())
            }
            other => panic!("unknown operation {other}"),
        };
        // A short pause between operations bounds how many versions a
        // child makes before it is killed, so the checks stay quick, while
        // most kills still land inside an operation.
        std::thread::sleep(std::time::Duration::from_millis(rng.next_below(4) as u64));
    }
}

/// Temporary files of dead writers anywhere under `root`.
fn dead_temps(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix(".tmp-")
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    found.push(path.display().to_string());
                }
            }
        }
    }
    found
}

/// The promises, checked after a kill; also runs "the next operation" in
/// each place a dead writer may have left something.
fn check(reg: &Registry, root: Option<&Path>, what: &str) -> Result<(), String> {
    let err = |e: Error| format!("{what}: {}", model_persistence_core::error_chain(&e));
    // Every claimed but uncommitted number can be published again.
    let listing = reg.listing("m").map_err(err)?;
    if let Some(d) = listing.damaged.first() {
        return Err(format!("{what}: version {} damaged: {}", d.version, d.error));
    }
    let committed: Vec<Version> = listing.versions.iter().map(|i| i.version.clone()).collect();
    // The index answers what the records say, whatever the kill interrupted.
    let scanned = reg.listing_from_records("m").map_err(err)?;
    if scanned.versions != listing.versions {
        let scanned: Vec<&Version> = scanned.versions.iter().map(|i| &i.version).collect();
        return Err(format!(
            "{what}: the index lists {committed:?}, the records {scanned:?}"
        ));
    }
    if let Some(root) = root {
        let claimed: Vec<Version> = std::fs::read_dir(root.join("m/versions"))
            .map(|it| {
                it.flatten()
                    .filter_map(|e| Version::parse(&e.file_name().to_string_lossy()).ok())
                    .collect()
            })
            .unwrap_or_default();
        for v in claimed.iter().filter(|v| !committed.contains(v)) {
            let m = model(0.5);
            match reg.publish_model(&m, &card("m", &m, &[]), VersionSpec::Exact(v.clone())) {
                Ok(_) => {}
                Err(e) => {
                    return Err(format!(
                        "{what}: {v} stays blocked: {}",
                        model_persistence_core::error_chain(&e)
                    ))
                }
            }
        }
    }
    // The next operation of each kind runs.
    let m = model(0.25);
    let info = reg
        .publish_model(&m, &card("m", &m, &[]), VersionSpec::Bump(Bump::Patch))
        .map_err(err)?;
    reg.set_alias("m", "production", &info.version).map_err(err)?;
    reg.set_alias("m", "staging", &info.version).map_err(err)?;
    // Keep the registry small enough that each check stays quick.
    if reg.versions("m").map_err(err)?.len() > 40 {
        reg.prune("m", 20).map_err(err)?;
    }
    // Every committed version intact and listed; no alias dangling.
    let report = reg.verify("m").map_err(err)?;
    if let Some(d) = report.damaged.first() {
        return Err(format!(
            "{what}: {} damaged: {}",
            d.key,
            model_persistence_core::error_chain(&d.error)
        ));
    }
    for info in reg.versions("m").map_err(err)? {
        reg.load::<Linear>(&format!("m@{}", info.version).parse().map_err(err)?)
            .map_err(|e| format!("{what}: listed {} does not load: {e}", info.version))?;
    }
    // The history's last move equals the alias.
    let target = reg.alias("m", "production").map_err(err)?.map(|t| t.version);
    let last = reg
        .history("m")
        .map_err(err)?
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::AliasMoved { alias, to, .. } | EventKind::RolledBack { alias, to, .. }
                if alias == "production" =>
            {
                Some(to)
            }
            _ => None,
        })
        .next_back();
    if last != target {
        return Err(format!(
            "{what}: history's last move {last:?} but production is {target:?}"
        ));
    }
    if let Some(root) = root {
        let left = dead_temps(root);
        if !left.is_empty() {
            return Err(format!("{what}: temporary files of dead writers left: {left:?}"));
        }
    }
    Ok(())
}

fn kills(exe: &Path, op: &str, location: &str, root: Option<&Path>, n: usize) -> Result<String, String> {
    let reg = open(location);
    for i in 0..5 {
        let m = model(f64::from(i));
        reg.publish_model(&m, &card("m", &m, &[]), VersionSpec::Bump(Bump::Patch))
            .map_err(|e| e.to_string())?;
    }
    let mut rng = SplitMix64::new(op.len() as u64 * 7919);
    let started = Instant::now();
    for kill in 0..n {
        let mut child = Command::new(exe)
            .args(["--child", op, location, &rng.next_u64().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_millis(15 + rng.next_below(60) as u64));
        child.kill().map_err(|e| e.to_string())?; // SIGKILL
        child.wait().map_err(|e| e.to_string())?;
        check(&reg, root, &format!("{op} kill {kill}"))?;
    }
    let versions = reg.versions("m").map_err(|e| e.to_string())?.len();
    Ok(format!(
        "{op}: {n} kills, {versions} versions, every promise held ({:.1}s)",
        started.elapsed().as_secs_f64()
    ))
}

/// Prune racing promote: production at the newest version, then one thread
/// prunes to the last version while another promotes an older one. Whoever
/// wins, production never points at a missing version.
fn prune_races_promote(location_of: &dyn Fn() -> String, rounds: usize) -> Result<String, String> {
    let mut kept = 0;
    for round in 0..rounds {
        let location = location_of();
        let reg = Arc::new(open(&location));
        for i in 0..10 {
            let m = model(f64::from(i));
            reg.publish_model(&m, &card("m", &m, &[]), VersionSpec::Bump(Bump::Patch))
                .map_err(|e| e.to_string())?;
        }
        reg.set_alias("m", "production", &Version::new(1, 0, 9))
            .map_err(|e| e.to_string())?;
        let older = Version::new(1, 0, (round % 9) as u64);
        let barrier = Arc::new(Barrier::new(2));
        let (r1, b1) = (Arc::new(open(&location)), Arc::clone(&barrier));
        let pruner = std::thread::spawn(move || {
            b1.wait();
            r1.prune("m", 1)
        });
        let (r2, b2, to) = (Arc::new(open(&location)), Arc::clone(&barrier), older.clone());
        let promoter = std::thread::spawn(move || {
            b2.wait();
            r2.set_alias("m", "production", &to)
        });
        let pruned = pruner
            .join()
            .map_err(|_| "pruner panicked")?
            .map_err(|e| e.to_string())?;
        let promoted = promoter.join().map_err(|_| "promoter panicked")?;
        let target = reg
            .alias("m", "production")
            .map_err(|e| e.to_string())?
            .ok_or("production vanished")?;
        if pruned.contains(&target.version) {
            return Err(format!("round {round}: production points at pruned {}", target.version));
        }
        reg.load::<Linear>(&"m@production".parse().map_err(|e: Error| e.to_string())?)
            .map_err(|e| format!("round {round}: production does not load: {e}"))?;
        match promoted {
            Ok(_) => kept += usize::from(target.version == older),
            Err(Error::VersionRetiring { .. } | Error::VersionNotFound { .. }) => {}
            Err(e) => return Err(format!("round {round}: promote failed oddly: {e}")),
        }
        let report = reg.verify("m").map_err(|e| e.to_string())?;
        if let Some(d) = report.damaged.first() {
            return Err(format!("round {round}: {} damaged: {}", d.key, d.error));
        }
    }
    Ok(format!(
        "{rounds} rounds, zero dangling aliases; the promote won {kept} times, the prune the others"
    ))
}

/// A temporary directory, in memory where the machine has `/dev/shm`.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().expect("temp dir")
}

fn s3_url() -> String {
    common::s3_url()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], &args[i + 2], args[i + 3].parse().expect("seed"));
    }
    let n: usize = std::env::var("MP_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let n_s3 = (n / 3).max(30.min(n));
    let exe = std::env::current_exe().expect("own path");
    let mut results: Vec<(String, Result<String, String>)> = Vec::new();
    let report = |results: &Vec<(String, Result<String, String>)>| {
        if let Some((name, result)) = results.last() {
            match result {
                Ok(note) => println!("test {name} ... ok ({note})"),
                Err(e) => println!("test {name} ... FAILED: {e}"),
            }
        }
    };
    for op in OPS {
        let dir = scratch();
        let root = dir.path().join("registry");
        Registry::create(&root).expect("registry");
        let location = root.to_string_lossy().into_owned();
        results.push((
            format!("kill_9_during_{op}_on_the_directory"),
            kills(&exe, op, &location, Some(&root), n),
        ));
        report(&results);
    }
    for op in OPS {
        let location = s3_url();
        Registry::create_url(&location).expect("s3 registry");
        results.push((
            format!("kill_9_during_{op}_on_s3"),
            kills(&exe, op, &location, None, n_s3),
        ));
        report(&results);
    }
    let dirs: std::cell::RefCell<Vec<tempfile::TempDir>> = std::cell::RefCell::new(Vec::new());
    let local = || {
        let dir = scratch();
        let root = dir.path().join("registry");
        Registry::create(&root).expect("registry");
        dirs.borrow_mut().push(dir);
        root.to_string_lossy().into_owned()
    };
    results.push((
        "prune_racing_promote_on_the_directory".into(),
        prune_races_promote(&local, 20),
    ));
    report(&results);
    let remote = || {
        let url = s3_url();
        Registry::create_url(&url).expect("s3 registry");
        url
    };
    results.push(("prune_racing_promote_on_s3".into(), prune_races_promote(&remote, 20)));
    report(&results);
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    println!(
        "test result: {}. {} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out",
        if failed == 0 { "ok" } else { "FAILED" },
        results.len() - failed
    );
    std::process::exit(i32::from(failed > 0));
}

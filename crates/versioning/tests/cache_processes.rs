//! The bundle cache across processes: a downloader killed with SIGKILL in
//! the middle of its download holds up no one. The processes are this test
//! binary run again in a role (`MP_CACHE_ROLE`), sharing one cache folder.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use model_persistence_core::ContentId;
use model_persistence_versioning::{BundleCache, CacheOutcome};

const ID: &str = "5f1e0c1f9b0d6a1e2f3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192";
const BYTES: &[u8] = b"the bundle's bytes";

/// What this process does when run in a role: `download` takes the lock and
/// never finishes (it marks that it started, then sleeps); `fetch` gets the
/// bundle, downloading it if it must, and prints what the cache did.
fn role(role: &str, dir: &Path) {
    let cache = BundleCache::new(dir, 1 << 20).expect("cache");
    let id = ContentId::from_hex(ID).expect("id");
    let started = dir.join("download-started");
    let verify = |b: &[u8]| {
        if b == BYTES {
            Ok(())
        } else {
            Err("wrong bytes".to_owned())
        }
    };
    let (bytes, outcome) = match role {
        "download" => cache.get_or_fetch(
            &id,
            || {
                std::fs::write(&started, b"").expect("mark");
                std::thread::sleep(Duration::from_secs(600));
                Ok(BYTES.to_vec())
            },
            verify,
        ),
        _ => cache.get_or_fetch(&id, || Ok(BYTES.to_vec()), verify),
    }
    .expect("fetched");
    assert_eq!(bytes, BYTES);
    println!("outcome {outcome:?}");
}

fn spawn(role: &str, dir: &Path) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "a_killed_downloader_holds_up_no_one",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MP_CACHE_ROLE", role)
        .env("MP_CACHE_DIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn")
}

/// Waits at most `bound` for `child`, killing it past that.
fn finish(mut child: Child, bound: Duration) -> Option<String> {
    let start = Instant::now();
    while start.elapsed() < bound {
        if child.try_wait().expect("wait").is_some() {
            let out = child.wait_with_output().expect("output");
            assert!(out.status.success(), "a fetching process failed");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            // libtest prints the test's name on the same line, before it.
            return text
                .lines()
                .find_map(|l| l.split_once("outcome ").map(|(_, o)| o.trim().to_owned()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A downloader holds the lock and is killed with SIGKILL mid-download;
/// two processes waiting for it take over at once: one downloads, the
/// other uses its bytes. Before, they waited out a two-minute bound on a
/// lock file nobody would remove.
#[test]
fn a_killed_downloader_holds_up_no_one() {
    if let (Ok(role_name), Ok(dir)) = (std::env::var("MP_CACHE_ROLE"), std::env::var("MP_CACHE_DIR")) {
        role(&role_name, Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().expect("cache dir");
    let mut downloader = spawn("download", dir.path());
    let start = Instant::now();
    while !dir.path().join("download-started").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the downloader never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let waiters = [spawn("fetch", dir.path()), spawn("fetch", dir.path())];
    std::thread::sleep(Duration::from_millis(300)); // both are waiting on the lock
    downloader.kill().expect("SIGKILL");
    downloader.wait().expect("reaped");
    // Far below the old two-minute wait: the takeover is at once, the
    // bound only stops a broken build from hanging.
    let mut outcomes: Vec<String> = waiters
        .into_iter()
        .map(|w| finish(w, Duration::from_secs(60)).expect("a waiter was still waiting a minute after the kill"))
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            format!("{:?}", CacheOutcome::Miss),
            format!("{:?}", CacheOutcome::Waited)
        ]
    );
    let cache = BundleCache::new(dir.path(), 1 << 20).expect("cache");
    assert_eq!(cache.get(&ContentId::from_hex(ID).expect("id")).as_deref(), Some(BYTES));
}

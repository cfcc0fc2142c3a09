//! `prune` on a full file system: removing versions must not need the free
//! space a full disk lacks. The registry lives on a 4 MiB tmpfs mounted in
//! a private user and mount namespace (`unshare`, util-linux), which this
//! test binary enters by running itself again in a role.
#![cfg(target_os = "linux")]

mod common;

use std::path::Path;
use std::process::Command;

use common::{card, model};
use model_persistence_versioning::{Registry, VersionSpec};
use semver::Version;

/// Inside the namespace: a registry on the tmpfs with three versions, the
/// disk filled to the last byte, then `prune` keeping one.
fn on_a_full_disk(mount: &Path) {
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(mount)
        .status()
        .expect("mount runs");
    assert!(status.success(), "mounting a tmpfs failed");
    let root = mount.join("registry");
    let reg = Registry::create(&root).expect("registry");
    for i in 1..=3u64 {
        let m = model(i as f64);
        reg.publish_model(&m, &card("m", &m, &[]), VersionSpec::Exact(Version::new(1, 0, i)))
            .expect("publish");
    }
    // Fill what is left, a page at a time, until the kernel says no.
    let mut filler = std::fs::File::create(mount.join("filler")).expect("filler");
    let page = vec![7u8; 4096];
    loop {
        match std::io::Write::write_all(&mut filler, &page) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    drop(filler);
    let publish = reg.publish_model(
        &model(9.0),
        &card("m", &model(9.0), &[]),
        VersionSpec::Exact(Version::new(2, 0, 0)),
    );
    assert!(publish.is_err(), "the disk is not full: a publish succeeded");
    let pruned = reg.prune("m", 1).expect("prune frees space on a full disk");
    assert_eq!(pruned, [Version::new(1, 0, 1), Version::new(1, 0, 2)]);
    let left: Vec<Version> = reg
        .versions("m")
        .expect("list")
        .into_iter()
        .map(|i| i.version)
        .collect();
    assert_eq!(left, [Version::new(1, 0, 3)]);
    assert!(reg.verify("m").expect("verify").damaged.is_empty());
    println!("pruned on a full disk");
}

#[test]
fn prune_frees_space_on_a_full_file_system() {
    if let Ok(mount) = std::env::var("MP_FULL_DISK_MOUNT") {
        on_a_full_disk(Path::new(&mount));
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "--"])
        .arg(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "prune_frees_space_on_a_full_file_system",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MP_FULL_DISK_MOUNT", dir.path())
        .output()
        .expect(
            "this test runs itself under `unshare --user --map-root-user --mount` (util-linux) \
             to mount a small tmpfs: install util-linux",
        );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("pruned on a full disk"),
        "in a namespace with a full 4 MiB tmpfs: {}\n{stdout}\n{stderr}\n(this needs `unshare` from util-linux and \
         user namespaces enabled: sysctl kernel.unprivileged_userns_clone=1, or run as root)",
        out.status
    );
}

//! Who holds a claim, a pin or a retiring mark, and whether they are gone.
//!
//! Registry writers leave small marker objects while they work (a publisher
//! its claim on a version number, a promoter its pin on the target version,
//! a pruner its retiring mark). A writer killed mid-operation leaves its
//! marker behind; the next writer must tell a dead owner from a live one to
//! recover without an operator. A marker names its process and machine:
//! on the same machine a process that no longer exists is dead at once;
//! otherwise a marker older than the registry's stale-after duration (15
//! minutes by default) is taken as abandoned.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The writer behind a marker object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Owner {
    /// A unique id of this operation.
    pub(crate) id: String,
    /// The writer's process id.
    pub(crate) pid: u32,
    /// The writer's machine.
    pub(crate) host: String,
    /// When the marker was written.
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) at: OffsetDateTime,
}

impl Owner {
    /// This process, now.
    pub(crate) fn me(id: String) -> Self {
        Owner {
            id,
            pid: std::process::id(),
            host: host_name(),
            at: OffsetDateTime::now_utc(),
        }
    }

    /// Whether the owner is gone: a dead process on this machine, or a
    /// marker older than `stale_after`.
    pub(crate) fn is_stale(&self, stale_after: Duration) -> bool {
        if self.host == host_name() && self.pid != std::process::id() && !process_exists(self.pid) {
            return true;
        }
        let age = OffsetDateTime::now_utc() - self.at;
        age > time::Duration::try_from(stale_after).unwrap_or(time::Duration::MAX)
    }
}

/// The machine's name (`/etc/hostname`, `HOSTNAME`, or `localhost`).
pub(crate) fn host_name() -> String {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|s| s.trim().to_owned())
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".to_owned())
    })
    .clone()
}

/// Whether a process with this id runs on this machine. Where that cannot
/// be told (no `/proc`), every process is taken as alive and only the age
/// of a marker makes it stale.
pub(crate) fn process_exists(pid: u32) -> bool {
    if !std::path::Path::new("/proc/self").exists() {
        return true;
    }
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_owner_is_not_stale_and_a_dead_one_is() {
        let me = Owner::me("x".into());
        assert!(!me.is_stale(Duration::from_secs(60)));
        let dead = Owner {
            pid: u32::MAX - 1,
            ..me.clone()
        };
        assert!(dead.is_stale(Duration::from_secs(3600)));
        let elsewhere_old = Owner {
            host: "another-machine".into(),
            at: OffsetDateTime::now_utc() - time::Duration::hours(2),
            ..me.clone()
        };
        assert!(elsewhere_old.is_stale(Duration::from_secs(900)));
        let elsewhere_new = Owner {
            host: "another-machine".into(),
            ..me
        };
        assert!(!elsewhere_new.is_stale(Duration::from_secs(900)));
    }
}

//! File helpers the crates share: temporary files that name their writer,
//! with the mode any Unix tool gives a new file, and the cleanup of the
//! temporary files of writers that died.
//!
//! A writer killed between creating its temporary file and renaming it
//! leaves the file behind. Each temporary file is named
//! `<prefix><pid>-<random>`; [`sweep_dead_temps`] removes those in a
//! directory whose process no longer exists on this machine (or, where
//! processes cannot be seen, that are older than a day).

use std::fs::Permissions;
use std::path::Path;
use std::time::Duration;

/// Temporary files older than this are removed even if their writer's
/// process cannot be looked up.
const ABANDONED_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// A new temporary file in `dir`, named `<prefix><pid>-<random>`, with mode
/// `mode` (0666 for a new file, as any Unix tool) minus the process umask.
///
/// # Errors
///
/// The I/O error of creating it.
pub fn temp_file_in(dir: &Path, prefix: &str, mode: Option<Permissions>) -> std::io::Result<tempfile::NamedTempFile> {
    let prefix = format!("{prefix}{}-", std::process::id());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(mode.unwrap_or_else(|| Permissions::from_mode(0o666)));
    }
    #[cfg(not(unix))]
    if let Some(mode) = mode {
        builder.permissions(mode);
    }
    builder.tempfile_in(dir)
}

/// Removes the temporary files `<prefix><pid>-*` in `dir` whose writer is
/// gone. Errors are ignored: another process may sweep the same file.
pub fn sweep_dead_temps(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let me = std::process::id();
    let procs_visible = Path::new("/proc/self").exists();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let dead = if procs_visible {
            pid != me && !Path::new(&format!("/proc/{pid}")).exists()
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > ABANDONED_AFTER)
        };
        if dead {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The error inside the `InvalidInput` I/O error of [`open_regular`]: what
/// the path is instead of a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotRegular(pub &'static str);

impl std::fmt::Display for NotRegular {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, not a regular file", self.0)
    }
}

impl std::error::Error for NotRegular {}

/// Opens `path` for reading only if it is a regular file, without ever
/// blocking on a FIFO (it is opened non-blocking, then checked); returns the
/// file and its size.
///
/// # Errors
///
/// The I/O error of opening it; an `InvalidInput` error holding
/// [`NotRegular`] for a FIFO, a device, a socket or a directory.
pub fn open_regular(path: &Path) -> std::io::Result<(std::fs::File, u64)> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            NotRegular(file_type_name(&meta.file_type())),
        ));
    }
    Ok((file, meta.len()))
}

fn file_type_name(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temps_of_dead_writers_are_swept_and_live_ones_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mine = temp_file_in(dir.path(), ".tmp-", None).expect("temp");
        let dead = dir.path().join(format!(".tmp-{}-abc", u32::MAX - 3));
        std::fs::write(&dead, b"left by a killed writer").expect("write");
        let other = dir.path().join("model.bundle");
        std::fs::write(&other, b"x").expect("write");
        sweep_dead_temps(dir.path(), ".tmp-");
        assert!(!dead.exists());
        assert!(mine.path().exists());
        assert!(other.exists());
    }

    #[cfg(unix)]
    #[test]
    fn new_files_get_0666_minus_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let tmp = temp_file_in(dir.path(), ".t-", None).expect("temp");
        let mode = tmp.as_file().metadata().expect("meta").permissions().mode() & 0o777;
        // The umask only removes bits: group and others can read unless it says otherwise.
        assert_eq!(mode & !0o666, 0, "{mode:o}");
        assert_ne!(mode, 0o600, "the 0600 of a plain temp file: {mode:o}");
    }

    #[cfg(unix)]
    #[test]
    fn fifos_devices_and_directories_are_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("temp dir");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        for (path, what) in [
            (fifo.as_path(), "a FIFO"),
            (Path::new("/dev/zero"), "a device"),
            (dir.path(), "a directory"),
        ] {
            let err = open_regular(path).expect_err("refused");
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
            let inner = err
                .get_ref()
                .and_then(|i| i.downcast_ref::<NotRegular>())
                .expect("NotRegular");
            assert_eq!(inner.0, what);
        }
    }
}

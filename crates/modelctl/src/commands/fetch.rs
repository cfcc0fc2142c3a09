//! `modelctl fetch REF DIR`: a registry version's bundle written to
//! `DIR/model.bundle`, verified before a byte is written (hashes, content
//! id, and under `--trust` the signature), as KServe's storage initializer
//! for `modelctl serve --bundle-dir DIR`.
//!
//! Each file is written to a temporary file starting with `.` and renamed
//! into place (`persistence::write_atomic`): after a kill -9, DIR holds the
//! earlier files or the new ones, never part of one. The bundle is renamed
//! before its signature, and a stale signature of an earlier bundle is
//! removed first: a kill between the two renames leaves a complete,
//! verifying bundle whose signature is missing (a server under `--trust`
//! refuses it until the fetch is run again), never a bundle beside another
//! bundle's signature. Fetches into one directory take turns (an advisory
//! lock on `DIR/.model.bundle.lock`, released by the kernel when its holder
//! dies), so two at once cannot pair one's bundle with the other's
//! signature.

use std::path::Path;

use model_persistence::persistence::{signing, write_atomic};
use model_persistence::versioning::ModelRef;
use serde_json::json;

use super::registry::Location;
use crate::output::outln;
use crate::output::{Failure, Outcome};

/// The scheme of the storage URIs KServe hands its storage initializer
/// (`storageUri: mp://fraud@production`, deploy/kserve/storage-container.yaml):
/// the rest is the reference, resolved in `--registry`.
const URI_SCHEME: &str = "mp://";

/// Resolves, downloads, verifies and writes; prints what it wrote.
pub(crate) fn fetch(location: Location<'_>, reference: &str, dir: &Path, json: bool) -> Outcome {
    let registry = location.open()?;
    let reference: ModelRef = reference.strip_prefix(URI_SCHEME).unwrap_or(reference).parse()?;
    let info = registry.resolve(&reference)?;
    // Verified against the recorded content id; under --trust the
    // registry handle also requires the signature.
    let bundle = registry.bundle(&info.model, &info.version)?;
    let signature = registry.signature(&info.model, &info.version)?;
    if let Some(keys) = super::signing::trusted() {
        let Some(sig) = &signature else {
            return Err(Failure(format!(
                "{}@{} is not signed, and --trust requires a signature by a trusted key",
                info.model, info.version
            )));
        };
        signing::verify(&bundle, sig, &keys).map_err(|e| {
            Failure(format!(
                "{}@{}: the signature does not verify: {e}",
                info.model, info.version
            ))
        })?;
    }
    std::fs::create_dir_all(dir).map_err(|e| Failure(format!("cannot make {}: {e}", dir.display())))?;
    let lock_path = dir.join(".model.bundle.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Failure(format!("cannot open {}: {e}", lock_path.display())))?;
    lock.lock()
        .map_err(|e| Failure(format!("cannot lock {}: {e}", lock_path.display())))?;
    let path = dir.join("model.bundle");
    let sig_path = signing::signature_path(&path);
    // A signature of the bundle being replaced must not outlive it.
    match std::fs::remove_file(&sig_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Failure(format!("cannot remove {}: {e}", sig_path.display()))),
    }
    write_atomic(&path, &bundle)?;
    if let Some(sig) = &signature {
        write_atomic(&sig_path, sig)?;
    }
    if json {
        outln!(
            "{}",
            json!({
                "model": info.model.to_string(),
                "version": info.version.to_string(),
                "content_id": info.content_id.to_string(),
                "bundle": path.display().to_string(),
                "signature": signature.is_some().then(|| sig_path.display().to_string()),
            })
        );
    } else {
        outln!(
            "wrote {}@{} ({}) to {}{}",
            info.model,
            info.version,
            info.content_id,
            path.display(),
            if signature.is_some() { " with its signature" } else { "" }
        );
    }
    Ok(())
}

//! `modelctl keygen`, `modelctl sign`, and the `--trust` keys every command
//! checks signatures against.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use model_persistence::persistence::signing::{self, PublicKey, SigningKey};

use crate::output::outln;
use crate::output::{Failure, Outcome};

static TRUSTED: OnceLock<Vec<PublicKey>> = OnceLock::new();

/// Reads the `--trust` keys once, at start.
pub(crate) fn load_trust(paths: &[PathBuf]) -> Outcome {
    let mut keys = Vec::with_capacity(paths.len());
    for p in paths {
        let pem =
            std::fs::read_to_string(p).map_err(|e| Failure(format!("cannot read the key {}: {e}", p.display())))?;
        keys.push(PublicKey::from_pem(&pem).map_err(|e| Failure(format!("{}: {e}", p.display())))?);
    }
    let _ = TRUSTED.set(keys);
    Ok(())
}

/// The trusted keys, when `--trust` was given.
pub(crate) fn trusted() -> Option<Vec<PublicKey>> {
    TRUSTED.get().filter(|k| !k.is_empty()).cloned()
}

/// With `--trust`: the bundle file's signature must verify; the hint of
/// the key that signed it.
pub(crate) fn check_file(bundle: &Path) -> Result<Option<String>, Failure> {
    let Some(keys) = trusted() else {
        return Ok(None);
    };
    let sig_path = signing::signature_path(bundle);
    let sig = match std::fs::read(&sig_path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure(format!(
                "{} is not signed: no {}",
                bundle.display(),
                sig_path.display()
            )))
        }
        Err(e) => return Err(Failure(format!("cannot read {}: {e}", sig_path.display()))),
    };
    let bytes = std::fs::read(bundle).map_err(|e| Failure(format!("cannot read {}: {e}", bundle.display())))?;
    let signer = signing::verify(&bytes, &sig, &keys).map_err(|e| Failure(format!("{}: {e}", bundle.display())))?;
    Ok(Some(keys[signer].hint()))
}

/// `modelctl keygen NAME`.
pub(crate) fn keygen(name: &Path) -> Outcome {
    let private = name.with_extension("pem");
    let public = name.with_extension("pub.pem");
    for p in [&private, &public] {
        if p.exists() {
            return Err(Failure(format!("{} exists: not overwriting a key", p.display())));
        }
    }
    let key = SigningKey::generate();
    write_private(&private, key.to_pem()?.as_bytes())?;
    std::fs::write(&public, key.public_key().to_pem())
        .map_err(|e| Failure(format!("cannot write {}: {e}", public.display())))?;
    outln!(
        "wrote {} (keep it secret) and {} (give it to verifiers); key {}",
        private.display(),
        public.display(),
        key.public_key().hint()
    );
    Ok(())
}

fn write_private(path: &Path, pem: &[u8]) -> Outcome {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .map_err(|e| Failure(format!("cannot create {}: {e}", path.display())))?;
    f.write_all(pem)
        .and_then(|()| f.sync_all())
        .map_err(|e| Failure(format!("cannot write {}: {e}", path.display())))
}

/// `modelctl sign BUNDLE --key K [--output SIG]`.
pub(crate) fn sign(bundle: &Path, key: &Path, output: Option<&Path>) -> Outcome {
    let pem =
        std::fs::read_to_string(key).map_err(|e| Failure(format!("cannot read the key {}: {e}", key.display())))?;
    let key = SigningKey::from_pem(&pem).map_err(|e| Failure(format!("{}: {e}", key.display())))?;
    // Only a sound bundle is signed.
    model_persistence::persistence::BundleReader::default().verify(bundle)?;
    let bytes = std::fs::read(bundle).map_err(|e| Failure(format!("cannot read {}: {e}", bundle.display())))?;
    let name = bundle
        .file_name()
        .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
    let sig = signing::sign(&bytes, &name, &key)?;
    let out = output.map_or_else(|| signing::signature_path(bundle), Path::to_path_buf);
    std::fs::write(&out, sig).map_err(|e| Failure(format!("cannot write {}: {e}", out.display())))?;
    outln!(
        "signed {} with key {}: {}",
        bundle.display(),
        key.public_key().hint(),
        out.display()
    );
    Ok(())
}

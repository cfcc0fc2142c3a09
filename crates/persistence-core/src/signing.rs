//! Signed bundles in the OpenSSF model-signing format.
//!
//! A signature is a detached file beside the bundle (`<bundle>.sig`): a
//! sigstore bundle (`application/vnd.dev.sigstore.bundle.v0.3+json`) holding
//! a DSSE envelope over an in-toto statement (`https://in-toto.io/Statement/v1`,
//! predicate `https://model_signing/signature/v1.0`) that lists the bundle's
//! SHA-256, signed with ECDSA P-256 / SHA-256 by a key in PEM: what the
//! `model_signing` tool (`model-signing` on PyPI) writes and reads in its
//! key mode for a single file. A bundle signed here verifies with
//! `model_signing verify key`, and the tool's signatures verify here
//! (tested with the real tool by `scripts/test.sh`).
//!
//! ```
//! use model_persistence_core::signing::{sign, verify, SigningKey};
//!
//! let key = SigningKey::generate();
//! let bundle = b"the bytes of a bundle";
//! let signature = sign(bundle, "fraud.bundle", &key)?;
//! let signer = verify(bundle, &signature, &[key.public_key()])?;
//! assert_eq!(signer, 0); // the index of the trusted key that signed
//! assert!(verify(b"other bytes", &signature, &[key.public_key()]).is_err());
//! # Ok::<(), model_persistence_core::signing::SignatureError>(())
//! ```

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The sigstore bundle media type written and read.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The DSSE payload type.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The model-signing predicate type.
pub const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";
/// The largest signature file read.
pub const MAX_SIGNATURE_LEN: usize = 1 << 20;

/// Why a signature does not verify (or a key cannot be used).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The signature file is not a model-signing signature (not JSON, a
    /// field missing, bad base64, truncated).
    #[error("malformed signature: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// The signature is made for other bytes: the bundle was changed after
    /// signing (or the signature belongs to another file).
    #[error("the bundle does not match its signature: signed SHA-256 {signed}, the bundle's {found}")]
    Tampered {
        /// The digest the signature covers.
        signed: String,
        /// The bundle's digest.
        found: String,
    },
    /// No trusted key made the signature.
    #[error("no trusted key made this signature ({trusted} trusted key(s) tried)")]
    UntrustedSigner {
        /// How many keys were tried.
        trusted: usize,
    },
    /// A key that is not an ECDSA P-256 key in PEM.
    #[error("unsupported key: {reason}")]
    UnsupportedKey {
        /// What the key is.
        reason: String,
    },
    /// A signature is required and there is none.
    #[error("the bundle is not signed")]
    Unsigned,
}

fn malformed(reason: impl Into<String>) -> SignatureError {
    SignatureError::Malformed { reason: reason.into() }
}

/// A private ECDSA P-256 key.
#[derive(Clone)]
pub struct SigningKey(p256::ecdsa::SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public_key().hint())
            .finish_non_exhaustive()
    }
}

/// A public ECDSA P-256 key, trusted to sign bundles.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(p256::ecdsa::VerifyingKey);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PublicKey").field(&self.hint()).finish()
    }
}

fn unsupported(what: &str, pem: &str) -> SignatureError {
    let kind = pem
        .lines()
        .find(|l| l.starts_with("-----BEGIN "))
        .unwrap_or("no PEM block")
        .trim_matches('-')
        .to_owned();
    SignatureError::UnsupportedKey {
        reason: format!("{what}: not an ECDSA P-256 key in PEM ({kind})"),
    }
}

impl SigningKey {
    /// A new random key.
    pub fn generate() -> Self {
        SigningKey(p256::ecdsa::SigningKey::random(&mut rand_core::OsRng))
    }

    /// Reads a private key in PEM: PKCS#8 (`BEGIN PRIVATE KEY`) or SEC1
    /// (`BEGIN EC PRIVATE KEY`, what `openssl ecparam -genkey` writes).
    ///
    /// # Errors
    ///
    /// [`SignatureError::UnsupportedKey`] for anything but an unencrypted
    /// P-256 key.
    pub fn from_pem(pem: &str) -> Result<Self, SignatureError> {
        if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            return Ok(SigningKey(k));
        }
        if let Ok(k) = p256::SecretKey::from_sec1_pem(pem) {
            return Ok(SigningKey(k.into()));
        }
        Err(unsupported("private key", pem))
    }

    /// The key in PKCS#8 PEM.
    ///
    /// # Errors
    ///
    /// The encoder's error (not expected for a valid key).
    pub fn to_pem(&self) -> Result<String, SignatureError> {
        self.0
            .to_pkcs8_pem(LineEnding::LF)
            .map(|s| s.to_string())
            .map_err(|e| malformed(e.to_string()))
    }

    /// Its public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(*self.0.verifying_key())
    }
}

impl PublicKey {
    /// Reads a public key in PEM (`BEGIN PUBLIC KEY`, SubjectPublicKeyInfo).
    ///
    /// # Errors
    ///
    /// [`SignatureError::UnsupportedKey`] for anything but a P-256 key.
    pub fn from_pem(pem: &str) -> Result<Self, SignatureError> {
        p256::ecdsa::VerifyingKey::from_public_key_pem(pem)
            .map(PublicKey)
            .map_err(|_| unsupported("public key", pem))
    }

    /// The key in PEM (SubjectPublicKeyInfo, LF line endings).
    pub fn to_pem(&self) -> String {
        self.0.to_public_key_pem(LineEnding::LF).unwrap_or_default()
    }

    /// The key's hint in a signature: the SHA-256 of its PEM, in hex.
    pub fn hint(&self) -> String {
        hex::encode(Sha256::digest(self.to_pem().as_bytes()))
    }
}

/// DSSE's pre-authentication encoding of the payload.
fn pae(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {PAYLOAD_TYPE} {} ", PAYLOAD_TYPE.len(), payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Signs bundle bytes: the signature file's bytes. `name` is the bundle's
/// file name, recorded as the statement's subject (as `model_signing` does).
///
/// # Errors
///
/// Not expected: JSON encoding of the statement.
pub fn sign(bundle: &[u8], name: &str, key: &SigningKey) -> Result<Vec<u8>, SignatureError> {
    let digest = Sha256::digest(bundle);
    // The manifest's root digest: the SHA-256 of the resources' digests.
    let root = Sha256::digest(digest);
    let statement = json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": hex::encode(root)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {
                "hash_type": "sha256",
                "allow_symlinks": false,
                "method": "files",
                "ignore_paths": [".gitignore", ".git", ".github", ".gitattributes"],
            },
            "resources": [{"algorithm": "sha256", "digest": hex::encode(digest), "name": "."}],
        },
    });
    let payload = serde_json::to_vec_pretty(&statement).map_err(|e| malformed(e.to_string()))?;
    let signature: p256::ecdsa::Signature = key.0.sign(&pae(&payload));
    let bundle_json = json!({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key.public_key().hint()}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": B64.encode(&payload),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": B64.encode(signature.to_der().as_bytes()), "keyid": ""}],
        },
    });
    serde_json::to_vec_pretty(&bundle_json).map_err(|e| malformed(e.to_string()))
}

fn field<'a>(v: &'a Value, path: &[&str]) -> Result<&'a Value, SignatureError> {
    let mut at = v;
    for p in path {
        at = at.get(p).ok_or_else(|| malformed(format!("no {:?}", path.join("."))))?;
    }
    Ok(at)
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Result<&'a str, SignatureError> {
    field(v, path)?
        .as_str()
        .ok_or_else(|| malformed(format!("{:?} is not a string", path.join("."))))
}

/// Verifies a signature over bundle bytes against trusted keys; the index
/// of the key that made it.
///
/// # Errors
///
/// [`SignatureError::Malformed`] for a signature file that is not one,
/// [`SignatureError::UntrustedSigner`] when no trusted key made it,
/// [`SignatureError::Tampered`] when it is for other bytes.
pub fn verify(bundle: &[u8], signature: &[u8], trusted: &[PublicKey]) -> Result<usize, SignatureError> {
    if signature.len() > MAX_SIGNATURE_LEN {
        return Err(malformed(format!(
            "{} bytes: larger than any signature",
            signature.len()
        )));
    }
    let doc: Value = serde_json::from_slice(signature).map_err(|e| malformed(format!("not JSON: {e}")))?;
    let media = text(&doc, &["mediaType"])?;
    if media != BUNDLE_MEDIA_TYPE {
        return Err(malformed(format!(
            "media type {media:?}, expected {BUNDLE_MEDIA_TYPE:?}"
        )));
    }
    let envelope = field(&doc, &["dsseEnvelope"])?;
    let payload_type = text(envelope, &["payloadType"])?;
    if payload_type != PAYLOAD_TYPE {
        return Err(malformed(format!("payload type {payload_type:?}")));
    }
    let payload = B64
        .decode(text(envelope, &["payload"])?)
        .map_err(|e| malformed(format!("payload: {e}")))?;
    let sigs = field(envelope, &["signatures"])?
        .as_array()
        .ok_or_else(|| malformed("signatures is not a list"))?;
    let sig = sigs.first().ok_or_else(|| malformed("no signature in the envelope"))?;
    let der = B64
        .decode(text(sig, &["sig"])?)
        .map_err(|e| malformed(format!("signature: {e}")))?;
    let sig = p256::ecdsa::Signature::from_der(&der).map_err(|e| malformed(format!("signature: {e}")))?;
    let hint = doc
        .get("verificationMaterial")
        .and_then(|m| m.get("publicKey"))
        .and_then(|k| k.get("hint"))
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty());
    let message = pae(&payload);
    let signer = trusted
        .iter()
        .position(|k| hint.is_none_or(|h| h == k.hint()) && k.0.verify(&message, &sig).is_ok())
        .ok_or(SignatureError::UntrustedSigner { trusted: trusted.len() })?;

    // What was signed: the statement, and the bundle's digest in it.
    let statement: Value = serde_json::from_slice(&payload).map_err(|e| malformed(format!("statement: {e}")))?;
    if text(&statement, &["_type"])? != STATEMENT_TYPE {
        return Err(malformed("not an in-toto v1 statement"));
    }
    if text(&statement, &["predicateType"])? != PREDICATE_TYPE {
        return Err(malformed("not a model-signing predicate"));
    }
    let serialization = field(&statement, &["predicate", "serialization"])?;
    if text(serialization, &["method"])? != "files" || text(serialization, &["hash_type"])? != "sha256" {
        return Err(malformed("only file-by-file SHA-256 manifests are read"));
    }
    let resources = field(&statement, &["predicate", "resources"])?
        .as_array()
        .ok_or_else(|| malformed("resources is not a list"))?;
    let [resource] = resources.as_slice() else {
        return Err(malformed(format!(
            "{} resources: a bundle signature covers one file",
            resources.len()
        )));
    };
    if text(resource, &["algorithm"])? != "sha256" {
        return Err(malformed("a resource digest is not SHA-256"));
    }
    let signed = text(resource, &["digest"])?.to_ascii_lowercase();
    let signed_bytes = hex::decode(&signed).map_err(|e| malformed(format!("resource digest: {e}")))?;
    let subjects = field(&statement, &["subject"])?
        .as_array()
        .ok_or_else(|| malformed("subject is not a list"))?;
    let [subject] = subjects.as_slice() else {
        return Err(malformed("expected one subject"));
    };
    let root = text(subject, &["digest", "sha256"])?;
    if root.to_ascii_lowercase() != hex::encode(Sha256::digest(&signed_bytes)) {
        return Err(malformed("the subject's digest does not cover the resources"));
    }
    let found = hex::encode(Sha256::digest(bundle));
    if signed != found {
        return Err(SignatureError::Tampered { signed, found });
    }
    Ok(signer)
}

/// Verifies a bundle file's signature (`<bundle>.sig`) against trusted
/// keys before the bundle is loaded: the opt-in check for one load; the
/// index of the key that signed.
///
/// ```no_run
/// use model_persistence_core::signing::{verify_file, PublicKey};
///
/// let release = PublicKey::from_pem(&std::fs::read_to_string("release.pub.pem")?)?;
/// verify_file("fraud.bundle".as_ref(), &[release])?;
/// let loaded = model_persistence_core::Kinds::default().load("fraud.bundle")?;
/// println!("{}", loaded.card().version);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`SignatureError::Unsigned`] without a signature file, the errors of
/// [`verify`], and [`SignatureError::Malformed`] when a file cannot be read.
pub fn verify_file(bundle: &std::path::Path, trusted: &[PublicKey]) -> Result<usize, SignatureError> {
    let sig_path = signature_path(bundle);
    let sig = match crate::files::open_regular(&sig_path) {
        Ok((file, len)) => {
            if len > MAX_SIGNATURE_LEN as u64 {
                return Err(malformed(format!("{}: larger than any signature", sig_path.display())));
            }
            let mut bytes = Vec::with_capacity(len as usize);
            std::io::Read::read_to_end(&mut std::io::Read::take(file, len), &mut bytes)
                .map_err(|e| malformed(format!("{}: {e}", sig_path.display())))?;
            bytes
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(SignatureError::Unsigned),
        Err(e) => return Err(malformed(format!("{}: {e}", sig_path.display()))),
    };
    let bytes = std::fs::read(bundle).map_err(|e| malformed(format!("{}: {e}", bundle.display())))?;
    verify(&bytes, &sig, trusted)
}

/// The signature file of a bundle file: `<bundle>.sig`.
pub fn signature_path(bundle: &std::path::Path) -> std::path::PathBuf {
    let mut name = bundle.as_os_str().to_owned();
    name.push(".sig");
    std::path::PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tampering_wrong_keys_and_damaged_signatures_are_typed_errors() {
        let key = SigningKey::generate();
        let other = SigningKey::generate();
        let bundle = b"bundle bytes".to_vec();
        let sig = sign(&bundle, "m.bundle", &key).expect("sign");
        assert_eq!(
            verify(&bundle, &sig, &[other.public_key(), key.public_key()]).expect("verifies"),
            1
        );
        assert!(matches!(
            verify(b"bundle bytez", &sig, &[key.public_key()]),
            Err(SignatureError::Tampered { .. })
        ));
        assert!(matches!(
            verify(&bundle, &sig, &[other.public_key()]),
            Err(SignatureError::UntrustedSigner { trusted: 1 })
        ));
        assert!(matches!(
            verify(&bundle, &sig, &[]),
            Err(SignatureError::UntrustedSigner { .. })
        ));
        for cut in [0, 1, sig.len() / 2, sig.len() - 2] {
            assert!(
                matches!(
                    verify(&bundle, &sig[..cut], &[key.public_key()]),
                    Err(SignatureError::Malformed { .. })
                ),
                "truncated at {cut}"
            );
        }
        // A payload changed after signing no longer matches the signature.
        let mut doc: Value = serde_json::from_slice(&sig).expect("json");
        let payload = B64
            .decode(doc["dsseEnvelope"]["payload"].as_str().expect("payload"))
            .expect("b64");
        let forged = String::from_utf8(payload)
            .expect("utf-8")
            .replace("\"name\": \".\"", "\"name\": \"x\"");
        doc["dsseEnvelope"]["payload"] = Value::from(B64.encode(forged));
        let forged = serde_json::to_vec(&doc).expect("json");
        assert!(matches!(
            verify(&bundle, &forged, &[key.public_key()]),
            Err(SignatureError::UntrustedSigner { .. })
        ));
    }

    #[test]
    fn keys_round_trip_through_pem_and_other_curves_are_refused() {
        let key = SigningKey::generate();
        let again = SigningKey::from_pem(&key.to_pem().expect("pem")).expect("read back");
        assert_eq!(again.public_key(), key.public_key());
        let public = PublicKey::from_pem(&key.public_key().to_pem()).expect("public pem");
        assert_eq!(public, key.public_key());
        assert!(public.to_pem().starts_with("-----BEGIN PUBLIC KEY-----\n"));
        // A P-384 public key (from OpenSSL) is refused with the reason.
        let p384 = "-----BEGIN PUBLIC KEY-----\n\
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEuxYyVTczs4DlsyAadGHFp5L7To6zeMKO\n\
4EImEZCeCPn1dTYoVuZJ1bYFEBmm92irQD8OFG1neOEcqQVeHMIm35nQ6g3veFR3\n\
8gxFIBkDw7DO0DYde5qc+Pjmb7Do6cC8\n\
-----END PUBLIC KEY-----\n";
        assert!(matches!(
            PublicKey::from_pem(p384),
            Err(SignatureError::UnsupportedKey { .. })
        ));
        assert!(matches!(
            SigningKey::from_pem("not a key"),
            Err(SignatureError::UnsupportedKey { .. })
        ));
    }
}

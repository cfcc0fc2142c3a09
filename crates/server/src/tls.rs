//! TLS on the server's one port (rustls), for REST and gRPC alike (ALPN
//! offers `h2` and `http/1.1`).
//!
//! The certificate and key are read from their PEM files at start, and
//! read again when either file changes (its modification time or length,
//! looked at every second): the next handshake uses the new pair, while
//! open connections keep the one they began with, so nothing is dropped.
//! A pair that does not load (a half-written file, a key that does not
//! match) is logged and the current one kept.
//!
//! With a client CA, every client must present a certificate that chains
//! to it (mTLS); its subject's common name and DNS names are handed to
//! access control, which treats a certificate named as a token like the
//! token itself.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

use crate::access::PeerNames;
use crate::config::TlsConfig;
use crate::error::{Error, Result};

/// The server's TLS: the acceptor, and the certificate it reloads.
#[derive(Clone)]
pub(crate) struct Tls {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    certificate: Arc<Reloading>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.certificate.cert)
            .finish_non_exhaustive()
    }
}

/// What identifies a version of the files: modification time and length of each.
type Stamp = [(Option<SystemTime>, u64); 2];

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let one = |p: &Path| std::fs::metadata(p).map_or((None, 0), |m| (m.modified().ok(), m.len()));
    [one(cert), one(key)]
}

/// The certificate handed to each handshake, swapped when its files change.
#[derive(Debug)]
struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
    seen: Mutex<Stamp>,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> std::result::Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| format!("the certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no PEM certificate", cert.display()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("the key {}: {e}", key.display()))?;
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|e| format!("the key {}: {e}", key.display()))?;
    let pair = CertifiedKey::new(chain, signing);
    pair.keys_match()
        .map_err(|e| format!("the key {} is not the certificate's: {e}", key.display()))?;
    Ok(pair)
}

impl Tls {
    /// TLS from `config`'s files.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for files that cannot be read or do not match.
    pub(crate) fn new(config: &TlsConfig) -> Result<Self> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let seen = stamp(&config.cert, &config.key);
        let pair = load(&config.cert, &config.key, &provider).map_err(Error::config)?;
        let certificate = Arc::new(Reloading {
            cert: config.cert.clone(),
            key: config.key.clone(),
            provider: Arc::clone(&provider),
            current: ArcSwap::from_pointee(pair),
            seen: Mutex::new(seen),
        });
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::config(format!("TLS: {e}")))?;
        let builder = match &config.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                let certs = CertificateDer::pem_file_iter(ca)
                    .map_err(|e| Error::config(format!("cannot read the client CA {}: {e}", ca.display())))?;
                for c in certs {
                    let c = c.map_err(|e| Error::config(format!("the client CA {}: {e}", ca.display())))?;
                    roots
                        .add(c)
                        .map_err(|e| Error::config(format!("the client CA {}: {e}", ca.display())))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .map_err(|e| Error::config(format!("the client CA {}: {e}", ca.display())))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut server = builder.with_cert_resolver(Arc::clone(&certificate) as Arc<dyn ResolvesServerCert>);
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            certificate,
        })
    }

    /// Loads the certificate and key again if their files changed since
    /// they were last looked at; keeps the current pair if the new one does
    /// not load. Returns whether a new pair is in use.
    pub(crate) fn reload_if_changed(&self) -> bool {
        let c = &self.certificate;
        let now = stamp(&c.cert, &c.key);
        {
            let mut seen = c.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if *seen == now {
                return false;
            }
            *seen = now;
        }
        match load(&c.cert, &c.key, &c.provider) {
            Ok(pair) => {
                c.current.store(Arc::new(pair));
                tracing::info!(cert = %c.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "TLS certificate not reloaded; serving the previous one");
                false
            }
        }
    }
}

/// The names a verified client certificate carries: its subject's common
/// name and its DNS names (none without a client certificate).
pub(crate) fn peer_names<IO>(stream: &tokio_rustls::server::TlsStream<IO>) -> PeerNames {
    let (_, connection) = stream.get_ref();
    let Some(leaf) = connection.peer_certificates().and_then(<[_]>::first) else {
        return PeerNames::default();
    };
    PeerNames(names_in(leaf.as_ref()))
}

fn names_in(der: &[u8]) -> Vec<String> {
    use x509_cert::der::{Decode, Tag, Tagged};
    let Ok(cert) = x509_cert::Certificate::from_der(der) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for rdn in cert.tbs_certificate.subject.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid == const_oid::db::rfc4519::CN {
                let text = match atv.value.tag() {
                    Tag::Utf8String | Tag::PrintableString | Tag::Ia5String => {
                        std::str::from_utf8(atv.value.value()).ok().map(str::to_owned)
                    }
                    _ => None,
                };
                names.extend(text);
            }
        }
    }
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        if ext.extn_id == const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME {
            if let Ok(san) = x509_cert::ext::pkix::SubjectAltName::from_der(ext.extn_value.as_bytes()) {
                for name in san.0 {
                    if let x509_cert::ext::pkix::name::GeneralName::DnsName(dns) = name {
                        names.push(dns.to_string());
                    }
                }
            }
        }
    }
    names
}

//! Where a server's model comes from, and how change is detected.

use std::path::PathBuf;

use model_persistence_core::signing::{self, PublicKey};
use model_persistence_core::{BundleReader, ContentId, Loadable, Loaded};
use model_persistence_versioning::{AliasFollower, ModelRef, Registry, Target};

use crate::error::{Error, Result};

/// Where the served model comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A bundle file, rewritten atomically by whoever publishes it.
    Bundle(PathBuf),
    /// A bundle file that must carry a signature (`<bundle>.sig`) by one of
    /// the trusted keys: a version unsigned or signed by another key is
    /// refused like a damaged one.
    SignedBundle {
        /// The bundle file.
        path: PathBuf,
        /// The keys a signature may be made with.
        trusted: std::sync::Arc<[PublicKey]>,
    },
    /// A registry reference, usually an alias such as `fraud@production`.
    Registry {
        /// The registry (boxed: a handle is much larger than a path).
        registry: Box<Registry>,
        /// The model and version, alias or latest.
        reference: ModelRef,
    },
}

impl Source {
    /// A bundle file source.
    pub fn bundle(path: impl Into<PathBuf>) -> Self {
        Source::Bundle(path.into())
    }

    /// A bundle file source whose every version must be signed by one of
    /// `trusted` (the signature read beside it, `<bundle>.sig`, checked on
    /// the same bytes that are then loaded).
    pub fn signed_bundle(path: impl Into<PathBuf>, trusted: Vec<PublicKey>) -> Self {
        Source::SignedBundle {
            path: path.into(),
            trusted: trusted.into(),
        }
    }

    /// A registry source: `reference` is `model`, `model@1.2.0` or `model@alias`.
    ///
    /// # Errors
    ///
    /// [`Error::Registry`] if the reference does not parse.
    pub fn registry(registry: Registry, reference: &str) -> Result<Self> {
        let reference = reference.parse().map_err(|source| Error::Registry {
            source_name: reference.to_owned(),
            source: Box::new(source),
        })?;
        Ok(Source::Registry {
            registry: Box::new(registry),
            reference,
        })
    }

    /// The source in words.
    pub fn describe(&self) -> String {
        match self {
            Source::Bundle(p) | Source::SignedBundle { path: p, .. } => p.display().to_string(),
            Source::Registry { reference, .. } => format!("registry {reference}"),
        }
    }

    /// The content id the source offers now, read cheaply: the bundle's
    /// header hash, or the alias's (or version's) recorded content id. An
    /// alias is followed with one conditional request per check (`follower`
    /// keeps what the last check saw).
    #[allow(clippy::result_large_err)] // model_persistence_versioning::Result, converted to our boxed error below.
    pub(crate) fn current_id(&self, reader: &BundleReader, follower: &mut Option<AliasFollower>) -> Result<ContentId> {
        match self {
            Source::Bundle(path) | Source::SignedBundle { path, .. } => reader
                .read_header(path)
                .map(|(_, id)| id)
                .map_err(|source| Error::Load {
                    source_name: self.describe(),
                    source,
                }),
            Source::Registry { registry, reference } => {
                let id = match &reference.target {
                    Target::Alias(alias) => {
                        let follower = match follower {
                            Some(f) => f,
                            None => follower.insert(registry.follow(&reference.model, alias).map_err(|source| {
                                Error::Registry {
                                    source_name: self.describe(),
                                    source: Box::new(source),
                                }
                            })?),
                        };
                        follower.check().and_then(|(t, _)| {
                            t.map(|t| t.content_id)
                                .ok_or_else(|| model_persistence_versioning::Error::AliasNotFound {
                                    model: reference.model.to_string(),
                                    alias: alias.to_string(),
                                })
                        })
                    }
                    _ => registry.resolve(reference).map(|i| i.content_id),
                };
                id.map_err(|source| Error::Registry {
                    source_name: self.describe(),
                    source: Box::new(source),
                })
            }
        }
    }

    /// Loads and fully validates the model the source offers now.
    pub(crate) fn load<M: Loadable>(&self, reader: &BundleReader) -> Result<Loaded<M>> {
        match self {
            Source::Bundle(path) => {
                M::load_file(reader, &model_persistence_models::kinds(), path).map_err(|source| Error::Load {
                    source_name: self.describe(),
                    source,
                })
            }
            Source::SignedBundle { path, trusted } => {
                // One read: the bytes whose signature is checked are the
                // bytes loaded (a file replaced between two reads cannot
                // slip in unchecked).
                let failed = |source| Error::Load {
                    source_name: self.describe(),
                    source,
                };
                let bytes = std::fs::read(path).map_err(|e| {
                    failed(model_persistence_core::Error::Io {
                        path: path.clone(),
                        source: e,
                    })
                })?;
                let signature = match std::fs::read(signing::signature_path(path)) {
                    Ok(sig) => sig,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(Error::Signature {
                            source_name: self.describe(),
                            source: signing::SignatureError::Unsigned,
                        })
                    }
                    Err(e) => {
                        return Err(failed(model_persistence_core::Error::Io {
                            path: signing::signature_path(path),
                            source: e,
                        }))
                    }
                };
                signing::verify(&bytes, &signature, trusted).map_err(|source| Error::Signature {
                    source_name: self.describe(),
                    source,
                })?;
                M::load_bytes(reader, &model_persistence_models::kinds(), &bytes).map_err(failed)
            }
            Source::Registry { registry, reference } => registry.load_as(reference).map_err(|source| Error::Registry {
                source_name: self.describe(),
                source: Box::new(source),
            }),
        }
    }
}

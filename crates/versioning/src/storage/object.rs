//! Any `object_store` backend (S3, GCS, Azure, in-memory) as registry storage.

use std::sync::Arc;

use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::{Fetched, ObjectVersion, Storage, Written};
use crate::error::StorageError;

/// Registry storage on an [`ObjectStore`].
///
/// Create-if-absent is `PutMode::Create` and compare-and-swap is
/// `PutMode::Update` with the object's ETag, so the backend must support
/// conditional writes (S3 and S3-compatible servers with `If-None-Match` /
/// `If-Match`, GCS, Azure, the in-memory store). The calls are synchronous:
/// each runs on a private single-worker tokio runtime. Do not call them from
/// inside an async task; use `spawn_blocking`.
#[derive(Debug)]
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// Always `Some` until dropped (taken by `Drop` to shut it down).
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for ObjectStorage {
    /// Shuts the private runtime down without blocking, so a registry may be
    /// dropped anywhere, inside an async task included.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl ObjectStorage {
    /// Storage on `store`, with every key under `prefix`.
    ///
    /// # Errors
    ///
    /// The I/O error of starting the runtime.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Result<Self, StorageError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("registry-object-store")
            .enable_all()
            .build()?;
        Ok(ObjectStorage {
            store,
            prefix: Path::from(prefix),
            runtime: Some(runtime),
        })
    }

    /// An in-memory store, for tests and experiments.
    ///
    /// # Errors
    ///
    /// The I/O error of starting the runtime.
    pub fn in_memory() -> Result<Self, StorageError> {
        Self::new(Arc::new(object_store::memory::InMemory::new()), "")
    }

    /// Runs `fut` on the private runtime, from any thread, including a
    /// worker of another runtime (which must not block on a nested one).
    fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: std::future::Future + Send,
        F::Output: Send,
    {
        use tokio::runtime::{Handle, RuntimeFlavor};
        let runtime = self.runtime.as_ref().expect("the runtime lives as long as the storage");
        match Handle::try_current() {
            Err(_) => runtime.block_on(fut),
            Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| runtime.block_on(fut))
            }
            Ok(_) => std::thread::scope(|s| {
                s.spawn(|| runtime.block_on(fut))
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            }),
        }
    }

    fn path(&self, key: &str) -> Path {
        let mut parts: Vec<_> = self.prefix.parts().collect();
        parts.extend(
            key.split('/')
                .filter(|s| !s.is_empty())
                .map(object_store::path::PathPart::from),
        );
        Path::from_iter(parts)
    }
}

fn version_of(e_tag: Option<String>, version: Option<String>) -> ObjectVersion {
    ObjectVersion::Object { e_tag, version }
}

/// The store's precondition for `v`; `None` for a version this backend did
/// not make (and an object version without a tag or id, which a store
/// cannot compare), which no object is at.
fn update_version(v: &ObjectVersion) -> Option<UpdateVersion> {
    match v {
        ObjectVersion::Object { e_tag, version } if e_tag.is_some() || version.is_some() => Some(UpdateVersion {
            e_tag: e_tag.clone(),
            version: version.clone(),
        }),
        _ => None,
    }
}

impl Storage for ObjectStorage {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, ObjectVersion)>, StorageError> {
        self.get_at_most(key, u64::MAX)
    }

    fn get_at_most(&self, key: &str, cap: u64) -> Result<Option<(Vec<u8>, ObjectVersion)>, StorageError> {
        let path = self.path(key);
        self.block_on(async {
            match self.store.get(&path).await {
                Ok(result) => {
                    let meta = result.meta.clone();
                    // The size comes with the answer's head: an object over
                    // the cap is refused before its body is read.
                    if meta.size > cap {
                        return Err(StorageError::TooLarge { size: meta.size, cap });
                    }
                    let bytes = result.bytes().await?;
                    Ok(Some((bytes.to_vec(), version_of(meta.e_tag, meta.version))))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn get_if_changed(&self, key: &str, known: Option<&ObjectVersion>) -> Result<Fetched, StorageError> {
        self.get_if_changed_at_most(key, known, u64::MAX)
    }

    fn get_if_changed_at_most(
        &self,
        key: &str,
        known: Option<&ObjectVersion>,
        cap: u64,
    ) -> Result<Fetched, StorageError> {
        let path = self.path(key);
        let known_tag = known.and_then(update_version).and_then(|u| u.e_tag);
        let options = GetOptions {
            if_none_match: known_tag,
            ..GetOptions::default()
        };
        self.block_on(async {
            match self.store.get_opts(&path, options).await {
                Ok(result) => {
                    let meta = result.meta.clone();
                    if meta.size > cap {
                        return Err(StorageError::TooLarge { size: meta.size, cap });
                    }
                    let bytes = result.bytes().await?;
                    let version = version_of(meta.e_tag, meta.version);
                    if Some(&version) == known {
                        return Ok(Fetched::Unchanged);
                    }
                    Ok(Fetched::Changed(bytes.to_vec(), version))
                }
                Err(object_store::Error::NotModified { .. }) => Ok(Fetched::Unchanged),
                Err(object_store::Error::NotFound { .. }) => Ok(Fetched::Absent),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<Written, StorageError> {
        let path = self.path(key);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let payload = PutPayload::from(bytes.to_vec());
        self.block_on(async {
            match self.store.put_opts(&path, payload, opts).await {
                Ok(_) => Ok(Written::Done),
                Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                    Ok(Written::PreconditionFailed)
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    fn put_if_version(
        &self,
        key: &str,
        bytes: &[u8],
        expected: Option<&ObjectVersion>,
    ) -> Result<Written, StorageError> {
        let path = self.path(key);
        let mode = match expected {
            None => PutMode::Create,
            Some(v) => match update_version(v) {
                Some(u) => PutMode::Update(u),
                None => return Ok(Written::PreconditionFailed),
            },
        };
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        let payload = PutPayload::from(bytes.to_vec());
        self.block_on(async {
            match self.store.put_opts(&path, payload, opts).await {
                Ok(_) => Ok(Written::Done),
                Err(
                    object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. }
                    | object_store::Error::NotFound { .. },
                ) => Ok(Written::PreconditionFailed),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn list_children(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let path = self.path(prefix);
        let listed = self.block_on(self.store.list_with_delimiter(Some(&path)))?;
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .chain(listed.objects.iter().map(|o| &o.location))
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.path(key);
        self.block_on(async {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
    }
}

/// Opens an object store from a URL, configured from the environment (the
/// `object_store` builders' `from_env`, then `with_url`), then from
/// `options`, which override the environment (`object_store`'s
/// `parse_url_opts`):
///
/// - `s3://bucket/prefix`: `AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`,
///   `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ALLOW_HTTP`, ...; options
///   by the same names, any case, with or without `aws_` (`endpoint`,
///   `allow_http`, `region`);
/// - `gs://bucket/prefix`: `GOOGLE_SERVICE_ACCOUNT`,
///   `GOOGLE_SERVICE_ACCOUNT_KEY`, or the application default credentials;
/// - `az://container/prefix`, `azure://…`, `abfs[s]://container@account…/prefix`:
///   `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`, ...;
/// - `memory://` (takes no options).
///
/// The error is the reason, for [`Error::InvalidLocation`](crate::Error::InvalidLocation).
pub(crate) fn open_url_opts(location: &str, options: &[(String, String)]) -> Result<ObjectStorage, String> {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
    use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};

    /// Applies each option to a builder, naming the one it does not know.
    fn configure<B, K: std::str::FromStr>(
        mut builder: B,
        options: &[(String, String)],
        with: impl Fn(B, K, &str) -> B,
    ) -> Result<B, String>
    where
        K::Err: std::fmt::Display,
    {
        for (key, value) in options {
            let parsed: K = key.parse().map_err(|e| format!("option {key:?}: {e}"))?;
            builder = with(builder, parsed, value);
        }
        Ok(builder)
    }

    let url = url::Url::parse(location).map_err(|e| e.to_string())?;
    let prefix = url.path().trim_start_matches('/').to_owned();
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "memory" => {
            if let Some((key, _)) = options.first() {
                return Err(format!("option {key:?}: a memory store takes no options"));
            }
            return ObjectStorage::in_memory().map_err(|e| e.to_string());
        }
        "s3" | "s3a" => Arc::new(
            configure(
                AmazonS3Builder::from_env().with_url(location),
                options,
                |b, k: AmazonS3ConfigKey, v| b.with_config(k, v),
            )?
            .build()
            .map_err(|e| e.to_string())?,
        ),
        "gs" => Arc::new(
            configure(
                GoogleCloudStorageBuilder::from_env().with_url(location),
                options,
                |b, k: GoogleConfigKey, v| b.with_config(k, v),
            )?
            .build()
            .map_err(|e| e.to_string())?,
        ),
        "az" | "azure" | "abfs" | "abfss" | "adl" => Arc::new(
            configure(
                MicrosoftAzureBuilder::from_env().with_url(location),
                options,
                |b, k: AzureConfigKey, v| b.with_config(k, v),
            )?
            .build()
            .map_err(|e| e.to_string())?,
        ),
        other => {
            return Err(format!(
                "unsupported scheme {other:?}: use a path, file://, s3://, gs://, az:// or memory://"
            ))
        }
    };
    ObjectStorage::new(store, &prefix).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_urls_build_their_stores_under_their_prefix() {
        let gcs = open_url_opts("gs://a-bucket/team/registry", &[]).expect("a GCS store");
        assert_eq!(gcs.prefix.as_ref(), "team/registry");
        let azure =
            open_url_opts("abfs://models@anaccount.dfs.core.windows.net/registry", &[]).expect("an Azure store");
        assert_eq!(azure.prefix.as_ref(), "registry");
        let s3 = open_url_opts("s3://bucket/a/b", &[]).expect("an S3 store");
        assert_eq!(s3.prefix.as_ref(), "a/b");
        let refused = open_url_opts("ftp://host/x", &[]).expect_err("unknown scheme");
        assert!(refused.contains("unsupported scheme"), "{refused}");
        // Options override the environment, and an unknown one is named.
        let opt = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        open_url_opts(
            "s3://bucket/p",
            &[
                opt("endpoint", "http://127.0.0.1:1"),
                opt("allow_http", "true"),
                opt("region", "x"),
            ],
        )
        .expect("an S3 store with its endpoint as an option");
        let unknown = open_url_opts("s3://bucket/p", &[opt("no_such_option", "1")]).expect_err("unknown option");
        assert!(unknown.contains("no_such_option"), "{unknown}");
        let memory = open_url_opts("memory://", &[opt("region", "x")]).expect_err("memory takes none");
        assert!(memory.contains("no options"), "{memory}");
    }
}

//! Keeping a registry in shape: pruning old versions and verifying every
//! stored byte.

use semver::Version;

use super::{layout, storage_err, Registry};
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::name::{IntoName, ModelName};

/// A damaged version found by [`Registry::verify`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Damaged {
    /// The model.
    pub model: ModelName,
    /// The version.
    pub version: Version,
    /// What is wrong.
    pub error: Error,
}

/// What [`Registry::verify`] found.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Versions checked.
    pub checked: usize,
    /// Versions that failed.
    pub damaged: Vec<Damaged>,
}

impl Registry {
    /// Removes all versions but the last `keep_last` and those an alias
    /// points at. Returns the removed versions.
    ///
    /// # Errors
    ///
    /// Storage errors.
    pub fn prune(&self, model: impl IntoName<ModelName>, keep_last: usize) -> Result<Vec<Version>> {
        let model = model.into_name()?;
        let versions = self.versions(&model)?;
        let pinned: Vec<Version> = self.aliases(&model)?.into_values().map(|t| t.version).collect();
        let cut = versions.len().saturating_sub(keep_last);
        let mut pruned = Vec::new();
        for info in versions.into_iter().take(cut) {
            if pinned.contains(&info.version) {
                continue;
            }
            let v = &info.version;
            // The record first: the version stops being visible before its bytes go.
            for key in [
                layout::record(&model, v),
                layout::card(&model, v),
                layout::bundle(&model, v),
            ] {
                self.storage.delete(&key).map_err(storage_err(&key))?;
            }
            self.record_event(&model, EventKind::Pruned { version: v.clone() })?;
            pruned.push(info.version);
        }
        Ok(pruned)
    }

    /// Checks every committed version of one model (every hash of its
    /// bundle, and that it is the bundle recorded at publication) and
    /// reports the damaged ones.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], storage errors while listing.
    pub fn verify(&self, model: impl IntoName<ModelName>) -> Result<VerifyReport> {
        self.verify_models(vec![model.into_name()?])
    }

    /// [`verify`](Self::verify) for every model of the registry.
    ///
    /// # Errors
    ///
    /// Storage errors while listing.
    pub fn verify_all(&self) -> Result<VerifyReport> {
        self.verify_models(self.models()?)
    }

    fn verify_models(&self, models: Vec<ModelName>) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        for m in models {
            for info in self.versions(&m)? {
                report.checked += 1;
                if let Err(error) = self.bundle(&m, &info.version) {
                    report.damaged.push(Damaged {
                        model: m.clone(),
                        version: info.version,
                        error,
                    });
                }
            }
        }
        Ok(report)
    }
}

//! Comparing versions by their metrics, and the best version by one.

use model_persistence_core::Direction;
use semver::Version;
use serde::{Deserialize, Serialize};

use super::records::VersionInfo;
use super::Registry;
use crate::error::{Error, Result};
use crate::name::{IntoName, ModelName};

/// Two versions compared on one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Comparison {
    /// The metric.
    pub metric: String,
    /// The first version.
    pub a: Version,
    /// The second version.
    pub b: Version,
    /// The first version's score.
    pub a_score: f64,
    /// The second version's score.
    pub b_score: f64,
    /// `b_score - a_score`.
    pub absolute: f64,
    /// `(b_score - a_score) / |a_score|`, `None` when `a_score` is 0.
    pub relative: Option<f64>,
}

impl Comparison {
    fn new(metric: &str, a: &Version, b: &Version, a_score: f64, b_score: f64) -> Self {
        let absolute = b_score - a_score;
        Comparison {
            metric: metric.to_owned(),
            a: a.clone(),
            b: b.clone(),
            a_score,
            b_score,
            absolute,
            relative: (a_score != 0.0).then(|| absolute / a_score.abs()),
        }
    }
}

impl Registry {
    /// Compares two versions on one metric.
    ///
    /// # Errors
    ///
    /// [`Error::MetricMissing`] if either lacks it, [`Error::VersionNotFound`].
    pub fn compare(
        &self,
        model: impl IntoName<ModelName>,
        a: &Version,
        b: &Version,
        metric: &str,
    ) -> Result<Comparison> {
        let model = model.into_name()?;
        let (ia, ib) = (self.version(&model, a)?, self.version(&model, b)?);
        let score = |info: &VersionInfo| {
            info.metrics.get(metric).copied().ok_or_else(|| Error::MetricMissing {
                model: model.to_string(),
                version: info.version.clone(),
                metric: metric.to_owned(),
            })
        };
        Ok(Comparison::new(
            metric,
            &ia.version,
            &ib.version,
            score(&ia)?,
            score(&ib)?,
        ))
    }

    /// Compares two versions on every metric they share, by metric name.
    ///
    /// # Errors
    ///
    /// [`Error::VersionNotFound`], storage errors.
    pub fn compare_all(&self, model: impl IntoName<ModelName>, a: &Version, b: &Version) -> Result<Vec<Comparison>> {
        let model = model.into_name()?;
        let (ia, ib) = (self.version(&model, a)?, self.version(&model, b)?);
        Ok(ia
            .metrics
            .iter()
            .filter_map(|(m, &sa)| ib.metrics.get(m).map(|&sb| Comparison::new(m, a, b, sa, sb)))
            .collect())
    }

    /// The best version by a metric; versions without the metric (or with a
    /// NaN) are skipped, not counted as 0. Ties go to the higher version.
    ///
    /// # Errors
    ///
    /// Storage errors.
    pub fn best(
        &self,
        model: impl IntoName<ModelName>,
        metric: &str,
        direction: Direction,
    ) -> Result<Option<VersionInfo>> {
        Ok(best_of(self.versions(model)?, metric, direction))
    }
}

/// The best of `versions` by `metric`, skipping those without it.
pub(crate) fn best_of(versions: Vec<VersionInfo>, metric: &str, direction: Direction) -> Option<VersionInfo> {
    versions
        .into_iter()
        .filter_map(|v| v.metrics.get(metric).copied().filter(|s| !s.is_nan()).map(|s| (s, v)))
        .fold(None::<(f64, VersionInfo)>, |best, (score, v)| match best {
            Some((b, _)) if direction.is_better(b, score) => best,
            _ => Some((score, v)),
        })
        .map(|(_, v)| v)
}

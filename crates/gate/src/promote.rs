//! The gate in front of the registry: evaluate against the version an alias
//! points at, publish only on a pass, store the report with the version,
//! and optionally move the alias.

use model_persistence_core::{Model, ModelCard, Version};
use model_persistence_versioning::{Registry, VersionInfo, VersionSpec};

use crate::error::Error;
use crate::report::Report;
use crate::rule::{Gate, Metrics};
use crate::stats::Paired;

/// The metrics of the version `alias` points at, with that version; `None`
/// if the alias does not exist yet (the first model).
///
/// # Errors
///
/// Registry errors other than a missing alias.
pub fn baseline_from_alias(registry: &Registry, model: &str, alias: &str) -> Result<Option<(Version, Metrics)>, Error> {
    let Some(target) = registry.alias(model, alias)? else {
        return Ok(None);
    };
    let info = registry.version(model, &target.version)?;
    Ok(Some((info.version, info.metrics)))
}

/// What to publish if the gate passes.
#[derive(Debug)]
#[non_exhaustive]
pub struct PublishRequest<'a, M> {
    /// The candidate model.
    pub model: &'a M,
    /// Its card; its metrics are what the gate checks.
    pub card: &'a ModelCard,
    /// The version to publish as.
    pub spec: VersionSpec,
    /// The alias whose target is the baseline, such as `production`.
    pub alias: &'a str,
    /// Whether to move the alias to the new version on a pass.
    pub move_alias: bool,
    /// Paired predictions for statistical rules, if any.
    pub paired: Option<&'a Paired>,
}

impl<'a, M> PublishRequest<'a, M> {
    /// Publish `model` with `card` as the next minor version, gated against
    /// `alias`, moving the alias on a pass.
    pub fn new(model: &'a M, card: &'a ModelCard, alias: &'a str) -> Self {
        PublishRequest {
            model,
            card,
            spec: VersionSpec::Bump(model_persistence_versioning::Bump::Minor),
            alias,
            move_alias: true,
            paired: None,
        }
    }

    /// The version to publish as. Default: bump the minor version.
    pub fn version(mut self, spec: VersionSpec) -> Self {
        self.spec = spec;
        self
    }

    /// Publish without moving the alias. Default: the alias is moved.
    pub fn keep_alias(mut self) -> Self {
        self.move_alias = false;
        self
    }

    /// Paired predictions for statistical rules. Default: none.
    pub fn paired(mut self, paired: &'a Paired) -> Self {
        self.paired = Some(paired);
        self
    }
}

/// What happened.
#[derive(Debug)]
#[non_exhaustive]
#[allow(clippy::large_enum_variant)] // One value per publish; boxing would only burden callers.
pub enum Outcome {
    /// The gate passed: the version was published (and the alias moved if asked).
    Published {
        /// The new version.
        version: VersionInfo,
        /// The gate's report, also stored with the version as `gate_report.json`.
        report: Report,
        /// The baseline version, if there was one.
        baseline: Option<Version>,
        /// Whether the alias now points at the new version.
        alias_moved: bool,
    },
    /// The gate failed: nothing was published.
    Rejected {
        /// The gate's report.
        report: Report,
        /// The baseline version, if there was one.
        baseline: Option<Version>,
    },
}

impl Outcome {
    /// The gate's report.
    pub fn report(&self) -> &Report {
        match self {
            Outcome::Published { report, .. } | Outcome::Rejected { report, .. } => report,
        }
    }
}

/// Evaluates the candidate against the version `request.alias` points at;
/// on a pass publishes it, stores the report with it and moves the alias
/// (compare-and-swap from the baseline version); on a fail publishes nothing.
///
/// # Errors
///
/// Registry errors. If the alias moved between the evaluation and the move,
/// the error is [`model_persistence_versioning::Error::AliasConflict`]: the new version stays
/// published (with its report) but is not promoted.
pub fn evaluate_and_publish<M: Model>(
    gate: &Gate,
    registry: &Registry,
    request: PublishRequest<'_, M>,
) -> Result<Outcome, Error> {
    let model_name = &request.card.name;
    let baseline = baseline_from_alias(registry, model_name, request.alias)?;
    let baseline_metrics = baseline.as_ref().map(|(_, m)| m);
    let report = match request.paired {
        Some(p) => gate.evaluate_paired(&request.card.metrics, baseline_metrics, p),
        None => gate.evaluate(&request.card.metrics, baseline_metrics),
    };
    let baseline_version = baseline.map(|(v, _)| v);
    if !report.passed() {
        tracing::info!(model = %model_name, alias = request.alias, "gate failed: nothing published");
        return Ok(Outcome::Rejected {
            report,
            baseline: baseline_version,
        });
    }
    let version = registry.publish_model(request.model, request.card, request.spec)?;
    let record = serde_json::json!({
        "alias": request.alias,
        "baseline": baseline_version.as_ref().map(ToString::to_string),
        "report": report.to_json(),
    });
    registry.attach(model_name, &version.version, "gate_report", &record)?;
    let alias_moved = if request.move_alias {
        registry.set_alias_if(model_name, request.alias, &version.version, baseline_version.as_ref())?;
        true
    } else {
        false
    };
    Ok(Outcome::Published {
        version,
        report,
        baseline: baseline_version,
        alias_moved,
    })
}

//! What the page shows, read from the registry.

use std::collections::BTreeMap;

use model_persistence_core::ModelCard;
use model_persistence_gate::Report as GateReport;
use model_persistence_serving::DriftReport;
use model_persistence_versioning::{AliasName, AliasTarget, Event, ModelRef, Registry, VersionInfo};
use time::OffsetDateTime;

use crate::Error;

/// The gate's decision stored with a version (`gate_report` attachment).
#[derive(Debug, Clone, PartialEq)]
pub struct GateRecord {
    /// The alias the candidate was gated for.
    pub alias: Option<String>,
    /// The version it was compared with.
    pub baseline: Option<String>,
    /// The report; `None` if the attachment is there but does not read as one.
    pub report: Option<GateReport>,
}

/// One version and its gate decision, if one was stored.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionEntry {
    /// What the registry records of the version.
    pub info: VersionInfo,
    /// The gate's decision, if the version went through the gate.
    pub gate: Option<GateRecord>,
    /// Why a guardrail rolled an alias back from this version, if one did
    /// (the `guardrail` attachment: the verdict and the live metrics).
    pub guardrail: Option<serde_json::Value>,
    /// The A/B test's decision that named this version the winner, if any
    /// (the `ab_decision` attachment).
    pub ab_decision: Option<serde_json::Value>,
}

/// Everything the page shows.
#[derive(Debug, Clone)]
pub struct ModelPage {
    /// What was asked for (`fraud@production`, `fraud@1.2.0`, `fraud`).
    pub reference: String,
    /// The version the card is of.
    pub selected: VersionInfo,
    /// Its card.
    pub card: ModelCard,
    /// Every version, oldest first.
    pub versions: Vec<VersionEntry>,
    /// The aliases and where they point now.
    pub aliases: BTreeMap<AliasName, AliasTarget>,
    /// Every event, oldest first.
    pub history: Vec<Event>,
    /// Live statistics from a server, if given.
    pub live: Option<DriftReport>,
    /// When the report was made.
    pub generated_at: OffsetDateTime,
}

impl ModelPage {
    /// The report with live statistics (the drift a server measured).
    pub fn with_live(mut self, live: Option<DriftReport>) -> Self {
        self.live = live;
        self
    }
}

/// Reads what the page shows of the version `reference` names: its card,
/// every version with its stored gate report, the aliases and the history.
///
/// # Errors
///
/// [`Error::Registry`]: an unknown model, version or alias, or a storage
/// error. A gate report that does not read is shown as unreadable, not an
/// error.
pub fn gather(registry: &Registry, reference: &ModelRef) -> Result<ModelPage, Error> {
    let selected = registry.resolve(reference)?;
    let model = &selected.model;
    let card = registry.card(model, &selected.version)?;
    let versions = registry
        .versions(model)?
        .into_iter()
        .map(|info| {
            let gate = registry
                .attachment(model, &info.version, "gate_report")
                .ok()
                .flatten()
                .map(|v| GateRecord {
                    alias: v.get("alias").and_then(|a| a.as_str()).map(str::to_owned),
                    baseline: v.get("baseline").and_then(|a| a.as_str()).map(str::to_owned),
                    report: v.get("report").and_then(|r| serde_json::from_value(r.clone()).ok()),
                });
            let attachment = |name: &str| registry.attachment(model, &info.version, name).ok().flatten();
            VersionEntry {
                guardrail: attachment("guardrail"),
                ab_decision: attachment("ab_decision"),
                info,
                gate,
            }
        })
        .collect();
    Ok(ModelPage {
        reference: reference.to_string(),
        aliases: registry.aliases(model)?,
        history: registry.history(model)?,
        selected,
        card,
        versions,
        live: None,
        generated_at: OffsetDateTime::now_utc(),
    })
}

//! Acting on live outcomes: a guardrail that rolls an alias back from a
//! worse version, and an A/B test that promotes its winner. Both judge with
//! the always-valid sequential test, so they may look after every outcome,
//! and both store their evidence with the version like a gate report
//! (attachments `guardrail` and `ab_decision`), the alias move itself in the
//! history under the actor `guardrail` or `ab-test`.

use model_persistence_versioning::{AliasTarget, Registry};

use crate::error::Error;

type Result<T> = std::result::Result<T, Error>;
use serde::{Deserialize, Serialize};

use super::live_metrics::{LiveMetric, LiveMetrics};
use super::sequential::{AlwaysValid, Sequential, SequentialState};

/// A policy on an alias: what the version it points at must keep up live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Guardrail {
    /// The metric judged.
    pub metric: LiveMetric,
    /// Outcomes the version needs before it is judged at all. Default: 200.
    pub min_samples: u64,
    /// The metric must stay at or above this (judged on the point estimate
    /// once `min_samples` outcomes are in).
    pub floor: Option<f64>,
    /// The version must not be worse than the one before it, judged by the
    /// sequential test against the previous version's live outcomes.
    /// Default: alpha 0.01, τ 0.05, 100 outcomes a side.
    pub not_worse: Option<Sequential>,
}

impl Default for Guardrail {
    fn default() -> Self {
        Guardrail {
            metric: LiveMetric::Accuracy,
            min_samples: 200,
            floor: None,
            // A rollback of a healthy version costs more than a few more
            // outcomes before a bad one is caught: a stricter alpha.
            not_worse: Some(Sequential {
                alpha: 0.01,
                ..Sequential::default()
            }),
        }
    }
}

/// What a guardrail says of the version now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum GuardVerdict {
    /// Not enough outcomes yet.
    Waiting {
        /// Outcomes so far.
        outcomes: u64,
        /// Outcomes needed.
        needed: u64,
    },
    /// Within the policy so far.
    Healthy {
        /// The metric's live value.
        value: f64,
        /// The sequential test against the previous version, if any.
        test: Option<SequentialState>,
    },
    /// Outside the policy: roll back.
    Breach {
        /// Why, in words.
        reason: String,
        /// The metric's live value.
        value: f64,
        /// The sequential test against the previous version, if it decided.
        test: Option<SequentialState>,
    },
}

/// A guardrail watching one version against the one before it; feed it the
/// live metrics after every outcome (or batch).
#[derive(Debug, Clone)]
pub struct GuardWatch {
    policy: Guardrail,
    test: Option<AlwaysValid>,
}

impl GuardWatch {
    /// A watch of a version just put in service.
    pub fn new(policy: Guardrail) -> Self {
        let test = policy.not_worse.map(AlwaysValid::new);
        GuardWatch { policy, test }
    }

    /// The policy.
    pub fn policy(&self) -> &Guardrail {
        &self.policy
    }

    /// Judges `current` (and, for "not worse", against `previous`).
    pub fn judge(&mut self, current: &LiveMetrics, previous: Option<&LiveMetrics>) -> GuardVerdict {
        let now = self.policy.metric.proportion(current);
        let value = now.rate();
        if now.trials < self.policy.min_samples {
            return GuardVerdict::Waiting {
                outcomes: now.trials,
                needed: self.policy.min_samples,
            };
        }
        // "Not worse": the test of previous (a) against current (b); a
        // decided test with a negative difference is a worse version.
        let test = match (&mut self.test, previous) {
            (Some(t), Some(p)) => Some(t.update(self.policy.metric.proportion(p), now)),
            _ => None,
        };
        if let Some(t) = test.filter(|t| t.decided && t.difference < 0.0) {
            return GuardVerdict::Breach {
                reason: format!(
                    "live {} {:.4} is worse than the previous version's {:.4} (always-valid p = {:.4})",
                    self.policy.metric.name(),
                    t.b.rate(),
                    t.a.rate(),
                    t.p_value
                ),
                value,
                test: Some(t),
            };
        }
        if let Some(floor) = self.policy.floor.filter(|f| value < *f) {
            return GuardVerdict::Breach {
                reason: format!(
                    "live {} {value:.4} is below the floor {floor:.4} after {} outcomes",
                    self.policy.metric.name(),
                    now.trials
                ),
                value,
                test,
            };
        }
        GuardVerdict::Healthy { value, test }
    }
}

/// Rolls `alias` back on a breach, storing the verdict with the version it
/// leaves (attachment `guardrail`) and recording the rollback as done by
/// `guardrail`. Returns the target the alias went back to; `None` for any
/// other verdict (nothing is done).
///
/// # Errors
///
/// [`Error::Registry`]: the alias has no earlier target, storage.
pub fn enforce(
    registry: &Registry,
    model: &str,
    alias: &str,
    current: &LiveMetrics,
    verdict: &GuardVerdict,
) -> Result<Option<AliasTarget>> {
    enforce_by(registry, model, alias, current, verdict, "guardrail")
}

/// [`enforce`], recording the rollback in the history as done by `actor`
/// (a server records the name of the token whose report caused it).
///
/// # Errors
///
/// As [`enforce`].
pub fn enforce_by(
    registry: &Registry,
    model: &str,
    alias: &str,
    current: &LiveMetrics,
    verdict: &GuardVerdict,
    actor: &str,
) -> Result<Option<AliasTarget>> {
    if !matches!(verdict, GuardVerdict::Breach { .. }) {
        return Ok(None);
    }
    let evidence = serde_json::json!({
        "alias": alias,
        "verdict": verdict,
        "live": current,
    });
    let refused = |e| registry_error(model, alias, e);
    registry
        .attach(model, &current.arm.version, "guardrail", &evidence)
        .map_err(refused)?;
    registry
        .clone()
        .actor(actor)
        .rollback(model, alias)
        .map(Some)
        .map_err(refused)
}

/// What to do when an A/B test decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDecision {
    /// Move the alias to the winner.
    Promote,
    /// Store the decision; leave the alias to a person.
    Recommend,
}

/// An A/B test between two variants on a live metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AbTest {
    /// The metric compared.
    pub metric: LiveMetric,
    /// The sequential test.
    pub sequential: Sequential,
    /// What a decision does.
    pub on_decision: OnDecision,
}

impl Default for AbTest {
    fn default() -> Self {
        AbTest {
            metric: LiveMetric::Accuracy,
            sequential: Sequential::default(),
            on_decision: OnDecision::Promote,
        }
    }
}

/// Where an A/B test stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbState {
    /// The test after the latest look.
    pub test: SequentialState,
    /// The winner (`a` or `b`), once decided.
    pub winner: Option<String>,
}

/// A running A/B test of variant `b` against variant `a`.
#[derive(Debug, Clone)]
pub struct AbWatch {
    settings: AbTest,
    test: AlwaysValid,
    decided: Option<AbState>,
}

impl AbWatch {
    /// A test that has seen nothing.
    pub fn new(settings: AbTest) -> Self {
        let test = AlwaysValid::new(settings.sequential);
        AbWatch {
            settings,
            test,
            decided: None,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &AbTest {
        &self.settings
    }

    /// Looks at both variants' live metrics. Once decided, the decision
    /// stands (later looks return it unchanged).
    pub fn look(&mut self, a: &LiveMetrics, b: &LiveMetrics) -> AbState {
        if let Some(d) = &self.decided {
            return d.clone();
        }
        let test = self
            .test
            .update(self.settings.metric.proportion(a), self.settings.metric.proportion(b));
        let winner = test.decided.then(|| {
            let pick = if test.difference >= 0.0 { b } else { a };
            pick.arm.variant.clone().unwrap_or_else(|| pick.arm.version.to_string())
        });
        let state = AbState { test, winner };
        if state.winner.is_some() {
            self.decided = Some(state.clone());
        }
        state
    }
}

/// Applies a decided A/B test: stores the decision with the winning
/// version (attachment `ab_decision`) and, under [`OnDecision::Promote`],
/// moves `alias` to it (recorded as done by `ab-test`). Returns the new
/// target when the alias moved.
///
/// # Errors
///
/// [`Error::Registry`]: storage, or the alias moved meanwhile.
pub fn apply(
    registry: &Registry,
    model: &str,
    alias: &str,
    settings: &AbTest,
    state: &AbState,
    a: &LiveMetrics,
    b: &LiveMetrics,
) -> Result<Option<AliasTarget>> {
    apply_by(registry, model, alias, settings, state, a, b, "ab-test")
}

/// [`apply`], recording the alias move in the history as done by `actor`
/// (a server records the name of the token whose report caused it).
///
/// # Errors
///
/// As [`apply`].
#[allow(clippy::too_many_arguments)]
pub fn apply_by(
    registry: &Registry,
    model: &str,
    alias: &str,
    settings: &AbTest,
    state: &AbState,
    a: &LiveMetrics,
    b: &LiveMetrics,
    actor: &str,
) -> Result<Option<AliasTarget>> {
    let Some(winner) = &state.winner else {
        return Ok(None);
    };
    let w = if b.arm.variant.as_ref() == Some(winner) || (b.arm.variant.is_none() && state.test.difference >= 0.0) {
        b
    } else {
        a
    };
    let evidence = serde_json::json!({
        "alias": alias,
        "metric": settings.metric,
        "winner": winner,
        "test": state.test,
        "settings": settings.sequential,
        "a": a,
        "b": b,
        "on_decision": settings.on_decision,
    });
    let refused = |e| registry_error(model, alias, e);
    registry
        .attach(model, &w.arm.version, "ab_decision", &evidence)
        .map_err(refused)?;
    if settings.on_decision == OnDecision::Recommend {
        return Ok(None);
    }
    // Compare-and-swap from where the alias points now: a person who moved
    // it meanwhile is not overridden.
    let now = registry.alias(model, alias).map_err(refused)?.map(|t| t.version);
    registry
        .clone()
        .actor(actor)
        .set_alias_if(model, alias, &w.arm.version, now.as_ref())
        .map(Some)
        .map_err(refused)
}

fn registry_error(_model: &str, _alias: &str, e: model_persistence_versioning::Error) -> Error {
    // The registry's errors name the model and alias they concern.
    Error::Registry(e)
}

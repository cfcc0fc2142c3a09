//! Live outcomes, below every protocol: every prediction is remembered
//! under its id (the request's `id`, or one the server gives it; `ID/ROW`
//! for each row of a batch), outcomes are reported by id
//! ([`report_outcomes`]), and each report may trigger the model's
//! guardrail (a rollback) or its A/B test's decision (a promotion). The
//! live metrics are in [`live_outcomes`] and in `/metrics`
//! ([`render_live`]).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use model_persistence_core::ProbeValue;
use model_persistence_core::Version;
use model_persistence_gate::live::{
    apply_by, enforce_by, AbState, AbWatch, Arm, FeedbackError, GuardVerdict, GuardWatch, LiveMetrics,
};
use model_persistence_serving::Prediction;
use model_persistence_versioning::{EventKind, ModelRef, Target};
use serde_json::{json, Value};

use super::{lock, AppState, Route, Slot};
use crate::service::InferError;

/// The most outcomes one request may report.
const MAX_OUTCOMES: usize = 100_000;

/// Where a slot's guardrail stands: the version it watches, the one before
/// it, and whether it has already rolled back.
#[derive(Debug, Default)]
pub(crate) struct GuardState {
    current: Option<Version>,
    previous: Option<Version>,
    watch: Option<GuardWatch>,
    acted: bool,
}

/// Where a slot's A/B test stands.
#[derive(Debug, Default)]
pub(crate) struct AbDecision {
    watch: Option<AbWatch>,
    applied: bool,
}

/// Remembers each row's prediction under its id. Regressors' values are
/// not remembered (there is no label to be right or wrong).
pub(crate) fn record(slot: &Slot, id: &str, prediction: &Prediction<ProbeValue>, variant: Option<&str>) {
    let arm = Arm {
        version: prediction.version.clone(),
        variant: variant.map(str::to_owned),
    };
    let positive = slot.feedback.config().positive;
    let n = prediction.outputs.len();
    for (i, out) in prediction.outputs.iter().enumerate() {
        let ProbeValue::Label(label) = out else { return };
        let score = prediction.scores.as_ref().and_then(|s| {
            let col = usize::try_from(positive)
                .ok()
                .filter(|&c| c < s.ncols() && s.ncols() > 1)?;
            s.get([i, col]).copied()
        });
        let row_id = if n == 1 { id.to_owned() } else { format!("{id}/{i}") };
        if slot.feedback.record(&row_id, arm.clone(), *label, score).is_err() {
            slot.unrecorded.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The model and alias a slot's reference names, if it names an alias.
fn alias_of(reference: &str) -> Option<(String, String)> {
    let r: ModelRef = reference.parse().ok()?;
    match r.target {
        Target::Alias(a) => Some((r.model.to_string(), a.to_string())),
        _ => None,
    }
}

/// Judges the served version by the slot's guardrail; rolls the alias back
/// on a breach (once per version).
fn guard(state: &AppState, slot: &Slot, by: Option<&str>) -> Option<Value> {
    let policy = slot.config.guardrail.as_ref()?;
    let (model, alias) = alias_of(slot.config.reference.as_deref()?)?;
    let registry = state.registry.as_ref()?;
    let Some(Route::Single(server)) = slot.route.get() else {
        return None;
    };
    let current = server.status().version;
    let mut g = lock(&slot.guard);
    if g.current.as_ref() != Some(&current) {
        // A new version in service: the one before it is where the alias
        // last moved from to reach it.
        let previous = registry.history(&model).ok().and_then(|events| {
            events.into_iter().rev().find_map(|e| match e.kind {
                EventKind::AliasMoved { alias: a, from, to } if a == alias.as_str() && to == current => from,
                EventKind::RolledBack { alias: a, from, to } if a == alias.as_str() && to == current => Some(from),
                _ => None,
            })
        });
        *g = GuardState {
            current: Some(current.clone()),
            previous,
            watch: Some(GuardWatch::new(policy.clone())),
            acted: false,
        };
    }
    let now = slot.feedback.arm(&Arm::version(current.clone()))?;
    let before = g.previous.clone().and_then(|v| slot.feedback.arm(&Arm::version(v)));
    let verdict = g.watch.as_mut()?.judge(&now, before.as_ref());
    let mut out = json!({ "version": current.to_string(), "verdict": verdict });
    if matches!(verdict, GuardVerdict::Breach { .. }) && !g.acted {
        g.acted = true;
        match enforce_by(registry, &model, &alias, &now, &verdict, by.unwrap_or("guardrail")) {
            Ok(Some(target)) => {
                tracing::warn!(model, alias, from = %current, to = %target.version, "guardrail rolled back");
                out["rolled_back_to"] = json!(target.version.to_string());
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(model, alias, error = %e, "guardrail could not roll back");
                out["error"] = json!(e.to_string());
            }
        }
    }
    Some(out)
}

/// Looks at the slot's A/B test; applies its decision once.
fn decide(state: &AppState, slot: &Slot, by: Option<&str>) -> Option<Value> {
    let ab = slot.config.ab.as_ref()?;
    let settings = ab.decide.as_ref()?;
    let Some(Route::Ab { split, .. }) = slot.route.get() else {
        return None;
    };
    let arms: Vec<Arm> = split
        .variants()
        .map(|(name, server)| Arm::variant(server.status().version, name))
        .collect();
    let [a, b] = arms.as_slice() else { return None };
    let (a, b): (LiveMetrics, LiveMetrics) = (slot.feedback.arm(a)?, slot.feedback.arm(b)?);
    let mut d = lock(&slot.decision);
    let watch = d.watch.get_or_insert_with(|| AbWatch::new(settings.test.clone()));
    let verdict: AbState = watch.look(&a, &b);
    let mut out = json!({ "state": verdict });
    if verdict.winner.is_some() && !d.applied {
        d.applied = true;
        let model = ab
            .variants
            .first()
            .and_then(|v| alias_of(&v.reference))
            .map(|(m, _)| m)?;
        match apply_by(
            state.registry.as_ref()?,
            &model,
            &settings.alias,
            &settings.test,
            &verdict,
            &a,
            &b,
            by.unwrap_or("ab-test"),
        ) {
            Ok(moved) => {
                out["promoted"] = json!(moved.map(|t| t.version.to_string()));
            }
            Err(e) => {
                tracing::error!(model, error = %e, "the A/B decision could not be applied");
                out["error"] = json!(e.to_string());
            }
        }
    }
    Some(out)
}

/// A metric series: its name, its help, and its value in live metrics.
type Series<T> = (&'static str, &'static str, fn(&LiveMetrics) -> T);

/// The live metrics in the Prometheus text format.
pub(crate) fn render_live(state: &AppState, out: &mut String) {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    let gauges: [Series<Option<f64>>; 6] = [
        ("mp_live_accuracy", "Live accuracy from reported outcomes.", |m| {
            m.accuracy
        }),
        ("mp_live_precision", "Live precision from reported outcomes.", |m| {
            m.precision
        }),
        ("mp_live_recall", "Live recall from reported outcomes.", |m| m.recall),
        ("mp_live_f1", "Live F1 from reported outcomes.", |m| m.f1),
        (
            "mp_live_brier",
            "Live Brier score of the positive-label probability.",
            |m| m.brier,
        ),
        (
            "mp_live_log_loss",
            "Live log loss of the positive-label probability.",
            |m| m.log_loss,
        ),
    ];
    let all: Vec<(String, Vec<LiveMetrics>, u64)> = state
        .slots()
        .iter()
        .map(|s| (s.name.clone(), s.feedback.metrics(), s.feedback.unknown_outcomes()))
        .collect();
    let labels = |model: &str, m: &LiveMetrics| match &m.arm.variant {
        Some(v) => format!(
            "model=\"{}\",version=\"{}\",variant=\"{}\"",
            esc(model),
            m.arm.version,
            esc(v)
        ),
        None => format!("model=\"{}\",version=\"{}\"", esc(model), m.arm.version),
    };
    let counters: [Series<u64>; 3] = [
        (
            "mp_live_predictions_total",
            "Predictions remembered for their outcome.",
            |m| m.predictions,
        ),
        (
            "mp_live_outcomes_total",
            "Outcomes joined with their prediction.",
            |m| m.outcomes,
        ),
        (
            "mp_live_expired_total",
            "Predictions dropped without an outcome.",
            |m| m.expired,
        ),
    ];
    for (name, help, f) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (model, metrics, _) in &all {
            for m in metrics {
                let _ = writeln!(out, "{name}{{{}}} {}", labels(model, m), f(m));
            }
        }
    }
    for (name, help, f) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (model, metrics, _) in &all {
            for m in metrics {
                if let Some(v) = f(m) {
                    let _ = writeln!(out, "{name}{{{}}} {v}", labels(model, m));
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP mp_outcomes_unknown_total Outcomes whose id matched no waiting prediction.\n\
         # TYPE mp_outcomes_unknown_total counter"
    );
    for (model, _, unknown) in &all {
        let _ = writeln!(out, "mp_outcomes_unknown_total{{model=\"{}\"}} {unknown}", esc(model));
    }
}

/// A reported outcome's label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OutcomeLabel {
    /// A class label.
    Int(i64),
    /// A binary outcome (`true` is label 1).
    Bool(bool),
    /// A class's name, for a model whose labels index class names.
    Name(String),
}

/// One reported outcome: the prediction's id and what truly happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// The id the prediction was answered under.
    pub(crate) id: String,
    /// The true label.
    pub(crate) label: OutcomeLabel,
}

/// The names the slot's model gives its classes (the live version's, or
/// the first variant's that has them), when its labels index names.
fn class_names(slot: &Slot) -> Option<std::sync::Arc<[String]>> {
    match slot.route.get()? {
        Route::Single(server) => server.live().classes(),
        Route::Ab { split, .. } => split.variants().find_map(|(_, s)| s.live().classes()),
    }
}

/// Joins reported outcomes with their predictions, then lets the model's
/// guardrail and A/B test look: the answer says how many matched, which ids
/// were unknown or already reported, and what the guardrail and the test
/// did. An alias the guardrail or the test moves is recorded as moved by
/// `by` (the reporting token's name; without one, `guardrail` or
/// `ab-test`). May read and write the registry: call it off async workers.
///
/// # Errors
///
/// [`InferError`] for an unknown model, too many outcomes, or a class name
/// the model does not have.
pub(crate) fn report_outcomes(
    state: &AppState,
    name: &str,
    reported: Vec<Outcome>,
    by: Option<&str>,
) -> Result<Value, InferError> {
    let slot = state.slot(name)?;
    if reported.len() > MAX_OUTCOMES {
        return Err(InferError::invalid(format!(
            "{} outcomes in one request; at most {MAX_OUTCOMES}",
            reported.len()
        )));
    }
    // Names are the indices of the model's class names.
    let names = class_names(&slot);
    let mut outcomes = Vec::with_capacity(reported.len());
    for o in reported {
        let label = match o.label {
            OutcomeLabel::Int(l) => l,
            OutcomeLabel::Bool(b) => i64::from(b),
            OutcomeLabel::Name(n) => match names.as_deref().and_then(|c| c.iter().position(|x| *x == n)) {
                Some(i) => i as i64,
                None => {
                    let n: String = n.chars().take(64).collect();
                    return Err(InferError::invalid(match names.as_deref() {
                        Some(c) => format!("outcome {n:?} is not one of the classes {c:?}"),
                        None => format!("outcome {n:?}: {name:?} labels classes by number, not by name"),
                    }));
                }
            },
        };
        outcomes.push((o.id, label));
    }
    let (mut matched, mut unknown, mut repeated) = (0_u64, Vec::new(), Vec::new());
    for (id, label) in outcomes {
        match slot.feedback.outcome(&id, label) {
            Ok(_) => {
                matched += 1;
                if let Some(log) = state.payload() {
                    log.outcome(name, &id, &json!(label));
                }
            }
            Err(FeedbackError::AlreadyReported(id)) => repeated.push(id),
            Err(_) => unknown.push(id.chars().take(64).collect::<String>()),
        }
    }
    unknown.truncate(100);
    repeated.truncate(100);
    let mut answer = json!({
        "matched": matched,
        "unknown": unknown,
        "already_reported": repeated,
    });
    if let Some(g) = guard(state, &slot, by) {
        answer["guardrail"] = g;
    }
    if let Some(d) = decide(state, &slot, by) {
        answer["ab_test"] = d;
    }
    Ok(answer)
}

/// The live metrics of every version and variant of `name` that predicted.
///
/// # Errors
///
/// [`InferError`] for an unknown model.
pub(crate) fn live_outcomes(state: &AppState, name: &str) -> Result<Value, InferError> {
    let slot = state.slot(name)?;
    Ok(json!({
        "model": name,
        "waiting": slot.feedback.waiting(),
        "unknown_outcomes": slot.feedback.unknown_outcomes(),
        "unrecorded_predictions": slot.unrecorded.load(Ordering::Relaxed),
        "live": slot.feedback.metrics(),
        "guardrail": lock(&slot.guard).watch.as_ref().map(|w| w.policy().clone()),
    }))
}

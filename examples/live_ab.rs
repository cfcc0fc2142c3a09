//! Live outcomes: an A/B test that decides, and a guardrail that rolls
//! back. Simulated card transactions are scored by the version each
//! customer's variant serves; whether a transaction was fraud is learned
//! later (between 50 and 2,000 transactions after it), reported by the
//! prediction's id, and joined with what was predicted and by which version.
//!
//! 1. `production` (1.0.0, a model that reads four of the fraud signals)
//!    against `candidate` (1.1.0, all seven), 50 / 50 by customer. The
//!    always-valid sequential test is looked at after every outcome; when it
//!    decides, the winner is promoted and the evidence stored with it.
//! 2. A bad retrain, 1.2.0, goes to production. The guardrail (at least
//!    200 outcomes, not worse than the version before it) rolls it back on
//!    its own, the evidence stored, the rollback in the history as done by
//!    `guardrail`.
//!
//! Run with `cargo run --release --example live_ab`.

mod common;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use common::Result;
use model_persistence::gate::live::{
    apply, enforce, AbTest, AbWatch, Arm, Feedback, FeedbackConfig, GuardVerdict, GuardWatch, Guardrail,
};
use model_persistence::prelude::*;
use model_persistence::serving::{AbSplit, ModelServer, ReloadPolicy, Source};
use model_persistence::versioning::{Registry, VersionSpec};
use model_persistence_testkit::{fraud_like, LinearClassifier, SplitMix64, FRAUD_FEATURES};
use ndarray::s;

/// Share of fraud in the simulated traffic.
const FRAUD_SHARE: f64 = 0.3;
/// The features fraud shifts, and by how much (as in `fraud_like`).
const SIGNALS: [(usize, f64); 7] = [(0, 1.4), (2, 1.1), (3, 0.9), (5, 1.2), (11, 0.8), (15, 1.0), (16, 0.7)];

/// What the run found, for the test that runs this example.
#[allow(dead_code)] // Read by tests/examples.rs, not by main.
pub(crate) struct Summary {
    pub(crate) winner: Option<Version>,
    pub(crate) ab_outcomes: u64,
    pub(crate) rolled_back_to: Option<Version>,
    pub(crate) guard_outcomes: u64,
    pub(crate) production: Version,
}

/// The best linear rule on the signals it reads (`sign` flips them, as a
/// bad retrain with an inverted feature would).
fn model(signals: &[(usize, f64)], sign: f64) -> LinearClassifier {
    let mut weights = vec![0.0; FRAUD_FEATURES.len()];
    for &(f, shift) in signals {
        weights[f] = sign * shift;
    }
    let norm: f64 = signals.iter().map(|(_, s)| s * s).sum();
    LinearClassifier {
        weights,
        bias: -norm / 2.0 + (FRAUD_SHARE / (1.0 - FRAUD_SHARE)).ln(),
    }
}

/// A transaction waiting for its truth.
struct Pending {
    due: u64,
    id: String,
    fraud: i64,
}

pub(crate) fn run(dir: &Path, max_transactions: u64) -> Result<Summary> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let registry = Registry::create(dir)?;
    let (x, y) = fraud_like(5_000, FRAUD_SHARE, 1);
    for (version, m, what) in [
        ("1.0.0", model(&SIGNALS[..4], 1.0), "four of the seven signals"),
        ("1.1.0", model(&SIGNALS, 1.0), "all seven signals"),
    ] {
        let card = ModelCard::builder("fraud", &m)
            .feature_names(FRAUD_FEATURES)
            .classes(["legitimate", "fraud"])
            .training_data(x.view(), "fraud_like(5000, 0.3, 1)")
            .notes(what)
            .build()?;
        registry.publish_model(&m, &card, VersionSpec::Exact(version.parse()?))?;
        println!("published fraud {version}: {what}");
    }
    let _ = y;
    registry.set_alias("fraud", "production", &Version::new(1, 0, 0))?;
    registry.set_alias("fraud", "candidate", &Version::new(1, 1, 0))?;

    let serve = |reference: &str| -> Result<ModelServer<LinearClassifier>> {
        Ok(ModelServer::start(
            Source::registry(registry.clone(), reference)?,
            ReloadPolicy::Manual,
        )?)
    };
    let split = AbSplit::new(
        [
            ("a".to_owned(), serve("fraud@production")?, 50),
            ("b".to_owned(), serve("fraud@candidate")?, 50),
        ],
        7,
    )?;
    let feedback = Feedback::new(FeedbackConfig::default());
    let (traffic, truth) = fraud_like(20_000, FRAUD_SHARE, 2);
    let mut rng = SplitMix64::new(3);
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let arrive = |t: u64, id: String, fraud: i64, pending: &mut VecDeque<Pending>, rng: &mut SplitMix64| {
        let delay = 50 + rng.next_below(1_950) as u64;
        let at = pending.partition_point(|p| p.due <= t + delay);
        pending.insert(
            at,
            Pending {
                due: t + delay,
                id,
                fraud,
            },
        );
    };

    println!("\n1. A/B: production (1.0.0) as a, candidate (1.1.0) as b, 50 / 50 by customer;");
    println!("   the truth of each transaction arrives 50 to 2,000 transactions later.");
    let ab = AbTest::default();
    let mut watch = AbWatch::new(ab.clone());
    let mut winner = None;
    let mut ab_outcomes = 0;
    let mut t = 0_u64;
    'ab: while t < max_transactions {
        let i = (t as usize) % traffic.nrows();
        let customer = format!("customer-{}", rng.next_below(5_000));
        let variant = split.assign(&customer).to_owned();
        let server = split
            .variants()
            .find(|(n, _)| *n == variant)
            .map(|(_, s)| s)
            .ok_or("no variant")?;
        let p = server.predict(traffic.slice(s![i..i + 1, ..]))?;
        let id = format!("txn-{t}");
        feedback.record(&id, Arm::variant(p.version.clone(), variant), p.outputs[0] as i64, None)?;
        arrive(t, id, truth[i] as i64, &mut pending, &mut rng);
        while pending.front().is_some_and(|p| p.due <= t) {
            let Some(done) = pending.pop_front() else { break };
            feedback.outcome(&done.id, done.fraud)?;
            ab_outcomes += 1;
            let a = feedback.arm(&Arm::variant(Version::new(1, 0, 0), "a"));
            let b = feedback.arm(&Arm::variant(Version::new(1, 1, 0), "b"));
            let (Some(a), Some(b)) = (a, b) else { continue };
            let state = watch.look(&a, &b);
            if ab_outcomes % 1_000 == 0 {
                println!(
                    "   after {ab_outcomes:>5} outcomes: a {:.4} (n {}), b {:.4} (n {}), always-valid p {:.4}",
                    a.accuracy.unwrap_or(0.0),
                    a.outcomes,
                    b.accuracy.unwrap_or(0.0),
                    b.outcomes,
                    state.test.p_value
                );
            }
            if let Some(w) = &state.winner {
                println!(
                    "   decided after {ab_outcomes} outcomes: {w} wins, accuracy {:.4} against {:.4}, \
                     difference {:+.4}, always-valid p {:.4} (alpha {})",
                    b.accuracy.unwrap_or(0.0),
                    a.accuracy.unwrap_or(0.0),
                    state.test.difference,
                    state.test.p_value,
                    ab.sequential.alpha
                );
                let moved = apply(&registry, "fraud", "production", &ab, &state, &a, &b)?;
                winner = moved.map(|m| m.version);
                if let Some(v) = &winner {
                    println!("   production -> {v}; the evidence is stored with it as `ab_decision`");
                }
                break 'ab;
            }
        }
        t += 1;
    }

    println!("\n2. A bad retrain (1.2.0: the signals inverted) goes to production; the guardrail watches it.");
    let bad = model(&SIGNALS, -1.0);
    let card = ModelCard::builder("fraud", &bad)
        .feature_names(FRAUD_FEATURES)
        .classes(["legitimate", "fraud"])
        .training_data(x.view(), "fraud_like(5000, 0.3, 1)")
        .notes("a retrain with its signals inverted")
        .build()?;
    registry.publish_model(&bad, &card, VersionSpec::Exact(Version::new(1, 2, 0)))?;
    let before = registry
        .alias("fraud", "production")?
        .map_or(Version::new(1, 0, 0), |a| a.version);
    registry.set_alias("fraud", "production", &Version::new(1, 2, 0))?;
    let production = serve("fraud@production")?;
    let policy = Guardrail::default();
    println!(
        "   policy: at least {} outcomes, {} not worse than {before} (always-valid test, alpha {})",
        policy.min_samples,
        policy.metric.name(),
        policy.not_worse.map_or(0.0, |s| s.alpha)
    );
    let mut guard = GuardWatch::new(policy);
    let mut rolled_back_to = None;
    let mut guard_outcomes = 0;
    t += 1; // past the transaction the A/B ended on
    let start = t;
    'guard: while t < start + max_transactions {
        let i = (t as usize) % traffic.nrows();
        let p = production.predict(traffic.slice(s![i..i + 1, ..]))?;
        let id = format!("txn-{t}");
        feedback.record(&id, Arm::version(p.version.clone()), p.outputs[0] as i64, None)?;
        arrive(t, id, truth[i] as i64, &mut pending, &mut rng);
        while pending.front().is_some_and(|p| p.due <= t) {
            let Some(done) = pending.pop_front() else { break };
            // Outcomes of the A/B's transactions still arrive: they count
            // for the variant that predicted them.
            let joined = feedback.outcome(&done.id, done.fraud)?;
            if joined.arm.version != Version::new(1, 2, 0) {
                continue;
            }
            guard_outcomes += 1;
            let current = feedback.arm(&Arm::version(Version::new(1, 2, 0))).ok_or("no arm")?;
            // The version before it, as it did live (under the A/B, as b).
            let previous = feedback.arm(&Arm::variant(before.clone(), "b"));
            let verdict = guard.judge(&current, previous.as_ref());
            if let GuardVerdict::Breach { reason, .. } = &verdict {
                println!("   after {guard_outcomes} outcomes: {reason}");
                let back = enforce(&registry, "fraud", "production", &current, &verdict)?;
                rolled_back_to = back.map(|b| b.version);
                if let Some(v) = &rolled_back_to {
                    println!("   production rolled back to {v}; the evidence is stored with 1.2.0 as `guardrail`");
                }
                break 'guard;
            }
        }
        t += 1;
    }

    println!("\nThe history:");
    for e in registry.history("fraud")? {
        match &e.by {
            Some(by) => println!("   {}  (by {by})", e.kind),
            None => println!("   {}", e.kind),
        }
    }
    let production = registry
        .alias("fraud", "production")?
        .map_or(Version::new(0, 0, 0), |a| a.version);
    Ok(Summary {
        winner,
        ab_outcomes,
        rolled_back_to,
        guard_outcomes,
        production,
    })
}

fn main() -> std::process::ExitCode {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/live_ab"));
    common::exit_on_error(run(&dir, 200_000))
}

//! The live gate: what the served versions actually get right, once ground
//! truth arrives, and what to do about it. The offline gate judges a
//! candidate on held-out data before it ships; this one judges versions in
//! service on the outcomes they meet (statistics, then "store the evidence,
//! move the alias", as the offline gate's promotion does).
//!
//! - [`Feedback`]: predictions remembered by id; outcomes reported later by
//!   id are joined with what was predicted and by which version (and A/B
//!   variant), in bounded memory (a window and a capacity; what expires
//!   unmatched is counted).
//! - [`LiveMetrics`]: accuracy, precision, recall, F1 and, where the model
//!   gave a probability, the Brier score and log loss, with their counts,
//!   per version and variant.
//! - [`AlwaysValid`]: a mixture sequential probability ratio test of two
//!   proportions whose p-value stays valid however often it is looked at.
//! - [`GuardWatch`] and [`enforce`]: a guardrail on an alias (minimum
//!   samples, a floor, "not worse than the previous version") that rolls the
//!   alias back, storing the evidence with the version.
//! - [`AbWatch`] and [`apply`]: an A/B test that decides, and promotes (or
//!   recommends) the winner, with the evidence stored.
//!
//! ```
//! use model_persistence_gate::live::{Arm, Feedback, FeedbackConfig};
//! use semver::Version;
//!
//! let feedback = Feedback::new(FeedbackConfig::default());
//! let arm = Arm::version(Version::new(1, 2, 0));
//! feedback.record("txn-1", arm.clone(), 1, Some(0.93))?;   // at prediction time
//! feedback.outcome("txn-1", 1)?;                            // days later
//! assert_eq!(feedback.arm(&arm).unwrap().accuracy, Some(1.0));
//! # Ok::<(), model_persistence_gate::live::FeedbackError>(())
//! ```
//!
//! One concept per file: `feedback` (the join), `live_metrics` (live metrics),
//! `sequential` (the always-valid test), `decide` (guardrail and A/B).

mod decide;
mod feedback;
mod live_metrics;
mod sequential;

pub use decide::{
    apply, apply_by, enforce, enforce_by, AbState, AbTest, AbWatch, GuardVerdict, GuardWatch, Guardrail, OnDecision,
};
pub use feedback::{Arm, Feedback, FeedbackConfig, FeedbackError, Joined, MAX_ID_LEN};
pub use live_metrics::{LiveMetric, LiveMetrics};
pub use sequential::{likelihood_ratio, log_likelihood_ratio, AlwaysValid, Proportion, Sequential, SequentialState};

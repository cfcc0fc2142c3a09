//! The evaluation gate: a candidate model ships only if it is good enough on
//! its own terms and at least as good as the model in production, and, when
//! paired predictions are given, only if the difference is real rather than
//! noise.
//!
//! ```
//! use model_persistence_gate::{BaselineRule, Gate, Margin, Metrics, Rule};
//!
//! // The seed's gate: thresholds and a "match or beat" baseline.
//! let must_match = BaselineRule::MayRegress(Margin::Absolute(0.0));
//! let gate = Gate::new([
//!     Rule::higher_is_better("accuracy").threshold(0.88).baseline(must_match),
//!     Rule::higher_is_better("precision").threshold(0.70).baseline(must_match),
//!     Rule::higher_is_better("recall").threshold(0.65).baseline(must_match),
//! ]);
//! let metrics = |a: f64, p: f64, r: f64| -> Metrics {
//!     [("accuracy", a), ("precision", p), ("recall", r)].into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
//! };
//! let report = gate.evaluate(&metrics(0.89, 0.74, 0.70), Some(&metrics(0.90, 0.72, 0.68)));
//! assert!(!report.passed()); // 0.89 clears the 0.88 threshold but regresses against 0.90
//! println!("{report}");
//! ```
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]
// Registry errors carry the model, alias and versions they concern; a gate
// evaluation publishes to storage, so the size of `Result` costs nothing here.
#![allow(clippy::result_large_err)]

mod error;
pub mod live;
pub mod metrics;
mod promote;
mod report;
mod rng;
mod rule;
pub mod stats;

pub use error::Error;
pub use metrics::{metric_fn, MetricFn, Sample};
pub use promote::{baseline_from_alias, evaluate_and_publish, Outcome, PublishRequest};
pub use report::{Check, CheckKind, Report};
pub use rule::{BaselineRule, Direction, Gate, Margin, Metrics, NoBaseline, Rule, Significance, Test};
pub use stats::{Bootstrap, Interval, McNemar, Paired};

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

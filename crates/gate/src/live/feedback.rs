//! Feedback: predictions remembered by id, joined with their outcomes when
//! they arrive (a fraud is confirmed days after the transaction), counted
//! per version and A/B variant, in bounded memory.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use semver::Version;
use serde::{Deserialize, Serialize};

use super::live_metrics::{Counts, LiveMetrics};

/// The longest prediction id accepted (longer ones are refused, so a
/// client cannot grow the memory with its ids).
pub const MAX_ID_LEN: usize = 256;

/// How long predictions wait for their outcome, and how many may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackConfig {
    /// How long a prediction waits for its outcome; after that it is
    /// dropped and counted as expired. Default: 7 days.
    pub window: Duration,
    /// The most predictions waiting at once; past it the oldest is dropped
    /// and counted as expired. Default: 1,000,000.
    pub capacity: usize,
    /// The label counted as positive for precision, recall and F1, and
    /// whose score is the probability the score-based metrics use.
    /// Default: 1.
    pub positive: i64,
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        FeedbackConfig {
            window: Duration::from_secs(7 * 24 * 3600),
            capacity: 1_000_000,
            positive: 1,
        }
    }
}

/// Which model answered: a version, and the A/B variant if there was a split.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Arm {
    /// The version that predicted.
    pub version: Version,
    /// The variant, under an A/B split.
    pub variant: Option<String>,
}

impl Arm {
    /// The arm of a version served alone.
    pub fn version(version: Version) -> Self {
        Arm { version, variant: None }
    }

    /// The arm of a variant of a split.
    pub fn variant(version: Version, variant: impl Into<String>) -> Self {
        Arm {
            version,
            variant: Some(variant.into()),
        }
    }
}

/// Why an outcome or a prediction was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FeedbackError {
    /// No prediction waits under this id: never recorded, already expired,
    /// or evicted.
    #[error("no prediction waits under id {0:?} (unknown, or expired)")]
    Unknown(String),
    /// The id's outcome was already reported.
    #[error("the outcome of {0:?} was already reported")]
    AlreadyReported(String),
    /// A prediction with this id is already waiting.
    #[error("a prediction with id {0:?} is already waiting")]
    DuplicateId(String),
    /// The id is empty or longer than [`MAX_ID_LEN`].
    #[error("a prediction id must be 1 to {MAX_ID_LEN} bytes, not {0}")]
    BadId(usize),
}

/// A prediction joined with its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Joined {
    /// The prediction's id.
    pub id: String,
    /// Which model answered.
    pub arm: Arm,
    /// What it predicted.
    pub predicted: i64,
    /// The true label.
    pub actual: i64,
    /// How long the outcome took to arrive.
    pub delay: Duration,
}

#[derive(Debug)]
struct Waiting {
    arm: Arm,
    predicted: i64,
    score: Option<f64>,
    at: Instant,
}

#[derive(Debug, Default)]
struct State {
    waiting: HashMap<String, Waiting>,
    /// Ids in the order they were recorded, for expiry and eviction.
    order: VecDeque<(Instant, String)>,
    /// Ids reported recently, to tell a repeat from an unknown id
    /// (bounded like the waiting ones).
    reported: HashMap<String, Instant>,
    reported_order: VecDeque<(Instant, String)>,
    counts: BTreeMap<Arm, Counts>,
    unknown_outcomes: u64,
}

/// Predictions waiting for their outcomes, and what the outcomes say of
/// each version and variant. Shared between the threads that predict and
/// those that report outcomes (`Send + Sync`).
#[derive(Debug)]
pub struct Feedback {
    config: FeedbackConfig,
    state: Mutex<State>,
}

impl Feedback {
    /// Empty feedback.
    pub fn new(config: FeedbackConfig) -> Self {
        Feedback {
            config,
            state: Mutex::new(State::default()),
        }
    }

    /// The settings.
    pub fn config(&self) -> &FeedbackConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remembers a prediction until its outcome arrives or it expires.
    /// `score` is the probability of the positive label, where the model
    /// has one.
    ///
    /// # Errors
    ///
    /// [`FeedbackError::BadId`], [`FeedbackError::DuplicateId`].
    pub fn record(&self, id: &str, arm: Arm, predicted: i64, score: Option<f64>) -> Result<(), FeedbackError> {
        self.record_at(id, arm, predicted, score, Instant::now())
    }

    /// [`record`](Self::record) at a given time (simulations and tests).
    ///
    /// # Errors
    ///
    /// Those of [`record`](Self::record).
    pub fn record_at(
        &self,
        id: &str,
        arm: Arm,
        predicted: i64,
        score: Option<f64>,
        now: Instant,
    ) -> Result<(), FeedbackError> {
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Err(FeedbackError::BadId(id.len()));
        }
        let mut s = self.lock();
        self.expire(&mut s, now);
        if s.waiting.contains_key(id) {
            return Err(FeedbackError::DuplicateId(id.to_owned()));
        }
        while s.waiting.len() >= self.config.capacity.max(1) {
            if !Self::drop_oldest(&mut s) {
                break;
            }
        }
        // Entries of predictions already joined wait in `order` until they
        // reach its front; compact when they outnumber the waiting ones.
        if s.order.len() > 2 * self.config.capacity.max(1) {
            let State { order, waiting, .. } = &mut *s;
            order.retain(|(at, id)| waiting.get(id).is_some_and(|w| w.at == *at));
        }
        s.counts.entry(arm.clone()).or_default().predictions += 1;
        s.order.push_back((now, id.to_owned()));
        s.waiting.insert(
            id.to_owned(),
            Waiting {
                arm,
                predicted,
                score: score.filter(|p| p.is_finite()),
                at: now,
            },
        );
        Ok(())
    }

    /// Joins an outcome with its prediction.
    ///
    /// # Errors
    ///
    /// [`FeedbackError::Unknown`] (counted), [`FeedbackError::AlreadyReported`].
    pub fn outcome(&self, id: &str, actual: i64) -> Result<Joined, FeedbackError> {
        self.outcome_at(id, actual, Instant::now())
    }

    /// [`outcome`](Self::outcome) at a given time (simulations and tests).
    ///
    /// # Errors
    ///
    /// Those of [`outcome`](Self::outcome).
    pub fn outcome_at(&self, id: &str, actual: i64, now: Instant) -> Result<Joined, FeedbackError> {
        let mut s = self.lock();
        self.expire(&mut s, now);
        let Some(w) = s.waiting.remove(id) else {
            if s.reported.contains_key(id) {
                return Err(FeedbackError::AlreadyReported(id.to_owned()));
            }
            s.unknown_outcomes += 1;
            return Err(FeedbackError::Unknown(id.chars().take(MAX_ID_LEN).collect()));
        };
        let counts = s.counts.entry(w.arm.clone()).or_default();
        counts.add(w.predicted, actual, w.score, self.config.positive);
        s.reported.insert(id.to_owned(), now);
        s.reported_order.push_back((now, id.to_owned()));
        Ok(Joined {
            id: id.to_owned(),
            arm: w.arm,
            predicted: w.predicted,
            actual,
            delay: now.saturating_duration_since(w.at),
        })
    }

    /// What the outcomes say of every version and variant seen.
    pub fn metrics(&self) -> Vec<LiveMetrics> {
        let mut s = self.lock();
        self.expire(&mut s, Instant::now());
        s.counts.iter().map(|(arm, c)| c.metrics(arm.clone())).collect()
    }

    /// What the outcomes say of one arm, if it predicted anything.
    pub fn arm(&self, arm: &Arm) -> Option<LiveMetrics> {
        let s = self.lock();
        s.counts.get(arm).map(|c| c.metrics(arm.clone()))
    }

    /// Outcomes whose id matched no waiting prediction.
    pub fn unknown_outcomes(&self) -> u64 {
        self.lock().unknown_outcomes
    }

    /// Predictions waiting now.
    pub fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }

    fn expire(&self, s: &mut State, now: Instant) {
        while let Some((at, _)) = s.order.front() {
            if now.saturating_duration_since(*at) <= self.config.window {
                break;
            }
            Self::drop_oldest(s);
        }
        while let Some((at, _)) = s.reported_order.front() {
            let full = s.reported_order.len() > self.config.capacity.max(1);
            if !full && now.saturating_duration_since(*at) <= self.config.window {
                break;
            }
            if let Some((_, id)) = s.reported_order.pop_front() {
                s.reported.remove(&id);
            }
        }
    }

    /// Drops the oldest waiting prediction (counted as expired); false if
    /// none waits.
    fn drop_oldest(s: &mut State) -> bool {
        while let Some((at, id)) = s.order.pop_front() {
            // Entries of ids already joined (or recorded again since) are skipped.
            if s.waiting.get(&id).is_some_and(|w| w.at == at) {
                if let Some(w) = s.waiting.remove(&id) {
                    s.counts.entry(w.arm).or_default().expired += 1;
                    return true;
                }
            }
        }
        false
    }
}

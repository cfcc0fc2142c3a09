//! Observation off the request path: a sample of requests goes through a
//! bounded queue to one thread that feeds the drift window and the shadow
//! model; when the queue is full, observations are dropped (and counted)
//! rather than making a request wait.

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use model_persistence_core::{ContentId, Loadable, ProbeValue};
use ndarray::Array2;

use super::{ModelServer, Served};
use crate::drift::{DriftConfig, DriftReport, DriftWindow};

/// Capacity of the queue of observed requests (drift, shadow); when full,
/// observations are dropped rather than making a request wait.
pub(super) const OBSERVATION_QUEUE: usize = 1024;

pub(super) type DriftCallback = Box<dyn Fn(&DriftReport) + Send + Sync>;

pub(super) struct Observation<M> {
    pub(super) rows: Array2<f64>,
    pub(super) outputs: Vec<ProbeValue>,
    pub(super) served: Arc<Served<M>>,
}

pub(super) struct ObserverState<M: Loadable> {
    pub(super) drift: Option<(DriftConfig, ContentId, DriftWindow)>,
    pub(super) latest_drift: Option<DriftReport>,
    pub(super) drifting: Vec<bool>,
    pub(super) on_drift: Option<DriftCallback>,
    pub(super) shadow: Option<ModelServer<M>>,
    pub(super) compared: u64,
    pub(super) disagreed: u64,
}

pub(super) fn spawn_observer<M: Loadable>(rx: Receiver<Observation<M>>, state: Arc<Mutex<ObserverState<M>>>) {
    let spawned = std::thread::Builder::new()
        .name("model-observer".into())
        .spawn(move || {
            while let Ok(obs) = rx.recv() {
                let Ok(mut state) = state.lock() else { return };
                state.observe(obs);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the observer; drift and shadow are off");
    }
}

impl<M: Loadable> ObserverState<M> {
    fn observe(&mut self, obs: Observation<M>) {
        if let Some((config, id, window)) = &mut self.drift {
            if *id != obs.served.content_id {
                // A new version: its own training statistics, a fresh window.
                *id = obs.served.content_id;
                *window = DriftWindow::new(obs.served.card.feature_stats.clone(), *config);
                self.drifting.clear();
            }
            for row in obs.rows.rows() {
                if let Some(slice) = row.as_slice() {
                    window.push(slice);
                }
            }
            if let Some(report) = window.report() {
                let newly = report
                    .features
                    .iter()
                    .enumerate()
                    .any(|(i, f)| f.drifting && !self.drifting.get(i).copied().unwrap_or(false));
                self.drifting = report.features.iter().map(|f| f.drifting).collect();
                if newly {
                    if let Some(cb) = &self.on_drift {
                        cb(&report);
                    }
                }
                self.latest_drift = Some(report);
            }
        }
        if let Some(shadow) = &self.shadow {
            if let Ok(p) = shadow.predict(obs.rows.view()) {
                self.compared += obs.outputs.len() as u64;
                self.disagreed += p
                    .outputs
                    .iter()
                    .zip(&obs.outputs)
                    .filter(|(s, o)| Into::<ProbeValue>::into((*s).clone()) != **o)
                    .count() as u64;
            }
        }
    }
}

/// Whether request `n` (1-based) falls in the sampled `share`.
pub(super) fn sampled(n: u64, share: f64) -> bool {
    if share >= 1.0 {
        return true;
    }
    ((n as f64) * share).floor() != (((n - 1) as f64) * share).floor()
}

impl<M> ModelServer<M>
where
    M: Loadable,
{
    /// The latest drift report, once the window is full.
    pub fn drift(&self) -> Option<DriftReport> {
        self.inner.observed.lock().ok().and_then(|s| s.latest_drift.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_takes_the_requested_share() {
        let taken = (1..=10_000).filter(|&n| sampled(n, 0.1)).count();
        assert_eq!(taken, 1_000);
        assert!((1..=100).all(|n| sampled(n, 1.0)));
        assert!(!(1..=100).any(|n| sampled(n, 0.0)));
    }
}

//! Reloading: the watcher thread, the checks a new version passes before it
//! is swapped in, backoff after a refusal, and rollback.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use model_persistence_core::{error_chain, panic_message, ContentId, Loadable, ModelCard, Version};

use super::{Inner, ModelServer, Served};
use crate::error::{Error, Result};
use crate::source::Source;

/// When the server looks for a new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadPolicy {
    /// Only when [`ModelServer::reload_if_updated`] is called.
    Manual,
    /// Every N requests, the request wakes the watcher thread, which checks
    /// off the request path (the seed's default is 100).
    EveryRequests(u64),
    /// Every interval, on the watcher thread.
    Interval(Duration),
}

/// Whether a check waits out the backoff after a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backoff {
    /// The watcher's checks: not before the retry time.
    Respect,
    /// An explicit call (`reload_if_updated`, a rollback): check now.
    Ignore,
}

/// Longest wait between retries after failed reloads.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// First wait after a failed request-triggered reload.
const REQUEST_BACKOFF: Duration = Duration::from_millis(50);
/// How many refused content ids a server remembers.
const REMEMBERED_REFUSALS: usize = 64;

#[derive(Default)]
pub(super) struct ReloadState {
    pub(super) failures: u32,
    pub(super) retry_after: Option<Instant>,
    pub(super) pinned_away: Option<ContentId>,
    /// Content ids refused for what they are (not for an I/O error): never
    /// loaded again. Content ids are immutable, so the refusal stands.
    pub(super) refused: Vec<ContentId>,
    /// What the last check of a registry alias saw (one conditional
    /// request per check).
    pub(super) follower: Option<model_persistence_versioning::AliasFollower>,
}

impl ReloadState {
    fn refuse(&mut self, id: ContentId) {
        if !self.refused.contains(&id) {
            if self.refused.len() == REMEMBERED_REFUSALS {
                self.refused.remove(0);
            }
            self.refused.push(id);
        }
    }
}

pub(super) fn spawn_watcher<M: Loadable>(inner: &Arc<Inner<M>>) {
    let weak: Weak<Inner<M>> = Arc::downgrade(inner);
    let spawned = std::thread::Builder::new()
        .name("model-watcher".into())
        .spawn(move || loop {
            let wait = match weak.upgrade() {
                Some(inner) if !inner.shutdown.load(Ordering::Acquire) => inner.next_wait(),
                _ => return,
            };
            std::thread::park_timeout(wait);
            let Some(inner) = weak.upgrade() else { return };
            if inner.shutdown.load(Ordering::Acquire) {
                return;
            }
            // Errors are recorded in the status; the old version keeps
            // serving. A panic anywhere in a check is contained here, so the
            // watcher goes on following: it is counted and reported as a
            // refusal, never a thread silently gone.
            let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                inner.check_and_reload(Backoff::Respect)
            }));
            if let Err(payload) = checked {
                inner.record_panic(&panic_message(payload.as_ref()));
            }
        });
    match spawned {
        Ok(handle) => {
            let _ = inner.watcher.set(handle.thread().clone());
        }
        Err(e) => tracing::error!(error = %e, "cannot start the model watcher; reloads are manual only"),
    }
}

impl<M: Loadable> Inner<M> {
    fn next_wait(&self) -> Duration {
        let failures = self.reload_lock.lock().map(|s| s.failures).unwrap_or(0);
        match self.policy {
            ReloadPolicy::Interval(d) if failures > 0 => backoff(d, failures),
            ReloadPolicy::Interval(d) => d,
            // Woken by requests; the timeout only bounds a missed wake-up.
            ReloadPolicy::EveryRequests(_) | ReloadPolicy::Manual => Duration::from_secs(1),
        }
    }

    fn record_failure(&self, state: &mut ReloadState, error: Error) -> Error {
        self.failed_reloads.fetch_add(1, Ordering::Relaxed);
        state.failures = state.failures.saturating_add(1);
        let base = match self.policy {
            ReloadPolicy::Interval(d) => d,
            _ => REQUEST_BACKOFF,
        };
        state.retry_after = Some(Instant::now() + backoff(base, state.failures));
        tracing::warn!(source = %self.source.describe(), error = %error, "new version refused; the old one keeps serving");
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error_chain(&error));
        }
        error
    }

    /// Records a check that panicked outside the load (which is contained
    /// where it happens, with the content id refused): counted as a failed
    /// reload, with its reason, and retried after the backoff.
    fn record_panic(&self, message: &str) {
        let mut state = match self.reload_lock.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let error = Error::LoadPanicked {
            source_name: self.source.describe(),
            message: message.to_owned(),
        };
        let _ = self.record_failure(&mut state, error);
    }

    /// Checks the source and swaps in a new, fully validated version.
    fn check_and_reload(&self, backoff_policy: Backoff) -> Result<bool> {
        let mut state = match self.reload_lock.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if backoff_policy == Backoff::Respect && state.retry_after.is_some_and(|t| Instant::now() < t) {
            return Ok(false);
        }
        let live_id = self.live.load().content_id;
        let offered = match self.source.current_id(&self.reader, &mut state.follower) {
            Ok(id) => id,
            Err(e) => return Err(self.record_failure(&mut state, e)),
        };
        if offered == live_id || state.pinned_away == Some(offered) {
            return Ok(false);
        }
        if state.refused.contains(&offered) {
            // Refused already: the same immutable content would fail again.
            return Ok(false);
        }
        let started = std::time::SystemTime::now();
        let load = std::panic::AssertUnwindSafe(|| self.source.load::<M>(&self.reader));
        let loaded = match std::panic::catch_unwind(load).unwrap_or_else(|payload| {
            Err(Error::LoadPanicked {
                source_name: self.source.describe(),
                message: panic_message(payload.as_ref()),
            })
        }) {
            Ok(l) => l,
            Err(e) => {
                // A registry version is immutable: a refusal for what it
                // is stands. A bundle file may still be being written, and
                // its signature may be written after it.
                let following_a_file = matches!(self.source, Source::Bundle(_) | Source::SignedBundle { .. });
                let may_pass =
                    e.is_io() || (following_a_file && (e.is_payload_damage() || matches!(e, Error::Signature { .. })));
                if !may_pass {
                    state.refuse(offered);
                }
                return Err(self.record_failure(&mut state, e));
            }
        };
        if loaded.content_id() == live_id {
            return Ok(false);
        }
        if !self.accept_schema_changes {
            if let Err(e) = same_schema(&self.live.load().card, loaded.card()) {
                state.refuse(offered);
                state.refuse(loaded.content_id());
                return Err(self.record_failure(&mut state, e));
            }
        }
        let content_id = loaded.content_id();
        let (model, card) = loaded.into_parts();
        let version = card.version.clone();
        let old = self.live.swap(Arc::new(Served::new(model, card, content_id)));
        if let Some(callback) = &self.on_swap {
            callback(&super::SwapEvent {
                from: old.card.version.clone(),
                to: version.clone(),
                content_id: content_id.to_string(),
                started,
                finished: std::time::SystemTime::now(),
            });
        }
        self.previous.store(Some(old));
        self.reloads.fetch_add(1, Ordering::Relaxed);
        state.failures = 0;
        state.retry_after = None;
        state.pinned_away = None;
        tracing::info!(source = %self.source.describe(), %version, %content_id, "swapped in a new version");
        Ok(true)
    }
}

/// The served schema (feature count, and feature names where both cards
/// name them) must not change under clients.
fn same_schema(served: &ModelCard, new: &ModelCard) -> Result<()> {
    let describe = |c: &ModelCard| match c.features.is_empty() {
        true => format!("{} features", c.n_features),
        false => format!("{} features ({})", c.n_features, c.features.join(", ")),
    };
    let names_differ = !served.features.is_empty() && !new.features.is_empty() && served.features != new.features;
    if served.n_features != new.n_features || names_differ {
        return Err(Error::SchemaChanged {
            version: new.version.clone(),
            expected: describe(served),
            found: describe(new),
        });
    }
    Ok(())
}

/// `base · 2^(failures − 1)`, at most [`MAX_BACKOFF`].
fn backoff(base: Duration, failures: u32) -> Duration {
    base.saturating_mul(1_u32 << failures.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

impl<M> ModelServer<M>
where
    M: Loadable,
{
    /// Checks the source now, on the caller's thread, and swaps in a new
    /// version if there is one. Returns whether it swapped.
    ///
    /// # Errors
    ///
    /// The refusal, also recorded in the status; the old version keeps serving.
    pub fn reload_if_updated(&self) -> Result<bool> {
        self.inner.check_and_reload(Backoff::Ignore)
    }

    /// Serves the previously served version again (held in memory), and
    /// ignores the version it replaced until the source offers another.
    ///
    /// # Errors
    ///
    /// [`Error::NothingToRollBack`].
    pub fn rollback(&self) -> Result<Version> {
        let inner = &*self.inner;
        let mut state = match inner.reload_lock.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let previous = inner.previous.swap(None).ok_or(Error::NothingToRollBack)?;
        let version = previous.card.version.clone();
        let current = inner.live.swap(previous);
        state.pinned_away = Some(current.content_id);
        inner.previous.store(Some(current));
        inner.reloads.fetch_add(1, Ordering::Relaxed);
        Ok(version)
    }

    /// Rolls the registry alias this server follows back to its previous
    /// target, then reloads.
    ///
    /// # Errors
    ///
    /// [`Error::NotARegistryAlias`] for other sources, registry errors.
    pub fn rollback_alias(&self) -> Result<Version> {
        let Source::Registry { registry, reference } = &self.inner.source else {
            return Err(Error::NotARegistryAlias {
                source_name: self.inner.source.describe(),
            });
        };
        let model_persistence_versioning::Target::Alias(alias) = &reference.target else {
            return Err(Error::NotARegistryAlias {
                source_name: self.inner.source.describe(),
            });
        };
        let target = registry
            .rollback(&reference.model, alias)
            .map_err(|source| Error::Registry {
                source_name: self.inner.source.describe(),
                source: Box::new(source),
            })?;
        self.inner.check_and_reload(Backoff::Ignore)?;
        Ok(target.version)
    }

    /// Why the latest refused version was refused, in words, if any.
    pub fn last_error(&self) -> Option<String> {
        self.inner.last_error.lock().ok().and_then(|e| e.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 1), base);
        assert_eq!(backoff(base, 3), Duration::from_millis(400));
        assert_eq!(backoff(base, 40), MAX_BACKOFF);
    }
}

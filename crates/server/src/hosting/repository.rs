//! The model repository extension: which names are served and in what
//! state, and loading or unloading a name while the server runs. Off unless
//! the configuration turns it on (`repository_api`). A load builds and
//! checks the new route completely before it replaces anything: a load that
//! fails its checks leaves what was served untouched.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{load_route, lock, AppState, Slot, Slots};
use crate::config::ModelConfig;
use crate::service::InferError;

/// One served name in the repository index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryEntry {
    /// The served name.
    pub name: String,
    /// The version it serves, once loaded (the first variant's under A/B).
    pub version: Option<String>,
    /// `READY`, or `UNAVAILABLE` while it has not loaded (with the reason).
    pub state: &'static str,
    /// Why it is not ready, if it is not.
    pub reason: String,
}

impl AppState {
    /// Whether the repository extension is on.
    pub fn repository_enabled(&self) -> bool {
        self.config.repository_api
    }

    fn repository_on(&self) -> Result<(), InferError> {
        if self.repository_enabled() {
            Ok(())
        } else {
            Err(InferError::forbidden(
                "the model repository API is off: start the server with --repository-api",
            ))
        }
    }

    /// Every served name and its state (`ready_only`: the ready ones).
    ///
    /// # Errors
    ///
    /// [`InferError`] (forbidden) when the extension is off.
    pub fn repository_index(&self, ready_only: bool) -> Result<Vec<RepositoryEntry>, InferError> {
        self.repository_on()?;
        Ok(self
            .slots()
            .iter()
            .map(|slot| {
                let version = slot.route.get().and_then(|r| r.served_versions().into_iter().next());
                RepositoryEntry {
                    name: slot.name.clone(),
                    state: if version.is_some() { "READY" } else { "UNAVAILABLE" },
                    reason: if version.is_some() {
                        String::new()
                    } else {
                        slot.load_error().unwrap_or_else(|| "loading".into())
                    },
                    version,
                }
            })
            .filter(|e| !ready_only || e.state == "READY")
            .collect())
    }

    /// Serves `name` from the registry `reference` (default
    /// `NAME@production`), replacing what the name served only once the
    /// new route has loaded and passed every check. Blocks while it loads:
    /// call it off async workers.
    ///
    /// # Errors
    ///
    /// [`InferError`]: forbidden when the extension is off; invalid when
    /// the server has no registry, the reference does not parse, or the
    /// model fails to load or to pass its checks (what was served stays).
    pub fn load_model(&self, name: &str, reference: Option<&str>) -> Result<RepositoryEntry, InferError> {
        self.repository_on()?;
        let reference = reference.map_or_else(|| format!("{name}@production"), str::to_owned);
        let mut config = ModelConfig::reference(&reference);
        config.name = Some(name.to_owned());
        config.served_name().map_err(|e| InferError::invalid(e.to_string()))?;
        let _one_at_a_time = lock(&self.repository);
        let route = load_route(&config, self.registry.as_ref(), &self.config, self.tracer())
            .map_err(|reason| InferError::invalid(format!("{name} was not loaded: {reason}")))?;
        let slot = Slot::new(name.to_owned(), config);
        let version = route.served_versions().into_iter().next();
        let _ = slot.route.set(route);
        let slot = Arc::new(slot);
        let current = self.slots();
        let mut order: Vec<Arc<Slot>> = current
            .iter()
            .map(|s| {
                if s.name == name {
                    s.retired.store(true, Ordering::Release);
                    Arc::clone(&slot)
                } else {
                    Arc::clone(s)
                }
            })
            .collect();
        if !current.by_name.contains_key(name) {
            order.push(slot);
        }
        self.slots.store(Arc::new(Slots::of(order)));
        tracing::info!(model = %name, %reference, "loaded through the repository API");
        Ok(RepositoryEntry {
            name: name.to_owned(),
            version,
            state: "READY",
            reason: String::new(),
        })
    }

    /// Stops serving `name`; requests in flight finish on what they hold.
    ///
    /// # Errors
    ///
    /// [`InferError`]: forbidden when the extension is off, not found for a
    /// name not served.
    pub fn unload_model(&self, name: &str) -> Result<(), InferError> {
        self.repository_on()?;
        let _one_at_a_time = lock(&self.repository);
        let current = self.slots();
        let Some(gone) = current.by_name.get(name) else {
            return Err(InferError::not_found(format!("unknown model {name:?}")));
        };
        gone.retired.store(true, Ordering::Release);
        let order = current.iter().filter(|s| s.name != name).cloned().collect();
        self.slots.store(Arc::new(Slots::of(order)));
        tracing::info!(model = %name, "unloaded through the repository API");
        Ok(())
    }
}

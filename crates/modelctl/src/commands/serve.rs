//! `modelctl serve`: the Open Inference Protocol over HTTP.

use model_persistence_server::{ModelConfig, ServeConfig};

use super::registry::Location;
use crate::output::outln;
use crate::output::{Failure, Outcome};

/// What `modelctl serve` was given on the command line.
pub(crate) struct ServeArgs {
    pub(crate) models: Vec<String>,
    pub(crate) listen: Option<std::net::SocketAddr>,
    pub(crate) config: Option<std::path::PathBuf>,
    pub(crate) body_limit: Option<usize>,
    pub(crate) poll_ms: Option<u64>,
    pub(crate) cache_dir: Option<std::path::PathBuf>,
    /// `--bundle-dir` and `--model-name`.
    pub(crate) bundle: Option<(std::path::PathBuf, String)>,
    /// The `--trust` key files.
    pub(crate) trust: Vec<std::path::PathBuf>,
    /// `--repository-api`.
    pub(crate) repository_api: bool,
}

/// Builds the configuration (file, then flags over it), opens the registry
/// and serves until Ctrl-C or SIGTERM. Logs go to stderr (`RUST_LOG`
/// filters them; `MODELCTL_LOG=json` writes one JSON object per line).
pub(crate) fn serve(location: Location<'_>, args: &ServeArgs) -> Outcome {
    init_logs();
    let mut config = match &args.config {
        Some(path) => ServeConfig::from_file(path)?,
        None => ServeConfig::default(),
    };
    config
        .models
        .extend(args.models.iter().map(|m| ModelConfig::reference(m)));
    if let Some((dir, name)) = &args.bundle {
        config.models.push(ModelConfig::bundle_dir(name, dir));
    }
    config.trust.extend(args.trust.iter().cloned());
    config.repository_api |= args.repository_api;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(limit) = args.body_limit {
        config.body_limit = limit;
    }
    if let Some(ms) = args.poll_ms {
        config.poll_ms = ms;
    }
    if let Some(dir) = &args.cache_dir {
        config.cache_dir = Some(dir.clone());
    }
    config.validate()?;
    let location = match (location.0, &config.registry) {
        (Some(flag), _) => Location(Some(flag)),
        (None, Some(file)) => Location(Some(file.as_str())),
        (None, None) => Location(None),
    };
    // Models served from a directory need no registry; any other does.
    let registry = if location.0.is_none() && config.models.iter().all(|m| m.bundle_dir.is_some()) {
        None
    } else {
        // The config file's store options, then the command line's over them.
        let mut options: Vec<(String, String)> = config.registry_options.clone().into_iter().collect();
        options.extend(super::registry::options());
        let mut registry = location.open_with(&options)?;
        if let Some(dir) = &config.cache_dir {
            let cache = model_persistence::versioning::BundleCache::new(dir, config.cache_max_bytes)
                .map_err(|e| Failure(format!("cannot use the cache {}: {e}", dir.display())))?;
            registry = registry.cache(cache);
        }
        Some(registry)
    };
    model_persistence_server::run_blocking(&config, registry.as_ref(), |addr| {
        // One line on stdout that scripts can wait for.
        outln!("listening on http://{addr}");
    })?;
    Ok(())
}

fn init_logs() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::env::var("MODELCTL_LOG").as_deref() == Ok("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

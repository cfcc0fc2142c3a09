//! `modelctl serve`: the Open Inference Protocol over HTTP.

use std::path::PathBuf;

use model_persistence_server::{ModelConfig, PayloadLogConfig, ServeConfig, TlsConfig, TokensFile};

use super::registry::Location;
use crate::output::outln;
use crate::output::{Failure, Outcome};

/// What `modelctl serve` is given on the command line; each flag
/// overrides the config file's setting.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// A model to serve: MODEL@ALIAS, MODEL@VERSION or MODEL (repeatable).
    #[arg(long = "model")]
    models: Vec<String>,
    /// Where to listen, for REST and gRPC (default 127.0.0.1:8080; port 0:
    /// any free port). An address other than loopback needs --tokens or
    /// --insecure-open.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// A TOML file: listen address, models, A/B splits, shadows, limits, tokens.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The largest request body in bytes (default 16 MiB).
    #[arg(long)]
    body_limit: Option<usize>,
    /// Milliseconds between alias checks (default 1000).
    #[arg(long)]
    poll_ms: Option<u64>,
    /// A per-machine bundle cache directory shared by servers.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Serve the bundle in this directory, with no registry: what a
    /// storage initializer fetched (its model.bundle, or its one
    /// *.bundle file). Under --trust its signature must verify.
    #[arg(long, requires = "model_name")]
    bundle_dir: Option<PathBuf>,
    /// The name the bundle of --bundle-dir is served under (an
    /// InferenceService's name).
    #[arg(long, requires = "bundle_dir")]
    model_name: Option<String>,
    /// Turn on the model repository extension: names loaded and
    /// unloaded while the server runs (`/v2/repository/...`, and gRPC's
    /// RepositoryModelLoad and RepositoryModelUnload).
    #[arg(long)]
    repository_api: bool,
    /// Bearer tokens: a TOML file of `[[token]]` tables (name, sha256 of
    /// the token, scopes: infer, outcomes, read, admin).
    #[arg(long, value_name = "FILE")]
    tokens: Option<PathBuf>,
    /// Serve with no tokens on an address other than loopback, on purpose.
    #[arg(long)]
    insecure_open: bool,
    /// /metrics without a token.
    #[arg(long)]
    open_metrics: bool,
    /// TLS: the certificate chain (PEM), reloaded when it changes.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS: the private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// mTLS: the CA client certificates must chain to; a certificate named
    /// as a token (common name or DNS name) has that token's scopes.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Record a sample of requests and answers as JSON lines in rotating
    /// files in DIR (read back with `modelctl logs DIR`).
    #[arg(long, value_name = "DIR")]
    payload_log: Option<PathBuf>,
    /// The share of predictions the payload log records (0 to 1; default 0.01).
    #[arg(long, value_name = "FRACTION", requires = "payload_log")]
    payload_sample: Option<f64>,
    /// Export traces with OTLP over HTTP/protobuf to this endpoint
    /// (http://HOST:PORT; spans go to /v1/traces under it).
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// The share of traces recorded when the caller's traceparent does not
    /// decide (default 1).
    #[arg(long, value_name = "FRACTION", requires = "otlp_endpoint")]
    otlp_sample: Option<f64>,
    /// How the server writes its logs: text, or json (one JSON object per
    /// line, on stdout and stderr alike).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line.
    Json,
}

/// Builds the configuration (file, then flags over it), opens the registry
/// and serves until Ctrl-C or SIGTERM. Logs go to stderr (`RUST_LOG`
/// filters them; `MODELCTL_LOG=json` writes one JSON object per line).
pub(crate) fn serve(location: Location<'_>, args: &ServeArgs, trust: &[PathBuf]) -> Outcome {
    let json = args.log_format == LogFormat::Json || std::env::var("MODELCTL_LOG").as_deref() == Ok("json");
    init_logs(json);
    match serve_logged(location, args, trust, json) {
        // Under --log-format json a refusal is a JSON line too, and nothing
        // else is written.
        Err(Failure(message)) if json => {
            tracing::error!(error = %message, "modelctl serve stopped");
            Err(Failure(String::new()))
        }
        other => other,
    }
}

fn serve_logged(location: Location<'_>, args: &ServeArgs, trust: &[PathBuf], json: bool) -> Outcome {
    let mut config = match &args.config {
        Some(path) => ServeConfig::from_file(path)?,
        None => ServeConfig::default(),
    };
    config
        .models
        .extend(args.models.iter().map(|m| ModelConfig::reference(m)));
    if let (Some(dir), Some(name)) = (&args.bundle_dir, &args.model_name) {
        config.models.push(ModelConfig::bundle_dir(name, dir));
    }
    config.trust.extend(trust.iter().cloned());
    config.repository_api |= args.repository_api;
    if let Some(path) = &args.tokens {
        config.token.extend(TokensFile::read(path)?);
    }
    config.insecure_open |= args.insecure_open;
    config.open_metrics |= args.open_metrics;
    if let Some(url) = &args.otlp_endpoint {
        config.otlp_endpoint = Some(url.clone());
    }
    if let Some(share) = args.otlp_sample {
        config.otlp_sample = share;
    }
    if let Some(dir) = &args.payload_log {
        let mut log = config
            .payload_log
            .take()
            .unwrap_or_else(|| PayloadLogConfig::new(dir, 0.01));
        log.dir = dir.clone();
        if let Some(share) = args.payload_sample {
            log.sample = share;
        }
        config.payload_log = Some(log);
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls = Some(TlsConfig {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: args.tls_client_ca.clone(),
        });
    }
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
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    let result = model_persistence_server::run_blocking(&config, registry.as_ref(), |addr| {
        // One line on stdout that scripts can wait for (a JSON object under
        // --log-format json, as every other line).
        if json {
            outln!(
                "{}",
                serde_json::json!({"level": "INFO", "message": "listening", "url": format!("{scheme}://{addr}"), "addr": addr.to_string()})
            );
        } else {
            outln!("listening on {scheme}://{addr}");
        }
    });
    result?;
    Ok(())
}

fn init_logs(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

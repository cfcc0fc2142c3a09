//! An Open Inference Protocol (KServe v2 REST) server for registry models.
//!
//! Each configured name serves a registry reference (`fraud@production`)
//! through a [`ModelServer`](model_persistence_serving::ModelServer): the
//! alias is checked with one conditional request per poll, a new version is
//! loaded and checked (every hash, the kind, the probe) off the request
//! path and swapped in atomically, in-flight requests finish on the version
//! they started with, and a version that fails its checks is refused and
//! counted while the old one keeps serving.
//!
//! Endpoints: `GET /v2`, `/v2/health/live`, `/v2/health/ready`,
//! `/v2/models/{name}[/versions/{v}]`, `.../ready`, `POST .../infer`,
//! `GET /metrics` (Prometheus). Every refused request gets a 4xx status and
//! the protocol's `{"error": "..."}` body.
//!
//! ```no_run
//! use model_persistence_server::{ModelConfig, ServeConfig, Server};
//! use model_persistence_versioning::Registry;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Registry::open("models")?;
//! let config = ServeConfig {
//!     models: vec![ModelConfig::reference("fraud@production")],
//!     ..ServeConfig::default()
//! };
//! let server = Server::bind(&config, &registry).await?;
//! println!("listening on {}", server.local_addr());
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod access;
pub mod config;
mod error;
pub mod grpc;
mod hosting;
mod http;
mod listen;
pub mod payload;
mod prometheus;
pub mod service;
mod tls;
mod trace;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

pub use access::TokensFile;
pub use config::{
    AbConfig, DecideConfig, KeySource, ModelConfig, OutcomesConfig, PayloadLogConfig, Scope, ServeConfig, ShadowConfig,
    TlsConfig, TokenConfig, VariantConfig, DEFAULT_BODY_LIMIT,
};
pub use error::{Error, Result};
pub use hosting::AppState;
pub use http::protocol;
use model_persistence_versioning::Registry;

/// Every route of the server over `state`: the Open Inference Protocol over
/// REST and over gRPC (one port: gRPC requests are HTTP/2 with
/// `content-type: application/grpc` on the service's paths), `/metrics` and
/// the model pages. Bodies over `body_limit` bytes are refused (413, or
/// `RESOURCE_EXHAUSTED`).
pub fn router(state: Arc<AppState>, body_limit: usize) -> axum::Router {
    access::guard(routes(Arc::clone(&state), body_limit), state)
}

/// The routes of [`router`] without access control, which [`Server::run`]
/// puts outside its other layers (a refused request's body is never read).
fn routes(state: Arc<AppState>, body_limit: usize) -> axum::Router {
    grpc::add_to(http::router(Arc::clone(&state), body_limit), state, body_limit)
}

/// A server bound to its address, loading its models.
#[derive(Debug)]
pub struct Server {
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    limits: listen::Limits,
    tls: Option<tls::Tls>,
}

impl Server {
    /// Binds `config.listen` (port 0: the OS picks one) and starts loading
    /// every model in the background; the server is ready once all have
    /// loaded and passed their checks.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid configuration, [`Error::Listen`] for
    /// an address that cannot be bound.
    pub async fn bind<'r>(config: &ServeConfig, registry: impl Into<Option<&'r Registry>>) -> Result<Self> {
        // TLS files are checked before anything starts loading.
        let tls = config.tls.as_ref().map(tls::Tls::new).transpose()?;
        let state = AppState::start(config, registry)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Listen {
                addr: config.listen,
                source,
            })?;
        Ok(Server {
            listener,
            state,
            limits: listen::Limits::of(config),
            tls,
        })
    }

    /// Whether the server speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The application state (readiness, load errors).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting and lets the
    /// requests in flight finish. Slow and idle clients are cut off, and
    /// open connections capped, as the configuration's `header_timeout_ms`,
    /// `body_timeout_ms` and `max_connections` say.
    ///
    /// # Errors
    ///
    /// None today (a failed accept is retried); kept for the signature.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let app = routes(Arc::clone(&self.state), self.limits.body_limit);
        listen::serve(
            self.listener,
            app,
            self.limits,
            Arc::clone(&self.state),
            self.tls,
            shutdown,
        )
        .await;
        self.state.stop();
        Ok(())
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing the requests in flight");
}

/// Runs a server on its own multi-threaded runtime until Ctrl-C or SIGTERM:
/// what `modelctl serve` does. `on_bound` is told the address once bound.
///
/// # Errors
///
/// Those of [`Server::bind`] and [`Server::run`], and [`Error::Runtime`].
pub fn run_blocking<'r>(
    config: &ServeConfig,
    registry: impl Into<Option<&'r Registry>>,
    on_bound: impl FnOnce(SocketAddr),
) -> Result<()> {
    let registry: Option<&Registry> = registry.into();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("serve")
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(async {
        let server = Server::bind(config, registry).await?;
        on_bound(server.local_addr());
        server.run(shutdown_signal()).await
    })
}

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

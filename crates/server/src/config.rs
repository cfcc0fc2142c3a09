//! What a server serves: from `modelctl serve` flags or a TOML file.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! registry = "s3://models/registry"     # or a directory
//! body_limit = 16777216                 # bytes; default 16 MiB
//! poll_ms = 1000                        # alias checks (one conditional request each)
//! cache_dir = "/var/cache/models"       # optional per-machine bundle cache
//! cache_max_bytes = 4294967296
//! header_timeout_ms = 10000             # a request's head, from when the server waits for it
//! body_timeout_ms = 30000               # a request's whole body
//! max_connections = 1024                # open connections; more get a 503 and are closed
//!
//! [[models]]
//! reference = "fraud@production"        # served as "fraud"
//! [models.outcomes]                     # predictions waiting for their outcome
//! window_s = 604800                     # 7 days
//! capacity = 200000
//! [models.guardrail]                    # rolls production back from a worse version
//! metric = "accuracy"
//! min_samples = 200
//! floor = 0.8
//!
//! [[models]]
//! name = "churn"                        # an A/B split, sticky by a header
//! [models.ab]
//! key = "header:x-user-id"              # or "parameter:user"
//! variants = [
//!   { name = "a", reference = "churn@production", weight = 90 },
//!   { name = "b", reference = "churn@candidate", weight = 10 },
//! ]
//! [models.ab.decide]                    # an A/B test that decides (always-valid mSPRT)
//! alias = "production"                  # moved to the winner
//! metric = "accuracy"                   # or precision, recall
//! on_decision = "promote"               # or "recommend": store the decision only
//! [models.shadow]
//! reference = "churn@staging"
//! share = 1.0
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use model_persistence_gate::live::{AbTest, FeedbackConfig, Guardrail};
use serde::Deserialize;

pub use crate::access::{Scope, TokenConfig};
use crate::error::{Error, Result};
pub use crate::payload::PayloadLogConfig;

/// The default request body limit: 16 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Where to listen. Default: 127.0.0.1:8080.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The registry: a directory or a URL.
    #[serde(default)]
    pub registry: Option<String>,
    /// Options of the registry's object store (`[registry_options]`:
    /// `endpoint = "http://127.0.0.1:8333"`, `allow_http = "true"`), which
    /// override the environment; `--registry-option` overrides these.
    #[serde(default)]
    pub registry_options: std::collections::BTreeMap<String, String>,
    /// The largest request body, in bytes.
    #[serde(default = "default_body_limit")]
    pub body_limit: usize,
    /// Milliseconds between alias checks.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// A per-machine bundle cache directory.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// The cache's bound in bytes. Default: 4 GiB.
    #[serde(default = "default_cache_bytes")]
    pub cache_max_bytes: u64,
    /// Rows in each model's drift window. Default: 1,000.
    #[serde(default = "default_drift_window")]
    pub drift_window: usize,
    /// Milliseconds a client has to send a request's head (request line and
    /// headers), counted from when the server starts waiting for it: on a
    /// kept-alive connection, from the end of the previous answer, so this
    /// is also how long an idle connection stays open. Past it the
    /// connection is closed. Default: 10,000 (10 s).
    #[serde(default = "default_header_timeout_ms")]
    pub header_timeout_ms: u64,
    /// Milliseconds a client has to send a request's whole body once its
    /// head has come. Past it the answer is 408 with the protocol's error
    /// body, and the connection is closed. Default: 30,000 (30 s).
    #[serde(default = "default_body_timeout_ms")]
    pub body_timeout_ms: u64,
    /// The most connections open at once. A connection beyond it is
    /// answered 503 with `Retry-After` and closed, so slow clients cannot
    /// hold every file descriptor. Default: 1,024.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// The models.
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    /// Public keys (PEM files) one of which must have signed every bundle
    /// served from a directory (`bundle_dir`); registry models are held to
    /// the registry handle's own trust policy. Empty: no signature needed.
    #[serde(default)]
    pub trust: Vec<PathBuf>,
    /// The model repository extension (`/v2/repository/...`, gRPC's
    /// `RepositoryIndex`, `RepositoryModelLoad`, `RepositoryModelUnload`):
    /// names loaded and unloaded while the server runs. Off by default.
    #[serde(default)]
    pub repository_api: bool,
    /// Bearer tokens with scopes (`[[token]]` tables, or `--tokens FILE`).
    /// Empty: no access control, which is allowed only on a loopback
    /// address unless `insecure_open` says otherwise.
    #[serde(default)]
    pub token: Vec<TokenConfig>,
    /// `/metrics` without a token, for a scraper that cannot send one.
    #[serde(default)]
    pub open_metrics: bool,
    /// Serve with no tokens on an address other than loopback: anyone who
    /// reaches the port may predict, report outcomes (which can move an
    /// alias) and read everything. Off by default.
    #[serde(default)]
    pub insecure_open: bool,
    /// TLS: a certificate and key (reloaded when they change), and
    /// optionally the CA that client certificates must chain to.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// The most requests handled at once; one more is answered 503 with
    /// `Retry-After` (gRPC `UNAVAILABLE`) at once rather than queued.
    /// Default: 512.
    #[serde(default = "default_max_requests")]
    pub max_requests: usize,
    /// Milliseconds a request may take once its body has come; past it the
    /// answer is 503 (gRPC `DEADLINE_EXCEEDED`) and the work is abandoned.
    /// Default: 30,000.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// A sampled record of requests and answers (`[payload_log]`).
    #[serde(default)]
    pub payload_log: Option<PayloadLogConfig>,
    /// Where traces go: an OTLP over HTTP/protobuf endpoint
    /// (`http://HOST:PORT`; spans are posted to `/v1/traces` under it).
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// The `service.name` the traces carry. Default: `model-persistence`.
    #[serde(default = "default_service_name")]
    pub otlp_service_name: String,
    /// The share of traces recorded when the caller's `traceparent` does
    /// not decide (its sampled flag does when it is there). Default: 1.
    #[serde(default = "default_sample")]
    pub otlp_sample: f64,
}

/// TLS for the server's one port (REST and gRPC).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// A CA (PEM) that client certificates must chain to: with it, every
    /// client must present one (mTLS), and one whose common name or DNS
    /// name is a token's name authenticates as that token.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// One served name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The name clients use. Default: the model name of the reference.
    #[serde(default)]
    pub name: Option<String>,
    /// `model@alias`, `model@version` or `model` (latest).
    #[serde(default)]
    pub reference: Option<String>,
    /// A directory holding the bundle to serve, with no registry: what a
    /// storage initializer fetched (`/mnt/models`). Its `model.bundle` (what
    /// `modelctl fetch` writes), or else its one `*.bundle` file, with every
    /// check a load makes and, under `trust`, its signature. Followed: a
    /// bundle replaced in place is swapped in. Needs `name`.
    #[serde(default)]
    pub bundle_dir: Option<PathBuf>,
    /// An A/B split instead of one reference.
    #[serde(default)]
    pub ab: Option<AbConfig>,
    /// A shadow model that also predicts, off the request path.
    #[serde(default)]
    pub shadow: Option<ShadowConfig>,
    /// How long predictions wait for their outcome, and how many.
    #[serde(default)]
    pub outcomes: OutcomesConfig,
    /// A guardrail on the alias of `reference`: rolls it back when the
    /// version it points at does worse live.
    #[serde(default)]
    pub guardrail: Option<Guardrail>,
}

/// Predictions waiting for their outcomes (`POST /v2/models/{name}/outcomes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutcomesConfig {
    /// Seconds a prediction waits for its outcome. Default: 7 days.
    pub window_s: u64,
    /// The most predictions waiting at once. Default: 200,000.
    pub capacity: usize,
    /// The label counted as positive. Default: 1.
    pub positive: i64,
}

impl Default for OutcomesConfig {
    fn default() -> Self {
        OutcomesConfig {
            window_s: 7 * 24 * 3600,
            capacity: 200_000,
            positive: 1,
        }
    }
}

impl OutcomesConfig {
    /// The feedback settings.
    pub fn feedback(&self) -> FeedbackConfig {
        FeedbackConfig {
            window: Duration::from_secs(self.window_s),
            capacity: self.capacity.max(1),
            positive: self.positive,
        }
    }
}

/// An A/B test that decides, and the alias it moves.
#[derive(Debug, Clone, Deserialize)]
pub struct DecideConfig {
    /// The alias moved to the winner (or named in the recommendation).
    pub alias: String,
    /// The test.
    #[serde(flatten)]
    pub test: AbTest,
}

/// An A/B split.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbConfig {
    /// Where the sticky key comes from: `header:NAME` or `parameter:NAME`.
    pub key: String,
    /// The variants.
    pub variants: Vec<VariantConfig>,
    /// Decide between the two variants on their live outcomes.
    #[serde(default)]
    pub decide: Option<DecideConfig>,
}

/// One variant of a split.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantConfig {
    /// Its name (a metrics label, and `variant` in responses).
    pub name: String,
    /// Its reference.
    pub reference: String,
    /// Its weight.
    pub weight: u64,
}

/// A shadow model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowConfig {
    /// Its reference.
    pub reference: String,
    /// The share of requests it also predicts. Default: 1.0.
    #[serde(default = "one")]
    pub share: f64,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_body_limit() -> usize {
    DEFAULT_BODY_LIMIT
}
fn default_poll_ms() -> u64 {
    1000
}
fn default_cache_bytes() -> u64 {
    4 << 30
}
fn default_drift_window() -> usize {
    1000
}
fn default_header_timeout_ms() -> u64 {
    10_000
}
fn default_body_timeout_ms() -> u64 {
    30_000
}
fn default_max_connections() -> usize {
    1024
}
fn default_sample() -> f64 {
    1.0
}
fn default_service_name() -> String {
    "model-persistence".into()
}
fn default_max_requests() -> usize {
    512
}
fn default_request_timeout_ms() -> u64 {
    30_000
}
fn one() -> f64 {
    1.0
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: default_listen(),
            registry: None,
            registry_options: Default::default(),
            body_limit: DEFAULT_BODY_LIMIT,
            poll_ms: default_poll_ms(),
            cache_dir: None,
            cache_max_bytes: default_cache_bytes(),
            drift_window: default_drift_window(),
            header_timeout_ms: default_header_timeout_ms(),
            body_timeout_ms: default_body_timeout_ms(),
            max_connections: default_max_connections(),
            models: Vec::new(),
            trust: Vec::new(),
            repository_api: false,
            token: Vec::new(),
            open_metrics: false,
            insecure_open: false,
            tls: None,
            max_requests: default_max_requests(),
            request_timeout_ms: default_request_timeout_ms(),
            payload_log: None,
            otlp_endpoint: None,
            otlp_service_name: default_service_name(),
            otlp_sample: 1.0,
        }
    }
}

/// Where the A/B key of a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A request header.
    Header(String),
    /// A request parameter (`parameters` of the infer request).
    Parameter(String),
}

impl KeySource {
    /// Parses `header:NAME` or `parameter:NAME`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the accepted forms.
    pub fn parse(s: &str) -> Result<Self> {
        match s.split_once(':') {
            Some(("header", name)) if !name.is_empty() => Ok(KeySource::Header(name.to_ascii_lowercase())),
            Some(("parameter", name)) if !name.is_empty() => Ok(KeySource::Parameter(name.to_owned())),
            _ => Err(Error::config(format!(
                "A/B key {s:?}: use header:NAME or parameter:NAME"
            ))),
        }
    }
}

impl ServeConfig {
    /// Reads a TOML file.
    ///
    /// # Errors
    ///
    /// [`Error::ConfigFile`] naming the file, with the I/O or TOML error.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let failed = |source: Box<dyn std::error::Error + Send + Sync>| Error::ConfigFile {
            path: path.to_owned(),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(|e| failed(e.into()))?;
        toml::from_str(&text).map_err(|e| failed(e.into()))
    }

    /// The interval between alias checks.
    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.poll_ms.max(10))
    }

    /// Checks what can be checked before loading anything.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the problem.
    pub fn validate(&self) -> Result<()> {
        if self.models.is_empty() {
            return Err(Error::config(
                "no model to serve: pass --model MODEL@ALIAS or list [[models]] in the config",
            ));
        }
        if self.body_limit == 0 {
            return Err(Error::config("body_limit must be positive"));
        }
        if self.header_timeout_ms == 0
            || self.body_timeout_ms == 0
            || self.max_connections == 0
            || self.max_requests == 0
            || self.request_timeout_ms == 0
        {
            return Err(Error::config(
                "header_timeout_ms, body_timeout_ms, request_timeout_ms, max_connections and max_requests must be positive",
            ));
        }
        if let Some(log) = &self.payload_log {
            log.validate()?;
        }
        if self.token.is_empty() && !self.insecure_open && !self.listen.ip().is_loopback() {
            return Err(Error::config(format!(
                "refusing to serve on {} with no access control: anyone who reaches it could predict, \
                 report outcomes that move an alias, and read every model. Give tokens (--tokens FILE, \
                 or [[token]] in the config), or listen on 127.0.0.1, or pass --insecure-open to serve open on purpose",
                self.listen
            )));
        }
        let mut names = std::collections::BTreeSet::new();
        for m in &self.models {
            let name = m.served_name()?;
            if !names.insert(name.clone()) {
                return Err(Error::config(format!("the name {name:?} is served twice")));
            }
            if let Some(ab) = &m.ab {
                KeySource::parse(&ab.key)?;
                if ab.variants.is_empty() || ab.variants.iter().all(|v| v.weight == 0) {
                    return Err(Error::config(format!(
                        "{name}: an A/B split needs a variant with a positive weight"
                    )));
                }
            }
            if let Some(d) = m.ab.as_ref().and_then(|ab| ab.decide.as_ref().map(|d| (ab, d))) {
                if d.0.variants.len() != 2 {
                    return Err(Error::config(format!(
                        "{name}: an A/B test decides between two variants"
                    )));
                }
                if d.1.test.sequential.alpha <= 0.0 || d.1.test.sequential.alpha >= 1.0 {
                    return Err(Error::config(format!("{name}: alpha must be within 0 and 1")));
                }
            }
            if m.guardrail.is_some() && !m.reference.as_deref().is_some_and(|r| r.contains('@')) {
                return Err(Error::config(format!(
                    "{name}: a guardrail needs a reference to an alias (model@alias)"
                )));
            }
            if let Some(shadow) = &m.shadow {
                if !(0.0..=1.0).contains(&shadow.share) {
                    return Err(Error::config(format!(
                        "{name}: the shadow share must be within 0 and 1"
                    )));
                }
            }
        }
        Ok(())
    }
}

impl ModelConfig {
    /// A model served from one reference.
    pub fn reference(reference: &str) -> Self {
        ModelConfig {
            name: None,
            reference: Some(reference.to_owned()),
            bundle_dir: None,
            ab: None,
            shadow: None,
            outcomes: OutcomesConfig::default(),
            guardrail: None,
        }
    }

    /// Serves the bundle in `dir` under `name`, with no registry.
    pub fn bundle_dir(name: &str, dir: impl Into<PathBuf>) -> Self {
        ModelConfig {
            name: Some(name.to_owned()),
            reference: None,
            bundle_dir: Some(dir.into()),
            ab: None,
            shadow: None,
            outcomes: OutcomesConfig::default(),
            guardrail: None,
        }
    }

    /// The name clients use.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when neither a name nor a reference gives one.
    pub fn served_name(&self) -> Result<String> {
        if self.bundle_dir.is_some() {
            if self.reference.is_some() || self.ab.is_some() || self.shadow.is_some() || self.guardrail.is_some() {
                return Err(Error::config(
                    "a model served from a directory has no reference, A/B split, shadow or guardrail",
                ));
            }
            return self
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| Error::config("a model served from a directory needs a name (--model-name)"));
        }
        if let Some(n) = &self.name {
            return Ok(n.clone());
        }
        let reference = match (&self.reference, &self.ab) {
            (Some(r), None) => r,
            (None, Some(ab)) => match ab.variants.first() {
                Some(v) => &v.reference,
                None => return Err(Error::config("an A/B split without variants")),
            },
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    "a model has either a reference or an A/B split, not both",
                ))
            }
            (None, None) => return Err(Error::config("a model needs a reference or an A/B split")),
        };
        Ok(reference.split('@').next().unwrap_or(reference).to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses_and_validates() {
        let text = include_str!("config.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let config: ServeConfig = toml::from_str(&text).expect("the example parses");
        config.validate().expect("the example is valid");
        assert_eq!(config.models.len(), 2);
        assert_eq!(config.models[0].served_name().expect("name"), "fraud");
        let guard = config.models[0].guardrail.as_ref().expect("a guardrail");
        assert_eq!((guard.min_samples, guard.floor), (200, Some(0.8)));
        assert!(
            guard.not_worse.is_some(),
            "the default: not worse than the previous version"
        );
        assert_eq!(config.models[0].outcomes.capacity, 200_000);
        let decide = config.models[1]
            .ab
            .as_ref()
            .and_then(|ab| ab.decide.as_ref())
            .expect("decides");
        assert_eq!(decide.alias, "production");
        assert_eq!(decide.test.sequential.alpha, 0.05);
        assert_eq!(
            KeySource::parse(&config.models[1].ab.as_ref().expect("ab").key).expect("a key source"),
            KeySource::Header("x-user-id".into())
        );
    }

    /// Every `toml` block of the guides that show a config file.
    fn guide_blocks(text: &str) -> Vec<String> {
        let mut blocks = Vec::new();
        let mut lines = text.lines();
        while lines.any(|l| l.trim() == "```toml") {
            let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            blocks.push(block.join("\n"));
        }
        blocks
    }

    #[test]
    fn the_guides_config_files_parse_and_validate() {
        let guides = [
            include_str!("../../../docs/server.md"),
            include_str!("../../../docs/kubernetes.md"),
        ];
        let blocks: Vec<String> = guides.iter().flat_map(|g| guide_blocks(g)).collect();
        assert!(blocks.len() >= 2, "{blocks:?}");
        for block in &blocks {
            let config: ServeConfig = toml::from_str(block).unwrap_or_else(|e| panic!("{e}\n{block}"));
            // A fragment (tokens alone, say) has no models to validate.
            if !config.models.is_empty() {
                config.validate().unwrap_or_else(|e| panic!("{e}\n{block}"));
            }
        }
    }

    #[test]
    fn mistakes_are_named() {
        assert!(
            toml::from_str::<ServeConfig>("lisen = \"127.0.0.1:1\"").is_err(),
            "unknown keys"
        );
        let twice = ServeConfig {
            models: vec![ModelConfig::reference("a@x"), ModelConfig::reference("a@y")],
            ..ServeConfig::default()
        };
        assert!(twice.validate().expect_err("twice").to_string().contains("twice"));
        assert!(ServeConfig::default().validate().is_err(), "no models");
        assert!(KeySource::parse("cookie:x").is_err());
    }
}

//! Counters and histograms, rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Latency bucket bounds in seconds.
const BUCKETS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A latency histogram.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub(crate) fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// The outcome of a request, a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Outcome {
    Ok,
    BadRequest,
    NotFound,
    TooLarge,
    Unavailable,
    Forbidden,
    Unauthenticated,
}

impl Outcome {
    /// The outcome of a request the service refused.
    pub(crate) fn of_kind(kind: crate::service::ErrorKind) -> Self {
        use crate::service::ErrorKind;
        match kind {
            ErrorKind::InvalidArgument => Outcome::BadRequest,
            ErrorKind::NotFound => Outcome::NotFound,
            ErrorKind::TooLarge => Outcome::TooLarge,
            ErrorKind::Unavailable => Outcome::Unavailable,
            ErrorKind::Forbidden => Outcome::Forbidden,
            ErrorKind::Unauthenticated => Outcome::Unauthenticated,
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::BadRequest => "bad_request",
            Outcome::NotFound => "not_found",
            Outcome::TooLarge => "too_large",
            Outcome::Unavailable => "unavailable",
            Outcome::Forbidden => "forbidden",
            Outcome::Unauthenticated => "unauthenticated",
        }
    }
}

/// A request series: model, version, protocol, outcome.
type RequestKey = (String, String, &'static str, Outcome);

/// The server's counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// (model, version, protocol, outcome) → requests.
    requests: Mutex<BTreeMap<RequestKey, u64>>,
    /// (model, variant) → requests.
    variants: Mutex<BTreeMap<(String, String), u64>>,
    /// model → latency of answered requests.
    latency: Mutex<BTreeMap<String, std::sync::Arc<Histogram>>>,
    /// Connections answered 503 and closed: `max_connections` were open.
    pub(crate) connections_refused: AtomicU64,
    /// Requests answered 408: their body did not arrive in time.
    pub(crate) slow_bodies: AtomicU64,
    /// TLS handshakes that failed or timed out.
    pub(crate) tls_failures: AtomicU64,
    /// Requests answered 503 at once: `max_requests` were being handled.
    pub(crate) requests_refused: AtomicU64,
    /// Requests abandoned at `request_timeout_ms`.
    pub(crate) requests_timed_out: AtomicU64,
    /// Requests refused by access control: [REST, gRPC] × [401, 403].
    pub(crate) access_refused: [[AtomicU64; 2]; 2],
}

/// What the metrics page reads from each served model.
#[derive(Debug, Clone, Default)]
pub(crate) struct ModelGauges {
    pub(crate) model: String,
    pub(crate) variant: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) content_id: Option<String>,
    pub(crate) swaps: u64,
    pub(crate) refused: u64,
    pub(crate) psi: Vec<(String, f64)>,
    pub(crate) shadow_disagreement: Option<f64>,
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Metrics {
    pub(crate) fn request(&self, model: &str, version: &str, protocol: &'static str, outcome: Outcome) {
        *lock(&self.requests)
            .entry((model.to_owned(), version.to_owned(), protocol, outcome))
            .or_default() += 1;
    }

    pub(crate) fn variant(&self, model: &str, variant: &str) {
        *lock(&self.variants)
            .entry((model.to_owned(), variant.to_owned()))
            .or_default() += 1;
    }

    pub(crate) fn latency(&self, model: &str) -> std::sync::Arc<Histogram> {
        std::sync::Arc::clone(lock(&self.latency).entry(model.to_owned()).or_default())
    }

    pub(crate) fn render(&self, gauges: &[ModelGauges]) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP mp_requests_total Inference requests by model, version, protocol and outcome.\n");
        out.push_str("# TYPE mp_requests_total counter\n");
        for ((model, version, protocol, outcome), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "mp_requests_total{{model=\"{}\",version=\"{}\",protocol=\"{protocol}\",outcome=\"{}\"}} {n}",
                escape(model),
                escape(version),
                outcome.label()
            );
        }
        out.push_str("# HELP mp_request_errors_total Refused inference requests by model and outcome.\n");
        out.push_str("# TYPE mp_request_errors_total counter\n");
        let mut errors: BTreeMap<(String, Outcome), u64> = BTreeMap::new();
        for ((model, _, _, outcome), n) in lock(&self.requests).iter() {
            if *outcome != Outcome::Ok {
                *errors.entry((model.clone(), *outcome)).or_default() += n;
            }
        }
        for ((model, outcome), n) in errors {
            let _ = writeln!(
                out,
                "mp_request_errors_total{{model=\"{}\",outcome=\"{}\"}} {n}",
                escape(&model),
                outcome.label()
            );
        }
        out.push_str("# HELP mp_request_duration_seconds Time to answer an inference request.\n");
        out.push_str("# TYPE mp_request_duration_seconds histogram\n");
        for (model, h) in lock(&self.latency).iter() {
            h.render(
                &mut out,
                "mp_request_duration_seconds",
                &format!("model=\"{}\"", escape(model)),
            );
        }
        let _ = writeln!(
            out,
            "# HELP mp_connections_refused_total Connections answered 503 and closed at the connection cap.\n\
             # TYPE mp_connections_refused_total counter\nmp_connections_refused_total {}",
            self.connections_refused.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP mp_slow_bodies_total Requests answered 408: the body did not arrive within body_timeout_ms.\n\
             # TYPE mp_slow_bodies_total counter\nmp_slow_bodies_total {}",
            self.slow_bodies.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP mp_tls_handshake_failures_total TLS handshakes that failed or did not finish within header_timeout_ms.\n\
             # TYPE mp_tls_handshake_failures_total counter\nmp_tls_handshake_failures_total {}",
            self.tls_failures.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP mp_requests_refused_total Requests answered 503 at once: max_requests were being handled.\n\
             # TYPE mp_requests_refused_total counter\nmp_requests_refused_total {}",
            self.requests_refused.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP mp_requests_timed_out_total Requests abandoned at request_timeout_ms.\n\
             # TYPE mp_requests_timed_out_total counter\nmp_requests_timed_out_total {}",
            self.requests_timed_out.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP mp_access_refused_total Requests refused by access control: no valid token (unauthenticated) or not its scope (forbidden).\n\
             # TYPE mp_access_refused_total counter\n",
        );
        for (p, protocol) in ["rest", "grpc"].iter().enumerate() {
            for (r, reason) in ["unauthenticated", "forbidden"].iter().enumerate() {
                let n = self.access_refused[p][r].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "mp_access_refused_total{{protocol=\"{protocol}\",reason=\"{reason}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP mp_variant_requests_total Requests by A/B variant.\n");
        out.push_str("# TYPE mp_variant_requests_total counter\n");
        for ((model, variant), n) in lock(&self.variants).iter() {
            let _ = writeln!(
                out,
                "mp_variant_requests_total{{model=\"{}\",variant=\"{}\"}} {n}",
                escape(model),
                escape(variant)
            );
        }
        let label = |g: &ModelGauges| match &g.variant {
            Some(v) => format!("model=\"{}\",variant=\"{}\"", escape(&g.model), escape(v)),
            None => format!("model=\"{}\"", escape(&g.model)),
        };
        out.push_str("# HELP mp_model_info The version each model serves (1 when loaded).\n");
        out.push_str("# TYPE mp_model_info gauge\n");
        for g in gauges {
            if let (Some(v), Some(id)) = (&g.version, &g.content_id) {
                let _ = writeln!(
                    out,
                    "mp_model_info{{{},version=\"{}\",content_id=\"{}\"}} 1",
                    label(g),
                    escape(v),
                    escape(id)
                );
            }
        }
        out.push_str("# HELP mp_swaps_total Versions swapped in.\n# TYPE mp_swaps_total counter\n");
        for g in gauges {
            let _ = writeln!(out, "mp_swaps_total{{{}}} {}", label(g), g.swaps);
        }
        out.push_str(
            "# HELP mp_refused_versions_total Versions refused (failed checks or unreadable).\n\
             # TYPE mp_refused_versions_total counter\n",
        );
        for g in gauges {
            let _ = writeln!(out, "mp_refused_versions_total{{{}}} {}", label(g), g.refused);
        }
        out.push_str(
            "# HELP mp_feature_psi Population stability index of live inputs against the card, per feature.\n\
             # TYPE mp_feature_psi gauge\n",
        );
        for g in gauges {
            for (feature, psi) in &g.psi {
                let _ = writeln!(
                    out,
                    "mp_feature_psi{{{},feature=\"{}\"}} {psi}",
                    label(g),
                    escape(feature)
                );
            }
        }
        out.push_str(
            "# HELP mp_shadow_disagreement_ratio Share of rows where the shadow model disagreed.\n\
             # TYPE mp_shadow_disagreement_ratio gauge\n",
        );
        for g in gauges {
            if let Some(rate) = g.shadow_disagreement {
                let _ = writeln!(out, "mp_shadow_disagreement_ratio{{{}}} {rate}", label(g));
            }
        }
        out
    }
}

//! OpenTelemetry traces, exported with OTLP over HTTP/protobuf
//! (`--otlp-endpoint URL` posts to `URL/v1/traces`).
//!
//! Spans: one per inference request (kind SERVER; `mp.protocol`,
//! `mp.model`, `mp.version`, `mp.variant`, `mp.rows`, `mp.outcome`,
//! `mp.prediction_id`, `http.route`), a child `predict` span for the model
//! call, one per model load and one per hot swap. A request's span joins
//! the caller's trace: the W3C `traceparent` of a REST request's headers or
//! a gRPC call's metadata gives its trace id and parent span. Without one a
//! trace id is made, and it is recorded with the prediction in the payload
//! log, so a prediction id leads to its trace and a trace to its
//! prediction id.
//!
//! Spans are queued (bounded) for one exporter thread that sends them in
//! batches (at most 512 spans, or what a second gathered), never on the
//! request path. A full queue drops the span; a collector that is down or
//! slow (a 2 s bound on each export) loses the batch. Both are counted
//! (`mp_trace_spans_dropped_total`), neither waited for.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::error::{Error, Result};

const QUEUE: usize = 8192;
const BATCH: usize = 512;

/// One finished span.
#[derive(Debug, Clone)]
pub(crate) struct SpanData {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    pub(crate) parent: Option<[u8; 8]>,
    pub(crate) name: String,
    /// 1 internal, 2 server.
    pub(crate) kind: i32,
    pub(crate) start: SystemTime,
    pub(crate) end: SystemTime,
    pub(crate) attributes: Vec<(&'static str, Attr)>,
    pub(crate) error: Option<String>,
}

/// An attribute's value.
#[derive(Debug, Clone)]
pub(crate) enum Attr {
    Str(String),
    Int(i64),
}

/// The exporter: a bounded queue, and the thread that sends what it holds.
#[derive(Debug)]
pub(crate) struct Tracer {
    sender: SyncSender<SpanData>,
    /// 2^64 × the share of traces recorded when the caller did not decide.
    threshold: u64,
    /// Set by [`Tracer::close`]: the exporter sends what it holds and stops.
    closed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    worker: Mutex<Option<JoinHandle<()>>>,
    ids: AtomicU64,
    pub(crate) dropped: std::sync::Arc<AtomicU64>,
    pub(crate) exported: std::sync::Arc<AtomicU64>,
}

/// Where OTLP goes: host, port and path of `URL/v1/traces`.
#[derive(Debug, Clone)]
struct Endpoint {
    host: String,
    port: u16,
    path: String,
}

fn endpoint(url: &str) -> Result<Endpoint> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        Error::config(format!(
            "--otlp-endpoint {url:?}: give http://HOST:PORT (OTLP over HTTP/protobuf; a local collector or agent forwards further)"
        ))
    })?;
    let (authority, base) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h.to_owned(),
            p.parse()
                .map_err(|_| Error::config(format!("--otlp-endpoint {url:?}: {p:?} is not a port")))?,
        ),
        None => (authority.to_owned(), 4318),
    };
    if host.is_empty() {
        return Err(Error::config(format!("--otlp-endpoint {url:?}: no host")));
    }
    let base = base.trim_end_matches('/');
    let path = if base.ends_with("v1/traces") {
        format!("/{base}")
    } else if base.is_empty() {
        "/v1/traces".to_owned()
    } else {
        format!("/{base}/v1/traces")
    };
    Ok(Endpoint { host, port, path })
}

impl Tracer {
    /// Starts the exporter thread for `url`.
    pub(crate) fn start(url: &str, service: &str, sample: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&sample) {
            return Err(Error::config(format!(
                "otlp_sample must be between 0 and 1, not {sample}"
            )));
        }
        let to = endpoint(url)?;
        let (sender, receiver) = sync_channel::<SpanData>(QUEUE);
        let dropped = std::sync::Arc::new(AtomicU64::new(0));
        let exported = std::sync::Arc::new(AtomicU64::new(0));
        let (lost, sent) = (std::sync::Arc::clone(&dropped), std::sync::Arc::clone(&exported));
        let service = service.to_owned();
        let closed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let closing = std::sync::Arc::clone(&closed);
        let worker = std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || {
                let mut batch = Vec::with_capacity(BATCH);
                // After a failed export, spans are dropped unsent until
                // this time: a collector that is down costs no encoding.
                let mut resume = Instant::now();
                loop {
                    let first = match receiver.recv_timeout(Duration::from_millis(200)) {
                        Ok(s) => s,
                        Err(RecvTimeoutError::Timeout) if !closing.load(Ordering::Acquire) => continue,
                        Err(_) => break,
                    };
                    if Instant::now() < resume {
                        let mut n = 1;
                        while receiver.try_recv().is_ok() {
                            n += 1;
                        }
                        lost.fetch_add(n, Ordering::Relaxed);
                        continue;
                    }
                    batch.push(first);
                    let gather_until = Instant::now() + Duration::from_secs(1);
                    let mut closed = false;
                    while batch.len() < BATCH {
                        let left = gather_until.saturating_duration_since(Instant::now());
                        match receiver.recv_timeout(left) {
                            Ok(s) => batch.push(s),
                            Err(RecvTimeoutError::Timeout) => break,
                            Err(RecvTimeoutError::Disconnected) => {
                                closed = true;
                                break;
                            }
                        }
                    }
                    let n = batch.len() as u64;
                    match export(&to, &service, &batch) {
                        Ok(()) => sent.fetch_add(n, Ordering::Relaxed),
                        Err(e) => {
                            tracing::debug!(error = %e, spans = n, "OTLP export failed; the spans are dropped");
                            resume = Instant::now() + Duration::from_secs(1);
                            lost.fetch_add(n, Ordering::Relaxed)
                        }
                    };
                    batch.clear();
                    if closed {
                        break;
                    }
                }
            })
            .map_err(Error::Runtime)?;
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32);
        let threshold = if sample >= 1.0 {
            u64::MAX
        } else {
            (sample * 18_446_744_073_709_551_616.0) as u64
        };
        Ok(Tracer {
            sender,
            threshold,
            closed,
            worker: Mutex::new(Some(worker)),
            ids: AtomicU64::new(seed),
            dropped,
            exported,
        })
    }

    /// A new random id (SplitMix64 over a per-process seed).
    fn next(&self) -> u64 {
        let mut z = self
            .ids
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Whether a trace the caller did not decide on is recorded: its id's
    /// last eight bytes against the sample share, so every server that sees
    /// the trace decides alike (as OpenTelemetry's trace-id ratio sampler).
    pub(crate) fn samples(&self, trace: &[u8; 16]) -> bool {
        let mut low = [0u8; 8];
        low.copy_from_slice(&trace[8..]);
        self.threshold == u64::MAX || u64::from_be_bytes(low) < self.threshold
    }

    /// A new span id.
    pub(crate) fn span_id(&self) -> [u8; 8] {
        let id = self.next().max(1);
        id.to_be_bytes()
    }

    /// A new trace id.
    pub(crate) fn trace_id(&self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.next().to_be_bytes());
        id[8..].copy_from_slice(&self.next().max(1).to_be_bytes());
        id
    }

    /// Queues a finished span, or drops and counts it when the queue is full.
    pub(crate) fn record(&self, span: SpanData) {
        if self.closed.load(Ordering::Relaxed) || self.sender.try_send(span).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends what is queued (within the export bound) and stops.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(worker) = self
            .worker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            let _ = worker.join();
        }
    }
}

/// Hex of bytes, lower case.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of lower-case hex (as `traceparent` carries ids).
pub(crate) fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Posts one batch; an error for anything but a 2xx within the bound.
fn export(to: &Endpoint, service: &str, spans: &[SpanData]) -> std::io::Result<()> {
    use prost::Message;
    let bound = Duration::from_secs(2);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(to.host.as_str(), to.port))?
        .next()
        .ok_or_else(|| std::io::Error::other("the collector's host has no address"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, bound)?;
    stream.set_write_timeout(Some(bound))?;
    stream.set_read_timeout(Some(bound))?;
    // Encoded once the collector took the connection: one that is down
    // costs no encoding.
    let body = otlp::request(service, spans).encode_to_vec();
    write!(
        stream,
        "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        to.path,
        to.host,
        to.port,
        body.len()
    )?;
    stream.write_all(&body)?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    let status = std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|s| s.parse::<u16>().ok());
    match status {
        Some(200..=299) => Ok(()),
        other => Err(std::io::Error::other(format!("the collector answered {other:?}"))),
    }
}

/// The OTLP messages the exporter sends (opentelemetry-proto's
/// `collector/trace/v1` and `trace/v1`, the fields used here).
mod otlp {
    use super::{nanos, Attr, SpanData};

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct ExportTraceServiceRequest {
        #[prost(message, repeated, tag = "1")]
        pub(super) resource_spans: Vec<ResourceSpans>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct ResourceSpans {
        #[prost(message, optional, tag = "1")]
        pub(super) resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub(super) scope_spans: Vec<ScopeSpans>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Resource {
        #[prost(message, repeated, tag = "1")]
        pub(super) attributes: Vec<KeyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct ScopeSpans {
        #[prost(message, optional, tag = "1")]
        pub(super) scope: Option<InstrumentationScope>,
        #[prost(message, repeated, tag = "2")]
        pub(super) spans: Vec<Span>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct InstrumentationScope {
        #[prost(string, tag = "1")]
        pub(super) name: String,
        #[prost(string, tag = "2")]
        pub(super) version: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Span {
        #[prost(bytes = "vec", tag = "1")]
        pub(super) trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub(super) span_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "4")]
        pub(super) parent_span_id: Vec<u8>,
        #[prost(string, tag = "5")]
        pub(super) name: String,
        #[prost(int32, tag = "6")]
        pub(super) kind: i32,
        #[prost(fixed64, tag = "7")]
        pub(super) start_time_unix_nano: u64,
        #[prost(fixed64, tag = "8")]
        pub(super) end_time_unix_nano: u64,
        #[prost(message, repeated, tag = "9")]
        pub(super) attributes: Vec<KeyValue>,
        #[prost(message, optional, tag = "15")]
        pub(super) status: Option<Status>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Status {
        #[prost(string, tag = "2")]
        pub(super) message: String,
        /// 0 unset, 1 ok, 2 error.
        #[prost(int32, tag = "3")]
        pub(super) code: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct KeyValue {
        #[prost(string, tag = "1")]
        pub(super) key: String,
        #[prost(message, optional, tag = "2")]
        pub(super) value: Option<AnyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct AnyValue {
        #[prost(oneof = "Value", tags = "1, 3")]
        pub(super) value: Option<Value>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(super) enum Value {
        #[prost(string, tag = "1")]
        StringValue(String),
        #[prost(int64, tag = "3")]
        IntValue(i64),
    }

    fn kv(key: &str, value: &Attr) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue {
                value: Some(match value {
                    Attr::Str(s) => Value::StringValue(s.clone()),
                    Attr::Int(i) => Value::IntValue(*i),
                }),
            }),
        }
    }

    pub(super) fn request(service: &str, spans: &[SpanData]) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", &Attr::Str(service.to_owned()))],
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "model-persistence-server".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                    }),
                    spans: spans
                        .iter()
                        .map(|s| Span {
                            trace_id: s.trace_id.to_vec(),
                            span_id: s.span_id.to_vec(),
                            parent_span_id: s.parent.map(|p| p.to_vec()).unwrap_or_default(),
                            name: s.name.clone(),
                            kind: s.kind,
                            start_time_unix_nano: nanos(s.start),
                            end_time_unix_nano: nanos(s.end),
                            attributes: s.attributes.iter().map(|(k, v)| kv(k, v)).collect(),
                            status: Some(match &s.error {
                                None => Status {
                                    message: String::new(),
                                    code: 1,
                                },
                                Some(m) => Status {
                                    message: m.clone(),
                                    code: 2,
                                },
                            }),
                        })
                        .collect(),
                }],
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_read_as_otlp_http_urls() {
        let e = endpoint("http://127.0.0.1:4318").expect("ok");
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("127.0.0.1", 4318, "/v1/traces")
        );
        assert_eq!(endpoint("http://collector/").expect("ok").port, 4318);
        assert_eq!(endpoint("http://c:9/otel/").expect("ok").path, "/otel/v1/traces");
        assert_eq!(endpoint("http://c:9/v1/traces").expect("ok").path, "/v1/traces");
        assert!(endpoint("https://c:9").is_err());
        assert!(endpoint("http://c:port").is_err());
        assert!(endpoint("http://:9").is_err());
    }

    #[test]
    fn ids_round_trip_through_hex() {
        let id = [0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6];
        assert_eq!(unhex::<8>(&hex(&id)), Some(id));
        assert_eq!(unhex::<8>("zz"), None);
        assert_eq!(unhex::<8>("00f067aa0ba902b"), None);
    }
}

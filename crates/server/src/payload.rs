//! Payload logging: a sampled record of what was asked and answered, as
//! JSON lines in rotating local files, for audits and retraining.
//!
//! Each sampled prediction is one line: `kind` `prediction`, the time, the
//! prediction id (the request's, or the one the server gave it), the trace
//! id, model, version, variant, content id, protocol, the input rows with
//! their feature names (features named in `redact` written as `null`, those
//! in `hash` as the SHA-256 of the value's text, so equal values stay
//! joinable), the outputs and the latency. Every reported outcome is one
//! line of `kind` `outcome`, so `modelctl logs` can join them by id.
//!
//! Records go through a bounded queue to one writer thread, never written
//! on the request path: when the queue is full a record is dropped and
//! counted (`mp_payload_dropped_total`), never waited for. Files rotate at
//! `max_file_bytes` and at most `max_files` are kept (the oldest removed),
//! so memory and disk are bounded. A file cut short by a crash loses at most
//! its last line, which readers skip.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Mutex;
use std::thread::JoinHandle;

use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// `[payload_log]` in the serve config (`--payload-log DIR`,
/// `--payload-sample FRACTION` on the command line).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadLogConfig {
    /// The directory the files are written in (made if missing).
    pub dir: PathBuf,
    /// The share of predictions recorded, 0 to 1. Default: 0.01.
    #[serde(default = "default_sample")]
    pub sample: f64,
    /// A file is closed and a new one begun past this size. Default: 64 MiB.
    #[serde(default = "default_file_bytes")]
    pub max_file_bytes: u64,
    /// The most files kept; the oldest are removed. Default: 16.
    #[serde(default = "default_files")]
    pub max_files: usize,
    /// The most records waiting to be written; more are dropped and
    /// counted. Default: 65,536.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Feature names whose values are written as `null`.
    #[serde(default)]
    pub redact: Vec<String>,
    /// Feature names whose values are written as the SHA-256 of their text.
    #[serde(default)]
    pub hash: Vec<String>,
}

fn default_sample() -> f64 {
    0.01
}
fn default_file_bytes() -> u64 {
    64 << 20
}
fn default_files() -> usize {
    16
}
fn default_queue() -> usize {
    65_536
}

impl PayloadLogConfig {
    /// A log in `dir` sampling `sample` of predictions, other settings default.
    pub fn new(dir: impl Into<PathBuf>, sample: f64) -> Self {
        PayloadLogConfig {
            dir: dir.into(),
            sample,
            max_file_bytes: default_file_bytes(),
            max_files: default_files(),
            queue: default_queue(),
            redact: Vec::new(),
            hash: Vec::new(),
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.sample) {
            return Err(Error::config(format!(
                "payload_log.sample must be between 0 and 1, not {}",
                self.sample
            )));
        }
        if self.max_file_bytes == 0 || self.max_files == 0 || self.queue == 0 {
            return Err(Error::config(
                "payload_log.max_file_bytes, max_files and queue must be positive",
            ));
        }
        Ok(())
    }
}

/// The running log: the queue's sending end and its writer thread.
#[derive(Debug)]
pub(crate) struct PayloadLog {
    sender: Mutex<Option<SyncSender<Vec<u8>>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// 2^64 × the sample share: a prediction is recorded when its draw is below.
    threshold: u64,
    draws: AtomicU64,
    redact: Vec<String>,
    hash: Vec<String>,
    pub(crate) written: std::sync::Arc<AtomicU64>,
    pub(crate) dropped: AtomicU64,
}

impl PayloadLog {
    /// Starts the writer thread for `config`.
    pub(crate) fn start(config: &PayloadLogConfig) -> Result<Self> {
        config.validate()?;
        std::fs::create_dir_all(&config.dir).map_err(|e| {
            Error::config(format!(
                "cannot make the payload log directory {}: {e}",
                config.dir.display()
            ))
        })?;
        let (sender, receiver) = sync_channel::<Vec<u8>>(config.queue);
        let written = std::sync::Arc::new(AtomicU64::new(0));
        let mut files = Files::new(&config.dir, config.max_file_bytes, config.max_files)?;
        let count = std::sync::Arc::clone(&written);
        let writer = std::thread::Builder::new()
            .name("payload-log".into())
            .spawn(move || {
                // Waits for a record, writes it and every one already
                // waiting, then flushes: a batch per wake-up.
                while let Ok(first) = receiver.recv() {
                    let mut n = files.write(&first);
                    while let Ok(next) = receiver.try_recv() {
                        n += files.write(&next);
                    }
                    files.flush();
                    count.fetch_add(n, Ordering::Relaxed);
                }
                files.flush();
            })
            .map_err(Error::Runtime)?;
        let threshold = if config.sample >= 1.0 {
            u64::MAX
        } else {
            (config.sample * 18_446_744_073_709_551_616.0) as u64
        };
        Ok(PayloadLog {
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            threshold,
            draws: AtomicU64::new(0),
            redact: config.redact.clone(),
            hash: config.hash.clone(),
            written,
            dropped: AtomicU64::new(0),
        })
    }

    /// Whether the next prediction is recorded (a SplitMix64 draw per
    /// prediction against the sample share).
    pub(crate) fn sampled(&self) -> bool {
        if self.threshold == u64::MAX {
            return true;
        }
        let mut z = self
            .draws
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) < self.threshold
    }

    /// The rows as written: features named in `redact` as null, in `hash`
    /// as the SHA-256 of their text.
    pub(crate) fn rows(&self, features: &[String], rows: ndarray::ArrayView2<'_, f64>) -> Value {
        let policy: Vec<u8> = (0..rows.ncols())
            .map(|j| {
                let name = features.get(j).map(String::as_str);
                match name {
                    Some(n) if self.redact.iter().any(|r| r == n) => 1,
                    Some(n) if self.hash.iter().any(|h| h == n) => 2,
                    _ => 0,
                }
            })
            .collect();
        Value::Array(
            rows.outer_iter()
                .map(|row| {
                    Value::Array(
                        row.iter()
                            .zip(&policy)
                            .map(|(&x, p)| match p {
                                1 => Value::Null,
                                2 => {
                                    let digest = Sha256::digest(x.to_string().as_bytes());
                                    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
                                    Value::String(format!("sha256:{hex}"))
                                }
                                _ => serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number),
                            })
                            .collect(),
                    )
                })
                .collect(),
        )
    }

    /// Queues one record (a JSON object), or drops and counts it when the
    /// queue is full. Never waits.
    pub(crate) fn record(&self, record: &Value) {
        let mut line = serde_json::to_vec(record).unwrap_or_default();
        line.push(b'\n');
        let sender = self.sender.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(sender) = sender.as_ref() else { return };
        match sender.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// An outcome, for `modelctl logs` to join with its prediction.
    pub(crate) fn outcome(&self, model: &str, id: &str, outcome: &Value) {
        self.record(&json!({
            "kind": "outcome",
            "at": now(),
            "model": model,
            "id": id,
            "outcome": outcome,
        }));
    }

    /// Writes what is queued and stops the writer.
    pub(crate) fn close(&self) {
        self.sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(writer) = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            let _ = writer.join();
        }
    }
}

/// The outputs as recorded: `{name: {"shape": [...], "data": [...]}}`.
pub(crate) fn outputs_json(outputs: &[crate::service::OutputTensor]) -> Value {
    use crate::service::OutputData;
    Value::Object(
        outputs
            .iter()
            .map(|o| {
                let data = match &o.data {
                    OutputData::Int64(v) => json!(v),
                    OutputData::Fp64(v) => json!(v),
                    OutputData::Bytes(v) => json!(v),
                };
                (o.name.clone(), json!({"shape": o.shape, "data": data}))
            })
            .collect(),
    )
}

/// The time now, RFC 3339.
pub(crate) fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The rotating files of the writer thread.
struct Files {
    dir: PathBuf,
    max_bytes: u64,
    max_files: usize,
    current: Option<(std::io::BufWriter<std::fs::File>, u64)>,
    seq: u64,
}

impl Files {
    fn new(dir: &Path, max_bytes: u64, max_files: usize) -> Result<Self> {
        Ok(Files {
            dir: dir.to_owned(),
            max_bytes,
            max_files,
            current: None,
            seq: 0,
        })
    }

    /// Writes one line; 1 when written, 0 when the disk refused it (logged).
    fn write(&mut self, line: &[u8]) -> u64 {
        if self.current.as_ref().is_none_or(|(_, n)| *n >= self.max_bytes) {
            self.rotate();
        }
        let Some((file, n)) = self.current.as_mut() else {
            return 0;
        };
        match file.write_all(line) {
            Ok(()) => {
                *n += line.len() as u64;
                1
            }
            Err(e) => {
                tracing::warn!(error = %e, "a payload record was not written");
                self.current = None;
                0
            }
        }
    }

    fn flush(&mut self) {
        if let Some((file, _)) = self.current.as_mut() {
            let _ = file.flush();
        }
    }

    /// Closes the current file, begins a new one (named by time and
    /// sequence, so names sort in writing order) and removes the oldest
    /// beyond `max_files`.
    fn rotate(&mut self) {
        self.flush();
        self.current = None;
        self.seq += 1;
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let path = self.dir.join(format!("payload-{millis:015}-{:06}.jsonl", self.seq));
        match std::fs::OpenOptions::new().create_new(true).append(true).open(&path) {
            Ok(f) => self.current = Some((std::io::BufWriter::with_capacity(1 << 16, f), 0)),
            Err(e) => tracing::warn!(error = %e, path = %path.display(), "cannot begin a payload log file"),
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| is_log_file(p))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        while files.len() > self.max_files {
            let oldest = files.remove(0);
            let _ = std::fs::remove_file(oldest);
        }
    }
}

/// Whether `path` is one of the payload log's files.
pub fn is_log_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("payload-") && n.ends_with(".jsonl"))
}

/// What [`read`] keeps.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Only this model.
    pub model: Option<String>,
    /// Only this version.
    pub version: Option<String>,
    /// Only this prediction id.
    pub id: Option<String>,
    /// Only predictions made at or after this time.
    pub since: Option<time::OffsetDateTime>,
}

/// What [`read`] found.
#[derive(Debug, Clone, Default)]
pub struct LogRead {
    /// The predictions that pass the filter, oldest first, each with
    /// `outcomes`: the outcomes reported for its id (or, for a batch, for
    /// its rows' ids `ID/ROW`), by id.
    pub predictions: Vec<Value>,
    /// Lines that were not records (a line cut short by a crash).
    pub skipped: u64,
}

/// Reads a payload log directory back, joining outcomes to predictions.
///
/// # Errors
///
/// [`Error::Config`] for a directory that cannot be read.
pub fn read(dir: &Path, filter: &LogFilter) -> Result<LogRead> {
    use std::io::BufRead;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::config(format!("cannot read the payload log {}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_log_file(p))
        .collect();
    files.sort();
    let mut out = LogRead::default();
    let mut outcomes: std::collections::HashMap<String, Value> = std::collections::HashMap::new();
    let wanted = |v: &Value, key: &str, want: &Option<String>| want.as_ref().is_none_or(|w| v[key].as_str() == Some(w));
    for file in files {
        let Ok(f) = std::fs::File::open(&file) else { continue };
        for line in std::io::BufReader::new(f).split(b'\n') {
            let Ok(line) = line else { break };
            if line.is_empty() {
                continue;
            }
            let Ok(record) = serde_json::from_slice::<Value>(&line) else {
                out.skipped += 1;
                continue;
            };
            match record["kind"].as_str() {
                Some("outcome") => {
                    if let Some(id) = record["id"].as_str() {
                        outcomes.insert(id.to_owned(), record["outcome"].clone());
                    }
                }
                Some("prediction") => {
                    let at = record["at"].as_str().and_then(|t| {
                        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
                    });
                    let recent = match (filter.since, at) {
                        (Some(since), Some(at)) => at >= since,
                        (Some(_), None) => false,
                        (None, _) => true,
                    };
                    if recent
                        && wanted(&record, "model", &filter.model)
                        && wanted(&record, "version", &filter.version)
                        && wanted(&record, "id", &filter.id)
                    {
                        out.predictions.push(record);
                    }
                }
                _ => out.skipped += 1,
            }
        }
    }
    for p in &mut out.predictions {
        let id = p["id"].as_str().unwrap_or_default().to_owned();
        let rows = p["inputs"]["rows"].as_array().map_or(0, Vec::len);
        let mut joined = serde_json::Map::new();
        if let Some(o) = outcomes.get(&id) {
            joined.insert(id.clone(), o.clone());
        }
        for row in 0..rows {
            let row_id = format!("{id}/{row}");
            if let Some(o) = outcomes.get(&row_id) {
                joined.insert(row_id, o.clone());
            }
        }
        p["outcomes"] = Value::Object(joined);
    }
    Ok(out)
}

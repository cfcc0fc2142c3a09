//! `modelctl logs DIR`: a server's payload log read back (what was asked
//! and answered, by which version), filtered, with the outcomes reported
//! for each prediction joined to it.

use std::path::Path;

use model_persistence_server::payload::{read, LogFilter};
use serde_json::Value;

use crate::output::outln;
use crate::output::{Failure, Outcome};

/// What `modelctl logs` is asked for.
pub(crate) struct LogsArgs<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) model: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) id: Option<String>,
    pub(crate) since: Option<&'a str>,
    pub(crate) json: bool,
}

/// `--since`: an RFC 3339 time, or a span back from now (`90s`, `30m`, `12h`, `7d`).
fn since(text: &str) -> Result<time::OffsetDateTime, Failure> {
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    if let Ok(at) = time::OffsetDateTime::parse(text, rfc3339) {
        return Ok(at);
    }
    let bad = || {
        Failure(format!(
            "--since {text:?}: give an RFC 3339 time (2026-12-07T10:00:00Z) or a span (90s, 30m, 12h, 7d)"
        ))
    };
    let (n, unit) = text.split_at(text.len().checked_sub(1).ok_or_else(bad)?);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => n,
        "m" => n.checked_mul(60).ok_or_else(bad)?,
        "h" => n.checked_mul(3600).ok_or_else(bad)?,
        "d" => n.checked_mul(86_400).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    time::OffsetDateTime::now_utc()
        .checked_sub(time::Duration::seconds(seconds))
        .ok_or_else(bad)
}

/// Prints the predictions that pass the filters, oldest first: one JSON
/// object per line with `--json`, else one line each.
pub(crate) fn logs(args: &LogsArgs<'_>) -> Outcome {
    let filter = LogFilter {
        model: args.model.clone(),
        version: args.version.clone(),
        id: args.id.clone(),
        since: args.since.map(since).transpose()?,
    };
    let found = read(args.dir, &filter).map_err(|e| Failure(e.to_string()))?;
    for p in &found.predictions {
        if args.json {
            outln!("{}", serde_json::to_string(p).unwrap_or_default());
            continue;
        }
        let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
        let variant = p["variant"].as_str().map(|v| format!(" [{v}]")).unwrap_or_default();
        let outcomes = p["outcomes"]
            .as_object()
            .filter(|o| !o.is_empty())
            .map_or_else(String::new, |o| {
                let list: Vec<String> = o.iter().map(|(id, v)| format!("{id}={v}")).collect();
                format!(" outcomes {}", list.join(","))
            });
        outln!(
            "{} {} {}@{}{} rows {} predict {} trace {}{}",
            text(&p["at"]),
            text(&p["id"]),
            text(&p["model"]),
            text(&p["version"]),
            variant,
            p["inputs"]["rows"].as_array().map_or(0, Vec::len),
            p["outputs"]["predict"]["data"],
            text(&p["trace_id"]),
            outcomes
        );
    }
    if found.skipped > 0 {
        eprintln!(
            "{} lines were not records (cut short by a crash?) and were skipped",
            found.skipped
        );
    }
    Ok(())
}

//! Commands on a registry: `init`, `models`, `versions`, `show`, `publish`,
//! `promote`, `rollback`, `history`, `report`, `watch`, `compare`, `best`, `prune`, `verify`.

use std::path::Path;

use model_persistence::persistence::{self, Direction, Version};
use model_persistence::versioning::{ModelName, ModelRef, Registry};

use crate::output::outln;
use crate::output::{json, metric, rfc3339, Align, Failure, Format, Outcome, Progress, ProgressBar, Table};

/// The object-store options of `--registry-option`, set once by `main`.
static OPTIONS: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

/// Records the `--registry-option KEY=VALUE` flags.
pub(crate) fn set_options(flags: &[String]) -> Outcome {
    let parsed = flags
        .iter()
        .map(|f| {
            f.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| Failure(format!("--registry-option {f:?}: write KEY=VALUE")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let _ = OPTIONS.set(parsed);
    Ok(())
}

/// The options given on the command line, and those of a server's config.
pub(crate) fn options() -> Vec<(String, String)> {
    OPTIONS.get().cloned().unwrap_or_default()
}

/// Refuses store options for a registry directory rather than ignore them.
fn no_options_for_a_directory(options: &[(String, String)]) -> Outcome {
    match options.first() {
        Some((key, _)) => Err(Failure(format!(
            "--registry-option {key}: a registry directory takes no options"
        ))),
        None => Ok(()),
    }
}

/// Where the registry is, as given by `--registry` or `MODELCTL_REGISTRY`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Location<'a>(pub(crate) Option<&'a str>);

impl Location<'_> {
    fn get(&self) -> Result<&str, Failure> {
        self.0.ok_or_else(|| {
            Failure("this command needs a registry: pass --registry PATH_OR_URL or set MODELCTL_REGISTRY".into())
        })
    }

    /// Opens the existing registry.
    pub(crate) fn open(&self) -> Result<Registry, Failure> {
        self.open_with(&options())
    }

    /// Opens the existing registry with these store options.
    pub(crate) fn open_with(&self, options: &[(String, String)]) -> Result<Registry, Failure> {
        let location = self.get()?;
        let pairs = options.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let registry = if location.contains("://") {
            Registry::open_url_opts(location, pairs)?
        } else {
            no_options_for_a_directory(options)?;
            Registry::open(location)?
        };
        Ok(match super::signing::trusted() {
            Some(keys) => registry.trust(keys),
            None => registry,
        })
    }
}

fn version(s: &str) -> Result<Version, Failure> {
    Version::parse(s).map_err(|e| Failure(format!("invalid version {s:?}: {e}")))
}

/// The model, which must exist: a missing model is a failure, not an empty answer.
fn existing_model(reg: &Registry, model: &str) -> Result<ModelName, Failure> {
    let name = ModelName::new(model)?;
    if reg.has_model(&name)? {
        Ok(name)
    } else {
        Err(Failure(format!("no model named {model} in this registry")))
    }
}

/// `modelctl init`: creates the registry (or confirms the one there).
pub(crate) fn init(location: Location<'_>) -> Outcome {
    let location = location.get()?;
    let options = options();
    if location.contains("://") {
        Registry::create_url_opts(location, options.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    } else {
        no_options_for_a_directory(&options)?;
        Registry::create(location)?;
    }
    outln!("registry ready at {location}");
    Ok(())
}

/// `modelctl models`.
pub(crate) fn models(location: Location<'_>, format: Format) -> Outcome {
    let models = location.open()?.models()?;
    if format == Format::Json {
        return json(&models);
    }
    models.iter().for_each(|m| outln!("{m}"));
    Ok(())
}

/// `modelctl versions MODEL`: every version with its metrics and aliases.
pub(crate) fn versions(location: Location<'_>, model: &str, format: Format) -> Outcome {
    let reg = location.open()?;
    let model = existing_model(&reg, model)?;
    let listing = reg.listing(&model)?;
    let versions = listing.versions;
    if format == Format::Json {
        return json(&versions);
    }
    let aliases = reg.aliases(&model)?;
    let mut table = Table::new(&[
        ("version", Align::Left),
        ("content id", Align::Left),
        ("published", Align::Left),
        ("bytes", Align::Right),
        ("aliases", Align::Left),
        ("metrics", Align::Left),
    ]);
    for v in &versions {
        let pointing: Vec<&str> = aliases
            .iter()
            .filter(|(_, t)| t.version == v.version)
            .map(|(a, _)| a.as_str())
            .collect();
        let metrics: Vec<String> = v.metrics.iter().map(|(k, x)| format!("{k}={}", metric(*x))).collect();
        table.row(vec![
            v.version.to_string(),
            v.content_id.short(),
            rfc3339(v.published_at),
            v.bundle_len.to_string(),
            pointing.join(","),
            metrics.join(" "),
        ]);
    }
    for d in &listing.damaged {
        table.row(vec![
            d.version.to_string(),
            "DAMAGED".into(),
            String::new(),
            String::new(),
            String::new(),
            persistence::error_chain(&d.error),
        ]);
    }
    table.print();
    Ok(())
}

/// `modelctl show REF`: the card of a registry version as JSON.
pub(crate) fn show(location: Location<'_>, reference: &str) -> Outcome {
    let reg = location.open()?;
    let info = reg.resolve(&reference.parse::<ModelRef>()?)?;
    outln!("{}", reg.card(&info.model, &info.version)?.to_json()?);
    Ok(())
}

/// `modelctl publish BUNDLE`.
pub(crate) fn publish(location: Location<'_>, bundle: &Path, format: Format, progress: ProgressBar) -> Outcome {
    let reg = location.open()?;
    let mut bar = Progress::new("verifying", progress);
    persistence::BundleReader::default().verify_with_progress(bundle, &mut |d, t| bar.update(d, t))?;
    let bytes = std::fs::read(bundle).map_err(|e| Failure(format!("cannot read {}: {e}", bundle.display())))?;
    // A signature beside the bundle is published with it.
    let sig_path = persistence::signing::signature_path(bundle);
    let signature = match std::fs::read(&sig_path) {
        Ok(sig) => Some(sig),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Failure(format!("cannot read {}: {e}", sig_path.display()))),
    };
    let info = reg.publish_signed(&bytes, signature.as_deref())?;
    if format == Format::Json {
        return json(&info);
    }
    outln!(
        "published {} {} (content id {})",
        info.model,
        info.version,
        info.content_id.short()
    );
    Ok(())
}

/// `modelctl promote MODEL ALIAS VERSION [--expect V|none]`.
pub(crate) fn promote(location: Location<'_>, model: &str, alias: &str, to: &str, expect: Option<&str>) -> Outcome {
    let reg = location.open()?;
    let model = existing_model(&reg, model)?;
    let to = version(to)?;
    let target = match expect {
        None => reg.set_alias(&model, alias, &to)?,
        Some("none") => reg.set_alias_if(&model, alias, &to, None)?,
        Some(e) => reg.set_alias_if(&model, alias, &to, Some(&version(e)?))?,
    };
    outln!("{model}@{alias} -> {}", target.version);
    Ok(())
}

/// `modelctl rollback MODEL ALIAS [--expect V]`.
pub(crate) fn rollback(location: Location<'_>, model: &str, alias: &str, expect: Option<&str>) -> Outcome {
    let reg = location.open()?;
    let model = existing_model(&reg, model)?;
    let target = match expect {
        None => reg.rollback(&model, alias)?,
        Some(e) => reg.rollback_if(&model, alias, &version(e)?)?,
    };
    outln!("{model}@{alias} rolled back to {}", target.version);
    Ok(())
}

/// `modelctl history MODEL`.
pub(crate) fn history(location: Location<'_>, model: &str, format: Format) -> Outcome {
    let reg = location.open()?;
    let model = existing_model(&reg, model)?;
    let events = reg.history(&model)?;
    if format == Format::Json {
        return json(&events);
    }
    for e in events {
        match &e.by {
            Some(by) => outln!("{}  {}  (by {by})", rfc3339(e.at), e.kind),
            None => outln!("{}  {}", rfc3339(e.at), e.kind),
        }
    }
    Ok(())
}

/// `modelctl report MODEL[@ALIAS|@VERSION] -o FILE [--live FILE]`.
pub(crate) fn report(location: Location<'_>, reference: &str, output: &Path, live: Option<&Path>) -> Outcome {
    let reg = location.open()?;
    let reference: ModelRef = reference.parse()?;
    existing_model(&reg, reference.model.as_str())?;
    let live = match live {
        None => None,
        Some(path) => {
            let text = std::fs::read(path).map_err(|e| Failure(format!("{}: {e}", path.display())))?;
            let value: serde_json::Value =
                serde_json::from_slice(&text).map_err(|e| Failure(format!("{}: not JSON: {e}", path.display())))?;
            // A drift report, or a server status holding one under `drift`.
            let drift = value.get("drift").cloned().unwrap_or(value);
            Some(
                serde_json::from_value(drift)
                    .map_err(|e| Failure(format!("{}: not a drift report: {e}", path.display())))?,
            )
        }
    };
    let report = model_persistence::report::gather(&reg, &reference)
        .map_err(|e| Failure(e.to_string()))?
        .with_live(live);
    persistence::write_atomic(output, model_persistence::report::render(&report).as_bytes())?;
    outln!(
        "wrote {} ({} {}, {} versions)",
        output.display(),
        report.card.name,
        report.card.version,
        report.versions.len()
    );
    Ok(())
}

/// What `modelctl watch` was asked.
pub(crate) struct WatchOptions {
    pub(crate) from_start: bool,
    pub(crate) cursor: Option<std::path::PathBuf>,
    pub(crate) interval: std::time::Duration,
    pub(crate) max_events: Option<u64>,
    pub(crate) timeout: Option<std::time::Duration>,
}

/// `modelctl watch MODEL`: one line per event, as it happens.
pub(crate) fn watch(location: Location<'_>, model: &str, options: &WatchOptions, format: Format) -> Outcome {
    use std::io::Write as _;
    let reg = location.open()?;
    let model = ModelName::new(model)?;
    let saved = match &options.cursor {
        Some(path) if path.exists() => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure(format!("cannot read the cursor {}: {e}", path.display())))?;
            Some(
                serde_json::from_str::<model_persistence::versioning::WatchCursor>(&text)
                    .map_err(|e| Failure(format!("{} is not a watch cursor: {e}", path.display())))?,
            )
        }
        _ => None,
    };
    let mut watch = match saved {
        Some(cursor) => reg.watch_from(&model, cursor)?,
        None if options.from_start => reg.watch_from(&model, Default::default())?,
        None => reg.watch(&model)?,
    };
    let started = std::time::Instant::now();
    let mut delivered = 0u64;
    let mut out = std::io::stdout().lock();
    loop {
        for event in watch.poll()? {
            let line = if format == Format::Json {
                let mut value = serde_json::to_value(&event).map_err(|e| Failure(e.to_string()))?;
                value["model"] = serde_json::Value::from(model.as_str());
                value["id"] = serde_json::Value::from(model_persistence::versioning::event_id(&event));
                value.to_string()
            } else {
                format!("{}  {model}  {}", rfc3339(event.at), event.kind)
            };
            writeln!(out, "{line}")
                .and_then(|()| out.flush())
                .map_err(|e| Failure(e.to_string()))?;
            if let Some(path) = &options.cursor {
                save_cursor(path, watch.cursor())?;
            }
            delivered += 1;
            if options.max_events.is_some_and(|max| delivered >= max) {
                return Ok(());
            }
        }
        if options.timeout.is_some_and(|t| started.elapsed() >= t) {
            return Ok(());
        }
        std::thread::sleep(options.interval);
    }
}

/// Writes the cursor file atomically (temporary file, then rename).
fn save_cursor(path: &std::path::Path, cursor: &model_persistence::versioning::WatchCursor) -> Outcome {
    let json = serde_json::to_vec(cursor).map_err(|e| Failure(e.to_string()))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| Failure(format!("cannot write the cursor {}: {e}", path.display())))
}

/// `modelctl compare MODEL A B [--metric M]`.
pub(crate) fn compare(
    location: Location<'_>,
    model: &str,
    a: &str,
    b: &str,
    only: Option<&str>,
    format: Format,
) -> Outcome {
    let reg = location.open()?;
    let model = existing_model(&reg, model)?;
    let (a, b) = (version(a)?, version(b)?);
    let rows = match only {
        Some(m) => vec![reg.compare(&model, &a, &b, m)?],
        None => reg.compare_all(&model, &a, &b)?,
    };
    if format == Format::Json {
        return json(&rows);
    }
    let (ha, hb) = (a.to_string(), b.to_string());
    let mut table = Table::new(&[
        ("metric", Align::Left),
        (&ha, Align::Right),
        (&hb, Align::Right),
        ("diff", Align::Right),
        ("relative", Align::Right),
    ]);
    for r in rows {
        let rel = r
            .relative
            .map_or_else(|| "-".to_owned(), |x| format!("{:+.2}%", x * 100.0));
        let diff = metric(r.absolute);
        let diff = if r.absolute > 0.0 { format!("+{diff}") } else { diff };
        table.row(vec![r.metric, metric(r.a_score), metric(r.b_score), diff, rel]);
    }
    table.print();
    Ok(())
}

/// `modelctl best MODEL METRIC [--direction higher|lower]`.
pub(crate) fn best(
    location: Location<'_>,
    model: &str,
    name: &str,
    direction: Option<Direction>,
    format: Format,
) -> Outcome {
    let reg = location.open()?;
    let model = existing_model(&reg, model)?;
    let direction = direction
        .or_else(|| Direction::of_metric(name))
        .unwrap_or(Direction::HigherIsBetter);
    let Some(b) = reg.best(&model, name, direction)? else {
        return Err(Failure(format!("no version of {model} has the metric {name:?}")));
    };
    if format == Format::Json {
        return json(&b);
    }
    let score = b.metrics.get(name).copied().unwrap_or(f64::NAN);
    outln!("{} {}: {name} = {}", b.model, b.version, metric(score));
    Ok(())
}

/// `modelctl prune MODEL --keep N`.
pub(crate) fn prune(location: Location<'_>, model: &str, keep: usize) -> Outcome {
    let reg = location.open()?;
    let model = existing_model(&reg, model)?;
    let pruned = reg.prune(&model, keep)?;
    let list: Vec<String> = pruned.iter().map(ToString::to_string).collect();
    match list.is_empty() {
        true => outln!("pruned 0 versions"),
        false => outln!("pruned {} versions: {}", list.len(), list.join(", ")),
    }
    Ok(())
}

/// `modelctl verify` (no file): every version of every model, or of one.
pub(crate) fn verify(location: Location<'_>, model: Option<&str>, format: Format) -> Outcome {
    let reg = location.open()?;
    let report = match model {
        Some(m) => reg.verify(existing_model(&reg, m)?)?,
        None => reg.verify_all()?,
    };
    let damaged: Vec<String> = report
        .damaged
        .iter()
        .map(|d| match &d.version {
            Some(v) => format!("{} {v}: {}: {}", d.model, d.key, persistence::error_chain(&d.error)),
            None => format!("{}: {}: {}", d.model, d.key, persistence::error_chain(&d.error)),
        })
        .collect();
    if format == Format::Json {
        json(&serde_json::json!({"checked": report.checked, "damaged": damaged}))?;
    } else {
        outln!("checked {} versions, {} damaged", report.checked, damaged.len());
        for d in &damaged {
            outln!("  damaged: {d}");
        }
    }
    match damaged.len() {
        0 => Ok(()),
        n => Err(Failure(format!("{n} damaged versions"))),
    }
}

/// `modelctl repair [--model M]`: cleans up after crashed writers, reports
/// what it did and what needs a decision (exit 1 if anything does).
pub(crate) fn repair(location: Location<'_>, model: Option<&str>) -> Outcome {
    let reg = location.open()?;
    let report = match model {
        Some(m) => reg.repair(existing_model(&reg, m)?)?,
        None => reg.repair_all()?,
    };
    if report.actions.is_empty() {
        outln!("nothing to repair");
    }
    for a in &report.actions {
        outln!("repaired: {a}");
    }
    for d in &report.needs_decision {
        outln!("needs a decision: {d}");
    }
    match report.needs_decision.len() {
        0 => Ok(()),
        n => Err(Failure(format!("{n} problems need a decision (see above)"))),
    }
}

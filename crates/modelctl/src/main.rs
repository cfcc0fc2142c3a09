//! `modelctl`: operate model bundles and registries from the command line.
//!
//! Exit codes: 0 success, 1 the operation failed (a damaged bundle, a
//! missing version…), 2 a usage error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use model_persistence::persistence;
use model_persistence::versioning::{Direction, ModelRef, Registry};

/// Operate model bundles and registries.
#[derive(Debug, Parser)]
#[command(
    name = "modelctl",
    version,
    about,
    long_about = None,
    after_help = "Exit codes: 0 success; 1 the operation failed (a damaged bundle, a missing version, \
                  a lost compare-and-swap...), with the reason on stderr; 2 a usage error."
)]
struct Cli {
    /// Show a progress bar on long operations even when stderr is not a terminal.
    #[arg(long, global = true)]
    progress: bool,
    /// The registry: a directory, or a URL such as s3://bucket/prefix.
    #[arg(long, global = true, env = "MODELCTL_REGISTRY")]
    registry: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a bundle's model card as JSON (reads the header only).
    Card {
        /// The bundle file.
        bundle: PathBuf,
    },
    /// Check every checksum of a bundle file, or of every version in the
    /// registry when no file is given.
    Verify {
        /// The bundle file (omit to verify the whole registry).
        bundle: Option<PathBuf>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the models in the registry.
    Models {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List a model's versions with their metrics.
    Versions {
        /// The model name.
        model: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the card of a registry version (MODEL, MODEL@VERSION or MODEL@ALIAS) as JSON.
    Show {
        /// The reference.
        reference: String,
    },
    /// Publish a bundle file under its card's name and version.
    Publish {
        /// The bundle file.
        bundle: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Point an alias at a version.
    Promote {
        /// The model name.
        model: String,
        /// The alias, such as production.
        alias: String,
        /// The version.
        version: String,
        /// Only if the alias still points at this version ("none": only if it does not exist).
        #[arg(long)]
        expect: Option<String>,
    },
    /// Move an alias back to its previous target.
    Rollback {
        /// The model name.
        model: String,
        /// The alias.
        alias: String,
    },
    /// The event history of a model.
    History {
        /// The model name.
        model: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compare two versions on every shared metric (or one).
    Compare {
        /// The model name.
        model: String,
        /// The first version.
        a: String,
        /// The second version.
        b: String,
        /// Only this metric.
        #[arg(long)]
        metric: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The best version by a metric.
    Best {
        /// The model name.
        model: String,
        /// The metric.
        metric: String,
        /// Lower values are better (log loss, error rate).
        #[arg(long)]
        lower_is_better: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove old versions, keeping the last N and every alias target.
    Prune {
        /// The model name.
        model: String,
        /// How many of the latest versions to keep.
        #[arg(long)]
        keep: usize,
    },
}

/// A progress bar on stderr, drawn only for terminals (or with `--progress`).
struct Progress {
    label: String,
    shown: bool,
    last_percent: Option<u64>,
}

impl Progress {
    fn new(label: impl Into<String>, forced: bool) -> Self {
        use std::io::IsTerminal;
        Progress {
            label: label.into(),
            shown: forced || std::io::stderr().is_terminal(),
            last_percent: None,
        }
    }

    fn update(&mut self, done: u64, total: u64) {
        if !self.shown {
            return;
        }
        let percent = (done.saturating_mul(100)).checked_div(total).unwrap_or(100).min(100);
        if self.last_percent == Some(percent) {
            return;
        }
        self.last_percent = Some(percent);
        let filled = (percent / 5) as usize;
        eprint!(
            "\r{} [{}{}] {percent:>3}% {:.1}/{:.1} MiB",
            self.label,
            "#".repeat(filled),
            ".".repeat(20 - filled),
            done as f64 / 1048576.0,
            total as f64 / 1048576.0
        );
        if percent == 100 {
            eprintln!();
        }
    }
}

fn registry(location: Option<&str>) -> Result<Registry, Failure> {
    let location = location.ok_or_else(|| {
        Failure("this command needs a registry: pass --registry PATH_OR_URL or set MODELCTL_REGISTRY".into())
    })?;
    Ok(Registry::open(location)?)
}

fn version(s: &str) -> Result<persistence::Version, Failure> {
    persistence::Version::parse(s).map_err(|e| Failure(format!("invalid version {s:?}: {e}")))
}

fn json(value: &impl serde::Serialize) -> Result<(), Failure> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A failure to report: the message, already in plain words.
struct Failure(String);

impl<E: std::error::Error> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(persistence::error_chain(&e))
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let location = cli.registry.as_deref();
    let forced_progress = cli.progress;
    match cli.command {
        Command::Card { bundle } => {
            let card = persistence::read_card(&bundle)?;
            println!("{}", card.to_json()?);
        }
        Command::Verify {
            bundle: None,
            json: as_json,
        } => {
            let report = registry(location)?.verify(None)?;
            let damaged: Vec<String> = report
                .damaged
                .iter()
                .map(|d| format!("{} {}: {}", d.model, d.version, persistence::error_chain(&d.error)))
                .collect();
            if as_json {
                json(&serde_json::json!({"checked": report.checked, "damaged": damaged}))?;
            } else {
                println!("checked {} versions, {} damaged", report.checked, damaged.len());
                for d in &damaged {
                    println!("  damaged: {d}");
                }
            }
            if !damaged.is_empty() {
                return Err(Failure(format!("{} damaged versions", damaged.len())));
            }
        }
        Command::Verify {
            bundle: Some(bundle),
            json,
        } => {
            let mut bar = Progress::new("verifying", forced_progress);
            let summary =
                persistence::BundleReader::default().verify_with_progress(&bundle, &mut |d, t| bar.update(d, t))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                println!(
                    "ok: {} {} v{} ({}), format {}.{}, {} bytes, payload {:?} level {}, content id {}",
                    bundle.display(),
                    summary.name,
                    summary.version,
                    summary.kind,
                    summary.format.0,
                    summary.format.1,
                    summary.file_len,
                    summary.payload.codec,
                    summary.payload.level,
                    summary.content_id.short()
                );
            }
        }
        Command::Models { json: as_json } => {
            let models = registry(location)?.models()?;
            if as_json {
                json(&models)?;
            } else {
                models.iter().for_each(|m| println!("{m}"));
            }
        }
        Command::Versions { model, json: as_json } => {
            let reg = registry(location)?;
            let versions = reg.versions(&model)?;
            if as_json {
                return json(&versions);
            }
            let aliases = reg.aliases(&model)?;
            println!(
                "{:<12} {:<14} {:<26} {:>10}  metrics",
                "version", "content id", "published", "bytes"
            );
            for v in &versions {
                let pointing: Vec<&str> = aliases
                    .iter()
                    .filter(|(_, t)| t.version == v.version)
                    .map(|(a, _)| a.as_str())
                    .collect();
                let metrics: Vec<String> = v.metrics.iter().map(|(k, x)| format!("{k}={x:.4}")).collect();
                println!(
                    "{:<12} {:<14} {:<26} {:>10}  {}{}",
                    v.version.to_string(),
                    v.content_id.short(),
                    v.published_at.to_string(),
                    v.bundle_len,
                    metrics.join(" "),
                    if pointing.is_empty() {
                        String::new()
                    } else {
                        format!("  <- {}", pointing.join(", "))
                    }
                );
            }
        }
        Command::Show { reference } => {
            let reg = registry(location)?;
            let info = reg.resolve(&reference.parse::<ModelRef>()?)?;
            println!("{}", reg.card(&info.model, &info.version)?.to_json()?);
        }
        Command::Publish { bundle, json: as_json } => {
            let mut bar = Progress::new("verifying", forced_progress);
            persistence::BundleReader::default().verify_with_progress(&bundle, &mut |d, t| bar.update(d, t))?;
            let bytes =
                std::fs::read(&bundle).map_err(|e| Failure(format!("cannot read {}: {e}", bundle.display())))?;
            let info = registry(location)?.publish_bundle(&bytes)?;
            if as_json {
                json(&info)?;
            } else {
                println!(
                    "published {} {} (content id {})",
                    info.model,
                    info.version,
                    info.content_id.short()
                );
            }
        }
        Command::Promote {
            model,
            alias,
            version: v,
            expect,
        } => {
            let reg = registry(location)?;
            let v = version(&v)?;
            let target = match expect.as_deref() {
                None => reg.set_alias(&model, &alias, &v)?,
                Some("none") => reg.set_alias_if(&model, &alias, &v, None)?,
                Some(e) => reg.set_alias_if(&model, &alias, &v, Some(&version(e)?))?,
            };
            println!("{model}@{alias} -> {}", target.version);
        }
        Command::Rollback { model, alias } => {
            let target = registry(location)?.rollback(&model, &alias)?;
            println!("{model}@{alias} rolled back to {}", target.version);
        }
        Command::History { model, json: as_json } => {
            let events = registry(location)?.history(&model)?;
            if as_json {
                return json(&events);
            }
            for e in events {
                println!("{}  {}", e.at, e.kind);
            }
        }
        Command::Compare {
            model,
            a,
            b,
            metric,
            json: as_json,
        } => {
            let reg = registry(location)?;
            let (a, b) = (version(&a)?, version(&b)?);
            let rows = match metric {
                Some(m) => vec![reg.compare(&model, &a, &b, &m)?],
                None => reg.compare_all(&model, &a, &b)?,
            };
            if as_json {
                return json(&rows);
            }
            println!(
                "{:<16} {:>10} {:>10} {:>10} {:>9}",
                "metric",
                a.to_string(),
                b.to_string(),
                "diff",
                "relative"
            );
            for r in rows {
                let rel = r
                    .relative
                    .map_or_else(|| "-".to_owned(), |x| format!("{:+.2}%", x * 100.0));
                println!(
                    "{:<16} {:>10.4} {:>10.4} {:>+10.4} {:>9}",
                    r.metric, r.a_score, r.b_score, r.absolute, rel
                );
            }
        }
        Command::Best {
            model,
            metric,
            lower_is_better,
            json: as_json,
        } => {
            let direction = if lower_is_better {
                Direction::LowerIsBetter
            } else {
                Direction::HigherIsBetter
            };
            let best = registry(location)?.best(&model, &metric, direction)?;
            match (best, as_json) {
                (Some(b), true) => json(&b)?,
                (Some(b), false) => println!("{} {}: {metric} = {:.4}", b.model, b.version, b.metrics[&metric]),
                (None, _) => return Err(Failure(format!("no version of {model} has the metric {metric:?}"))),
            }
        }
        Command::Prune { model, keep } => {
            let pruned = registry(location)?.prune(&model, keep)?;
            println!(
                "pruned {} versions{}",
                pruned.len(),
                if pruned.is_empty() {
                    String::new()
                } else {
                    format!(
                        ": {}",
                        pruned.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                    )
                }
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("modelctl: {message}");
            ExitCode::from(1)
        }
    }
}

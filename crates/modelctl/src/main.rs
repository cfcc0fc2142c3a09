//! `modelctl`: operate model bundles and registries from the command line.
//!
//! Exit codes: 0 success, 1 the operation failed (a damaged bundle, a
//! missing model or version…), 2 a usage error.
//!
//! Layout: this file declares the command line and sends each command to
//! its one function in [`commands`]; [`output`] holds what every command
//! prints with (tables, times, metrics, JSON, progress, failures).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use model_persistence::persistence::Direction;

mod commands;
mod output;

use commands::registry::Location;
use commands::{bundle, registry};
use output::{Failure, Format, Outcome, ProgressBar};

/// Operate model bundles and registries.
#[derive(Debug, Parser)]
#[command(
    name = "modelctl",
    version,
    about,
    long_about = None,
    after_help = "Exit codes: 0 success; 1 the operation failed (a damaged bundle, a missing model or \
                  version, a lost compare-and-swap...), with the reason on stderr; 2 a usage error."
)]
struct Cli {
    /// Show a progress bar on long operations even when stderr is not a terminal.
    #[arg(long, global = true)]
    progress: bool,
    /// Print JSON for scripts instead of text for people (before or after
    /// the command: `modelctl --json versions m` or `modelctl versions m
    /// --json`). `watch` prints one JSON object per line.
    #[arg(long, global = true)]
    json: bool,
    /// The registry: a directory, or a URL such as s3://bucket/prefix.
    #[arg(long, global = true, env = "MODELCTL_REGISTRY")]
    registry: Option<String>,
    /// An option of the registry's object store, KEY=VALUE (repeatable),
    /// overriding the environment: `--registry-option endpoint=http://127.0.0.1:8333
    /// --registry-option allow_http=true` for an S3 server without TLS.
    #[arg(long = "registry-option", global = true, value_name = "KEY=VALUE")]
    registry_options: Vec<String>,
    /// A trusted public key (PEM, repeatable): `verify` checks the bundle's
    /// signature against it; `publish`, `promote` and `serve` refuse
    /// versions no trusted key signed. From the environment:
    /// MODELCTL_TRUST, paths separated by commas.
    #[arg(long, global = true, env = "MODELCTL_TRUST", value_delimiter = ',')]
    trust: Vec<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// Which way a metric is better, on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Better {
    /// Higher values are better (accuracy, F1, AUC).
    Higher,
    /// Lower values are better (log loss, error rate).
    Lower,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a registry at PATH or --registry (a directory or URL);
    /// harmless if one is there.
    Init {
        /// The registry's directory or URL (the same as --registry).
        path: Option<String>,
    },
    /// Print a bundle's model card as JSON (reads the header only).
    Card {
        /// The bundle file.
        bundle: PathBuf,
    },
    /// Check every checksum of a bundle file, or of every version in the
    /// registry when no file is given.
    Verify {
        /// The bundle file (omit to verify the registry).
        bundle: Option<PathBuf>,
        /// With no bundle file: only this model's versions.
        #[arg(long, conflicts_with = "bundle")]
        model: Option<String>,
    },
    /// Create an ECDSA P-256 key pair for signing bundles: NAME.pem
    /// (private, readable by the owner only) and NAME.pub.pem.
    Keygen {
        /// The files' name, such as `release` (writes release.pem, release.pub.pem).
        name: PathBuf,
    },
    /// Sign a bundle file: writes BUNDLE.sig, a detached signature in the
    /// OpenSSF model-signing format (`model_signing verify key` reads it).
    Sign {
        /// The bundle file.
        bundle: PathBuf,
        /// The private key (PEM).
        #[arg(long)]
        key: PathBuf,
        /// Where to write the signature (default: BUNDLE.sig).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// List the models in the registry.
    Models {},
    /// List a model's versions with their aliases and metrics.
    Versions {
        /// The model name.
        model: String,
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
        /// Only if the alias still points at this version: of operators
        /// rolling back at once, one wins and the others fail (exit 1).
        #[arg(long)]
        expect: Option<String>,
    },
    /// Write a model's report as one self-contained HTML page: the card,
    /// every version with its metrics and gate decision, the alias
    /// timeline, the features' training distributions (and drift, given
    /// live statistics).
    Report {
        /// `MODEL`, `MODEL@ALIAS` or `MODEL@VERSION` (the card shown).
        reference: String,
        /// Where to write the page.
        #[arg(short, long)]
        output: std::path::PathBuf,
        /// Live statistics: a drift report as JSON (what a server's status
        /// holds under `drift`), shown as PSI and live histograms.
        #[arg(long)]
        live: Option<std::path::PathBuf>,
    },
    /// The event history of a model.
    History {
        /// The model name.
        model: String,
    },
    /// Serve registry models with the Open Inference Protocol (KServe v2,
    /// REST and gRPC on one port), following each alias with checked hot
    /// swaps; stops on Ctrl-C or SIGTERM after the requests in flight.
    #[cfg(feature = "server")]
    Serve(Box<commands::serve::ServeArgs>),
    /// Write a registry version's verified bundle to DIR/model.bundle (and
    /// its signature to DIR/model.bundle.sig), atomically: a storage
    /// initializer for `modelctl serve --bundle-dir DIR`.
    Fetch {
        /// MODEL@ALIAS, MODEL@VERSION or MODEL (latest); also as a URI,
        /// mp://MODEL@ALIAS, the form a KServe storageUri gives it.
        reference: String,
        /// The directory to write into (made if missing).
        dir: std::path::PathBuf,
    },
    /// Print a model's events as they happen (published, alias moved or
    /// rolled back, pruned), one per line, for webhooks and CI.
    Watch {
        /// The model name.
        model: String,
        /// Start from the first event of the history (default: from now).
        #[arg(long)]
        from_start: bool,
        /// A file that keeps the watch's position: read at start, rewritten
        /// after every event, so a restarted watch resumes exactly there.
        #[arg(long)]
        cursor: Option<std::path::PathBuf>,
        /// Milliseconds between polls.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// Stop after this many events.
        #[arg(long)]
        max_events: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long)]
        timeout: Option<u64>,
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
    },
    /// The best version by a metric.
    Best {
        /// The model name.
        model: String,
        /// The metric.
        metric: String,
        /// Which values are better. Default: known from the metric's name
        /// (loss, error, latency: lower), otherwise higher.
        #[arg(long, value_enum)]
        better: Option<Better>,
    },
    /// Clean up after writers that crashed (claims, pins, unfinished removals,
    /// unreadable records and events) and report what needs a decision.
    Repair {
        /// Only this model.
        #[arg(long)]
        model: Option<String>,
    },
    /// A server's payload log (`serve --payload-log DIR`) read back: the
    /// predictions, with the outcomes reported for them joined.
    #[cfg(feature = "server")]
    Logs {
        /// The payload log directory.
        dir: PathBuf,
        /// Only this model.
        #[arg(long)]
        model: Option<String>,
        /// Only this version.
        #[arg(long)]
        version: Option<String>,
        /// Only this prediction id.
        #[arg(long)]
        id: Option<String>,
        /// Only since then: RFC 3339, or a span back from now (30m, 12h, 7d).
        #[arg(long)]
        since: Option<String>,
    },
    /// Labels and scores of any known kind of model for the rows of a CSV
    /// file (a header line of feature names is optional).
    Predict {
        /// A bundle file, or MODEL, MODEL@VERSION, MODEL@ALIAS in the registry.
        target: String,
        /// The CSV file of input rows (or give it with --input).
        #[arg(required_unless_present = "input", conflicts_with = "input")]
        rows: Option<PathBuf>,
        /// The CSV file of input rows.
        #[arg(long)]
        input: Option<PathBuf>,
    },
    /// Write a bundle with its card from an ONNX graph (scikit-learn's
    /// skl2onnx, PyTorch's torch.onnx.export...).
    #[cfg(feature = "onnx")]
    ImportOnnx {
        /// The ONNX file.
        graph: PathBuf,
        /// The model's name.
        #[arg(long)]
        name: String,
        /// The version (default: left to the registry at publication).
        #[arg(long)]
        version: Option<String>,
        /// A metric for the card, NAME=VALUE (repeatable).
        #[arg(long)]
        metric: Vec<String>,
        /// Training rows (CSV) for the card's statistics, hash and probe.
        #[arg(long)]
        train_data: Option<PathBuf>,
        /// Where to write the bundle (default: NAME.bundle).
        #[arg(long, short)]
        output: Option<PathBuf>,
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

fn run(cli: Cli) -> Outcome {
    commands::signing::load_trust(&cli.trust)?;
    registry::set_options(&cli.registry_options)?;
    let at = Location(cli.registry.as_deref());
    let progress = if cli.progress {
        ProgressBar::Always
    } else {
        ProgressBar::OnTerminal
    };
    let json = cli.json;
    let fmt = Format::json_if;
    match cli.command {
        Command::Init { path } => match (path.as_deref(), at.0) {
            (Some(path), Some(flag)) if path != flag => Err(Failure(format!(
                "init was given two registries: {path} and --registry {flag}; give one"
            ))),
            (Some(path), _) => registry::init(Location(Some(path))),
            (None, _) => registry::init(at),
        },
        Command::Card { bundle: file } => bundle::card(&file),
        Command::Verify { bundle: Some(file), .. } => bundle::verify(&file, fmt(json), progress),
        Command::Verify { bundle: None, model } => registry::verify(at, model.as_deref(), fmt(json)),
        Command::Keygen { name } => commands::signing::keygen(&name),
        Command::Sign { bundle, key, output } => commands::signing::sign(&bundle, &key, output.as_deref()),
        Command::Models {} => registry::models(at, fmt(json)),
        Command::Versions { model } => registry::versions(at, &model, fmt(json)),
        Command::Show { reference } => registry::show(at, &reference),
        Command::Publish { bundle: file } => registry::publish(at, &file, fmt(json), progress),
        Command::Promote {
            model,
            alias,
            version,
            expect,
        } => registry::promote(at, &model, &alias, &version, expect.as_deref()),
        Command::Rollback { model, alias, expect } => registry::rollback(at, &model, &alias, expect.as_deref()),
        Command::History { model } => registry::history(at, &model, fmt(json)),
        Command::Report {
            reference,
            output,
            live,
        } => registry::report(at, &reference, &output, live.as_deref()),
        #[cfg(feature = "server")]
        Command::Serve(args) => commands::serve::serve(at, &args, &cli.trust),
        Command::Fetch { reference, dir } => commands::fetch::fetch(at, &reference, &dir, json),
        Command::Watch {
            model,
            from_start,
            cursor,
            interval_ms,
            max_events,
            timeout,
        } => registry::watch(
            at,
            &model,
            &registry::WatchOptions {
                from_start,
                cursor,
                interval: std::time::Duration::from_millis(interval_ms.max(10)),
                max_events,
                timeout: timeout.map(std::time::Duration::from_secs),
            },
            fmt(json),
        ),
        Command::Compare { model, a, b, metric } => registry::compare(at, &model, &a, &b, metric.as_deref(), fmt(json)),
        Command::Best { model, metric, better } => {
            let direction = better.map(|b| match b {
                Better::Higher => Direction::HigherIsBetter,
                Better::Lower => Direction::LowerIsBetter,
            });
            registry::best(at, &model, &metric, direction, fmt(json))
        }
        Command::Prune { model, keep } => registry::prune(at, &model, keep),
        #[cfg(feature = "onnx")]
        Command::ImportOnnx {
            graph,
            name,
            version,
            metric,
            train_data,
            output,
        } => commands::onnx::import(&commands::onnx::Import {
            graph: &graph,
            name: &name,
            version: version.as_deref(),
            metrics: &metric,
            train_data: train_data.as_deref(),
            output: output.as_deref(),
        }),
        Command::Repair { model } => registry::repair(at, model.as_deref()),
        #[cfg(feature = "server")]
        Command::Logs {
            dir,
            model,
            version,
            id,
            since,
        } => commands::logs::logs(&commands::logs::LogsArgs {
            dir: &dir,
            model,
            version,
            id,
            since: since.as_deref(),
            json,
        }),
        Command::Predict { target, rows, input } => match rows.or(input) {
            Some(rows) => commands::predict::predict(at, &target, &rows, fmt(json)),
            None => Err(Failure(
                "predict needs the rows: a CSV file, positional or --input".into(),
            )),
        },
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A panic is reported once, as the typed error it becomes (contained
    // where third-party code ran) or as the failure below, and in `serve`'s
    // logs, rather than also as the default hook's lines on stderr, which
    // would break `serve`'s one-JSON-object-per-line logs. With
    // RUST_BACKTRACE set, the default hook stays, for developers.
    if std::env::var_os("RUST_BACKTRACE").is_none() {
        std::panic::set_hook(Box::new(|info| tracing::error!(%info, "panic")));
    }
    // Third-party code on an untrusted file is contained where it runs; a
    // panic that still escapes is a failure with its message (exit 1), not
    // an abort with exit 101.
    let outcome = std::panic::catch_unwind(|| run(cli)).unwrap_or_else(|payload| {
        let message = model_persistence::persistence::panic_message(payload.as_ref());
        Err(Failure(format!("internal error (a panic): {message}")))
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            // An empty message was already logged (serve's JSON logs).
            if !message.is_empty() {
                eprintln!("modelctl: {message}");
            }
            ExitCode::from(1)
        }
    }
}

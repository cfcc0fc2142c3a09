//! `modelctl`: operate model bundles and registries from the command line.
//!
//! Exit codes: 0 success, 1 the operation failed (a damaged bundle, a
//! missing version…), 2 a usage error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use model_persistence::persistence;

/// Operate model bundles and registries.
#[derive(Debug, Parser)]
#[command(name = "modelctl", version, about, long_about = None)]
struct Cli {
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
    /// Check every checksum of a bundle without decoding the model.
    Verify {
        /// The bundle file.
        bundle: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A failure to report: the message, already in plain words.
struct Failure(String);

impl<E: std::error::Error> From<E> for Failure {
    fn from(e: E) -> Self {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        Failure(message)
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Card { bundle } => {
            let card = persistence::read_card(&bundle)?;
            println!("{}", card.to_json()?);
        }
        Command::Verify { bundle, json } => {
            let summary = persistence::verify(&bundle)?;
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

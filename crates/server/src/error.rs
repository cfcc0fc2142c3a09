//! The server's error: what stops it from starting. Errors of single
//! requests are answers (a 4xx with the protocol's error body), not this.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why a server cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot be served as written.
    #[error("invalid configuration: {reason}")]
    Config {
        /// What is wrong, naming the setting.
        reason: String,
    },
    /// A configuration file cannot be read, or is not valid TOML for the
    /// configuration.
    #[error("cannot read the configuration {}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// The I/O or TOML error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The async runtime, or a thread that loads a model, cannot start.
    #[error("cannot start the runtime or a loader thread")]
    Runtime(#[source] std::io::Error),
}

impl Error {
    pub(crate) fn config(reason: impl Into<String>) -> Self {
        Error::Config { reason: reason.into() }
    }
}

/// A result with the server's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

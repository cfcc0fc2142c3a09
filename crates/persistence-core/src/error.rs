//! The one error type of this crate.

use std::path::PathBuf;

/// The section of a bundle that a checksum covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Section {
    /// The preamble and the MessagePack header (bytes `0..16+H`).
    Header,
    /// The stored (possibly compressed) payload.
    Payload,
}

impl std::fmt::Display for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Section::Header => "header",
            Section::Payload => "payload",
        })
    }
}

/// Which configurable limit was exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitKind {
    /// The MessagePack header length.
    HeaderLen,
    /// The payload once inflated.
    InflatedLen,
    /// The whole file.
    FileLen,
    /// The nesting depth of the MessagePack header or payload.
    Depth,
}

impl std::fmt::Display for LimitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LimitKind::HeaderLen => "header length",
            LimitKind::InflatedLen => "inflated payload length",
            LimitKind::FileLen => "file length",
            LimitKind::Depth => "nesting depth",
        })
    }
}

/// Everything that can go wrong while saving, loading or verifying a bundle.
///
/// Each variant says what failed, where, and what was expected versus found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes do not start with the bundle magic.
    #[error("not a model bundle: the first 8 bytes are {found:02x?}, expected {expected:02x?}")]
    NotABundle {
        /// The magic every bundle starts with.
        expected: [u8; 8],
        /// What the file starts with (shorter if the file is shorter).
        found: Vec<u8>,
    },
    /// The bundle was written by a newer, incompatible format major version.
    #[error("unsupported bundle format {found_major}.{found_minor}: this reader supports format {supported_major}.x")]
    UnsupportedVersion {
        /// The major version this reader understands.
        supported_major: u16,
        /// The major version in the file.
        found_major: u16,
        /// The minor version in the file.
        found_minor: u16,
    },
    /// The file ends before a section it declares.
    #[error("bundle truncated in the {section}: needed {needed} bytes at offset {offset}, the file has {available}")]
    Truncated {
        /// The section being read (`preamble`, `header`, `header hash`, `payload`).
        section: &'static str,
        /// Where the section starts.
        offset: u64,
        /// How many bytes the section needs.
        needed: u64,
        /// How many bytes are left from `offset`.
        available: u64,
    },
    /// Bytes follow the end of the payload.
    #[error("{extra} trailing bytes after the payload, which ends at offset {end}")]
    TrailingBytes {
        /// Offset where the bundle should end.
        end: u64,
        /// How many bytes follow it.
        extra: u64,
    },
    /// A SHA-256 does not match the bytes it covers.
    #[error("{section} checksum mismatch: expected {expected}, computed {found}")]
    ChecksumMismatch {
        /// Which section is damaged.
        section: Section,
        /// The hash recorded in the file.
        expected: String,
        /// The hash of the bytes as read.
        found: String,
    },
    /// The bundle holds a different kind of model than the one requested.
    #[error("wrong model kind: expected `{expected}`, the bundle holds `{found}`")]
    WrongModelKind {
        /// The kind tag of the requested Rust type.
        expected: String,
        /// The kind tag in the card.
        found: String,
    },
    /// The model and its card disagree on the number of input features.
    #[error("feature count mismatch: the card says {card}, the model has {model}")]
    FeatureCountMismatch {
        /// The count in the card.
        card: usize,
        /// The count the model reports.
        model: usize,
    },
    /// The card names a kind that no known model type reads.
    #[error(
        "unknown model kind {kind:?}: the kinds known here are {}{}",
        if known.is_empty() { "none".to_owned() } else { known.join(", ") },
        if kind.starts_with("linfa.") || kind.starts_with("onnx.") {
            " (the built-in engines' kinds are in model_persistence_models::kinds())"
        } else {
            ""
        }
    )]
    UnknownKind {
        /// The card's kind.
        kind: String,
        /// The kinds this table knows.
        known: Vec<String>,
    },
    /// Rows a model cannot take (wrong width, or a non-finite value for a
    /// model that takes finite values only).
    #[error(transparent)]
    Input(#[from] InputError),
    /// A path given as a bundle is not a regular file (a FIFO would block, a
    /// device would be read without end): refused before it is read.
    #[error("{} is {found}, not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is.
        found: &'static str,
    },
    /// The golden probe did not reproduce.
    #[error("probe mismatch at row {row}: the card expects {expected}, the model predicts {found}")]
    ProbeMismatch {
        /// The probe row that differs.
        row: usize,
        /// The output recorded in the card.
        expected: String,
        /// The output the loaded model gives.
        found: String,
    },
    /// The model failed its own structural check.
    #[error("invalid model structure of `{kind}`: {reason}")]
    InvalidStructure {
        /// The model kind.
        kind: String,
        /// What the check found.
        reason: String,
    },
    /// A configurable limit was exceeded.
    #[error("{limit} limit exceeded: {found} is more than the limit of {limit_value}")]
    LimitExceeded {
        /// Which limit.
        limit: LimitKind,
        /// The configured maximum.
        limit_value: u64,
        /// The value found (or a lower bound of it).
        found: u64,
    },
    /// The header or card is well-formed MessagePack but makes no sense.
    #[error("invalid {section}: {reason}")]
    Invalid {
        /// Where the problem is (`header`, `card`, `payload descriptor`…).
        section: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// MessagePack decoding of a section failed.
    #[error("cannot decode the {section}")]
    Decode {
        /// The section being decoded.
        section: &'static str,
        /// The decoder's error.
        #[source]
        source: rmp_serde::decode::Error,
    },
    /// MessagePack encoding failed (a model whose `Serialize` errs).
    #[error("cannot encode the {section}")]
    Encode {
        /// The section being encoded.
        section: &'static str,
        /// The encoder's error.
        #[source]
        source: rmp_serde::encode::Error,
    },
    /// The deflate stream of the payload is corrupt.
    #[error("cannot inflate the payload")]
    Inflate {
        /// The inflater's error.
        #[source]
        source: std::io::Error,
    },
    /// The card could not be written or read as JSON.
    #[error("cannot convert the card to or from JSON")]
    CardJson {
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A card saved to a file without a version: the builder's default
    /// `0.0.0` means "not set", which a registry replaces when it publishes
    /// but a file saved on its own would keep. Set one with
    /// `CardBuilder::version`.
    #[error("the card of {name:?} has no version (0.0.0): set one with `.version(...)` before saving to a file")]
    UnversionedCard {
        /// The model's name.
        name: String,
    },
    /// A builder was given inconsistent or incomplete information.
    #[error("invalid card: {reason}")]
    InvalidCard {
        /// What is inconsistent.
        reason: String,
    },
    /// An I/O operation on a path failed.
    #[error("I/O error on {}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Rows a model cannot take: what the one check on every prediction path
/// ([`check_rows`]: a loaded model's `predict`, a dynamic model's, a hot-swap
/// server's) refuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The rows have another number of columns than the model's features.
    #[error("the input has {found} columns, the model expects {expected} features")]
    Width {
        /// The model's feature count (from its card).
        expected: usize,
        /// The input's column count.
        found: usize,
    },
    /// A value is NaN or infinite, and the model does not take such values.
    #[error("input row {row}, column {column} is {value}: this model takes finite values only")]
    NonFinite {
        /// The row.
        row: usize,
        /// The column.
        column: usize,
        /// The value.
        value: f64,
    },
}

/// Checks rows before a model sees them: exactly `n_features` columns and,
/// unless the model takes them, no NaN or infinite value.
///
/// # Errors
///
/// The [`InputError`] of the first problem found.
pub fn check_rows(
    rows: ndarray::ArrayView2<'_, f64>,
    n_features: usize,
    accepts_non_finite: bool,
) -> std::result::Result<(), InputError> {
    if rows.ncols() != n_features {
        return Err(InputError::Width {
            expected: n_features,
            found: rows.ncols(),
        });
    }
    if !accepts_non_finite {
        if let Some(((row, column), &value)) = rows.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(InputError::NonFinite { row, column, value });
        }
    }
    Ok(())
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// An error and all its causes on one line, `outer: cause: root cause`: how
/// a command-line tool or a status page shows a typed error to people.
///
/// ```
/// let e = model_persistence_core::read_card("/nonexistent.bundle").unwrap_err();
/// assert!(model_persistence_core::error_chain(&e).starts_with("I/O error on /nonexistent.bundle: "));
/// ```
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// The message of a caught panic (`std::panic::catch_unwind`'s payload), for
/// people: where third-party code on an untrusted file panics, the panic
/// is contained and reported as a typed error carrying this text.
///
/// ```
/// let payload = std::panic::catch_unwind(|| panic!("no entry found for key")).unwrap_err();
/// assert_eq!(model_persistence_core::panic_message(payload.as_ref()), "no entry found for key");
/// ```
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

//! The service's typed error: what kind of refusal, in words. Each protocol
//! maps the kind to its own status (an HTTP status, a gRPC code); none of
//! them is a server fault.

/// What kind of refusal an [`InferError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is malformed or does not fit the model (HTTP 400, gRPC
    /// `INVALID_ARGUMENT`).
    InvalidArgument,
    /// No such model, or the version is not served (HTTP 404, gRPC
    /// `NOT_FOUND`).
    NotFound,
    /// The model has not loaded yet (HTTP 400, as the server has always
    /// answered it; gRPC `UNAVAILABLE`, which clients retry).
    Unavailable,
    /// The request is over the server's size limit (HTTP 413, gRPC
    /// `RESOURCE_EXHAUSTED`).
    TooLarge,
    /// What the request asks is turned off here, or the caller's token
    /// lacks its scope (HTTP 403, gRPC `PERMISSION_DENIED`).
    Forbidden,
    /// The server requires a token and the request has none that is valid
    /// (HTTP 401, gRPC `UNAUTHENTICATED`).
    Unauthenticated,
}

/// A request the inference service refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InferError {
    /// What kind of refusal.
    pub kind: ErrorKind,
    /// What is wrong, in words, for the caller.
    pub message: String,
}

impl InferError {
    /// A malformed request, or one the model cannot take.
    pub fn invalid(message: impl Into<String>) -> Self {
        InferError {
            kind: ErrorKind::InvalidArgument,
            message: message.into(),
        }
    }

    /// An unknown model or a version not served.
    pub fn not_found(message: impl Into<String>) -> Self {
        InferError {
            kind: ErrorKind::NotFound,
            message: message.into(),
        }
    }

    /// A model not loaded yet.
    pub fn unavailable(message: impl Into<String>) -> Self {
        InferError {
            kind: ErrorKind::Unavailable,
            message: message.into(),
        }
    }

    /// A request for something turned off.
    pub fn forbidden(message: impl Into<String>) -> Self {
        InferError {
            kind: ErrorKind::Forbidden,
            message: message.into(),
        }
    }

    /// A request without a valid token.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        InferError {
            kind: ErrorKind::Unauthenticated,
            message: message.into(),
        }
    }

    /// A request over the size limit.
    pub fn too_large(message: impl Into<String>) -> Self {
        InferError {
            kind: ErrorKind::TooLarge,
            message: message.into(),
        }
    }
}

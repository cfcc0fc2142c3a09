//! Names of models, aliases and attachments, checked once into newtypes.
//!
//! A name is always exactly one path segment of the registry: 1 to 128
//! characters from `a-z A-Z 0-9 _ - .`, starting with a letter or a digit,
//! without `..`. Everything past the boundary takes the newtype, so a name
//! is validated where it enters and never again.
//!
//! The registry keeps its own objects (locks, temporary files, markers) under
//! segments that start with `.` or `_`, which no valid name can, so a user
//! name never collides with a registry-internal one, whatever it ends with.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest accepted name.
pub const MAX_NAME_LEN: usize = 128;

/// What kind of name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameKind {
    /// A model name.
    Model,
    /// An alias name.
    Alias,
    /// An attachment name.
    Attachment,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Model => "model",
            NameKind::Alias => "alias",
            NameKind::Attachment => "attachment",
        })
    }
}

/// Why a name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameProblem {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    TooLong,
    /// The first character is not an ASCII letter or digit.
    BadStart,
    /// A character other than `a-z A-Z 0-9 _ - .`.
    BadCharacter(char),
    /// The name contains `..`.
    DotDot,
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameProblem::Empty => f.write_str("it is empty"),
            NameProblem::TooLong => write!(f, "it is longer than {MAX_NAME_LEN} characters"),
            NameProblem::BadStart => f.write_str("it must start with a letter or a digit"),
            NameProblem::BadCharacter(c) => write!(f, "{c:?} is not allowed: only letters, digits, '_', '-' and '.'"),
            NameProblem::DotDot => f.write_str("it must not contain '..'"),
        }
    }
}

/// A refused name: which kind, the name, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} name {name:?}: {problem}")]
pub struct NameError {
    /// What the name was for.
    pub kind: NameKind,
    /// The refused name.
    pub name: String,
    /// Why it was refused.
    pub problem: NameProblem,
}

fn check(name: &str) -> Result<(), NameProblem> {
    let first = name.chars().next().ok_or(NameProblem::Empty)?;
    if name.len() > MAX_NAME_LEN {
        return Err(NameProblem::TooLong);
    }
    if !first.is_ascii_alphanumeric() {
        return Err(NameProblem::BadStart);
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(NameProblem::BadCharacter(c));
    }
    if name.contains("..") {
        return Err(NameProblem::DotDot);
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(String);

        impl $ty {
            /// Checks `name`.
            ///
            /// # Errors
            ///
            /// [`NameError`] saying why the name is refused.
            pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
                let name = name.into();
                match check(&name) {
                    Ok(()) => Ok($ty(name)),
                    Err(problem) => Err(NameError { kind: $kind, name, problem }),
                }
            }

            /// The name as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = NameError;
            fn try_from(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl From<$ty> for String {
            fn from(name: $ty) -> String {
                name.0
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $ty {
            fn eq(&self, other: &String) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<$ty> for String {
            fn eq(&self, other: &$ty) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$ty> for &str {
            fn eq(&self, other: &$ty) -> bool {
                *self == other.0
            }
        }

        impl IntoName<$ty> for $ty {
            fn into_name(self) -> Result<$ty, NameError> {
                Ok(self)
            }
        }

        /// `names.iter().map(|m| registry.versions(m))` over a `&[&str]`.
        impl IntoName<$ty> for &&str {
            fn into_name(self) -> Result<$ty, NameError> {
                $ty::new(*self)
            }
        }

        impl IntoName<$ty> for &&$ty {
            fn into_name(self) -> Result<$ty, NameError> {
                Ok((*self).clone())
            }
        }

        impl IntoName<$ty> for &$ty {
            fn into_name(self) -> Result<$ty, NameError> {
                Ok(self.clone())
            }
        }

        impl IntoName<$ty> for &str {
            fn into_name(self) -> Result<$ty, NameError> {
                $ty::new(self)
            }
        }

        impl IntoName<$ty> for String {
            fn into_name(self) -> Result<$ty, NameError> {
                $ty::new(self)
            }
        }

        impl IntoName<$ty> for &String {
            fn into_name(self) -> Result<$ty, NameError> {
                $ty::new(self.as_str())
            }
        }
    };
}

/// What the registry's methods accept as a name: the checked newtype itself
/// (no check again) or a string, checked on the way in; references to
/// either as an iterator over a slice gives them (`&&str`, `&&ModelName`).
///
/// ```
/// use model_persistence_versioning::{ModelName, Registry};
///
/// let dir = tempfile::tempdir().expect("temp dir");
/// let registry = Registry::create(dir.path())?;
/// let names = ["fraud", "churn"];
/// let counts: Vec<usize> = names
///     .iter()
///     .map(|m| registry.versions(m).map(|v| v.len()))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(counts, [0, 0]);
/// assert_eq!(ModelName::new("fraud")?, String::from("fraud"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// ```
/// use model_persistence_versioning::{IntoName, ModelName};
///
/// let checked = ModelName::new("fraud")?;
/// let converted: ModelName = "fraud".into_name()?;
/// assert_eq!(converted, checked);
/// assert!(IntoName::<ModelName>::into_name("../etc").is_err());
/// # Ok::<(), model_persistence_versioning::NameError>(())
/// ```
pub trait IntoName<N> {
    /// The checked name.
    ///
    /// # Errors
    ///
    /// [`NameError`] for a string that is not a valid name.
    fn into_name(self) -> Result<N, NameError>;
}

name_type!(
    /// A model's name, such as `fraud_detector`.
    ///
    /// ```
    /// use model_persistence_versioning::{ModelName, NameProblem};
    ///
    /// assert_eq!(ModelName::new("fraud")?.as_str(), "fraud");
    /// assert_eq!(ModelName::new("../etc").unwrap_err().problem, NameProblem::BadStart);
    /// # Ok::<(), model_persistence_versioning::NameError>(())
    /// ```
    ModelName,
    NameKind::Model
);

name_type!(
    /// An alias's name, such as `production` or `staging`.
    AliasName,
    NameKind::Alias
);

name_type!(
    /// The name of a JSON attachment stored with a version, such as
    /// `gate-report`. Attachments live in a folder of their own, so any
    /// valid name is allowed, `version` and `card` included.
    AttachmentName,
    NameKind::Attachment
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused_with_a_reason() {
        for (name, problem) in [
            ("", NameProblem::Empty),
            ("..", NameProblem::BadStart),
            ("../etc", NameProblem::BadStart),
            ("a/b", NameProblem::BadCharacter('/')),
            ("/abs", NameProblem::BadStart),
            ("a\\b", NameProblem::BadCharacter('\\')),
            (".hidden", NameProblem::BadStart),
            ("_internal", NameProblem::BadStart),
            ("a..b", NameProblem::DotDot),
            ("nul\0", NameProblem::BadCharacter('\0')),
            ("tab\t", NameProblem::BadCharacter('\t')),
            ("ünï", NameProblem::BadStart),
            ("a b", NameProblem::BadCharacter(' ')),
            ("-flag", NameProblem::BadStart),
        ] {
            let err = ModelName::new(name).expect_err(name);
            assert_eq!(err.problem, problem, "{name:?}");
            assert_eq!(err.kind, NameKind::Model);
        }
        assert_eq!(
            ModelName::new("a".repeat(129)).map_err(|e| e.problem),
            Err(NameProblem::TooLong)
        );
    }

    #[test]
    fn ordinary_names_are_accepted() {
        for name in [
            "fraud",
            "fraud_detector",
            "churn-v2",
            "model.1",
            "A1",
            &"a".repeat(128),
            "m.lock",
        ] {
            assert!(ModelName::new(name).is_ok(), "{name:?} was refused");
            assert!(AliasName::new(name).is_ok(), "{name:?} was refused");
        }
    }

    #[test]
    fn names_deserialize_only_when_valid() {
        let ok: ModelName = serde_json::from_str("\"fraud\"").expect("valid");
        assert_eq!(ok, "fraud");
        assert!(serde_json::from_str::<ModelName>("\"../x\"").is_err());
    }
}

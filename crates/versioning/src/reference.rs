//! References to a model version: `name`, `name@1.2.0`, `name@alias`.

use std::fmt;
use std::str::FromStr;

use semver::Version;

use crate::error::{Error, Result};
use crate::name::{AliasName, ModelName};

/// A model version reference: `name`, `name@1.2.0` or `name@alias`.
///
/// ```
/// use model_persistence_versioning::{ModelRef, Target};
///
/// let r: ModelRef = "fraud@production".parse()?;
/// assert_eq!(r.model, "fraud");
/// assert!(matches!(r.target, Target::Alias(ref a) if a == "production"));
/// assert!("../etc@production".parse::<ModelRef>().is_err());
/// # Ok::<(), model_persistence_versioning::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    /// The model name.
    pub model: ModelName,
    /// Which version.
    pub target: Target,
}

/// Which version of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The highest published version.
    Latest,
    /// One version.
    Version(Version),
    /// The version an alias points at.
    Alias(AliasName),
}

impl ModelRef {
    /// The latest version of `model`.
    pub fn latest(model: ModelName) -> Self {
        ModelRef {
            model,
            target: Target::Latest,
        }
    }

    /// One version of `model`.
    pub fn version(model: ModelName, version: Version) -> Self {
        ModelRef {
            model,
            target: Target::Version(version),
        }
    }

    /// The version `alias` of `model` points at.
    pub fn alias(model: ModelName, alias: AliasName) -> Self {
        ModelRef {
            model,
            target: Target::Alias(alias),
        }
    }
}

impl FromStr for ModelRef {
    type Err = Error;

    /// Parses `name`, `name@1.2.0` or `name@alias`.
    fn from_str(s: &str) -> Result<Self> {
        let (model, target) = match s.split_once('@') {
            None => (s, Target::Latest),
            Some((m, t)) => match Version::parse(t) {
                Ok(v) => (m, Target::Version(v)),
                Err(_) => (m, Target::Alias(AliasName::new(t)?)),
            },
        };
        Ok(ModelRef {
            model: ModelName::new(model)?,
            target,
        })
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::Latest => write!(f, "{}", self.model),
            Target::Version(v) => write!(f, "{}@{v}", self.model),
            Target::Alias(a) => write!(f, "{}@{a}", self.model),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse() {
        let r: ModelRef = "fraud@production".parse().expect("parses");
        assert_eq!(r.target, Target::Alias(AliasName::new("production").expect("valid")));
        let r: ModelRef = "fraud@1.2.0".parse().expect("parses");
        assert_eq!(r.target, Target::Version(Version::new(1, 2, 0)));
        let r: ModelRef = "fraud".parse().expect("parses");
        assert_eq!(r.target, Target::Latest);
        assert!("../x@prod".parse::<ModelRef>().is_err());
        assert!("fraud@../../etc".parse::<ModelRef>().is_err());
        assert_eq!(r.to_string(), "fraud");
    }
}

//! Validation of model and alias names.

use crate::error::{Error, Result};

/// Longest accepted name.
pub const MAX_NAME_LEN: usize = 128;

/// Checks a model or alias name.
///
/// Accepted: 1 to 128 characters from `a-z A-Z 0-9 _ - .`, starting with a
/// letter or digit. So no `/`, `\`, `..`, empty, absolute or hidden names:
/// a name is always exactly one path segment of the registry.
///
/// # Errors
///
/// [`Error::InvalidName`] saying why.
pub fn validate_name(what: &'static str, name: &str) -> Result<()> {
    let invalid = |reason| Error::InvalidName {
        what,
        name: name.to_owned(),
        reason,
    };
    let Some(first) = name.chars().next() else {
        return Err(invalid("it is empty"));
    };
    if name.len() > MAX_NAME_LEN {
        return Err(invalid("it is longer than 128 characters"));
    }
    if !first.is_ascii_alphanumeric() {
        return Err(invalid("it must start with a letter or a digit"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(invalid("only letters, digits, '_', '-' and '.' are allowed"));
    }
    if name.contains("..") {
        return Err(invalid("it must not contain '..'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused() {
        for name in [
            "", "..", "../etc", "a/b", "/abs", "a\\b", ".hidden", "a..b", "nul\0", "tab\t", "ünï", "a b", "-flag",
        ] {
            assert!(
                matches!(validate_name("model", name), Err(Error::InvalidName { .. })),
                "{name:?} was accepted"
            );
        }
        assert!(validate_name("model", &"a".repeat(129)).is_err());
    }

    #[test]
    fn ordinary_names_are_accepted() {
        for name in ["fraud", "fraud_detector", "churn-v2", "model.1", "A1", &"a".repeat(128)] {
            assert!(validate_name("model", name).is_ok(), "{name:?} was refused");
        }
    }
}

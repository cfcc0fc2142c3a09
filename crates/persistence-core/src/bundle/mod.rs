//! Bundle files: writing them ([`write`]: atomic saves, the card beside)
//! and reading them ([`read`]: verified loads, the card alone, checksums),
//! with the checks a model passes on both ways. The bytes themselves are
//! encoded and decoded in [`format`](crate::format).

use crate::card::ModelCard;
use crate::error::{Error, Result};
use crate::model::{Model, ProbeValue};

mod open;
mod read;
mod write;

#[cfg(test)]
pub(crate) use read::counts;
pub(crate) use read::Opened;
pub use read::{from_bytes, load, read_card, verify, BundleReader, Loaded, Summary};
pub use write::{card_json_path, save, to_bytes, write_atomic, BundleWriter, Saved, DEFAULT_LEVEL};

/// The checks shared by saving and loading: kind, feature count, structure,
/// probe.
pub(crate) fn validate_model<M: Model>(model: &M, card: &ModelCard) -> Result<()> {
    if card.kind != M::KIND {
        return Err(Error::WrongModelKind {
            expected: M::KIND.to_owned(),
            found: card.kind.clone(),
        });
    }
    if let Some(n) = model.n_features() {
        if n != card.n_features {
            return Err(Error::FeatureCountMismatch {
                card: card.n_features,
                model: n,
            });
        }
    }
    model
        .check_structure(card.n_features)
        .map_err(|e| Error::InvalidStructure {
            kind: M::KIND.to_owned(),
            reason: e.reason().to_owned(),
        })?;
    if let Some(probe) = &card.probe {
        if probe.rows.is_empty() {
            return Ok(());
        }
        let flat: Vec<f64> = probe.rows.iter().flatten().copied().collect();
        let rows = ndarray::ArrayView2::from_shape((probe.rows.len(), card.n_features), &flat).map_err(|_| {
            Error::Invalid {
                section: "card",
                reason: "probe rows do not match the feature count".into(),
            }
        })?;
        let predicted = model.predict(rows);
        let tolerance = model.probe_tolerance();
        for (row, (expected, found)) in probe.expected.iter().zip(predicted.iter()).enumerate() {
            let found: ProbeValue = found.clone().into();
            if !expected.reproduced_by(&found, tolerance) {
                return Err(Error::ProbeMismatch {
                    row,
                    expected: expected.to_string(),
                    found: found.to_string(),
                });
            }
        }
    }
    Ok(())
}

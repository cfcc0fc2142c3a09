//! Commands on bundle files: `card` and `verify FILE`.

use std::path::Path;

use model_persistence::persistence;

use crate::output::outln;
use crate::output::{json, Format, Outcome, Progress, ProgressBar};

/// `modelctl card BUNDLE`: the card as JSON, from the header only.
pub(crate) fn card(bundle: &Path) -> Outcome {
    let card = persistence::read_card(bundle)?;
    outln!("{}", card.to_json()?);
    Ok(())
}

/// `modelctl verify BUNDLE`: every checksum of one file.
pub(crate) fn verify(bundle: &Path, format: Format, progress: ProgressBar) -> Outcome {
    let mut bar = Progress::new("verifying", progress);
    let summary = persistence::BundleReader::default().verify_with_progress(bundle, &mut |d, t| bar.update(d, t))?;
    let signer = super::signing::check_file(bundle)?;
    if format == Format::Json {
        let mut value = serde_json::to_value(&summary)?;
        if let Some(hint) = signer {
            value["signed_by"] = serde_json::Value::from(hint);
        }
        return json(&value);
    }
    outln!(
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
    if let Some(hint) = signer {
        outln!("signed by the trusted key {hint}");
    }
    Ok(())
}

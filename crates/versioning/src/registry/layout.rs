//! Where each record lives in storage.
//!
//! ```text
//! <root>/.registry.json                                   the marker `create` writes
//! <root>/<model>/versions/<semver>/claim.json             create-if-absent: who publishes this number
//! <root>/<model>/versions/<semver>/model.bundle           immutable
//! <root>/<model>/versions/<semver>/card.json
//! <root>/<model>/versions/<semver>/model.bundle.sig       its model-signing signature, if signed
//! <root>/<model>/versions/<semver>/version.json           written last: the version is visible
//! <root>/<model>/versions/<semver>/attachments/<name>.json immutable
//! <root>/<model>/versions/<semver>/pins/<unique>           a promote in progress: do not prune
//! <root>/<model>/versions/<semver>/retiring                a prune in progress: do not promote
//! <root>/<model>/aliases/<alias>                          compare-and-swap: target and latest moves
//! <root>/<model>/alias-log/<alias>/<ts>-<unique>.json     immutable: older moves, named by the alias
//! <root>/<model>/events/<ts>-<unique>.json                one immutable object per event
//! <root>/<model>/index/snapshot.json                      compare-and-swap: the compacted index
//! <root>/<model>/index/journal/<semver>@<unique>          a version whose state changed since
//! ```
//!
//! User names start with a letter or a digit, so the registry's own objects
//! (the marker, lock and temporary files, which start with `.`) never share
//! a name with a model, alias or attachment.

use semver::Version;

/// The cap on one alias object (its target and the log of its moves):
/// 64 MiB, some 300,000 moves.
pub const MAX_ALIAS_BYTES: u64 = 64 << 20;
/// The cap on one object of a model's index (the snapshot, a journal
/// entry): 256 MiB, about a million versions in the snapshot.
pub const MAX_INDEX_BYTES: u64 = 256 << 20;
/// The cap on the registry's marker (`.registry.json`): 64 KiB.
pub const MAX_MARKER_BYTES: u64 = 64 << 10;
/// The cap on every other registry object (version records, cards,
/// claims, pins, retiring marks, events, attachments, signatures): 16 MiB.
pub const MAX_OBJECT_BYTES: u64 = 16 << 20;

/// The most bytes the registry reads for the object at `key`. Bundles are
/// bounded by the bundle reader's limits, not here.
pub(super) fn cap(key: &str) -> u64 {
    if key == MARKER {
        MAX_MARKER_BYTES
    } else if key.ends_with("/model.bundle") {
        u64::MAX
    } else if key.contains("/index/") {
        MAX_INDEX_BYTES
    } else if key.contains("/aliases/") {
        MAX_ALIAS_BYTES
    } else {
        MAX_OBJECT_BYTES
    }
}

use crate::event::Event;
use crate::name::{AliasName, AttachmentName, ModelName};

/// The marker object that makes a location a registry.
pub(super) const MARKER: &str = ".registry.json";
/// The layout version written in the marker.
pub(super) const LAYOUT_VERSION: u32 = 1;

pub(super) fn versions(model: &ModelName) -> String {
    format!("{model}/versions")
}
pub(super) fn bundle(model: &ModelName, v: &Version) -> String {
    format!("{model}/versions/{v}/model.bundle")
}
pub(super) fn claim(model: &ModelName, v: &Version) -> String {
    format!("{model}/versions/{v}/claim.json")
}
pub(super) fn pins(model: &ModelName, v: &Version) -> String {
    format!("{model}/versions/{v}/pins")
}
pub(super) fn pin(model: &ModelName, v: &Version, unique: &str) -> String {
    format!("{model}/versions/{v}/pins/{unique}")
}
pub(super) fn retiring(model: &ModelName, v: &Version) -> String {
    format!("{model}/versions/{v}/retiring")
}
pub(super) fn card(model: &ModelName, v: &Version) -> String {
    format!("{model}/versions/{v}/card.json")
}
pub(super) fn record(model: &ModelName, v: &Version) -> String {
    format!("{model}/versions/{v}/version.json")
}
pub(super) fn attachments(model: &ModelName, v: &Version) -> String {
    format!("{model}/versions/{v}/attachments")
}
pub(super) fn attachment(model: &ModelName, v: &Version, name: &AttachmentName) -> String {
    format!("{model}/versions/{v}/attachments/{name}.json")
}
pub(super) fn aliases(model: &ModelName) -> String {
    format!("{model}/aliases")
}
pub(super) fn alias(model: &ModelName, alias: &AliasName) -> String {
    format!("{model}/aliases/{alias}")
}
/// A segment of an alias's move log: moves handed out of the alias object,
/// immutable, part of the log once the alias object names it.
pub(super) fn alias_log(model: &ModelName, alias: &AliasName, first: time::OffsetDateTime, unique: &str) -> String {
    format!(
        "{model}/alias-log/{alias}/{:020}-{unique}.json",
        first.unix_timestamp_nanos()
    )
}
pub(super) fn events(model: &ModelName) -> String {
    format!("{model}/events")
}
pub(super) fn event(model: &ModelName, event: &Event, unique: &str) -> String {
    format!("{model}/events/{:020}-{unique}.json", event.at.unix_timestamp_nanos())
}
pub(super) fn snapshot(model: &ModelName) -> String {
    format!("{model}/index/snapshot.json")
}
pub(super) fn journal(model: &ModelName) -> String {
    format!("{model}/index/journal")
}
pub(super) fn signature(model: &ModelName, v: &Version) -> String {
    format!("{model}/versions/{v}/model.bundle.sig")
}

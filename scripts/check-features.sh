#!/usr/bin/env bash
# The feature combinations users build, linted (not tested: one test run per
# combination would take CI past its budget): every crate with its default
# features alone, and the facade with no feature, each feature alone and all
# of them. A `#[cfg]` that leaves an import unused or a type undefined in one
# combination fails here, not in a user's build.
set -euo pipefail
cd "$(dirname "$0")/.."
lint() {
    echo "-- cargo clippy $*"
    cargo clippy --quiet "$@" -- -D warnings
}
for crate in model-persistence-core model-persistence-models model-persistence-testkit model-persistence-versioning model-persistence-gate \
    model-persistence-serving model-persistence-report model-persistence-server; do
    lint -p "$crate" --lib
done
for feature in linfa onnx; do
    lint -p model-persistence-models --lib --no-default-features --features "$feature"
done
lint -p model-persistence-cli --bins
lint -p model-persistence --lib --no-default-features
for feature in linfa object-store testing onnx async; do
    lint -p model-persistence --lib --no-default-features --features "$feature"
done
lint -p model-persistence --lib --all-features

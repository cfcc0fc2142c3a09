#!/usr/bin/env bash
# Packages every crate of the family and verifies each package as
# `cargo publish` does: unpacked on its own, it must build with its default
# features from nothing but its own files (a file read from outside the
# crate's folder, or a README that is not inside it, fails here).
#
#   bash scripts/package.sh [--allow-dirty]
#
# The verification builds share the workspace's target directory and are
# built with the workspace's dev profile (dependencies optimised, no debug
# information), given here as configuration because an unpacked package
# does not carry the workspace's profiles: the dependencies it compiles are
# the ones the test build reuses.
set -euo pipefail
cd "$(dirname "$0")/.."
# Verification unpacks the family's packages from a local registry into
# CARGO_HOME, and a version unpacked there by an earlier run is reused as
# is: its stale sources then fail (or pass) in place of today's. Those
# copies (local registries' source folders start with '-', crates.io's do
# not) are removed first.
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
for stale in "$cargo_home"/registry/src/-*/model-persistence*; do
  if [ -e "$stale" ]; then rm -rf "$stale"; fi
done
cargo package --workspace --locked "$@" \
  --config 'profile.dev.debug="line-tables-only"' \
  --config 'profile.dev.incremental=false' \
  --config 'profile.dev.package."*".opt-level=3' \
  --config 'profile.dev.package."*".debug=false'

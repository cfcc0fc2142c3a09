#!/usr/bin/env bash
# Runs every test of the workspace. Starts what the tests need, stops it after.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-features

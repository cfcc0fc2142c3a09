#!/usr/bin/env bash
# Runs every test of the workspace: starts the S3-compatible test server
# (SeaweedFS from PyPI, on 127.0.0.1), runs `cargo test --workspace
# --all-features`, and stops the server, whatever the outcome.
set -euo pipefail
cd "$(dirname "$0")/.."
trap 'scripts/s3-server.sh stop' EXIT
eval "$(scripts/s3-server.sh start)"
cargo test --workspace --all-features

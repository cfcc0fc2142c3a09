#!/usr/bin/env bash
# The side-by-side comparison with the Python peers, in one run on this
# machine: this project (examples/peers.rs, release build) and numpy,
# safetensors, pickle, joblib and scikit-learn (scripts/bench-peers.py,
# pinned below) on the same data, files in the same directory, page cache
# warm. Prints a table of medians and ratios; the raw numbers go to
# target/bench-peers/{ours,peers}.json.
#
#   bash scripts/bench-peers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/bench-peers
rm -rf "$out"
mkdir -p "$out"
py="$(scripts/venv.sh "numpy==2.4.6" "scikit-learn==1.9.1" "joblib==1.6.0" "safetensors==0.8.0")"
cargo build --release --quiet --example peers --features linfa,testing
target/release/examples/peers "$out" > "$out/ours.json"
"$py" scripts/bench-peers.py "$out"

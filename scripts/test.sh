#!/usr/bin/env bash
# Runs every test of the workspace:
#  1. creates the project's Python virtual environment (target/venv) with the
#     pinned packages the tests need, and re-runs scripts/onnx-fixtures.py into
#     a temporary folder: the committed ONNX fixtures must come out identical,
#     so a fresh machine proves they are reproducible; the same environment
#     holds the Open Inference Protocol's reference client (tritonclient[http])
#     that the server's tests drive, and the OpenSSF model_signing tool the
#     signing tests check signatures against;
#  2. starts the S3-compatible test server (SeaweedFS from PyPI, on 127.0.0.1);
#  3. runs `cargo test --workspace --all-features`;
#  4. stops the server, whatever the outcome.
set -euo pipefail
cd "$(dirname "$0")/.."

py="$(scripts/venv.sh "numpy==2.4.6" "scikit-learn==1.9.1" "skl2onnx==1.20.0" "onnx==1.23.2" "onnxruntime==1.32.0" \
  "xgboost-cpu==3.2.0" "lightgbm==4.7.0" "onnxmltools==1.16.0" \
  "tritonclient[http]==2.73.0" "model-signing==1.1.1" "pyopenssl==26.4.0")"
export MP_PYTHON="$py"  # the server's test runs the protocol's reference client with it
fixtures="$(mktemp -d)"
trap 'rm -rf "$fixtures"; scripts/s3-server.sh stop' EXIT
"$py" scripts/onnx-fixtures.py "$fixtures" >/dev/null
for f in tests/fixtures/onnx/*; do
  if ! cmp -s "$f" "$fixtures/$(basename "$f")"; then
    echo "scripts/onnx-fixtures.py no longer reproduces $f: the fixtures or the pinned packages changed" >&2
    exit 1
  fi
done
echo "ONNX fixtures reproduced from scikit-learn, skl2onnx and onnxruntime"

eval "$(scripts/s3-server.sh start)"
cargo test --workspace --all-features

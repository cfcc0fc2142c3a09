#!/usr/bin/env bash
# Checks the committed ONNX fixtures on any CPU (scripts/test.sh runs it):
#  1. their recorded outputs equal onnxruntime's on the committed graphs
#     (labels identical, scores within 1e-5), for every fixture;
#  2. scripts/onnx-fixtures.py, run again into a temporary folder, writes
#     the same bytes where the script controls the arithmetic (the handmade
#     ensembles) and the same graph structure where a library trained the
#     model (scripts/check-fixtures.py says which is which, and why);
#  3. the check of 1 fails on a copy whose one recorded probability is 0.01
#     off: a check that cannot fail checks nothing.
#
#   bash scripts/check-fixtures.sh            # uses target/venv, made by scripts/venv.sh
#
# It passes whatever BLAS kernel the machine picks, and under
# OPENBLAS_CORETYPE=Haswell or OPENBLAS_CORETYPE=SkylakeX exported.
set -euo pipefail
cd "$(dirname "$0")/.."

py="${MP_PYTHON:-$(scripts/venv.sh "numpy==2.4.6" "scikit-learn==1.9.1" "skl2onnx==1.20.0" "onnx==1.23.2" "onnxruntime==1.32.0" \
  "xgboost-cpu==3.2.0" "lightgbm==4.7.0" "onnxmltools==1.16.0")}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

"$py" scripts/check-fixtures.py outputs tests/fixtures/onnx tests/fixtures/onnx-torch

mkdir "$scratch/fresh"
# onnxruntime warns on stderr about the label output's declared shape.
"$py" scripts/onnx-fixtures.py "$scratch/fresh" >/dev/null 2>"$scratch/generator.log" || {
  cat "$scratch/generator.log" >&2
  echo "scripts/onnx-fixtures.py failed" >&2
  exit 1
}
"$py" scripts/check-fixtures.py regenerated tests/fixtures/onnx "$scratch/fresh"

mkdir "$scratch/off"
cp tests/fixtures/onnx/random_forest.* "$scratch/off/"
"$py" - "$scratch/off/random_forest.json" <<'EOF'
import json, sys
path = sys.argv[1]
with open(path) as f:
    fixture = json.load(f)
fixture["probabilities"][7][1] += 0.01
with open(path, "w") as f:
    json.dump(fixture, f)
EOF
if "$py" scripts/check-fixtures.py outputs "$scratch/off" 2>"$scratch/off.log"; then
  echo "scripts/check-fixtures.py accepted a recorded probability 0.01 off" >&2
  exit 1
fi
grep -q "random_forest: probability \[7, 1\]" "$scratch/off.log" || {
  cat "$scratch/off.log" >&2
  echo "scripts/check-fixtures.py refused the altered fixture for another reason than the altered probability" >&2
  exit 1
}
echo "a recorded probability 0.01 off is refused"

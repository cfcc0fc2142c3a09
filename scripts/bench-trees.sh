#!/usr/bin/env bash
# Tree ensembles on the flat forest beside onnxruntime, in one run: the
# scikit-learn forest fixture and a 300-tree XGBoost model (written by
# scripts/bench-trees.py into target/bench-trees), one row and 1000 rows,
# through this project's typed API and server predict path (criterion,
# benches/onnx.rs) and through onnxruntime from Python.
#
#   bash scripts/bench-trees.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/bench-trees
py="$(scripts/venv.sh "numpy==2.4.6" "scikit-learn==1.9.1" "skl2onnx==1.20.0" "onnx==1.23.2" "onnxruntime==1.32.0" \
  "xgboost-cpu==3.2.0" "onnxmltools==1.16.0")"
# onnxruntime is timed before and after this project's benches: on a
# shared machine the two runs show how much the machine itself moved.
"$py" scripts/bench-trees.py "$out" | tee "$out.onnxruntime.txt"
MP_BENCH_TREES="$out" cargo bench --features onnx --bench onnx 2>&1 | grep -E "^onnx_|time:|runs of" | tee "$out.ours.txt"
# Criterion's medians (the median sample's time per call), the statistic
# quoted for onnxruntime: on a shared machine the mean and slope above
# carry every pause of the machine into the figure.
"$py" - <<'EOF' | tee -a "$out.ours.txt"
import json, pathlib
for group in ("onnx_forest_30_trees_depth_8", "onnx_xgboost_300_trees_depth_6"):
    for f in sorted(pathlib.Path("target/criterion", group).glob("*/new/estimates.json")):
        median = json.loads(f.read_text())["median"]["point_estimate"]
        print(f"{group}/{f.parent.parent.name}: median {median / 1000:.2f} µs")
EOF
"$py" scripts/bench-trees.py "$out" --time | tee -a "$out.onnxruntime.txt"

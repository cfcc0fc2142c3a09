#!/usr/bin/env python3
"""The Python side of scripts/bench-trees.sh: writes a 300-tree XGBoost
classifier (depth 6, trained on the fraud-like set of scripts/onnx-fixtures.py)
as ONNX with 1000 held-out rows into DIR, then times onnxruntime on it and on
the scikit-learn forest fixture (tests/fixtures/onnx/random_forest.onnx), one
row and 1000 rows, medians. The Rust side (benches/onnx.rs) runs the same
graphs and rows.

    python scripts/bench-trees.py DIR            # write the model, then time
    python scripts/bench-trees.py DIR --time     # time only (the model is there)
"""

import json
import os
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(__file__))
from importlib import import_module  # noqa: E402

fixtures = import_module("onnx-fixtures")


def write_xgboost(out):
    import onnxmltools
    import xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    x, y = fixtures.fraud_like(20_000, 0.1, 42)
    rows, _ = fixtures.fraud_like(1_000, 0.1, 7)
    model = xgboost.XGBClassifier(n_estimators=300, max_depth=6, random_state=0, n_jobs=1, tree_method="exact")
    model.fit(x, y)
    onx = onnxmltools.convert_xgboost(
        model, initial_types=[("input", FloatTensorType([None, fixtures.N_FEATURES]))], target_opset=15
    )
    onx.graph.name = "xgboost_300"
    with open(os.path.join(out, "xgboost_300.onnx"), "wb") as f:
        f.write(onx.SerializeToString())
    with open(os.path.join(out, "xgboost_300.json"), "w") as f:
        json.dump({"rows": rows.astype(float).tolist()}, f)


def median_us(session, batch, repeat):
    name = session.get_inputs()[0].name
    for _ in range(50):
        session.run(None, {name: batch})
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        session.run(None, {name: batch})
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def main(out, time_only):
    os.makedirs(out, exist_ok=True)
    if not time_only:
        write_xgboost(out)
    here = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "onnx")
    forest_rows = np.array(json.load(open(os.path.join(here, "random_forest.json")))["rows"], dtype=np.float32)
    forest_x = np.array([forest_rows[i % len(forest_rows)] for i in range(1000)], dtype=np.float32)
    xgb_x = np.array(json.load(open(os.path.join(out, "xgboost_300.json")))["rows"], dtype=np.float32)
    for label, path, x in [
        ("scikit-learn forest (30 trees, depth 8)", os.path.join(here, "random_forest.onnx"), forest_x),
        ("XGBoost (300 trees, depth 6)", os.path.join(out, "xgboost_300.onnx"), xgb_x),
    ]:
        s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        print(f"onnxruntime {ort.__version__}, {label}: 1 row {median_us(s, x[:1], 3000):.1f} µs, "
              f"1000 rows {median_us(s, x, 300):.1f} µs")


if __name__ == "__main__":
    main(sys.argv[1], "--time" in sys.argv[2:])

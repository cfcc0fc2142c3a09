#!/usr/bin/env python3
"""Times onnxruntime on the ONNX forest fixture, one row and 1000 rows, as
benches/onnx.rs times this project's server on the same graph and rows.
Prints medians. Packages: numpy, onnxruntime (scripts/test.sh pins them)."""

import json
import os
import statistics
import time

import numpy as np
import onnxruntime as ort

here = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "onnx")
with open(os.path.join(here, "random_forest.json")) as f:
    rows = np.array(json.load(f)["rows"], dtype=np.float32)
x = np.array([rows[i % len(rows)] for i in range(1000)], dtype=np.float32)
session = ort.InferenceSession(os.path.join(here, "random_forest.onnx"), providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name


def median_us(batch, repeat):
    for _ in range(50):
        session.run(None, {name: batch})
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        session.run(None, {name: batch})
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


print(f"onnxruntime {ort.__version__}: 1 row {median_us(x[:1], 5000):.1f} µs, 1000 rows {median_us(x, 500):.1f} µs")

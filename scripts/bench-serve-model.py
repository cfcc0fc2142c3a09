"""The model of the serving benchmark: one scikit-learn forest, two files.

Usage: bench-serve-model.py OUT_DIR

Trains a RandomForestClassifier (100 trees, depth 8) on fraud-like data
(twenty features, 10% fraud) and writes, into OUT_DIR:

- mlserver/fraud/model.joblib and model-settings.json, mlserver/settings.json:
  what MLServer (mlserver-sklearn) serves;
- forest.onnx: the same forest exported with skl2onnx, what modelctl imports;
- row.json: one Open Inference Protocol request of a single row, sent to both.
"""

import json
import os
import sys

import joblib
import numpy as np
from skl2onnx import to_onnx
from sklearn.ensemble import RandomForestClassifier

out = sys.argv[1]
rng = np.random.default_rng(7)
n, features = 5000, 20
y = (rng.random(n) < 0.1).astype(np.int64)
x = rng.standard_normal((n, features))
for feature, shift in {0: 1.4, 2: 1.1, 3: 0.9, 5: 1.2, 11: 0.8, 15: 1.0, 16: 0.7}.items():
    x[y == 1, feature] += shift
x = x.astype(np.float32)
forest = RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0, n_jobs=1).fit(x, y)

model_dir = os.path.join(out, "mlserver", "fraud")
os.makedirs(model_dir, exist_ok=True)
joblib.dump(forest, os.path.join(model_dir, "model.joblib"))
with open(os.path.join(model_dir, "model-settings.json"), "w") as f:
    json.dump({"name": "fraud", "implementation": "mlserver_sklearn.SKLearnModel",
               "parameters": {"uri": "./model.joblib", "version": "1.0.0"}}, f)
onx = to_onnx(forest, x[:1], options={id(forest): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
with open(os.path.join(out, "forest.onnx"), "wb") as f:
    f.write(onx.SerializeToString())
row = [round(float(v), 6) for v in x[0]]
with open(os.path.join(out, "row.json"), "w") as f:
    json.dump({"inputs": [{"name": "input", "shape": [1, features], "datatype": "FP64", "data": row}]}, f)

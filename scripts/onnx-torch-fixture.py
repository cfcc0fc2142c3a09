#!/usr/bin/env python3
"""A small PyTorch network exported to ONNX, with onnxruntime's outputs on
held-out rows: the fixture that shows a PyTorch export runs here.

    python scripts/onnx-torch-fixture.py OUT_DIR   # default: tests/fixtures/onnx-torch

Trains a 20-16-2 multilayer perceptron on the fraud-like data of
scripts/onnx-fixtures.py (same generator, same held-out rows), exports it
with torch.onnx.export (the TorchScript exporter, opset 17) with two outputs,
the label (int64) and the class probabilities (float32), and writes
mlp_torch.onnx and mlp_torch.json ({"rows", "labels", "probabilities",
"producer"}). Everything is seeded and single-threaded: running it again
gives the same graph and outputs.

Not run by scripts/test.sh: torch from PyPI is gigabytes of CUDA wheels.
Packages: torch==2.9.1, numpy==2.4.6, onnx==1.23.2, onnxruntime==1.32.0, and
scikit-learn==1.9.1 and skl2onnx==1.20.0 (onnx-fixtures.py, whose data it reuses).
"""

import importlib.util
import json
import os
import sys

import numpy as np
import onnxruntime as ort
import torch

here = os.path.dirname(__file__)
spec = importlib.util.spec_from_file_location("fixtures", os.path.join(here, "onnx-fixtures.py"))
fixtures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fixtures)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))

    def forward(self, x):
        probabilities = torch.softmax(self.body(x), dim=1)
        return torch.argmax(probabilities, dim=1), probabilities


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "tests", "fixtures", "onnx-torch")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x, y = fixtures.fraud_like(3000, 0.1, 42)
    held = fixtures.HELD_OUT
    train_x, train_y = torch.from_numpy(x[:-held]), torch.from_numpy(y[:-held])
    rows = x[-held:].copy()
    rows[0, :] = 8.0
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    loss = torch.nn.CrossEntropyLoss()
    for _ in range(200):
        opt.zero_grad()
        l = loss(net.body(train_x), train_y)
        l.backward()
        opt.step()
    net.eval()
    path = os.path.join(out, "mlp_torch.onnx")
    torch.onnx.export(
        net,
        (train_x[:1],),
        path,
        dynamo=False,
        input_names=["input"],
        output_names=["label", "probabilities"],
        dynamic_axes={"input": {0: "batch"}, "label": {0: "batch"}, "probabilities": {0: "batch"}},
        opset_version=17,
    )
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(None, {"input": rows})
    fixture = {
        "model": "mlp_torch",
        "n_features": 20,
        "rows": rows.astype(np.float64).tolist(),
        "labels": labels.astype(np.int64).tolist(),
        "probabilities": probabilities.astype(np.float64).tolist(),
        "producer": {"torch": torch.__version__, "onnxruntime": ort.__version__},
    }
    with open(os.path.join(out, "mlp_torch.json"), "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    print(f"mlp_torch: {os.path.getsize(path)} bytes, {int(labels.sum())} of {len(labels)} held-out rows flagged")


if __name__ == "__main__":
    main()

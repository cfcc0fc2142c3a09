#!/usr/bin/env python3
"""Checks the committed ONNX fixtures by what they mean, on any CPU.

    python scripts/check-fixtures.py outputs COMMITTED_DIR...
    python scripts/check-fixtures.py regenerated COMMITTED_DIR FRESH_DIR

`outputs`: every NAME.json's recorded outputs must equal onnxruntime's on
the committed NAME.onnx and the recorded rows: labels identical, every
probability and value within 1e-5 (TOLERANCE). This is what the Rust tests
rely on: they compare the project's outputs with these recorded ones.

`regenerated`: FRESH_DIR holds what scripts/onnx-fixtures.py wrote on this
machine. Which fixtures are compared byte for byte, and why:

- BYTE-CHECKED (both files identical): the ensembles the generator writes
  node by node (`handmade_*`, `tree_ensemble_v5_handmade`,
  `tree_ensemble_v5_member`). Every number in their graphs is drawn from
  numpy's seeded generator or computed by the script itself, with -0.0
  and NaN written as explicit bit patterns, so their bytes do not depend
  on the CPU. Their JSON holds onnxruntime's outputs, which are the
  runtime's arithmetic: those are compared within TOLERANCE, the rest of
  the JSON (rows, labels, names, versions) exactly.
- CHECKED BY MEANING (every other fixture): a library trained the model.
  scikit-learn's MLP follows the CPU's BLAS kernels (OpenBLAS picks them
  per CPU: an AVX-512 machine trains different weights from an AVX2 one),
  and a library's trained numbers are not a property anyone controls across
  CPUs. The regenerated graph must have the same structure: the same
  opsets, inputs and outputs with their types and shapes, the same nodes
  in the same order with the same inputs, outputs and attribute names and
  types, the same initializer names, types and shapes, and the same value
  for every attribute that is not a trained number (post transforms,
  aggregate functions, class labels, casts...). Trained numbers are the
  initializers' values, float attributes, and the tree ensembles' per-node
  and per-leaf lists. The JSON must have the same keys, rows, truth and
  producer versions. The committed outputs are checked against
  onnxruntime on the committed graph by `outputs`.

The PyTorch fixture (tests/fixtures/onnx-torch) is made by its own script,
which needs torch (3 GB), so it is not regenerated here; its recorded
outputs are checked by `outputs` like every other fixture's.
"""

import json
import math
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

TOLERANCE = 1e-5
# onnxruntime warns about the label output's declared shape on every run.
ort.set_default_logger_severity(3)
BYTE_CHECKED = {
    "handmade_classifier_logistic",
    "handmade_classifier_probit",
    "handmade_classifier_softmax",
    "handmade_classifier_softmax_zero",
    "handmade_regressor_average_probit",
    "handmade_regressor_max",
    "handmade_regressor_min",
    "tree_ensemble_v5_handmade",
    "tree_ensemble_v5_member",
}
# JSON keys holding onnxruntime's arithmetic.
OUTPUT_KEYS = ("probabilities", "values", "targets")
# Attributes of the tree-ensemble operators that hold what training made.
TRAINED_PREFIXES = ("nodes_", "target_", "class_ids", "class_nodeids", "class_treeids", "class_weights", "leaf_",
                    "tree_roots", "membership_values", "base_values")


def fixtures(directory):
    return sorted(f[:-5] for f in os.listdir(directory) if f.endswith(".onnx"))


def rows_of(fixture):
    return np.array([[math.nan if v is None else v for v in row] for row in fixture["rows"]], dtype=np.float32)


def close(name, what, recorded, computed, problems):
    recorded = np.asarray(recorded, dtype=np.float64)
    computed = np.asarray(computed, dtype=np.float64).reshape(recorded.shape)
    both_nan = np.isnan(recorded) & np.isnan(computed)
    off = np.where(both_nan, 0.0, np.abs(recorded - computed))
    off = np.where(np.isnan(off), np.inf, off)
    if off.size and off.max() > TOLERANCE:
        at = np.unravel_index(np.argmax(off), off.shape)
        problems.append(f"{name}: {what} {[int(i) for i in at]} recorded {float(recorded[at])!r}, computed {float(computed[at])!r} "
                        f"(off by {float(off[at]):.3g}, more than {TOLERANCE})")


def check_outputs(directory, problems):
    """The recorded outputs equal onnxruntime's on the committed graph."""
    checked = 0
    for name in fixtures(directory):
        with open(os.path.join(directory, f"{name}.json")) as f:
            fixture = json.load(f)
        session = ort.InferenceSession(os.path.join(directory, f"{name}.onnx"), providers=["CPUExecutionProvider"])
        outputs = session.run(None, {session.get_inputs()[0].name: rows_of(fixture)})
        if "labels" in fixture:
            labels = [str(v) if isinstance(fixture["labels"][0], str) else int(v) for v in outputs[0].reshape(-1)]
            if labels != fixture["labels"]:
                first = next(i for i, (a, b) in enumerate(zip(labels, fixture["labels"])) if a != b)
                problems.append(f"{name}: label of row {first} recorded {fixture['labels'][first]!r}, "
                                f"onnxruntime {labels[first]!r}")
            close(name, "probability", fixture["probabilities"], outputs[1], problems)
        elif "targets" in fixture:
            close(name, "target", fixture["targets"], outputs[0], problems)
            close(name, "value", fixture["values"], outputs[0][:, 0], problems)
        else:
            close(name, "value", fixture["values"], outputs[0], problems)
        checked += 1
    return checked


def trained(node, attribute):
    if node.domain == "ai.onnx.ml" and attribute.name.startswith(TRAINED_PREFIXES):
        return True
    return attribute.type in (onnx.AttributeProto.FLOAT, onnx.AttributeProto.FLOATS, onnx.AttributeProto.TENSOR)


def value_info(v):
    t = v.type.tensor_type
    dims = [d.dim_param or d.dim_value for d in t.shape.dim] if t.HasField("shape") else None
    return (v.name, t.elem_type, dims)


def structure(path):
    """What a graph is, without what training made."""
    model = onnx.load(path)
    g = model.graph
    nodes = []
    for n in g.node:
        attributes = []
        for a in n.attribute:
            value = "trained" if trained(n, a) else helper.get_attribute_value(a)
            attributes.append((a.name, a.type, value))
        nodes.append((n.op_type, n.domain, n.name, list(n.input), list(n.output), attributes))
    return {
        "ir_version": model.ir_version,
        "opsets": sorted((o.domain, o.version) for o in model.opset_import),
        "producer": (model.producer_name, model.producer_version),
        "graph": g.name,
        "inputs": [value_info(v) for v in g.input],
        "outputs": [value_info(v) for v in g.output],
        "initializers": [(i.name, i.data_type, list(i.dims)) for i in g.initializer],
        "nodes": nodes,
    }


def check_regenerated(committed, fresh, problems):
    names, again = fixtures(committed), fixtures(fresh)
    if names != again:
        problems.append(f"the generator writes {again}, the committed folder holds {names}")
    for name in sorted(set(names) & set(again)):
        paths = {kind: (os.path.join(committed, f"{name}.{kind}"), os.path.join(fresh, f"{name}.{kind}")) for kind in ("onnx", "json")}
        with open(paths["json"][0]) as f:
            old = json.load(f)
        with open(paths["json"][1]) as f:
            new = json.load(f)
        if name in BYTE_CHECKED:
            with open(paths["onnx"][0], "rb") as a, open(paths["onnx"][1], "rb") as b:
                if a.read() != b.read():
                    problems.append(f"{name}.onnx: the generator no longer writes the committed bytes")
            for key in OUTPUT_KEYS:
                if (key in old) != (key in new):
                    problems.append(f"{name}.json: {key!r} present in one of the two")
                elif key in old:
                    close(name, f"regenerated {key[:-1]}", old[key], new[key], problems)
            if {k: v for k, v in old.items() if k not in OUTPUT_KEYS} != {k: v for k, v in new.items() if k not in OUTPUT_KEYS}:
                problems.append(f"{name}.json: rows, labels, names or versions differ from what the generator writes")
        else:
            a, b = structure(paths["onnx"][0]), structure(paths["onnx"][1])
            for part in a:
                if a[part] != b[part]:
                    problems.append(f"{name}.onnx: the graph's {part} differ from what the generator writes")
            if sorted(old) != sorted(new):
                problems.append(f"{name}.json: keys {sorted(old)} committed, {sorted(new)} regenerated")
            for key in ("model", "n_features", "rows", "truth", "producer"):
                if old.get(key) != new.get(key):
                    problems.append(f"{name}.json: {key!r} differs from what the generator writes")
    return len(names)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "outputs":
        problems, count = [], 0
        for directory in sys.argv[2:]:
            count += check_outputs(directory, problems)
        what = f"recorded outputs of {count} fixtures equal onnxruntime's on the committed graphs (within {TOLERANCE})"
    elif len(sys.argv) == 4 and sys.argv[1] == "regenerated":
        problems = []
        count = check_regenerated(sys.argv[2], sys.argv[3], problems)
        what = (f"{count} fixtures regenerated: {len(BYTE_CHECKED)} byte for byte, "
                f"{count - len(BYTE_CHECKED)} by structure (trained by a library)")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(what)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Trains scikit-learn models on fraud-like data, exports them to ONNX with
skl2onnx, and writes fixtures with onnxruntime's outputs on held-out rows.

    python scripts/onnx-fixtures.py OUT_DIR        # default: tests/fixtures/onnx

For each model NAME it writes NAME.onnx and NAME.json:
{"model", "n_features", "rows", "truth", "labels", "probabilities",
"producer"}: held-out rows with their true classes and onnxruntime's outputs.
The Rust tests load NAME.onnx, run the rows and compare with onnxruntime's
labels (identical) and probabilities (within 1e-5). Everything is seeded:
running it again on the same machine gives the same bytes. Across CPUs
only what this script computes itself is byte-for-byte the same (the
handmade ensembles, the integer-coded sets, the held-out rows); what a
library trains (the MLP's weights follow the CPU's BLAS kernels) may
differ in its trained numbers. scripts/check-fixtures.sh checks each
fixture by what it means, and says which are compared byte for byte.

Tree ensembles (which run on the project's flat forest rather than tract)
get more fixtures, on the same held-out rows with some values missing (NaN):
extra trees, gradient boosting (two and three classes: base values, LOGISTIC
and SOFTMAX), and two regressors, whose NAME.json holds "values" instead of
labels and probabilities.

Two more put nodes after the trees that change their outputs (a target's
scaling undone; probabilities clipped).

Two scikit-learn pipelines put imputation (SimpleImputer) and scaling
(StandardScaler, MinMaxScaler) before a forest and a boosted regressor.

XGBoost and LightGBM models (converted by onnxmltools, which writes
ai.onnx.ml opset 1 and ONNX opset 15) get fixtures of the same form.

Packages (pinned in scripts/test.sh): numpy, scikit-learn, skl2onnx,
onnx, onnxruntime, xgboost-cpu, lightgbm, onnxmltools.
"""

import json
import os
import sys

# Converters iterate over sets (the order of opset imports, for one): with
# Python's per-process string hashing the bytes of a graph could change
# from run to run. Run with a fixed hash seed.
if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)

import numpy as np
import onnxruntime as ort
import sklearn
import skl2onnx
from skl2onnx import to_onnx
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.tree import DecisionTreeClassifier
from sklearn.ensemble import RandomForestClassifier

N_FEATURES = 20


def _int_attributes():
    """skl2onnx 1.20.0 passes scikit-learn 1.9's HistGradientBoosting trees
    to onnx with numpy uint32 node ids and numpy booleans among integer
    attributes, which onnx 1.23 refuses ("Expected an int, got a boolean");
    such lists are made plain ints before the attribute is made. Nothing
    else changes: the graph is what skl2onnx meant to write."""
    import onnx.helper as helper

    make = helper.make_attribute

    def make_attribute(key, value, *args, **kwargs):
        if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, (int, bool, np.integer, np.bool_)) for v in value
        ):
            value = [int(v) for v in value]
        return make(key, value, *args, **kwargs)

    helper.make_attribute = make_attribute


_int_attributes()
HELD_OUT = 256


def fraud_like(samples, fraud_share, seed):
    """Twenty standard-normal features; fraud shifts seven of them."""
    rng = np.random.default_rng(seed)
    y = np.zeros(samples, dtype=np.int64)
    y[: int(round(samples * fraud_share))] = 1
    rng.shuffle(y)
    x = rng.standard_normal((samples, N_FEATURES))
    shifts = {0: 1.4, 2: 1.1, 3: 0.9, 5: 1.2, 11: 0.8, 15: 1.0, 16: 0.7}
    for feature, shift in shifts.items():
        x[y == 1, feature] += shift
    return x.astype(np.float32), y


def models():
    return {
        "logistic_regression": LogisticRegression(max_iter=500),
        "decision_tree": DecisionTreeClassifier(max_depth=6, random_state=0),
        "random_forest": RandomForestClassifier(n_estimators=30, max_depth=8, random_state=0),
        "mlp": MLPClassifier(hidden_layer_sizes=(16,), max_iter=2000, random_state=0),
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "onnx")
    os.makedirs(out, exist_ok=True)
    x, y = fraud_like(3000, 0.1, 42)
    train_x, train_y = x[:-HELD_OUT], y[:-HELD_OUT]
    rows, truth = x[-HELD_OUT:].copy(), y[-HELD_OUT:]
    # A row with extreme values, to check saturation behaves the same.
    rows[0, :] = 8.0
    for name, model in models().items():
        model.fit(train_x, train_y)
        onx = to_onnx(model, train_x[:1], options={id(model): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
        graph = onx.SerializeToString()
        with open(os.path.join(out, f"{name}.onnx"), "wb") as f:
            f.write(graph)
        session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
        labels, probabilities = session.run(None, {session.get_inputs()[0].name: rows})
        fixture = {
            "model": name,
            "n_features": N_FEATURES,
            "rows": rows.astype(np.float64).tolist(),
            "truth": truth.tolist(),
            "labels": labels.astype(np.int64).tolist(),
            "probabilities": probabilities.astype(np.float64).tolist(),
            "producer": {
                "scikit-learn": sklearn.__version__,
                "skl2onnx": skl2onnx.__version__,
                "onnxruntime": ort.__version__,
            },
        }
        with open(os.path.join(out, f"{name}.json"), "w") as f:
            json.dump(fixture, f, indent=1)
            f.write("\n")
        print(f"{name}: {len(graph)} bytes, {int(labels.sum())} of {len(labels)} held-out rows flagged")

    tree_fixtures(out, train_x, train_y, rows, truth)
    boosting_fixtures(out, train_x, train_y, rows)
    handmade_fixtures(out, train_x, train_y, rows)
    pipeline_fixtures(out, train_x, train_y, rows)
    after_trees_fixtures(out, train_x, train_y, rows)
    tree_ensemble_v5_fixtures(out, train_x, train_y, rows)


def tree_data(train_x, train_y, rows):
    """The held-out rows with some values missing, a three-class target and
    a continuous one, shared by every tree-ensemble fixture."""
    rows = rows.copy()
    rows[1::17, 3] = np.nan
    rows[2::23, 0] = np.nan
    three = train_y + (train_x[:, 1] > 1.0)
    target = (0.5 * train_x[:, 0] + train_x[:, 2] - 0.25 * train_x[:, 5]).astype(np.float32)
    return rows, three, target


def write_tree_fixture(out, name, onx, rows, classifier, producer):
    """NAME.onnx, and NAME.json with onnxruntime's outputs on `rows`
    (labels and probabilities, or values); NaN as null."""
    graph = onx.SerializeToString()
    with open(os.path.join(out, f"{name}.onnx"), "wb") as f:
        f.write(graph)
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: rows})
    fixture = {"model": name, "n_features": N_FEATURES, "rows": [[None if np.isnan(v) else float(v) for v in r] for r in rows.astype(np.float64)]}
    if classifier and outputs[0].dtype.kind in "OSU":
        fixture["labels"] = [str(label) for label in outputs[0]]
        fixture["probabilities"] = outputs[1].astype(np.float64).tolist()
    elif classifier:
        fixture["labels"] = outputs[0].astype(np.int64).tolist()
        fixture["probabilities"] = outputs[1].astype(np.float64).tolist()
    elif outputs[0].ndim == 2 and outputs[0].shape[1] > 1:
        fixture["values"] = outputs[0][:, 0].astype(np.float64).tolist()
        fixture["targets"] = outputs[0].astype(np.float64).tolist()
    else:
        fixture["values"] = outputs[0].astype(np.float64).reshape(-1).tolist()
    fixture["producer"] = {**producer, "onnxruntime": ort.__version__}
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    print(f"{name}: {len(graph)} bytes")


def tree_fixtures(out, train_x, train_y, rows, truth):
    """The tree ensembles: classifiers and regressors, NaN in some rows."""
    rows, three, target = tree_data(train_x, train_y, rows)
    cases = [
        ("extra_trees", ExtraTreesClassifier(n_estimators=20, max_depth=8, random_state=0), train_y),
        ("gradient_boosting", GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0), train_y),
        ("gradient_boosting_3class", GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0), three),
        ("random_forest_regressor", RandomForestRegressor(n_estimators=20, max_depth=8, random_state=0), target),
        ("extra_trees_regressor", ExtraTreesRegressor(n_estimators=20, max_depth=8, random_state=0), target),
        ("gradient_boosting_regressor", GradientBoostingRegressor(n_estimators=30, max_depth=3, random_state=0), target),
        ("hist_gradient_boosting", HistGradientBoostingClassifier(max_iter=30, max_depth=4, random_state=0), train_y),
        ("hist_gradient_boosting_regressor", HistGradientBoostingRegressor(max_iter=30, max_depth=4, random_state=0), target),
    ]
    # Classes named by strings (`classlabels_strings`), two and three.
    named = np.array(["legit", "fraud", "review"])
    cases += [
        ("random_forest_string_labels", RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0), named[three]),
        ("gradient_boosting_string_labels", GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=0), named[train_y]),
    ]
    for name, model, y in cases:
        model.fit(train_x, y)
        classifier = hasattr(model, "predict_proba")
        options = {id(model): {"zipmap": False}} if classifier else None
        onx = to_onnx(model, train_x[:1], options=options, target_opset={"": 17, "ai.onnx.ml": 3})
        producer = {"scikit-learn": sklearn.__version__, "skl2onnx": skl2onnx.__version__}
        write_tree_fixture(out, name, onx, rows, classifier, producer)


def boosting_fixtures(out, train_x, train_y, rows):
    """XGBoost and LightGBM through onnxmltools, NaN in some rows."""
    import lightgbm
    import onnxmltools
    import xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    rows, three, target = tree_data(train_x, train_y, rows)
    types = [("input", FloatTensorType([None, N_FEATURES]))]
    xgb = dict(max_depth=4, random_state=0, n_jobs=1, tree_method="exact")
    lgb = dict(num_leaves=15, random_state=0, n_jobs=1, deterministic=True, force_row_wise=True, verbose=-1)
    cases = [
        ("xgboost", xgboost.XGBClassifier(n_estimators=30, **xgb), train_y, onnxmltools.convert_xgboost),
        ("xgboost_3class", xgboost.XGBClassifier(n_estimators=15, **xgb), three, onnxmltools.convert_xgboost),
        ("xgboost_regressor", xgboost.XGBRegressor(n_estimators=30, **xgb), target, onnxmltools.convert_xgboost),
        ("lightgbm", lightgbm.LGBMClassifier(n_estimators=30, **lgb), train_y, onnxmltools.convert_lightgbm),
        ("lightgbm_regressor", lightgbm.LGBMRegressor(n_estimators=30, **lgb), target, onnxmltools.convert_lightgbm),
    ]
    for name, model, y, convert in cases:
        model.fit(train_x, y)
        classifier = hasattr(model, "predict_proba")
        extra = {"zipmap": False} if classifier and convert is onnxmltools.convert_lightgbm else {}
        onx = convert(model, initial_types=types, target_opset=15, **extra)
        onx.graph.name = name  # onnxmltools names graphs with a random UUID
        library = type(model).__module__.split(".")[0]
        producer = {library: __import__(library).__version__, "onnxmltools": onnxmltools.__version__}
        write_tree_fixture(out, name, onx, rows, classifier, producer)

    # A categorical feature: onnxmltools writes each categorical split as a
    # chain of BRANCH_EQ nodes, one per category, that share their true
    # child (the trees are graphs with shared nodes, which onnxruntime runs).
    def categorical(x, y=None):
        """Column 19 as one of eight categories, which tell the class
        (of the training rows) in part."""
        x = x.copy()
        noise = np.floor(np.abs(np.nan_to_num(x[:, 19])) * 3)
        x[:, 19] = (noise + (0 if y is None else 3 * y)) % 8
        return x

    model = lightgbm.LGBMClassifier(n_estimators=20, min_data_per_group=5, cat_smooth=1, **lgb)
    model.fit(categorical(train_x, three), three, categorical_feature=[19])
    onx = onnxmltools.convert_lightgbm(model, initial_types=types, target_opset=15, zipmap=False)
    onx.graph.name = "lightgbm_categorical"
    producer = {"lightgbm": lightgbm.__version__, "onnxmltools": onnxmltools.__version__}
    write_tree_fixture(out, "lightgbm_categorical", onx, categorical(rows), True, producer)


def pipeline_fixtures(out, train_x, train_y, rows):
    """scikit-learn pipelines whose model is a tree ensemble, after
    imputation (Imputer) and scaling (Scaler): those nodes run on tract, the
    trees on the flat forest. NaN in some rows."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    rows, three, target = tree_data(train_x, train_y, rows)
    cases = [
        (
            "pipeline_imputer_scaler_forest",
            Pipeline([
                ("impute", SimpleImputer(strategy="median")),
                ("scale", StandardScaler()),
                ("trees", RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0)),
            ]),
            three,
        ),
        (
            "pipeline_scaler_boosting_regressor",
            Pipeline([
                ("scale", MinMaxScaler()),
                ("trees", GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0)),
            ]),
            target,
        ),
    ]
    for name, model, y in cases:
        model.fit(train_x, y)
        classifier = hasattr(model, "predict_proba")
        options = {id(model.steps[-1][1]): {"zipmap": False}} if classifier else None
        onx = to_onnx(model, train_x[:1], options=options, target_opset={"": 17, "ai.onnx.ml": 3})
        producer = {"scikit-learn": sklearn.__version__, "skl2onnx": skl2onnx.__version__}
        write_tree_fixture(out, name, onx, rows, classifier, producer)


def after(onx, output, ops, constants):
    """Appends `ops` (op type, inputs, attributes) after the graph's output
    named `output`, which they compute from what the trees gave (named
    `trees_OUTPUT`); `constants` are float initializers by name."""
    from onnx import helper, numpy_helper

    graph = onx.graph
    source = f"trees_{output}"
    for node in graph.node:
        node.output[:] = [source if o == output else o for o in node.output]
        node.input[:] = [source if i == output else i for i in node.input]
    for name, value in constants.items():
        graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
    previous = source
    for i, (op, inputs, attributes) in enumerate(ops):
        target = output if i == len(ops) - 1 else f"{output}_{i}"
        graph.node.append(helper.make_node(op, [previous] + inputs, [target], name=f"after_{i}", **attributes))
        previous = target
    return onx


def after_trees_fixtures(out, train_x, train_y, rows):
    """Tree ensembles with nodes after them that change the outputs (the
    inverse of a target's scaling; probabilities clipped): those nodes run
    on tract from the trees' outputs. NaN in some rows."""
    rows, three, target = tree_data(train_x, train_y, rows)
    regressor = GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0).fit(train_x, target)
    onx = to_onnx(regressor, train_x[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    onx = after(onx, onx.graph.output[0].name, [("Mul", ["scale"], {}), ("Add", ["offset"], {})], {"scale": [2.5], "offset": [10.0]})
    producer = {"scikit-learn": sklearn.__version__, "skl2onnx": skl2onnx.__version__}
    write_tree_fixture(out, "after_trees_scaled_regressor", onx, rows, False, producer)
    forest = RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0).fit(train_x, three)
    onx = to_onnx(forest, train_x[:1], options={id(forest): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    onx = after(onx, onx.graph.output[1].name, [("Clip", ["low", "high"], {})], {"low": 0.05, "high": 0.95})
    write_tree_fixture(out, "after_trees_clipped_classifier", onx, rows, True, producer)


V5_MODES = {"BRANCH_LEQ": 0, "BRANCH_LT": 1, "BRANCH_GTE": 2, "BRANCH_GT": 3, "BRANCH_EQ": 4, "BRANCH_NEQ": 5}
V5_AGGREGATES = {"AVERAGE": 0, "SUM": 1, "MIN": 2, "MAX": 3}
V5_POSTS = {"NONE": 0, "SOFTMAX": 1, "LOGISTIC": 2, "SOFTMAX_ZERO": 3, "PROBIT": 4}


def as_tree_ensemble(onx):
    """The graph's TreeEnsembleRegressor (one weight per leaf) written as
    ai.onnx.ml opset 5's TreeEnsemble: interior nodes and leaves apart, a
    one-leaf tree as a node whose branches both reach the leaf, base values
    (which TreeEnsemble dropped) added by an Add after it."""
    from onnx import TensorProto, helper, numpy_helper

    graph = onx.graph
    [old] = [n for n in graph.node if n.op_type == "TreeEnsembleRegressor"]
    a = {x.name: helper.get_attribute_value(x) for x in old.attribute}
    modes = [m.decode() for m in a["nodes_modes"]]
    keys = list(zip(a["nodes_treeids"], a["nodes_nodeids"]))
    weights = {}
    for t, n, k, w in zip(a["target_treeids"], a["target_nodeids"], a["target_ids"], a["target_weights"]):
        weights.setdefault((t, n), []).append((k, w))
    leaves = [key for key, mode in zip(keys, modes) if mode == "LEAF"]
    assert all(len(weights.get(key, [])) == 1 for key in leaves), "one weight per leaf"
    leaf_index = {key: j for j, key in enumerate(leaves)}
    interior = [i for i, mode in enumerate(modes) if mode != "LEAF"]
    node_index = {keys[i]: j for j, i in enumerate(interior)}
    missing = a.get("nodes_missing_value_tracks_true", [0] * len(keys))
    cols = {k: [] for k in ["featureids", "splits", "modes", "truenodeids", "trueleafs", "falsenodeids", "falseleafs", "missing"]}

    def child(tree, node_id):
        key = (tree, node_id)
        return (leaf_index[key], 1) if key in leaf_index else (node_index[key], 0)

    for i in interior:
        tree = keys[i][0]
        cols["featureids"].append(a["nodes_featureids"][i])
        cols["splits"].append(a["nodes_values"][i])
        cols["modes"].append(V5_MODES[modes[i]])
        for side, ids in (("true", a["nodes_truenodeids"]), ("false", a["nodes_falsenodeids"])):
            index, is_leaf = child(tree, ids[i])
            cols[f"{side}nodeids"].append(index)
            cols[f"{side}leafs"].append(is_leaf)
        cols["missing"].append(missing[i])
    roots = []
    for tree in dict.fromkeys(t for t, _ in keys):
        root = next(key for key in keys if key[0] == tree)
        if root in node_index:
            roots.append(node_index[root])
            continue
        roots.append(len(cols["modes"]))  # a one-leaf tree
        for k, v in [("featureids", 0), ("splits", 0.0), ("modes", 0), ("truenodeids", leaf_index[root]), ("trueleafs", 1),
                     ("falsenodeids", leaf_index[root]), ("falseleafs", 1), ("missing", 0)]:
            cols[k].append(v)
    new = helper.make_node(
        "TreeEnsemble", list(old.input), ["trees_out"], domain="ai.onnx.ml", name=old.name,
        nodes_featureids=cols["featureids"],
        nodes_splits=helper.make_tensor("nodes_splits", TensorProto.FLOAT, [len(cols["splits"])], cols["splits"]),
        nodes_modes=helper.make_tensor("nodes_modes", TensorProto.UINT8, [len(cols["modes"])], cols["modes"]),
        nodes_truenodeids=cols["truenodeids"], nodes_trueleafs=cols["trueleafs"],
        nodes_falsenodeids=cols["falsenodeids"], nodes_falseleafs=cols["falseleafs"],
        nodes_missing_value_tracks_true=cols["missing"],
        tree_roots=roots,
        leaf_targetids=[weights[key][0][0] for key in leaves],
        leaf_weights=helper.make_tensor("leaf_weights", TensorProto.FLOAT, [len(leaves)], [weights[key][0][1] for key in leaves]),
        n_targets=a.get("n_targets", 1),
        aggregate_function=V5_AGGREGATES[a.get("aggregate_function", b"SUM").decode()],
        post_transform=V5_POSTS[a.get("post_transform", b"NONE").decode()],
    )
    nodes = []
    output = old.output[0]
    for n in graph.node:
        if n is not old:
            nodes.append(n)
            continue
        nodes.append(new)
        if "base_values" in a:
            graph.initializer.append(numpy_helper.from_array(np.asarray([a["base_values"]], dtype=np.float32), "base_values"))
            nodes.append(helper.make_node("Add", ["trees_out", "base_values"], [output], name="base_values"))
        else:
            nodes.append(helper.make_node("Identity", ["trees_out"], [output], name="trees_out"))
    del graph.node[:]
    graph.node.extend(nodes)
    del onx.opset_import[:]
    onx.opset_import.extend([helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)])
    onx.ir_version = 10
    return onx


def tree_ensemble_v5_fixtures(out, train_x, train_y, rows):
    """Regressors as ai.onnx.ml opset 5's TreeEnsemble: a scikit-learn
    gradient boosting (its base value added after the trees) and an
    ensemble written node by node (every branch mode, missing values sent
    either way, AVERAGE, one-leaf trees). NaN in some rows."""
    from onnx import TensorProto, helper

    rows, three, target = tree_data(train_x, train_y, rows)
    model = GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0).fit(train_x, target)
    onx = to_onnx(model, train_x[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    producer = {"scikit-learn": sklearn.__version__, "skl2onnx": skl2onnx.__version__, "onnx": __import__("onnx").__version__}
    write_tree_fixture(out, "tree_ensemble_v5_boosting_regressor", as_tree_ensemble(onx), rows, False, producer)
    rng = np.random.default_rng(5)
    nodes, leaves = handmade_trees(rng, rows, 12, 5, 1, (-2.0, 2.0), True)
    for k, v in [("treeids", 12), ("nodeids", 0), ("featureids", 0), ("values", 0.0), ("modes", "LEAF"),
                 ("truenodeids", 0), ("falsenodeids", 0), ("missing_value_tracks_true", 0)]:
        nodes[k].append(v)  # a tree that is one leaf
    for k, v in [("treeids", 12), ("nodeids", 0), ("ids", 0), ("weights", 0.75)]:
        leaves[k].append(v)
    attrs = {f"nodes_{k}": v for k, v in nodes.items()}
    attrs.update({f"target_{k}": v for k, v in leaves.items()})
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, N_FEATURES])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])
    node = helper.make_node("TreeEnsembleRegressor", ["X"], ["Y"], domain="ai.onnx.ml", n_targets=1,
                            aggregate_function="AVERAGE", post_transform="NONE", **attrs)
    onx = helper.make_model(helper.make_graph([node], "tree_ensemble_v5_handmade", [x], [y]), producer_name="onnx-fixtures.py")
    again = type(onx)()
    again.CopyFrom(onx)  # as_tree_ensemble rewrites the graph it is given
    write_tree_fixture(out, "tree_ensemble_v5_handmade", as_tree_ensemble(onx), rows, False, {"onnx": __import__("onnx").__version__})
    member, member_rows = with_set_membership(as_tree_ensemble(again), rows, rng)
    write_tree_fixture(out, "tree_ensemble_v5_member", member, member_rows, False, {"onnx": __import__("onnx").__version__})


def with_set_membership(onx, rows, rng):
    """Every third interior node of the graph's TreeEnsemble made a
    BRANCH_MEMBER node, and the rows to run it on: the features those
    nodes read hold integer codes (round(2x), NaN kept), as categorical
    features do; each set is one to four codes seen in the rows and one
    that is not, the sets in membership_values in node order, each ended
    by NaN. (onnxruntime 1.32 refuses a set of more than one value that
    are not integers, and tests some sets by truncating the row's value to
    an integer: with integer codes it answers as the operator's
    definition, exact membership, does.)"""
    from onnx import TensorProto, helper, numpy_helper

    [node] = [n for n in onx.graph.node if n.op_type == "TreeEnsemble"]
    attrs = {a.name: a for a in node.attribute}
    modes = numpy_helper.to_array(attrs["nodes_modes"].t).copy()
    features = list(attrs["nodes_featureids"].ints)
    members_at = list(range(0, len(modes), 3))
    rows = rows.copy()
    for f in sorted({features[i] for i in members_at}):
        # `+ 0.0` makes every -0.0 a +0.0: np.unique below keeps one of two
        # equal values, and which one (0.0 or -0.0) follows the CPU's sort
        # kernel (AVX-512 or not), which would change the graph's bytes.
        rows[:, f] = np.round(2 * rows[:, f]) + 0.0
    members = []
    for i in members_at:
        column = rows[:, features[i]]
        seen = np.unique(column[~np.isnan(column)])
        chosen = rng.choice(seen, size=min(len(seen), int(rng.integers(1, 5))), replace=False)
        members.extend([*(float(v) for v in chosen), float(seen.max() + 7), QUIET_NAN])
        modes[i] = 6
    attrs["nodes_modes"].t.CopyFrom(helper.make_tensor("nodes_modes", TensorProto.UINT8, [len(modes)], modes.tolist()))
    node.attribute.append(helper.make_attribute(
        "membership_values", helper.make_tensor("membership_values", TensorProto.FLOAT, [len(members)], members)))
    return onx, rows


# The set separator, written as one explicit bit pattern (the quiet NaN
# 0x7FC00000 as float32), not as whatever NaN an expression makes.
QUIET_NAN = float(np.array([0x7FC00000], dtype=np.uint32).view(np.float32)[0])

HANDMADE_MODES = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"]


def handmade_trees(rng, rows, n_trees, depth, n_outputs, weights, every_output, twice=None):
    """Random trees written node by node: every branch mode, missing values
    sent either way, thresholds taken from the rows (so ties and equalities
    happen), at most one weight per leaf and output drawn from `weights`
    (one for every output when `every_output`; sometimes two, drawn from
    `twice`, when it is given)."""
    nodes = {k: [] for k in ["treeids", "nodeids", "featureids", "values", "modes", "truenodeids", "falsenodeids", "missing_value_tracks_true"]}
    leaves = {k: [] for k in ["treeids", "nodeids", "ids", "weights"]}

    def grow(tree, counter, level):
        me = counter[0]
        counter[0] += 1
        at = len(nodes["nodeids"])
        for k in nodes:
            nodes[k].append(0)
        nodes["treeids"][at], nodes["nodeids"][at] = tree, me
        if level == depth or (level > 0 and rng.random() < 0.2):
            nodes["modes"][at], nodes["values"][at] = "LEAF", 0.0
            always = int(rng.integers(n_outputs))
            for o in range(n_outputs):
                if every_output or o == always or rng.random() < 0.6:
                    leaves["treeids"].append(tree)
                    leaves["nodeids"].append(me)
                    leaves["ids"].append(o)
                    leaves["weights"].append(float(np.float32(rng.uniform(*weights))))
                    # A second weight for the same output (MIN and MAX take
                    # them one by one), drawn apart so the trees stay as they were.
                    if twice is not None and twice.random() < 0.3:
                        leaves["treeids"].append(tree)
                        leaves["nodeids"].append(me)
                        leaves["ids"].append(o)
                        leaves["weights"].append(float(np.float32(twice.uniform(*weights))))
            return me
        feature = int(rng.integers(N_FEATURES))
        column = rows[:, feature][~np.isnan(rows[:, feature])]
        nodes["featureids"][at] = feature
        nodes["values"][at] = float(column[rng.integers(len(column))])
        nodes["modes"][at] = HANDMADE_MODES[int(rng.integers(len(HANDMADE_MODES)))]
        nodes["missing_value_tracks_true"][at] = int(rng.integers(2))
        nodes["truenodeids"][at] = grow(tree, counter, level + 1)
        nodes["falsenodeids"][at] = grow(tree, counter, level + 1)
        return me

    for tree in range(n_trees):
        grow(tree, [0], 0)
    return nodes, leaves


def handmade_fixtures(out, train_x, train_y, rows):
    """Tree ensembles written node by node, not by an exporter, so every
    branch mode, aggregate function and post transform onnxruntime
    implements is checked against it (the exporters use few of them)."""
    from onnx import TensorProto, helper

    rows, _, _ = tree_data(train_x, train_y, rows)
    rng = np.random.default_rng(2026)
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, N_FEATURES])
    # (name, classes or None, targets, trees, aggregate, post transform, weight range, base values).
    # PROBIT is checked away from p = 0.5, where onnxruntime's single-precision
    # approximation loses most digits (one unit in the last place of the sum
    # moves it by 1e-4): the average of weights in (0.6, 0.95), sums below 0.4.
    cases = [
        ("handmade_regressor_average_probit", None, 2, 12, "AVERAGE", "PROBIT", (0.6, 0.95), None),
        ("handmade_regressor_min", None, 2, 10, "MIN", "NONE", (-2.0, 2.0), [0.5, -0.25]),
        ("handmade_regressor_max", None, 1, 10, "MAX", "NONE", (-2.0, 2.0), None),
        ("handmade_classifier_softmax", [3, 5, 7, 9], 4, 15, "SUM", "SOFTMAX", (-2.0, 2.0), [0.1, -0.2, -3.0, -0.4]),
        ("handmade_classifier_softmax_zero", [0, 1, 2], 3, 15, "SUM", "SOFTMAX_ZERO", (0.0, 1.0), None),
        ("handmade_classifier_logistic", [0, 1, 2], 3, 15, "SUM", "LOGISTIC", (-1.0, 1.0), None),
        ("handmade_classifier_probit", [0, 1, 2], 3, 15, "SUM", "PROBIT", (0.0, 0.4 / 15), None),
    ]
    for name, classes, n_outputs, n_trees, aggregate, post, weights, base in cases:
        twice = np.random.default_rng(7) if aggregate in ("MIN", "MAX") else None
        nodes, leaves = handmade_trees(rng, rows, n_trees, 5, n_outputs, weights, post == "PROBIT" and classes is None, twice)
        attrs = {f"nodes_{k}": v for k, v in nodes.items()}
        attrs["post_transform"] = post
        if base is not None:
            attrs["base_values"] = base
        if classes is None:
            prefix, op = "target", "TreeEnsembleRegressor"
            attrs["n_targets"] = n_outputs
            attrs["aggregate_function"] = aggregate
            outputs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, n_outputs])]
        else:
            prefix, op = "class", "TreeEnsembleClassifier"
            attrs["classlabels_int64s"] = classes
            outputs = [
                helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
                helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, n_outputs]),
            ]
        attrs.update({f"{prefix}_{k}": v for k, v in leaves.items()})
        node = helper.make_node(op, ["X"], [o.name for o in outputs], domain="ai.onnx.ml", **attrs)
        graph = helper.make_graph([node], name, [x], outputs)
        onx = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)], producer_name="onnx-fixtures.py"
        )
        onx.ir_version = 8
        write_tree_fixture(out, name, onx, rows, classes is not None, {"onnx": __import__("onnx").__version__})


if __name__ == "__main__":
    main()

"""The Python peers' side of scripts/bench-peers.sh: times numpy,
safetensors, pickle, joblib and scikit-learn on the data examples/peers.rs
wrote, then prints this project's numbers beside theirs with the ratios the
performance issue sets as targets.

    python scripts/bench-peers.py DIR   (DIR holds ours.json and the data)
"""
import hashlib
import io
import json
import os
import pickle
import statistics
import sys
import time

import joblib
import numpy as np
import sklearn
import safetensors
from safetensors.numpy import load_file, save_file
from sklearn.ensemble import RandomForestClassifier


def median(runs, f):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(d):
    ours = json.load(open(os.path.join(d, "ours.json")))
    peers = {}
    vector = np.fromfile(os.path.join(d, "vector.f64"), dtype="<f8")
    npy = os.path.join(d, "vector.npy")
    st = os.path.join(d, "vector.safetensors")
    np.save(npy, vector)
    save_file({"weights": vector}, st)
    peers["np_save"] = median(9, lambda: np.save(npy, vector))
    peers["np_load"] = median(9, lambda: np.load(npy))
    peers["safetensors_save"] = median(9, lambda: save_file({"weights": vector}, st))
    peers["safetensors_load"] = median(9, lambda: load_file(st))

    def read_sha():
        with open(os.path.join(d, "vector.bundle"), "rb") as f:
            hashlib.sha256(f.read()).digest()

    peers["python_read_sha256"] = median(9, read_sha)
    del vector

    x = np.fromfile(os.path.join(d, "forest_x.f64"), dtype="<f8").reshape(-1, 20)
    y = np.fromfile(os.path.join(d, "forest_y.u8"), dtype=np.uint8)
    rows = np.fromfile(os.path.join(d, "rows.f64"), dtype="<f8").reshape(-1, 20)
    forest = RandomForestClassifier(n_estimators=100, max_depth=15, random_state=7, n_jobs=1).fit(x, y)
    peers["sklearn_nodes"] = int(sum(t.tree_.node_count for t in forest.estimators_))
    pkl = os.path.join(d, "forest.pkl")
    with open(pkl, "wb") as f:
        pickle.dump(forest, f, protocol=5)

    def load_pickle():
        with open(pkl, "rb") as f:
            pickle.load(f)

    peers["pickle5_load"] = median(31, load_pickle)
    peers["pickle5_bytes"] = os.path.getsize(pkl)
    jl = os.path.join(d, "forest.joblib")
    joblib.dump(forest, jl, compress=3)
    peers["joblib3_bytes"] = os.path.getsize(jl)
    peers["joblib3_load"] = median(31, lambda: joblib.load(jl))
    peers["sklearn_predict_1000"] = median(51, lambda: forest.predict(rows))
    one = rows[:1]
    peers["sklearn_predict_1"] = median(501, lambda: forest.predict(one))
    json.dump(peers, open(os.path.join(d, "peers.json"), "w"))

    def fmt(v, unit):
        if unit == "B":
            return f"{v / 1e6:.2f} MB" if v >= 1e6 else f"{v / 1e3:.1f} kB"
        if v < 1e-3:
            return f"{v * 1e6:.1f} µs"
        return f"{v * 1e3:.1f} ms"

    print(
        f"Side by side, one run ({time.strftime('%Y-%m-%d')}; numpy {np.__version__}, scikit-learn "
        f"{sklearn.__version__}, joblib {joblib.__version__}, safetensors {safetensors.__version__}; "
        f"forest nodes: ours {int(ours['forest_nodes'])}, scikit-learn {peers['sklearn_nodes']})\n"
    )
    print("| case | this project | peer | ratio | target |")
    print("|---|---|---|---|---|")
    table = [
        ("100 MB f64, verified load, level 0", "vector_load_verified", "safetensors_load", "safetensors load (unverified)", "s", 1.5),
        ("same, against reading the file + SHA-256 (Rust)", "vector_load_verified", None, "read + SHA-256", "s", 1.3),
        ("same, against np.load", "vector_load_verified", "np_load", "np.load", "s", None),
        ("100 MB f64, save without fsync", "vector_save_nofsync", "np_save", "np.save", "s", 4.0),
        ("forest 100 trees depth 15, load level 3", "forest_load", "pickle5_load", "pickle protocol 5 load", "s", 1.0),
        ("forest file, level 3", "forest_file_bytes", "joblib3_bytes", "joblib compress 3", "B", 0.5),
        ("forest 100 trees depth 15, load level 0", "forest_load_level0", "pickle5_load", "pickle protocol 5 load", "s", 1.0),
        ("forest file, level 0", "forest_file_bytes_level0", "pickle5_bytes", "pickle protocol 5", "B", None),
        ("forest, predict 1000 rows", "forest_predict_1000", "sklearn_predict_1000", "scikit-learn predict", "s", 0.25),
        ("forest, predict 1 row", "forest_predict_1", "sklearn_predict_1", "scikit-learn predict", "s", None),
    ]
    for case, mine, theirs, label, unit, target in table:
        a = ours[mine]
        b = ours["vector_read_sha256"] if theirs is None else peers[theirs]
        ratio = a / b
        verdict = "" if target is None else (f"≤ {target}x: " + ("met" if ratio <= target else "NOT met"))
        print(f"| {case} | {fmt(a, unit)} | {label} {fmt(b, unit)} | {ratio:.2f}x | {verdict} |")
    one = ours["forest_predict_1"]
    print(f"| forest, one row under 10 µs | {fmt(one, 's')} | | | {'met' if one < 10e-6 else 'NOT met'} |")
    card = ours["vector_read_card"]
    print(f"| read_card of the 100 MB bundle, under 1 ms | {fmt(card, 's')} | | | {'met' if card < 1e-3 else 'NOT met'} |")
    peak = ours["vector_load_peak_rss"] - ours["vector_load_peak_rss_before"]
    size = ours["vector_file_bytes"]
    print(
        f"| peak memory of the 100 MB load | {fmt(peak, 'B')} | payload {fmt(size, 'B')} + model {fmt(size, 'B')} "
        f"| {peak / (2 * size):.2f}x | ≤ 1x: {'met' if peak <= 2 * size * 1.02 else 'NOT met'} |"
    )


if __name__ == "__main__":
    main(sys.argv[1])

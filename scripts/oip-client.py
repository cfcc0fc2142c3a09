"""A few requests through the Open Inference Protocol's reference client.

Usage: oip-client.py HOST:PORT MODEL N_FEATURES

Talks to a running server with tritonclient[http] (pinned in scripts/test.sh):
health, metadata, inference with binary tensors (the client's default) and
with JSON tensors, and an unknown model. Prints one JSON object with what it
saw, for the Rust test that starts the server to check.
"""

import json
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

url, model, n_features = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = httpclient.InferenceServerClient(url=url)
rows = np.array([[float(i + j) / 10.0 for j in range(n_features)] for i in range(3)], dtype=np.float64)
seen = {
    "live": client.is_server_live(),
    "ready": client.is_server_ready(),
    "model_ready": client.is_model_ready(model),
    "metadata": client.get_model_metadata(model),
    "server": client.get_server_metadata(),
}


def infer(binary):
    data = httpclient.InferInput("input", list(rows.shape), "FP64")
    data.set_data_from_numpy(rows, binary_data=binary)
    outputs = [
        httpclient.InferRequestedOutput("predict", binary_data=binary),
        httpclient.InferRequestedOutput("predict_proba", binary_data=binary),
    ]
    result = client.infer(model, [data], outputs=outputs, request_id="oip-1")
    response = result.get_response()
    return {
        "version": response["model_version"],
        "id": response.get("id"),
        "labels": result.as_numpy("predict").tolist(),
        "probabilities": result.as_numpy("predict_proba").tolist(),
    }


seen["binary"] = infer(True)
seen["json"] = infer(False)
seen["rows"] = rows.tolist()
try:
    client.infer("no-such-model", [httpclient.InferInput("input", [1, n_features], "FP64")])
    seen["unknown_model"] = "accepted"
except InferenceServerException as e:
    seen["unknown_model"] = {"status": e.status(), "message": e.message()}
except Exception as e:  # the client refuses to send an input without data
    seen["unknown_model"] = {"status": "client", "message": str(e)}
try:
    bad = httpclient.InferInput("input", [1, n_features + 1], "FP64")
    bad.set_data_from_numpy(np.zeros((1, n_features + 1)), binary_data=False)
    client.infer(model, [bad])
    seen["wrong_width"] = "accepted"
except InferenceServerException as e:
    seen["wrong_width"] = {"status": e.status(), "message": e.message()}
print(json.dumps(seen, default=str))

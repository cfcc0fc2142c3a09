"""The Open Inference Protocol's reference gRPC client against a server with
access control (the tokens of crates/server/tests/server_access.rs).

Usage: oip-access-client.py HOST:PORT

Each call is made with no token, a wrong one, and each scope's token, as
`authorization: Bearer TOKEN` metadata (tritonclient's `headers`). Prints
one JSON object: call -> token -> the gRPC status name ("OK" when answered).
"""

import json
import sys

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

url = sys.argv[1]
client = grpcclient.InferenceServerClient(url=url)
tokens = {
    "none": None,
    "wrong": "guess",
    "read": "read-secret",
    "infer": "infer-secret",
    "outcomes": "outcomes-secret",
    "admin": "admin-secret",
}
rows = np.array([[0.1, 0.2, 0.3, 0.4]], dtype=np.float32)


def infer(headers):
    data = grpcclient.InferInput("input", list(rows.shape), "FP32")
    data.set_data_from_numpy(rows)
    return client.infer("fraud", [data], headers=headers)


calls = {
    "live": lambda h: client.is_server_live(headers=h),
    "ready": lambda h: client.is_server_ready(headers=h),
    "model_ready": lambda h: client.is_model_ready("fraud", headers=h),
    "server_metadata": lambda h: client.get_server_metadata(headers=h),
    "metadata": lambda h: client.get_model_metadata("fraud", headers=h),
    "infer": infer,
    "repository_index": lambda h: client.get_model_repository_index(headers=h),
}
seen = {}
for name, call in calls.items():
    seen[name] = {}
    for who, token in tokens.items():
        headers = {"authorization": f"Bearer {token}"} if token else None
        try:
            call(headers)
            seen[name][who] = "OK"
        except InferenceServerException as e:
            seen[name][who] = str(e.status()).removeprefix("StatusCode.")
print(json.dumps(seen))

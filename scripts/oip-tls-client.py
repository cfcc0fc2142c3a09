"""The Open Inference Protocol's reference clients over TLS, verifying the
server's certificate against a CA: tritonclient over HTTPS and over gRPC
with TLS, on the one port.

Usage: oip-tls-client.py HOST:PORT CA.pem

Prints one JSON object: each transport's model version and labels.
"""

import json
import sys

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

url, ca = sys.argv[1], sys.argv[2]
rows = np.array([[0.1, 0.2, 0.3, 0.4], [1.0, -1.0, 0.5, 0.0]], dtype=np.float32)
seen = {}

h = httpclient.InferenceServerClient(url=url, ssl=True, ssl_options={"ca_certs": ca})
data = httpclient.InferInput("input", list(rows.shape), "FP32")
data.set_data_from_numpy(rows)
result = h.infer("fraud", [data])
seen["http"] = {"version": result.get_response()["model_version"], "labels": result.as_numpy("predict").tolist()}

g = grpcclient.InferenceServerClient(url=url, ssl=True, root_certificates=ca)
data = grpcclient.InferInput("input", list(rows.shape), "FP32")
data.set_data_from_numpy(rows)
result = g.infer("fraud", [data])
seen["grpc"] = {
    "version": result.get_response(as_json=True)["model_version"],
    "labels": result.as_numpy("predict").tolist(),
}
print(json.dumps(seen))

"""The Open Inference Protocol's reference gRPC client against a server that
also speaks REST on the same port, and hostile gRPC calls.

Usage: oip-grpc-client.py HOST:PORT MODEL N_FEATURES [--no-repository]

(--no-repository: the server runs without the repository extension, as the
image does when it serves a fetched bundle, so the load/unload calls are left out.)

With tritonclient[grpc] and tritonclient[http] (pinned in scripts/test.sh):
health, metadata and inference over gRPC (raw tensors, the client's way)
and over REST on the same port; then calls no client library would make
(malformed messages, wrong frames, impossible tensors, a message over the
server's limit), each through grpcio with bytes written by hand, and one
good call after them. Prints one JSON object with what it saw, for the Rust
test that starts the server to check.
"""

import json
import struct
import sys

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

url, model, n_features = sys.argv[1], sys.argv[2], int(sys.argv[3])
repository = sys.argv[4:] != ["--no-repository"]
rows = np.array([[float(i + j) / 10.0 for j in range(n_features)] for i in range(3)], dtype=np.float32)

g = grpcclient.InferenceServerClient(url=url)
seen = {
    "live": g.is_server_live(),
    "ready": g.is_server_ready(),
    "model_ready": g.is_model_ready(model),
    "unknown_ready": None,
    "metadata": json.loads(
        json.dumps(g.get_model_metadata(model, as_json=True))
    ),
    "server": g.get_server_metadata(as_json=True),
    "rows": rows.astype(np.float64).tolist(),
}
try:
    g.is_model_ready("nobody")
    seen["unknown_ready"] = "accepted"
except InferenceServerException as e:
    seen["unknown_ready"] = e.status()


def grpc_infer():
    data = grpcclient.InferInput("input", list(rows.shape), "FP32")
    data.set_data_from_numpy(rows)
    outputs = [grpcclient.InferRequestedOutput("predict"), grpcclient.InferRequestedOutput("predict_proba")]
    result = g.infer(model, [data], outputs=outputs, request_id="grpc-1")
    response = result.get_response(as_json=True)
    return {
        "version": response["model_version"],
        "id": response["id"],
        "labels": result.as_numpy("predict").tolist(),
        "probabilities": result.as_numpy("predict_proba").tolist(),
    }


def rest_infer():
    h = httpclient.InferenceServerClient(url=url)
    data = httpclient.InferInput("input", list(rows.shape), "FP32")
    data.set_data_from_numpy(rows)
    outputs = [httpclient.InferRequestedOutput("predict"), httpclient.InferRequestedOutput("predict_proba")]
    result = h.infer(model, [data], outputs=outputs, request_id="rest-1")
    return {
        "version": result.get_response()["model_version"],
        "id": result.get_response()["id"],
        "labels": result.as_numpy("predict").tolist(),
        "probabilities": result.as_numpy("predict_proba").tolist(),
    }


seen["grpc"] = grpc_infer()
seen["rest"] = rest_infer()

# Typed contents (no raw bytes): the answer comes back typed.
typed = service_pb2.ModelInferRequest(model_name=model, id="typed-1")
t = typed.inputs.add(name="input", datatype="FP64", shape=[1, n_features])
t.contents.fp64_contents.extend([0.5] * n_features)
reply = service_pb2.ModelInferResponse()
channel = grpc.insecure_channel(url)
call = channel.unary_unary(
    "/inference.GRPCInferenceService/ModelInfer",
    request_serializer=lambda b: b,
    response_deserializer=lambda b: b,
)
reply.ParseFromString(call(typed.SerializeToString(), timeout=10))
seen["typed"] = {
    "raw": len(reply.raw_output_contents),
    "labels": list(reply.outputs[0].contents.int64_contents),
    "datatype": reply.outputs[0].datatype,
}


def request(**fields):
    r = service_pb2.ModelInferRequest(model_name=fields.pop("model_name", model))
    for name, datatype, shape, raw in fields.pop("inputs", []):
        r.inputs.add(name=name, datatype=datatype, shape=shape)
        if raw is not None:
            r.raw_input_contents.append(raw)
    for key, value in fields.items():
        if isinstance(value, list):
            getattr(r, key).extend(value)
        else:
            setattr(r, key, value)
    return r.SerializeToString()


good_raw = np.zeros((1, n_features), dtype=np.float32).tobytes()
hostile = {
    "not a protobuf": b"\xff\xff\xff\xff\x0f",
    "truncated field": b"\x0a\x80\x01abc",
    "wrong wire type": b"\x0d\x00\x00\x00\x00",
    "unknown model": request(model_name="nobody", inputs=[("input", "FP32", [1, n_features], good_raw)]),
    "unknown version": request(model_version="9.9.9", inputs=[("input", "FP32", [1, n_features], good_raw)]),
    "wrong width": request(inputs=[("input", "FP32", [1, n_features + 1], np.zeros(n_features + 1, np.float32).tobytes())]),
    "BYTES input": request(inputs=[("input", "BYTES", [1, n_features], good_raw)]),
    "unknown datatype": request(inputs=[("input", "FP99", [1, n_features], good_raw)]),
    "negative dimension": request(inputs=[("input", "FP32", [-1, n_features], good_raw)]),
    "overflowing shape": request(inputs=[("input", "FP32", [2**62, 2**62, 4], good_raw)]),
    "ragged raw bytes": request(inputs=[("input", "FP32", [1, n_features], good_raw[:-1])]),
    "raw count differs": request(inputs=[("input", "FP32", [1, n_features], None), ("other", "FP32", [1], None)], raw_input_contents=[good_raw]),
    "no inputs": request(),
    "unknown output": service_pb2.ModelInferRequest(
        model_name=model,
        inputs=[service_pb2.ModelInferRequest.InferInputTensor(name="input", datatype="FP32", shape=[1, n_features])],
        outputs=[service_pb2.ModelInferRequest.InferRequestedOutputTensor(name="explain")],
        raw_input_contents=[good_raw],
    ).SerializeToString(),
    "over the limit": request(inputs=[("input", "FP32", [1, n_features], b"\0" * (3 << 20))]),
}
statuses = {}
for what, body in hostile.items():
    try:
        call(body, timeout=10)
        statuses[what] = "OK"
    except grpc.RpcError as e:
        statuses[what] = e.code().name
seen["hostile"] = statuses
seen["after"] = grpc_infer()

# The model repository extension, through the client's own calls.
if repository:
    index = g.get_model_repository_index(as_json=True)
    seen["index"] = index.get("models", [])
    g.unload_model(model)
    try:
        seen["unloaded_ready"] = g.is_model_ready(model)
    except InferenceServerException as e:
        seen["unloaded_ready"] = e.status()
    g.load_model(model)
    seen["reloaded_ready"] = g.is_model_ready(model)
    seen["reloaded"] = grpc_infer()
print(json.dumps(seen, default=str))

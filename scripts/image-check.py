"""Checks a server started from the runtime image (scripts/image.sh check).

Usage: image-check.py HOST:PORT MODEL PID

Waits (at most 60 s) for the server to be ready, checks that the process
PID runs as a non-root user, then runs scripts/oip-grpc-client.py against it
(tritonclient over gRPC and HTTP on the one port, and hostile gRPC calls)
and checks what it saw: the same answers and version over both protocols,
and every hostile call refused with a status a client can act on.
"""

import json
import os
import subprocess
import sys
import time
import urllib.request

url, model, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])


def fail(message):
    print(f"image check failed: {message}", file=sys.stderr)
    sys.exit(1)


deadline = time.monotonic() + 60
while True:
    if not os.path.exists(f"/proc/{pid}"):
        fail("the server exited before it was ready (its output is above)")
    try:
        with urllib.request.urlopen(f"http://{url}/v2/health/ready", timeout=2) as r:
            if r.status == 200:
                break
    except OSError:
        pass
    if time.monotonic() > deadline:
        fail("the server was not ready within 60 s")
    time.sleep(0.2)

with open(f"/proc/{pid}/status") as f:
    uids = next(line.split()[1:] for line in f if line.startswith("Uid:"))
if "0" in uids:
    fail(f"the server runs as root (uids {uids})")

with urllib.request.urlopen(f"http://{url}/v2/models/{model}", timeout=5) as r:
    metadata = json.load(r)
n_features = int(metadata["inputs"][0]["shape"][1])

client = os.path.join(os.path.dirname(os.path.abspath(__file__)), "oip-grpc-client.py")
out = subprocess.run(
    [sys.executable, client, url, model, str(n_features), "--no-repository"],
    check=True, capture_output=True, text=True, timeout=120,
)
seen = json.loads(out.stdout)

if (seen["live"], seen["ready"], seen["model_ready"]) != (True, True, True):
    fail(f"health: {seen['live']} {seen['ready']} {seen['model_ready']}")
if seen["metadata"]["name"] != model:
    fail(f"metadata names {seen['metadata']['name']}")
for key in ("version", "labels", "probabilities"):
    if seen["grpc"][key] != seen["rest"][key]:
        fail(f"gRPC and REST differ in {key}: {seen['grpc'][key]} and {seen['rest'][key]}")
if seen["after"]["labels"] != seen["grpc"]["labels"]:
    fail("the answers changed after the hostile calls")
expected = {"unknown model": "NOT_FOUND", "unknown version": "NOT_FOUND", "over the limit": "RESOURCE_EXHAUSTED"}
for what, status in seen["hostile"].items():
    if status != expected.get(what, "INVALID_ARGUMENT"):
        fail(f"{what}: {status}")
print(json.dumps({
    "uids": uids,
    "version": seen["grpc"]["version"],
    "labels": seen["grpc"]["labels"],
    "hostile": len(seen["hostile"]),
}))

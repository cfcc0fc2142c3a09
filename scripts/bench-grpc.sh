#!/usr/bin/env bash
# gRPC beside REST on one server and one port: single-row `ModelInfer`
# calls (HTTP/2, raw tensors, as tritonclient[grpc] sends them) against
# single-row REST requests (HTTP/1.1 keep-alive, JSON), alternately, two
# rounds, from the repository's load generator (crates/server/examples/
# loadgen.rs, 127.0.0.1 only, bounded in time). The model is the golden
# 100-tree linfa forest (20 features) served from a registry alias.
#
#   bash scripts/bench-grpc.sh [SECONDS] [CONCURRENCY]   (default 10, 16)
#
# Results: target/bench-grpc/results.jsonl. The server is stopped by its
# pid, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
concurrency="${2:-16}"
out=target/bench-grpc
. scripts/bench-setup.sh
port=18190
RUST_LOG=warn "$modelctl" --registry "$reg" serve --model golden_forest@production \
  --listen "127.0.0.1:$port" >"$out/server.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  if curl -sf "http://127.0.0.1:$port/v2/models/golden_forest/ready" >/dev/null; then break; fi
  sleep 0.1
done
url="http://127.0.0.1:$port/v2/models/golden_forest/infer"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$out/load.txt"
for round in 1 2; do
  "$loadgen" --url "$url" --body "$out/row.json" --concurrency "$concurrency" --seconds "$seconds" --label "rest-$round" \
    | tee -a "$out/results.jsonl"
  "$loadgen" --url "$url" --body "$out/row.json" --concurrency "$concurrency" --seconds "$seconds" --label "grpc-$round" --grpc \
    | tee -a "$out/results.jsonl"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/load.txt"

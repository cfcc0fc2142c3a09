#!/usr/bin/env bash
# The serving load benchmark: `modelctl serve` beside MLServer, on the same
# scikit-learn forest (its ONNX export here, its joblib file there), on this
# machine, in one run. Single-row requests at concurrency 1, 16 and 64 from
# the repository's load generator (crates/server/examples/loadgen.rs,
# 127.0.0.1 only, bounded in time), then concurrency 16 again on this server
# while `production` moves between two versions every 250 ms.
#
#   bash scripts/bench-serve.sh [SECONDS_PER_LEVEL]   (default 10)
#
# Results: target/bench-serve/results.jsonl, one JSON object per run.
# Both servers are stopped by their pid, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
out=target/bench-serve
rm -rf "$out"
mkdir -p "$out"
venv=target/venv-mlserver
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  "mlserver==1.7.1" "mlserver-sklearn==1.7.1" "scikit-learn==1.6.1" "skl2onnx==1.20.0" "numpy==2.4.6" \
  "uvloop==0.21.0"  # uvloop 0.22+ has no implicit event loop, which the MLServer 1.7.1 workers need
"$venv/bin/python" scripts/bench-serve-model.py "$out"

cargo build --release -p model-persistence-cli
cargo build --release -p model-persistence-server --example loadgen
modelctl=target/release/modelctl
loadgen=target/release/examples/loadgen
reg="$out/registry"
"$modelctl" --registry "$reg" init >/dev/null
for v in 1.0.0 1.0.1; do
  "$modelctl" import-onnx "$out/forest.onnx" --name fraud --version "$v" --output "$out/fraud-$v.bundle" >/dev/null
  "$modelctl" --registry "$reg" publish "$out/fraud-$v.bundle" >/dev/null
done
"$modelctl" --registry "$reg" promote fraud production 1.0.0 >/dev/null

ours_port=18180
mls_port=18181
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
RUST_LOG=warn "$modelctl" --registry "$reg" serve --model fraud@production \
  --listen "127.0.0.1:$ours_port" --poll-ms 50 >"$out/ours.log" 2>&1 &
pids+=($!)
cat >"$out/mlserver/settings.json" <<JSON
{"http_port": $mls_port, "grpc_port": 18182, "metrics_port": 18183, "host": "127.0.0.1"}
JSON
(cd "$out/mlserver" && exec "../../../$venv/bin/mlserver" start . >../mlserver.log 2>&1) &
pids+=($!)
for port in $ours_port $mls_port; do
  for _ in $(seq 1 600); do
    if curl -sf "http://127.0.0.1:$port/v2/models/fraud/ready" >/dev/null; then break; fi
    sleep 0.2
  done
  curl -sf "http://127.0.0.1:$port/v2/models/fraud/ready" >/dev/null || { echo "the server on $port never became ready" >&2; exit 1; }
done

results="$out/results.jsonl"
"$loadgen" --url "http://127.0.0.1:$ours_port/v2/models/fraud/infer" --body "$out/row.json" \
  --concurrency 1,16,64 --seconds "$seconds" --label model-persistence | tee -a "$results"
"$loadgen" --url "http://127.0.0.1:$mls_port/v2/models/fraud/infer" --body "$out/row.json" \
  --concurrency 1,16,64 --seconds "$seconds" --label mlserver | tee -a "$results"

# Continuous swaps: production moves every 250 ms during the run.
(
  end=$((SECONDS + seconds + 2))
  v=1.0.1
  while [ $SECONDS -lt $end ]; do
    "$modelctl" --registry "$reg" promote fraud production "$v" >/dev/null
    if [ "$v" = 1.0.1 ]; then v=1.0.0; else v=1.0.1; fi
    sleep 0.25
  done
) &
mover=$!
pids+=($mover)
"$loadgen" --url "http://127.0.0.1:$ours_port/v2/models/fraud/infer" --body "$out/row.json" \
  --concurrency 16 --seconds "$seconds" --label model-persistence-swapping | tee -a "$results"
wait "$mover" || true
curl -s "http://127.0.0.1:$ours_port/metrics" | grep -E '^mp_(swaps|refused_versions)_total' | tee "$out/swaps.txt"

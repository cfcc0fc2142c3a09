#!/usr/bin/env bash
# What observability costs under load: the same server, model and load
# (single-row REST requests from 16 clients, from the repository's load
# generator, crates/server/examples/loadgen.rs) with nothing on, with the
# payload log at 1% and at 100% sampling, and with traces exported to an
# OTLP endpoint where nothing listens (a collector that is down). The
# configurations take turns, two rounds, so a drift of the machine shows in
# every one. 127.0.0.1 only, bounded in time; each server is stopped by its
# pid.
#
#   bash scripts/bench-observability.sh [SECONDS] [CONCURRENCY]   (default 10, 16)
#
# Results: target/bench-observability/results.jsonl (one line per run).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
concurrency="${2:-16}"
out=target/bench-observability
. scripts/bench-setup.sh
port=18191
pid=""
trap '[ -z "$pid" ] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }' EXIT
run() {
  local label="$1"
  shift
  rm -rf "$out/payload"
  RUST_LOG=warn "$modelctl" --registry "$reg" serve --model golden_forest@production \
    --listen "127.0.0.1:$port" "$@" >"$out/server-$label.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do
    if curl -sf "http://127.0.0.1:$port/v2/models/golden_forest/ready" >/dev/null; then break; fi
    sleep 0.1
  done
  "$loadgen" --url "http://127.0.0.1:$port/v2/models/golden_forest/infer" --body "$out/row.json" \
    --concurrency "$concurrency" --seconds "$seconds" --label "$label" | tee -a "$out/results.jsonl"
  curl -s "http://127.0.0.1:$port/metrics" | grep -E '^mp_(payload|trace)_' >"$out/metrics-$label.txt" || true
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=""
}
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$out/load.txt"
for round in 1 2; do
  run "off-$round"
  run "payload-1pct-$round" --payload-log "$out/payload" --payload-sample 0.01
  run "payload-100pct-$round" --payload-log "$out/payload" --payload-sample 1
  run "otlp-down-$round" --otlp-endpoint "http://127.0.0.1:9"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/load.txt"

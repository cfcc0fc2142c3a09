#!/usr/bin/env bash
# The runtime image (Containerfile), built and run without a container
# registry and without `podman run`:
#
#   scripts/image.sh build   cargo build --release, stage target/image/root
#                            (the libraries ldd names, CA certificates, the
#                            user 65532), then `buildah build` FROM scratch
#   scripts/image.sh check   builds, then runs the image's own filesystem:
#                            `buildah mount`, a bundle copied to /mnt/models,
#                            `chroot --userspec` as the image's user, and the
#                            protocol's reference clients (tritonclient, HTTP
#                            and gRPC on one port) against it; stops the server
#                            by its pid and removes the working container
#
# `podman run` is refused by the cgroup setup of the machines this project is
# built on, so the check runs the filesystem under chroot: that proves the
# image holds everything the binary needs, as the image's non-root user.
# Needs buildah (Debian: apt-get install buildah; scripts/test.sh installs it)
# and root (or sudo) for buildah mount and chroot. The check needs the
# project's Python environment: MP_PYTHON, as scripts/test.sh sets it.
set -euo pipefail
cd "$(dirname "$0")/.."
root_cmd=""
[ "$(id -u)" -eq 0 ] || root_cmd="sudo"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
image="localhost/model-persistence/modelctl:$version"
uid=65532

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "scripts/image.sh needs $1: $2" >&2
    exit 1
  }
}

build() {
  need buildah "apt-get install buildah (Debian's package builds images FROM scratch)"
  need ldd "it comes with the C library (Debian: libc-bin)"
  cargo build --release --locked -p model-persistence-cli >&2
  local stage=target/image/root
  rm -rf "$stage"
  mkdir -p "$stage/etc" "$stage/tmp" "$stage/mnt/models"
  chmod 1777 "$stage/tmp"
  # Every library the binary links, at the path the loader looks for it.
  local lib
  for lib in $(ldd target/release/modelctl | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
    cp -L --parents "$lib" "$stage/"
  done
  if ldd target/release/modelctl | grep -q "not found"; then
    echo "target/release/modelctl links a library this machine lacks:" >&2
    ldd target/release/modelctl >&2
    exit 1
  fi
  # HTTPS registries (S3, GCS, Azure) verify their certificates against these.
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp -L --parents /etc/ssl/certs/ca-certificates.crt "$stage/"
  fi
  echo "modelctl:x:$uid:$uid:modelctl:/tmp:/modelctl" > "$stage/etc/passwd"
  echo "modelctl:x:$uid:" > "$stage/etc/group"
  $root_cmd buildah build --quiet --layers=false -f Containerfile -t "$image" . >&2
  echo "built $image ($(du -sh --apparent-size "$stage" target/release/modelctl | awk '{print $1}' | paste -sd+ -) staged)" >&2
}

check() {
  [ -n "${MP_PYTHON:-}" ] || {
    echo "scripts/image.sh check needs MP_PYTHON, a python with tritonclient[http,grpc] (scripts/test.sh sets it)" >&2
    exit 1
  }
  build
  # Globals: the EXIT trap reads them after this function has returned.
  user="" ctr="" mnt="" port="" pid=""
  user="$($root_cmd buildah inspect --type image --format '{{.OCIv1.Config.User}}' "$image")"
  [ "${user%%:*}" != "0" ] && [ -n "$user" ] || {
    echo "the image runs as root ($user): the Containerfile must name a non-root USER" >&2
    exit 1
  }
  ctr="$($root_cmd buildah from --quiet "$image")"
  cleanup() {
    [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
    [ -z "$pid" ] || wait "$pid" 2>/dev/null || true
    $root_cmd buildah umount "$ctr" >/dev/null 2>&1 || true
    $root_cmd buildah rm "$ctr" >/dev/null 2>&1 || true
  }
  trap cleanup EXIT
  mnt="$($root_cmd buildah mount "$ctr")"
  # What KServe's storage initializer leaves: the bundle in /mnt/models.
  $root_cmd cp tests/fixtures/format-1.1/forest-v2-level3.bundle "$mnt/mnt/models/model.bundle"
  port="$("$MP_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  $root_cmd chroot --userspec="$user" "$mnt" /modelctl serve --bundle-dir /mnt/models --model-name fraud \
    --listen "127.0.0.1:$port" --body-limit 1048576 &
  pid=$!
  "$MP_PYTHON" scripts/image-check.py "127.0.0.1:$port" fraud "$pid"
  echo "image check: $image ran under chroot --userspec=$user (podman run is refused here) and answered" >&2
}

case "${1:-}" in
  build) build ;;
  check) check ;;
  *) echo "usage: scripts/image.sh build|check" >&2; exit 2 ;;
esac

#!/usr/bin/env python3
"""Checks that every published crate of the workspace declares a true
minimum Rust version.

    python3 scripts/check-msrv.py

Another toolchain cannot be installed on every machine that runs CI, so the
declaration is checked by what it promises: a crate that says
`rust-version = "1.89"` must not depend, through its default features, on a
crate that declares a higher one (`cargo install` of it would then fail on
1.89). For each workspace package that may be published, `cargo tree -p
PACKAGE -e normal,build` lists what its default features build (for every
target platform, with the versions of Cargo.lock); `cargo metadata` gives
each package's declared `rust-version`. The check fails, naming the crate
and the dependency, when any declared version is lower than the highest one
below it. Crates that declare no `rust-version` among the dependencies are
not counted: they promise nothing.

Non-default features may need a newer Rust: their docs say which, and this
check does not look at them.
"""

import json
import subprocess
import sys


def version_key(text):
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    meta = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked"],
        check=True, capture_output=True, text=True).stdout)
    declared = {(p["name"], p["version"]): p.get("rust_version") for p in meta["packages"]}
    members = [p for p in meta["packages"] if p["id"] in meta["workspace_members"]]
    failures = []
    for package in members:
        if package.get("publish") == []:
            continue
        own = package.get("rust_version")
        if own is None:
            failures.append(f"{package['name']} declares no rust-version")
            continue
        tree = subprocess.run(
            ["cargo", "tree", "--locked", "-p", f"{package['name']}@{package['version']}", "-e", "normal,build",
             "--target", "all", "--prefix", "none", "--format", "{p}", "--no-dedupe"],
            check=True, capture_output=True, text=True).stdout
        highest = None
        for line in tree.splitlines():
            fields = line.split()
            if len(fields) < 2 or not fields[1].startswith("v"):
                continue
            key = (fields[0], fields[1][1:])
            need = declared.get(key)
            if need is None or key == (package["name"], package["version"]):
                continue
            if highest is None or version_key(need) > version_key(highest[1]):
                highest = (f"{key[0]} {key[1]}", need)
        if highest is not None and version_key(own) < version_key(highest[1]):
            failures.append(
                f"{package['name']} declares rust-version {own}, but its default features build "
                f"{highest[0]}, which declares {highest[1]}")
        else:
            needed = f" (highest below it: {highest[0]}, {highest[1]})" if highest else ""
            print(f"{package['name']}: rust-version {own}{needed}")
    if failures:
        for failure in failures:
            print(f"error: {failure}", file=sys.stderr)
        print("raise the crate's rust-version, or put the dependency behind a non-default feature "
              "whose docs say which Rust it needs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Validates the KServe manifests in deploy/kserve/ against KServe's own CRD
schemas, pinned to a release (deploy/kserve/crd/, see its SOURCE.md).

Usage: check-kserve-manifests.py [MANIFEST.yaml ...]   (default: deploy/kserve/*.yaml)

Each document is matched to the CRD of its apiVersion and kind, and checked
with the `jsonschema` validator (pinned in scripts/test.sh) against that
version's openAPIV3Schema, made strict as the API server's field validation
is (`kubectl apply --validate=strict`): a field the schema does not declare
is an error, not silently pruned. Kubernetes' own conventions that the CRD
leaves to the API server are checked too: metadata.name is a DNS-1035 label
(KServe's rule for InferenceService names) or DNS-1123 subdomain.

Before the real manifests, the checker proves it can fail: a misspelt field,
a wrong type and a missing required field in copies of each manifest must
each be refused. The CEL rules of x-kubernetes-validations are not evaluated
(no CEL interpreter); they are listed at the end.
"""

import copy
import glob
import gzip
import hashlib
import os
import re
import sys

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
DEPLOY = os.path.join(HERE, "..", "deploy", "kserve")
CRD_DIR = os.path.join(DEPLOY, "crd")

DNS1035 = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
cel_rules = set()


def pinned_digests():
    """The sha256 of each CRD as KServe's release holds it (SOURCE.md)."""
    digests = {}
    with open(os.path.join(CRD_DIR, "SOURCE.md")) as f:
        for line in f:
            m = re.match(r"^\| `([^`]+)` \| `([0-9a-f]{64})` \|", line)
            if m:
                digests[m.group(1)] = m.group(2)
    return digests


def strict(schema, path="spec"):
    """The schema as the API server applies it, in JSON Schema's terms."""
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {k: strict(v, f"{path}.{k}") for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = strict(value, path + "[]")
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [strict(v, path) for v in value]
        elif key == "x-kubernetes-validations":
            for rule in value:
                cel_rules.add(f"{path}: {rule.get('rule')}")
        elif key.startswith("x-kubernetes-") or key in ("format", "nullable"):
            continue  # handled below, or a hint for clients
        else:
            out[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = schema.get("x-kubernetes-preserve-unknown-fields")
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def load_crds():
    digests = pinned_digests()
    crds = {}
    for path in sorted(glob.glob(os.path.join(CRD_DIR, "*.yaml.gz"))):
        name = os.path.basename(path)[: -len(".gz")]
        with gzip.open(path, "rb") as f:
            raw = f.read()
        digest = hashlib.sha256(raw).hexdigest()
        if digests.get(name) != digest:
            sys.exit(f"{path}: sha256 {digest} is not the pinned {digests.get(name)} (deploy/kserve/crd/SOURCE.md)")
        crd = yaml.safe_load(raw)
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = strict(version["schema"]["openAPIV3Schema"])
            schema["properties"]["metadata"] = {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "maxLength": 63, "pattern": DNS1035 if kind == "InferenceService" else DNS1123_SUBDOMAIN},
                    "namespace": {"type": "string", "pattern": DNS1035},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                },
                "additionalProperties": False,
            }
            schema.setdefault("required", [])
            schema["required"] = sorted(set(schema["required"]) | {"apiVersion", "kind", "metadata", "spec"})
            crds[(f"{group}/{version['name']}", kind)] = (schema, version.get("served", False))
    if not crds:
        sys.exit(f"no CRDs in {CRD_DIR}")
    return crds


def errors(crds, doc):
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key not in crds:
        return [f"no pinned CRD defines {key[1]} in {key[0]}"]
    schema, served = crds[key]
    found = [f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
    if not served:
        found.append(f"{key[0]} is not a served version of {key[1]}")
    return found


def mutations(doc):
    """Copies of a manifest, each broken in one way the validator must refuse."""
    spec = doc["spec"]
    misspelt = copy.deepcopy(doc)
    misspelt["spec"]["protocolVersionz" if "protocolVersions" in spec else "predicter"] = ["v2"]
    yield "a misspelt field", misspelt
    wrong_type = copy.deepcopy(doc)
    wrong_type["metadata"]["name"] = 7
    yield "a name that is a number", wrong_type
    missing = copy.deepcopy(doc)
    del missing["spec"]
    yield "no spec", missing
    if doc["kind"] == "InferenceService":
        deep = copy.deepcopy(doc)
        deep["spec"]["predictor"]["minReplicas"] = "one"
        yield "minReplicas as a string", deep


def main():
    crds = load_crds()
    paths = sys.argv[1:] or sorted(glob.glob(os.path.join(DEPLOY, "*.yaml")))
    if not paths:
        sys.exit(f"no manifests in {DEPLOY}")
    failed = False
    checked = 0
    for path in paths:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        for doc in docs:
            for what, broken in mutations(doc):
                if not errors(crds, broken):
                    print(f"{path}: the checker accepted {what}: it cannot be trusted", file=sys.stderr)
                    failed = True
            found = errors(crds, doc)
            for e in found:
                print(f"{path}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}: {e}", file=sys.stderr)
            failed |= bool(found)
            checked += 1
            print(f"{os.path.relpath(path)}: {doc['kind']} {doc['metadata']['name']}: {'invalid' if found else 'valid'} against {doc['apiVersion']}")
    print(f"{checked} manifests checked; {len(cel_rules)} CEL rules in the CRDs were not evaluated")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

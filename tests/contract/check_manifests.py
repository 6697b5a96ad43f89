"""The Kubernetes manifests under infra/kubernetes are what a cluster accepts.

Built-in resources are validated by kubernetes-validate (strict: unknown fields are
errors, as `kubectl apply` with server-side field validation treats them); the SpinApp
against SpinKube's own CRD schema (tests/vectors/spinkube), strictly too. The SpinApp's
variables must be variables spin.toml declares, every required one must be given, and its
probes must point at the probe routes spin.toml serves. Each check is also run on a
broken copy, so a check that cannot fail is caught.
"""
import copy
import pathlib
import sys
import tomllib

import jsonschema
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "kubernetes"
CRD = ROOT / "tests" / "vectors" / "spinkube" / "core.spinkube.dev_spinapps.yaml"
K8S_VERSION = "1.30"


def strict(schema):
    """The CRD schema with unknown fields rejected (the API server's Strict validation)."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if (
            out.get("type") == "object"
            and "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def spinapp_schema():
    crd = yaml.safe_load(CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return strict(version["schema"]["openAPIV3Schema"])


def spinapp_errors(doc, schema, spin):
    errors = [
        f"{'/'.join(map(str, e.path))}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(doc)
    ]
    declared = spin["variables"]
    given = [v["name"] for v in doc["spec"].get("variables", [])]
    for name in given:
        if name not in declared:
            errors.append(f"variable {name} is not declared in spin.toml")
    for name, decl in declared.items():
        if decl.get("required") and name not in given:
            errors.append(f"required variable {name} is not given")
    routes = {t["route"] for t in spin["trigger"]["http"]}
    for kind, probe in doc["spec"].get("checks", {}).items():
        path = probe.get("httpGet", {}).get("path")
        if path not in routes:
            errors.append(f"{kind} probe {path} is not a route of spin.toml")
    for kind in ("liveness", "readiness"):
        if kind not in doc["spec"].get("checks", {}):
            errors.append(f"no {kind} probe")
    if "namespace" in doc.get("metadata", {}):
        errors.append("hard-coded namespace")
    return errors


def builtin_errors(doc):
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{'/'.join(map(str, e.path))}: {e.message}"]
    if "namespace" in doc.get("metadata", {}):
        return ["hard-coded namespace"]
    return []


def main():
    spin = tomllib.loads((ROOT / "spin.toml").read_text())
    schema = spinapp_schema()
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    failures = []
    seen_kinds = set()
    for name in kustomization["resources"]:
        path = K8S / name
        if not path.exists():
            failures.append(f"kustomization.yaml names {name}, which does not exist")
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            seen_kinds.add(doc["kind"])
            what = f"{name}: {doc['kind']}/{doc['metadata']['name']}"
            errs = (
                spinapp_errors(doc, schema, spin)
                if doc["kind"] == "SpinApp"
                else builtin_errors(doc)
            )
            failures += [f"{what}: {e}" for e in errs]
            # The same check on a broken copy must fail.
            broken = copy.deepcopy(doc)
            broken["spec"]["unknownField"] = 1
            if not (
                spinapp_errors(broken, schema, spin)
                if doc["kind"] == "SpinApp"
                else builtin_errors(broken)
            ):
                failures.append(f"{what}: an unknown field went unnoticed")
            print(f"ok {what}")
    for kind in ("SpinApp", "CronJob"):
        if kind not in seen_kinds:
            failures.append(f"no {kind} in kustomization.yaml's resources")
    for f in failures:
        print(f"FAIL {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

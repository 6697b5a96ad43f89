"""Every example in docs/openapi.yaml is valid against the schema it illustrates.

Request bodies, responses and schemas with an `example` are checked with JSON Schema
2020-12 (the dialect of OpenAPI 3.1), formats included. The check also runs on a broken
copy of one example, so a check that cannot fail is caught. (Schemathesis sends the
request examples to the real server too: scripts/contract-tests.sh.)
"""
import copy
import pathlib
import sys

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "openapi.yaml"


def examples(doc):
    """(where, schema, example) for every example of the document."""
    for name, schema in doc["components"]["schemas"].items():
        if "example" in schema:
            yield f"components/schemas/{name}", schema, schema["example"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            media = [("request", op.get("requestBody", {}).get("content", {}))]
            media += [(code, r.get("content", {})) for code, r in op["responses"].items()]
            for what, content in media:
                for ctype, m in content.items():
                    if "example" in m:
                        yield f"{method.upper()} {path} {what} {ctype}", m["schema"], m["example"]


def problems(doc):
    out = []
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    for where, schema, example in examples(doc):
        # The schema with the document's components, so that its $refs resolve.
        root = dict(schema, components=doc["components"])
        for e in jsonschema.Draft202012Validator(root, format_checker=checker).iter_errors(example):
            out.append(f"{where}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
    return out


def main():
    doc = yaml.safe_load(DOC.read_text())
    found = problems(doc)
    count = sum(1 for _ in examples(doc))
    broken = copy.deepcopy(doc)
    broken["components"]["schemas"]["Error"]["example"]["fields"] = "not a list"
    if not problems(broken):
        found.append("a broken example passed the check")
    for p in found:
        print(p, file=sys.stderr)
    if found:
        sys.exit(1)
    print(f"ok {count} examples in docs/openapi.yaml")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Prunes Klaviyo's OpenAPI spec to the operations returnflow sends or the stand-in answers.

Why: the whole spec is 3 MB and 238 paths; the validator (spec/tools/validate_requests.py) and the
Klaviyo stand-in (spec/standin) read only the request bodies of a dozen operations. The pruned file keeps
those paths whole (every method of each, so "no GET on /api/events" stays a true answer) and every
component they reach through $ref, transitively; nothing else is changed, so a kept schema is byte for
byte Klaviyo's. Invariant: PATHS is the list of endpoints in spec/klaviyo/README.md plus the ones the
stand-in routes (ROUTES in spec/standin/klaviyo_standin.py).

    /usr/bin/python3 spec/klaviyo/prune.py FULL.json spec/klaviyo/openapi-2026-07-15.json

FULL.json is openapi/stable.json of github.com/klaviyo/openapi at the revision named in the output's
file name.
"""
import json
import sys

PATHS = [
    "/api/events",
    "/client/events",
    "/api/event-bulk-create-jobs",
    "/client/event-bulk-create",
    "/api/profile-import",
    "/client/profiles",
    "/api/profile-subscription-bulk-create-jobs",
    "/client/subscriptions",
    "/api/profile-bulk-import-jobs",
    "/api/lists/{id}/relationships/profiles",
    "/api/templates",
    "/api/flows",
    "/api/segments",
    "/api/metrics",
]
KEEP_TOP = ("openapi", "info", "servers", "paths", "components", "security")


def refs(node, found):
    """Collects every "$ref" string under node."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value)
            else:
                refs(value, found)
    elif isinstance(node, list):
        for value in node:
            refs(value, found)


def prune(spec):
    missing = [p for p in PATHS if p not in spec["paths"]]
    if missing:
        raise SystemExit("prune.py: not in the spec: %s" % ", ".join(missing))
    out = {key: spec[key] for key in KEEP_TOP if key in spec and key not in ("paths", "components")}
    out["paths"] = {p: spec["paths"][p] for p in PATHS}
    components = {"securitySchemes": spec["components"].get("securitySchemes", {})}
    pending, seen = set(), set()
    refs(out["paths"], pending)
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        parts = ref.split("/")
        if parts[:2] != ["#", "components"] or len(parts) != 4:
            raise SystemExit("prune.py: unsupported $ref %s" % ref)
        kind, name = parts[2], parts[3]
        target = spec["components"][kind][name]
        components.setdefault(kind, {})[name] = target
        refs(target, pending)
    out["components"] = {kind: dict(sorted(v.items())) for kind, v in sorted(components.items())}
    return out


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: prune.py FULL.json OUT.json\n")
        return 2
    with open(argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    pruned = prune(spec)
    with open(argv[2], "w", encoding="utf-8") as f:
        json.dump(pruned, f, ensure_ascii=False, indent=2)  # as Klaviyo formats it: diffs stay readable
        f.write("\n")
    schemas = len(pruned["components"].get("schemas", {}))
    print("kept %d of %d paths, %d of %d schemas" % (len(pruned["paths"]), len(spec["paths"]), schemas,
                                                   len(spec["components"].get("schemas", {}))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

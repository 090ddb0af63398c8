"""Rebuild tests/export/ocsf-schema-1.8.0.json (the OCSF schema the export tests validate against).

Source: https://github.com/ocsf/ocsf-schema at tag 1.8.0, compiled with ocsf-lib 0.10.4
(`python -m ocsf.compile <checkout>`), then trimmed to what validation needs: the classes trailseal
emits and every object, with types, requirements, enums (captions kept) and constraints. Two known
ocsf-lib compiler slips are corrected from the source files: an object's own ``constraints`` win over
its base's, and an attribute a class file itself declares keeps that file's ``profile`` (null).

    python tests/export/build_ocsf_schema.py <ocsf-schema checkout> <compiled.json>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

CLASSES = (2004, 3001, 3002, 3005, 6001, 6002, 6003, 6005)
KEEP = ("type", "requirement", "is_array", "profile", "object_type", "sibling")


def attribute(spec: dict) -> dict:
    kept = {k: spec[k] for k in KEEP if spec.get(k) is not None}
    if spec.get("enum"):
        kept["enum"] = {k: v.get("caption") for k, v in spec["enum"].items()}
    return kept


def own_json(root: Path, kind: str, name: str) -> dict:
    for path in (root / kind).rglob(f"{name}.json"):
        data = json.loads(path.read_text())
        if data.get("name") == name:
            return data
    return {}


def main(root: Path, compiled: Path) -> None:
    schema = json.loads(compiled.read_text())
    by_uid = {c["uid"]: (name, c) for name, c in schema["classes"].items()}
    classes = {}
    for uid in CLASSES:
        name, spec = by_uid[uid]
        source = own_json(root, "events", name).get("attributes", {})
        attributes = {}
        for key, value in spec["attributes"].items():
            attributes[key] = attribute(value)
            if key in source and source[key].get("profile") is None:
                attributes[key].pop("profile", None)
        classes[str(uid)] = {
            "name": name,
            "category_uid": spec.get("category_uid") or uid // 1000,
            "attributes": attributes,
        }
    objects = {}
    for name, spec in schema["objects"].items():
        own = own_json(root, "objects", name)
        constraints = own.get("constraints") or spec.get("constraints") or {}
        objects[name] = {
            "attributes": {k: attribute(v) for k, v in spec["attributes"].items()},
            "constraints": constraints,
        }
    out = {
        "source": "https://github.com/ocsf/ocsf-schema/tree/1.8.0",
        "compiler": "ocsf-lib 0.10.4",
        "version": schema["version"],
        "classes": classes,
        "objects": objects,
        "types": {k: {"type": v.get("type")} for k, v in schema["types"]["attributes"].items()}
        if "attributes" in schema["types"]
        else {k: {"type": v.get("type")} for k, v in schema["types"].items()},
    }
    target = Path(__file__).with_name(f"ocsf-schema-{schema['version']}.json")
    target.write_text(json.dumps(out, sort_keys=True, separators=(",", ":")) + "\n")
    print(f"wrote {target} ({target.stat().st_size} bytes)")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))

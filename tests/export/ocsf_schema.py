"""A validator of OCSF records against the vendored OCSF 1.8.0 schema (see build_ocsf_schema.py):
required attributes (outside profiles the record does not declare), known attribute names, types,
enum values, ``at_least_one`` constraints, and type_uid = class_uid * 100 + activity_id."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_FILE = Path(__file__).with_name("ocsf-schema-1.8.0.json")
SCALARS = {
    "string_t": str,
    "integer_t": int,
    "long_t": int,
    "float_t": (int, float),
    "boolean_t": bool,
    "json_t": object,
}


@cache
def schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text())


def base_type(name: str) -> str:
    """A derived scalar type (ip_t, timestamp_t...) down to its base (string_t, long_t...)."""
    types = schema()["types"]
    while name in types and types[name].get("type"):
        name = types[name]["type"]
    return name


def validate(record: dict[str, Any]) -> list[str]:
    """Every problem found in one OCSF record; empty when it conforms."""
    spec = schema()["classes"].get(str(record.get("class_uid")))
    if spec is None:
        return [f"class_uid {record.get('class_uid')!r} is not a class trailseal emits"]
    problems = []
    if record.get("type_uid") != record["class_uid"] * 100 + record.get("activity_id", -1):
        problems.append(f"type_uid {record.get('type_uid')} != class_uid*100 + activity_id")
    if record.get("category_uid") != spec["category_uid"]:
        problems.append(f"category_uid {record.get('category_uid')} != {spec['category_uid']}")
    profiles = set((record.get("metadata") or {}).get("profiles") or ())
    _check_object(record, spec["attributes"], {}, spec["name"], profiles, problems)
    return problems


def _check_object(
    value: dict, attributes: dict, constraints: dict, path: str, profiles: set, problems: list[str]
) -> None:
    for name, attr in attributes.items():
        wanted = attr.get("requirement") == "required" and attr.get("profile") in (None, *profiles)
        if wanted and value.get(name) is None:
            problems.append(f"{path}.{name}: required attribute missing")
    for name, item in value.items():
        attr = attributes.get(name)
        if attr is None:
            problems.append(f"{path}.{name}: not an attribute of {path.split('.')[-1]}")
        elif item is None:
            problems.append(f"{path}.{name}: null (omit it instead)")
        else:
            _check_value(item, attr, f"{path}.{name}", profiles, problems)
    chosen = constraints.get("at_least_one")
    if chosen and not any(value.get(k) is not None for k in chosen):
        problems.append(f"{path}: needs at least one of {', '.join(chosen)}")


def _check_value(item: Any, attr: dict, path: str, profiles: set, problems: list[str]) -> None:
    if attr.get("is_array"):
        if not isinstance(item, list):
            problems.append(f"{path}: must be an array")
            return
        for i, element in enumerate(item):
            _check_value(element, {**attr, "is_array": False}, f"{path}[{i}]", profiles, problems)
        return
    kind = attr["type"]
    objects = schema()["objects"]
    if kind in objects and kind != "object":
        if not isinstance(item, dict):
            problems.append(f"{path}: must be a {kind} object")
            return
        _check_object(
            item, objects[kind]["attributes"], objects[kind]["constraints"], path, profiles, problems
        )
        return
    if kind == "object":
        if not isinstance(item, dict):
            problems.append(f"{path}: must be an object")
        return
    python = SCALARS.get(base_type(kind))
    if python is None or not isinstance(item, python) or (python is int and isinstance(item, bool)):
        problems.append(f"{path}: {item!r} is not a {kind}")
        return
    if "enum" in attr and str(item) not in attr["enum"]:
        problems.append(f"{path}: {item!r} is not one of {sorted(attr['enum'])}")

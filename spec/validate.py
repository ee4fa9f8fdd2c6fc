"""Pass 2 — validate: a loaded Document → a typed :class:`Spec`.

Checks the document against schemas/network.schema.json and turns every
jsonschema error into a :class:`Diagnostic` a person can act on: the place
(file:line:col and JSON pointer), what was expected, and a did-you-mean for
misspelt keys, op names and block names. All errors are reported at once.
Defaults are filled here by netc, not by the validator.

Longer than 500 lines because it is one pass: every jsonschema error kind has its own
translation into a located message, and they share the did-you-mean and location helpers.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match

from ..compiler.ops import LAYERS, LOSSES, OPS
from .errors import Diagnostic, SpecError, close_matches, did_you_mean, pointer
from .load import Document
from .schema import build_schema, committed_schema

TYPE_NAMES = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


@dataclass
class Spec:
    """A validated spec: sections with netc's defaults filled in, plus the
    documents it came from (for error locations in later passes)."""

    name: str
    inputs: dict[str, dict[str, Any]]
    blocks: dict[str, tuple[dict[str, Any], Document, str]]  # name -> (definition, document, pointer)
    modules: dict[str, dict[str, Any]] | None
    sequence: list[dict[str, Any]] | None
    losses: dict[str, dict[str, Any]]
    outputs: list[str] | None
    train: dict[str, Any]
    data: dict[str, Any] | None
    doc: Document
    warnings: list[Diagnostic] = field(default_factory=list)


# JSON Schema counts 3.0 as an integer; a shape rule given 3.0 would compute float shapes
# (and crash on slicing), so `kernel: 3.0` is an error here, not a silent integer.
# id(allOf list) -> (the list, its dispatch: key and value -> index, or None)
_DISPATCH: dict[int, tuple[list[Any], tuple[str, dict[str, int]] | None]] = {}
_ALL_OF = Draft202012Validator.VALIDATORS["allOf"]


def _dispatch_table(all_of: list[Any]) -> tuple[str, dict[str, int]] | None:
    """For an allOf made only of `if: {properties: {K: {const: V}}, required: [K]}, then: ...`
    items on one key K (the per-op and per-optimizer dispatch of the schema): K and V -> the
    item's index. None for any other allOf."""
    key, table = None, {}
    for i, item in enumerate(all_of):
        cond = item.get("if") if isinstance(item, dict) else None
        if not (
            isinstance(cond, dict) and set(item) <= {"if", "then"} and set(cond) == {"properties", "required"}
        ):
            return None
        (k, c), *rest = cond["properties"].items() or [(None, None)]
        if rest or cond["required"] != [k] or not isinstance(c, dict) or set(c) != {"const"}:
            return None
        if key not in (None, k) or not isinstance(c["const"], str):
            return None
        key, table[c["const"]] = k, i
    return (key, table) if key is not None else None


def _all_of(validator: Any, all_of: list[Any], instance: Any, schema: Any) -> Iterator[ValidationError]:
    """allOf, with the op dispatch taken directly: each of ~40 `if op == X` items would
    otherwise be evaluated for every module (most of the time spent validating a spec). Only
    the matching item can yield errors (an `if` without `else` never does), so the errors
    are the standard ones, paths included."""
    cached = _DISPATCH.get(id(all_of))
    if cached is None or cached[0] is not all_of:  # holding the list keeps its id unique
        cached = _DISPATCH[id(all_of)] = (all_of, _dispatch_table(all_of))
    found = cached[1]
    if found is None:
        yield from _ALL_OF(validator, all_of, instance, schema)
        return
    key, table = found
    value = instance.get(key) if isinstance(instance, dict) else None
    index = table.get(value) if isinstance(value, str) else None
    if index is not None:
        yield from validator.descend(instance, all_of[index], schema_path=index)


_Validator = validators.extend(
    Draft202012Validator,
    validators={"allOf": _all_of},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, v: isinstance(v, int) and not isinstance(v, bool)
    ),
)


@functools.cache
def _validator(include: bool) -> Draft202012Validator:
    schema = committed_schema()
    if include:
        schema = {**schema, "required": ["netc"]}
    return _Validator(schema)


def schema_is_current() -> bool:
    return committed_schema() == build_schema()


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return repr(value)


def _subject(doc: Document, path: list[Any]) -> str:
    """Readable name for the object at ``path``: "module 'c1' (conv2d)"."""
    data: Any = doc.data
    for p in path:
        try:
            data = data[p]
        except (KeyError, IndexError, TypeError):
            data = None
            break
    op = data.get("op") if isinstance(data, dict) else None
    opt = f" ({op})" if isinstance(op, str) else ""
    if len(path) >= 2 and path[0] in ("modules", "losses", "blocks", "inputs"):
        kind = {"modules": "module", "losses": "loss", "blocks": "block", "inputs": "input"}[path[0]]
        if path[0] == "blocks" and len(path) >= 4 and path[2] == "modules":
            return f"module '{path[3]}'{_opt(doc, path[:4])} of block '{path[1]}'"
        return f"{kind} '{path[1]}'{opt}" if len(path) == 2 else f"{kind} '{path[1]}'"
    if len(path) >= 2 and path[0] == "sequence":
        return f"sequence item {path[1]}{opt}"
    if not path:
        return "the spec"
    return f"section '{'.'.join(str(p) for p in path)}'"


def _field(doc: Document, path: list[Any]) -> str:
    """Readable name for the value at ``path``: "'kernel' in module 'c1' (conv2d)",
    "item 1 of 'in' in module 'sum' (add)"."""
    if not path:
        return "the spec"
    i = len(path) - 1
    while i > 0 and isinstance(path[i], int):
        i -= 1
    idx = "/".join(str(p) for p in path[i + 1 :])
    name = f"item {idx} of '{path[i]}'" if idx else f"'{path[i]}'"
    return f"{name} in {_subject(doc, path[:i])}"


def _opt(doc: Document, path: list[Any]) -> str:
    data: Any = doc.data
    for p in path:
        data = data.get(p) if isinstance(data, dict) else None
    op = data.get("op") if isinstance(data, dict) else None
    return f" ({op})" if isinstance(op, str) else ""


def _allowed_keys(schema: dict[str, Any]) -> list[str]:
    return list(schema.get("properties", {}))


_BOUNDS = {
    "minimum": "at least",
    "exclusiveMinimum": "greater than",
    "maximum": "at most",
    "exclusiveMaximum": "less than",
}


def _diag(doc: Document, e: ValidationError) -> Iterator[Diagnostic]:
    path = list(e.absolute_path)
    ptr = pointer(*path)
    v = e.validator
    subject = _subject(doc, path)
    field_ = _field(doc, path)
    if v == "additionalProperties":
        allowed = _allowed_keys(e.schema)
        for key in e.instance:
            if key in allowed:
                continue
            kptr = ptr + pointer(key)
            what = "attribute" if "op" in e.instance else "key"
            yield Diagnostic(
                f"unknown {what} '{key}' in {subject}",
                doc.where(kptr, key=True),
                kptr,
                did_you_mean(key, allowed) or f"allowed: {', '.join(allowed)}",
            )
        return
    if v == "required":
        missing = e.message.split("'")[1] if "'" in e.message else e.message
        allowed = _allowed_keys(e.schema)
        unknown = [k for k in e.instance if k not in allowed] if isinstance(e.instance, dict) else []
        misspelt = close_matches(missing, unknown)
        for k in misspelt:  # the same diagnostic as additionalProperties gives, where that applies
            kptr = ptr + pointer(k)
            yield Diagnostic(
                f"unknown {'attribute' if 'op' in e.instance else 'key'} '{k}' in {subject}",
                doc.where(kptr, key=True),
                kptr,
                did_you_mean(k, allowed) or f"allowed: {', '.join(allowed)}",
            )
        if misspelt:
            return
        is_op = isinstance(e.instance, dict) and "op" in e.instance and missing != "op"
        what = "attribute" if is_op else "key"
        hint = "write `netc: 1` as the first line" if not path and missing == "netc" else ""
        yield Diagnostic(f"{subject} is missing required {what} '{missing}'", doc.where(ptr), ptr, hint)
        return
    if v == "enum" and path and path[-1] == "op":
        yield _op_diag(doc, path, e.instance, ptr)
        return
    if v == "enum":
        choices = e.validator_value
        yield Diagnostic(
            f"{_describe(e.instance)} is not allowed for {field_}; "
            f"expected one of: {', '.join(map(str, choices))}",
            doc.where(ptr),
            ptr,
            did_you_mean(e.instance, [str(c) for c in choices]),
        )
        return
    if v == "const" and path == ["netc"]:
        yield Diagnostic(
            f"unsupported format version {_describe(e.instance)}; this netc reads version 1",
            doc.where(ptr),
            ptr,
            "write `netc: 1` as the first key",
        )
        return
    if v == "type":
        expected = e.validator_value if isinstance(e.validator_value, list) else [e.validator_value]
        names = " or ".join(TYPE_NAMES.get(t, t) for t in expected)
        # The field's description says what the value means (a loss `weight` is the term's
        # one number in the total, not per-class weights).
        hint = e.schema.get("description", "")
        yield Diagnostic(f"{field_} must be {names}, got {_describe(e.instance)}", doc.where(ptr), ptr, hint)
        return
    if v in _BOUNDS:
        bound = f"{_BOUNDS[v]} {e.validator_value}"
        yield Diagnostic(f"{field_} must be {bound}, got {_describe(e.instance)}", doc.where(ptr), ptr)
        return
    if v in ("minItems", "maxItems") and isinstance(e.instance, list):
        n = e.validator_value
        bound = "at least" if v == "minItems" else "at most"
        yield Diagnostic(
            f"{field_} must have {bound} {n} item{'s' if n != 1 else ''}, got {len(e.instance)}",
            doc.where(ptr),
            ptr,
        )
        return
    if v == "minProperties" and e.instance == {}:
        yield Diagnostic(f"{field_} must not be empty", doc.where(ptr), ptr)
        return
    if v in ("oneOf", "anyOf") and isinstance(e.instance, list):
        lengths = _list_lengths(e.schema)
        if lengths and len(e.instance) not in lengths:
            # "invalid value a list" says nothing; a wrong length is the usual mistake
            # (`padding: [1, 1, 0, 0]` on a pool, which pads symmetrically).
            alts = " or ".join(str(n) for n in sorted(lengths))
            scalars = {a["type"] for a in _alternatives(e.schema) if a.get("type") in ("integer", "number")}
            scalar = "".join(f" {TYPE_NAMES[t]} or" for t in sorted(scalars))
            yield Diagnostic(
                f"{field_} has {len(e.instance)} item{'s' if len(e.instance) != 1 else ''}; it takes"
                f"{scalar} a list of {alts}",
                doc.where(ptr),
                ptr,
                _description(e.schema),
            )
            return
    if v in ("oneOf", "anyOf") and e.context:
        # A list of the right length with a wrong item: name the item, not "a list".
        items = [c for c in e.context if len(c.absolute_path) > len(path)]
        if items and isinstance(e.instance, list):
            yield from _diag(doc, best_match(items))
            return
    if v in ("oneOf", "anyOf"):
        if e.context:
            inner = best_match(e.context)
            if inner.validator not in ("type", "pattern"):
                yield from _diag(doc, inner)
                return
        refs = "; expected an input or module name, or a list of them"
        expect = refs if path[-1:] == ["in"] else _expect(e.schema)
        yield Diagnostic(
            f"{field_} has an invalid value {_describe(e.instance)}" + expect,
            doc.where(ptr),
            ptr,
        )
        return
    schema_path = list(e.relative_schema_path)
    if v == "pattern" and len(schema_path) >= 2 and schema_path[-2] == "propertyNames":
        kptr = ptr + pointer(e.instance)
        yield Diagnostic(
            f"{_describe(e.instance)} is not a valid name in {subject}: use letters, digits and _, "
            "not starting with a digit",
            doc.where(kptr, key=True),
            kptr,
        )
        return
    if v == "pattern" and path and (path[-1] == "in" or (len(path) >= 2 and path[-2] == "in")):
        yield Diagnostic(
            f"{_describe(e.instance)} is not a valid module or input name ({field_})",
            doc.where(ptr),
            ptr,
            "a name uses letters, digits and _, not starting with a digit; "
            "block members are named block.module",
        )
        return
    if v == "pattern":
        yield Diagnostic(
            f"{_describe(e.instance)} is not a valid name ({field_}): use letters, digits and _, "
            "not starting with a digit",
            doc.where(ptr),
            ptr,
        )
        return
    yield Diagnostic(f"{field_}: {e.message}", doc.where(ptr), ptr)


def _alternatives(schema: Any) -> list[dict[str, Any]]:
    """The schemas a value may match: the branches of oneOf/anyOf, recursively."""
    if not isinstance(schema, dict):
        return []
    branches = schema.get("oneOf") or schema.get("anyOf")
    if branches is None:
        return [schema]
    return [b for branch in branches for b in _alternatives(branch)]


def _list_lengths(schema: dict[str, Any]) -> set[int]:
    """The lengths a list may have where the only list branches have fixed lengths (a pair,
    four sides); empty when any length goes."""
    out: set[int] = set()
    for alt in _alternatives(schema):
        if alt.get("type") == "array":
            lo, hi = alt.get("minItems"), alt.get("maxItems")
            if lo is None or lo != hi:
                return set()
            out.add(lo)
    return out


def _description(schema: Any) -> str:
    """A schema's description, or the first one among its oneOf/anyOf branches."""
    if not isinstance(schema, dict):
        return ""
    if schema.get("description"):
        return str(schema["description"])
    branches = schema.get("oneOf") or schema.get("anyOf") or []
    return next((d for d in map(_description, branches) if d), "")


def _expect(schema: dict[str, Any]) -> str:
    desc = schema.get("description")
    return f"; expected {desc}" if desc else ""


def _op_diag(doc: Document, path: list[Any], value: Any, ptr: str) -> Diagnostic:
    section = path[0]
    in_losses = section == "losses"
    if isinstance(value, str) and not in_losses and value in LOSSES:
        return Diagnostic(
            f"'{value}' is a loss; declare it under `losses:`, not `{section}:`", doc.where(ptr), ptr
        )
    if isinstance(value, str) and in_losses and value in LAYERS:
        return Diagnostic(
            f"'{value}' is a layer, not a loss; declare it under `modules:`",
            doc.where(ptr),
            ptr,
            f"losses are: {', '.join(LOSSES)}",
        )
    names = LOSSES if in_losses else LAYERS
    return Diagnostic(
        f"unknown op {_describe(value)} in {_subject(doc, path[:-1]).split(' (')[0]}",
        doc.where(ptr),
        ptr,
        did_you_mean(value, names) or "netc ops are listed in docs/ops.md",
    )


def schema_diagnostics(doc: Document, include: bool = False) -> list[Diagnostic]:
    """Every schema violation of one document, as diagnostics."""
    out: list[Diagnostic] = []
    seen: set[tuple[str, str]] = set()
    for e in _validator(include).iter_errors(doc.data):
        for d in _diag(doc, e):
            if (d.pointer, d.message) not in seen:
                seen.add((d.pointer, d.message))
                out.append(d)
    return out


def check_attributes(op: str, attrs: dict[str, Any]) -> list[ValidationError]:
    """Validate one module's attributes against its op's strict schema."""
    v = _op_validator(op)
    return list(v.iter_errors(attrs))


@functools.cache
def _op_validator(op: str) -> Draft202012Validator:
    schema = committed_schema()
    return _Validator({"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/op.{op}"})


def _sort(ds: list[Diagnostic]) -> list[Diagnostic]:
    return sorted(
        ds, key=lambda d: (d.location.file, d.location.line, d.location.col) if d.location else ("", 0, 0)
    )


def _type_fields(schema: dict[str, Any], value: dict[str, Any]) -> set[str] | None:
    """The fields a per-type object (``if type == T then only T's fields``) allows for the
    value's type; None where the schema has no such rule."""
    for rule in schema.get("allOf", []):
        cond = rule.get("if", {}).get("properties", {}).get("type", {})
        then = rule.get("then", {})
        closed = then.get("additionalProperties") is False
        if closed and "const" in cond and cond["const"] == value.get("type"):
            return set(then.get("properties", {}))
    return None


def _fill(defaults_schema: dict[str, Any], value: dict[str, Any] | None) -> dict[str, Any]:
    """Fill the schema's explicit defaults into a section, recursively. An optimizer or a
    schedule gets only its own type's defaults, so the filled section (a run's config.json)
    can be pasted back into a spec."""
    out = dict(value or {})
    allowed = _type_fields(defaults_schema, out)
    for k, s in defaults_schema.get("properties", {}).items():
        if allowed is not None and k not in allowed:
            continue
        if k not in out and "default" in s:
            out[k] = s["default"]
        elif isinstance(out.get(k), dict) and s.get("type") == "object":
            out[k] = _fill(s, out[k])
    return out


def _collect_blocks(
    doc: Document, errors: list[Diagnostic], out: dict[str, tuple[dict, Document, str]]
) -> None:
    for inc in doc.includes:
        _collect_blocks(inc, errors, out)
    for name, body in (doc.data.get("blocks") or {}).items():
        ptr = pointer("blocks", name)
        if name in out:
            first = out[name][1].where(out[name][2], key=True)
            errors.append(
                Diagnostic(
                    f"block '{name}' is defined twice (first at {first})", doc.where(ptr, key=True), ptr
                )
            )
            continue
        out[name] = (body, doc, ptr)


def validate(doc: Document) -> Spec:
    """Check a document and its includes; return the typed Spec or raise
    SpecError listing every problem found."""
    errors = schema_diagnostics(doc)
    stack = list(doc.includes)
    while stack:
        inc = stack.pop()
        errors += schema_diagnostics(inc, include=True)
        stack += inc.includes
    data = doc.data
    has_mod, has_seq = "modules" in data, "sequence" in data
    known = committed_schema()["properties"]
    # A misspelt `modules:` is already reported with a did-you-mean; saying it is missing too is noise.
    misspelt = any(k not in known and did_you_mean(k, ["modules", "sequence"]) for k in data)
    if has_mod == has_seq and not (misspelt and not has_mod):
        errors.append(
            Diagnostic(
                "a spec needs exactly one of `modules:` (a DAG) or `sequence:` (a chain)"
                + (", not both" if has_mod else ""),
                doc.where(pointer("sequence") if has_seq else ""),
                pointer("sequence") if has_seq else "",
            )
        )
    if errors:
        raise SpecError(_sort(errors))

    blocks: dict[str, tuple[dict, Document, str]] = {}
    _collect_blocks(doc, errors, blocks)
    for name in data.get("modules") or {}:
        if name in data["inputs"]:
            ptr = pointer("modules", name)
            errors.append(
                Diagnostic(f"module '{name}' has the same name as an input", doc.where(ptr, key=True), ptr)
            )
    for name in data.get("losses") or {}:
        if name in (data.get("modules") or {}) or name in data["inputs"]:
            ptr = pointer("losses", name)
            errors.append(
                Diagnostic(
                    f"loss '{name}' has the same name as a module or input", doc.where(ptr, key=True), ptr
                )
            )
    if errors:
        raise SpecError(_sort(errors))

    schema = committed_schema()
    props = schema["properties"]
    inputs = {k: {"dtype": "float32", **v} for k, v in data["inputs"].items()}
    losses = {
        k: {"weight": 1.0, **{a: b for a, b in OPS[v["op"]].fill_defaults(v).items()}}
        for k, v in (data.get("losses") or {}).items()
    }
    return Spec(
        name=data.get("name") or _stem(doc.file),
        inputs=inputs,
        blocks=blocks,
        modules=data.get("modules"),
        sequence=data.get("sequence"),
        losses=losses,
        outputs=data.get("outputs"),
        train=_fill(props["train"], data.get("train")),
        data=_fill(props["data"], data["data"]) if "data" in data else None,
        doc=doc,
    )


def _stem(file: str) -> str:
    base = file.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base else base

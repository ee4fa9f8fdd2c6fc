"""Pass 1 — load: YAML text → plain data plus a source map.

Reads YAML with a safe loader only (libyaml's CSafeLoader when present). The
node tree is walked by hand so every value and every mapping key keeps its
line and column, and so duplicate keys are errors (PyYAML silently keeps the
last one). ``include:`` files are loaded here too, since loading is the only
pass that touches the file system.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import Diagnostic, Location, SpecError, pointer

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[misc, valid-type]
    """Safe loader that also reads 1e-3 as a float (YAML 1.1 wants 1.0e-3,
    which surprises everyone who writes a learning rate)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


@dataclass
class Document:
    """A loaded spec: the data, where each part came from, and its includes."""

    data: Any
    file: str
    values: dict[str, Location] = field(default_factory=dict)  # pointer -> value position
    keys: dict[str, Location] = field(default_factory=dict)  # pointer -> key position
    includes: list[Document] = field(default_factory=list)

    def where(self, ptr: str, key: bool = False) -> Location:
        """Best location for a pointer: the exact one, else its nearest parent."""
        table = self.keys if key else self.values
        p = ptr
        while True:
            if p in table:
                return table[p]
            if p in self.values:
                return self.values[p]
            if not p:
                return Location(self.file, 1, 1)
            p = p.rsplit("/", 1)[0]


def _loc(file: str, mark: yaml.Mark) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("map", "seq", "str", "int", "float", "bool", "null")}


_KINDS = {"/modules": "module", "/inputs": "input", "/losses": "loss", "/blocks": "block"}
_TIMESTAMP = "tag:yaml.org,2002:timestamp"  # `name: 2024-01-31` is read as the text written
MAX_DEPTH = 64
MAX_VALUES = 200_000  # YAML aliases can make a short file expand exponentially ("billion laughs")
_PLAIN = "a spec holds plain YAML: mappings, lists, strings, numbers, true/false and null"


def _walk(node: yaml.Node, loader: Any, doc: Document, ptr: str, errors: list[Diagnostic]) -> Any:
    doc.values[ptr] = _loc(doc.file, node.start_mark)
    if len(doc.values) > MAX_VALUES:
        raise SpecError.one(
            f"the spec holds more than {MAX_VALUES} values",
            doc.values[ptr],
            ptr,
            "YAML aliases (*name) that repeat other aliases multiply quickly",
        )
    if ptr.count("/") > MAX_DEPTH:
        raise SpecError.one(
            f"the spec nests more than {MAX_DEPTH} levels deep here",
            doc.values[ptr],
            ptr,
            "a spec needs a few levels of nesting, not dozens",
        )
    if node.tag == _TIMESTAMP and isinstance(node, yaml.ScalarNode):
        return node.value
    if node.tag not in _TAGS:
        # The node tree is walked by hand, so the safe loader's own refusal
        # of python/* tags never runs: refuse every tag a spec has no use for.
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        errors.append(
            Diagnostic(
                f"unsupported YAML tag {tag}",
                doc.values[ptr],
                ptr,
                _PLAIN,
            )
        )
        return None
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for knode, vnode in node.value:
            key = _key(knode, doc, ptr, errors)
            if key is None:
                continue
            kptr = ptr + pointer(key)
            if key in out:
                first = doc.keys[kptr]
                same_line = first.line == knode.start_mark.line + 1
                kind = _KINDS.get(ptr) or ("module" if re.fullmatch(r"/blocks/[^/]+/modules", ptr) else "")
                errors.append(
                    Diagnostic(
                        (f"{kind} '{key}' is defined twice" if kind else f"duplicate key '{key}'")
                        + f" (first at line {first.line}"
                        + (f", column {first.col})" if same_line else ")"),
                        _loc(doc.file, knode.start_mark),
                        kptr,
                        "each name may appear once in a mapping",
                    )
                )
                continue
            doc.keys[kptr] = _loc(doc.file, knode.start_mark)
            out[key] = _walk(vnode, loader, doc, kptr, errors)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(v, loader, doc, ptr + pointer(i), errors) for i, v in enumerate(node.value)]
    try:
        return loader.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, KeyError):  # `!!int abc`, `!!map x`
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        errors.append(Diagnostic(f"cannot read {node.value!r} as {tag}", doc.values[ptr], ptr))
        return None


def _scalar(v: Any) -> str:
    return "null" if v is None else "true" if v is True else "false" if v is False else repr(v)


def _self_containing(root: yaml.Node | None) -> yaml.Node | None:
    """A node that contains itself (an alias inside its own anchor), or None. Depth-first with
    an explicit stack; shared nodes are visited once, so aliases cannot make it slow."""
    if root is None:
        return None
    on_path: set[int] = set()
    done: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            on_path.discard(id(node))
            done.add(id(node))
            continue
        if id(node) in on_path:
            return node
        if id(node) in done or isinstance(node, yaml.ScalarNode):
            continue
        on_path.add(id(node))
        stack.append((node, True))
        children = [c for kv in node.value for c in kv] if isinstance(node, yaml.MappingNode) else node.value
        stack += [(c, False) for c in reversed(children)]
    return None


def _key(node: yaml.Node, doc: Document, ptr: str, errors: list[Diagnostic]) -> str | None:
    """A mapping key as the text written: keys are names, so `1:`, `on:` and `null:` stay the
    strings they look like. None (and an error) for a key that is not a plain scalar."""
    if isinstance(node, yaml.ScalarNode) and node.tag in (*_TAGS, _TIMESTAMP):
        return node.value
    if node.tag == "tag:yaml.org,2002:merge":
        message, hint = "YAML merge keys (<<) are not supported", "reuse a group of modules with a block"
    elif isinstance(node, yaml.ScalarNode):
        message, hint = f"unsupported YAML tag {node.tag.replace('tag:yaml.org,2002:', '!!')}", _PLAIN
    else:
        message, hint = "a mapping key must be a name, not a list or a mapping", ""
    errors.append(Diagnostic(message, _loc(doc.file, node.start_mark), ptr, hint))
    return None


def _yaml_problem(e: yaml.MarkedYAMLError, text: str, mark: yaml.Mark | None) -> tuple[str, str]:
    """PyYAML's problem in words a person can act on: (message, hint)."""
    problem = e.problem or e.context or "invalid YAML"
    lines = text.splitlines()
    line = lines[mark.line] if mark is not None and mark.line < len(lines) else ""
    if mark is not None and line[mark.column : mark.column + 1] == "\t":
        return "found a tab character where YAML expects spaces", "YAML indents with spaces only"
    if "another document" in problem:
        return "a second YAML document starts here", "a spec is one YAML document: remove the `---` line"
    if "expected key" in problem or "expected <block end>" in problem:
        return problem, "check the indentation: the keys of one mapping must start in the same column"
    if "mapping values are not allowed" in problem:
        hint = "a `key: value` cannot follow a value on one line; is a comma, a newline or a quote missing?"
        return problem, hint
    ctx = e.context_mark
    if e.context and ctx is not None and (mark is None or ctx.line != mark.line):
        where = e.context.removeprefix("while parsing ").removeprefix("while scanning ")
        start = f"line {ctx.line + 1}, column {ctx.column + 1}"
        return problem, f"{where} starts at {start}; is something not closed?"
    return problem, ""


def parse(text: str, file: str = "<string>") -> Document:
    """Parse YAML text into a Document. Raises SpecError on bad YAML."""
    doc = Document(None, file)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        loc = _loc(file, mark) if mark else Location(file, 1, 1)
        message, hint = _yaml_problem(e, text, mark)
        raise SpecError.one(f"YAML syntax error: {message}", loc, hint=hint) from None
    except yaml.reader.ReaderError as e:
        pos = min(max(int(e.position), 0), len(text))
        loc = Location(file, text.count("\n", 0, pos) + 1, pos - (text.rfind("\n", 0, pos) + 1) + 1)
        ch = e.character if isinstance(e.character, int) else ord(e.character[:1] or "\0")
        raise SpecError.one(f"YAML error: {e.reason} (character #x{ch:04x})", loc) from None
    except yaml.YAMLError as e:
        raise SpecError.one(f"YAML error: {e}", Location(file, 1, 1)) from None
    finally:
        loader.dispose()
    looped = _self_containing(node)
    if looped is not None:
        raise SpecError.one(
            "a YAML alias (*name) is used inside its own anchor (&name), so this value would nest forever",
            _loc(file, looped.start_mark),
        )
    if node is None:
        raise SpecError.one("the spec file is empty", Location(file, 1, 1), hint="start with `netc: 1`")
    errors: list[Diagnostic] = []
    doc.data = _walk(node, loader, doc, "", errors)
    if errors:
        raise SpecError(errors)
    if not isinstance(doc.data, dict):
        kind = "a list" if isinstance(doc.data, list) else f"the value {_scalar(doc.data)}"
        raise SpecError.one(
            f"a spec must be a mapping of sections (netc, name, inputs, modules, ...), got {kind}",
            doc.values[""],
            hint="see docs/spec.md for the layout of a spec",
        )
    return doc


def load(path: str | Path, _seen: tuple[str, ...] = ()) -> Document:
    """Read and parse a spec file and, recursively, its ``include:`` files."""
    path = Path(path)
    name = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError.one(f"no such spec file: {name}") from None
    except IsADirectoryError:
        raise SpecError.one(f"{name} is a folder, not a spec file") from None
    except OSError as e:
        raise SpecError.one(f"cannot read spec file {name}: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise SpecError.one(
            f"the file is not UTF-8 text: byte 0x{raw[e.start]:02x} cannot be read",
            Location(name, line, col),
            hint="save the file as UTF-8",
        ) from None
    doc = parse(text, name)
    incs = doc.data.get("include", [])
    if isinstance(incs, str):
        incs = [incs]
    if not isinstance(incs, list):
        return doc  # the validator reports the wrong type
    resolved = str(path.resolve())
    for i, inc in enumerate(incs):
        if not isinstance(inc, str):
            continue
        ptr = pointer("include", i) if isinstance(doc.data["include"], list) else "/include"
        target = (path.parent / inc).resolve()
        if str(target) in (*_seen, resolved):
            chain = [*_seen[_seen.index(str(target)) :], resolved] if str(target) in _seen else [resolved]
            names = " → ".join(Path(p).name for p in [*chain, str(target)])
            hint = "a file cannot include itself, directly or indirectly"
            raise SpecError.one(f"include cycle: {names}", doc.where(ptr), ptr, hint)
        if not target.is_file():
            where = doc.where(ptr)
            raise SpecError.one(f"included file not found: {inc}", where, ptr, f"looked for {target}")
        doc.includes.append(load(target, (*_seen, resolved)))
    return doc

"""Pass 1 — load: YAML text → plain data plus a source map.

Reads YAML with a safe loader only (libyaml's CSafeLoader when present). The
node tree is walked by hand so every value and every mapping key keeps its
line and column, and so duplicate keys are errors (PyYAML silently keeps the
last one). ``include:`` files are loaded here too, since loading is the only
pass that touches the file system.
"""

from __future__ import annotations

import math
import re
import stat
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
MAX_BYTES = 8 * 1024 * 1024  # a spec is a few kB; a bigger file is a mistake (or /dev/zero)
# Every integer a spec holds fits the runtime's int64. A 500-digit `out_features` would otherwise
# reach float() in the reports (OverflowError), and Python refuses ints of over 4,300 digits.
# Sizes get the tighter bound of the schema (schema.MAX_SIZE).
MAX_INT = 2**63 - 1
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
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
    if node.tag == _INT and len(node.value) > 40:  # before int(): it refuses 4,300 digits itself
        errors.append(_number_error(node.value, node.tag, doc.values[ptr], ptr))
        return None
    try:
        value = loader.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, KeyError):  # `!!int abc`, `!!map x`
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        errors.append(Diagnostic(f"cannot read {_short(node.value)!r} as {tag}", doc.values[ptr], ptr))
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if not (abs(value) <= MAX_INT if isinstance(value, int) else math.isfinite(value)):
        errors.append(_number_error(node.value, node.tag, doc.values[ptr], ptr))
        return None
    return value


def _short(text: str, width: int = 40) -> str:
    """Text for a message, cut in the middle when long (a 5,000-digit number is not news)."""
    return text if len(text) <= width else f"{text[:16]}…{text[-8:]} ({len(text):,} characters)"


def _number_error(text: str, tag: str, where: Location, ptr: str) -> Diagnostic:
    """The one check of every number a spec holds, wherever it is: attributes, loss weights,
    train and data sections. NaN passes every range check (nan < 0 is false) and infinity
    passes every lower bound, so both are refused here, before any check or computation."""
    if tag == _INT:
        digits = sum(c.isdigit() for c in text)
        return Diagnostic(
            f"integer {text if len(text) <= 24 else f'{text[:12]}… ({digits:,} digits)'} is too large",
            where,
            ptr,
            f"netc reads integers up to 2**63-1 ({MAX_INT:,}); sizes up to 2**31-1",
        )
    if text.strip().lstrip("+-").lower() in (".nan", "nan"):
        return Diagnostic("NaN is not allowed in a spec", where, ptr, "write the number you mean")
    return Diagnostic(
        f"{_short(text)} is not a finite number",
        where,
        ptr,
        "infinities, and numbers beyond ±1.8e308 that read as infinity, are not allowed in a spec",
    )


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


def _biggest(root: yaml.Node) -> yaml.Node | None:
    """The value where a tree of more than MAX_VALUES values (counting every alias as the
    copy it stands for) is largest below the top level, or None for a tree within the bound.
    Sizes are memoized per node, so a billion laughs is counted in time linear in the file,
    not walked value by value."""
    size: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, ready = stack.pop()
        if id(node) in size:
            continue
        kids = _children(node)
        if ready or not kids:
            size[id(node)] = min(1 + sum(size[id(c)] for c in kids), 2 * MAX_VALUES)
            continue
        stack.append((node, True))
        stack += [(c, False) for c in kids if id(c) not in size]
    if size[id(root)] <= MAX_VALUES:
        return None
    return max(_children(root), key=lambda c: size[id(c)], default=root)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [c for kv in node.value for c in kv]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


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


def _compose(text: str, file: str) -> tuple[yaml.Node | None, Any]:
    """YAML text → (node tree, its loader). Raises SpecError on bad YAML."""
    loader = _Loader(text)
    try:
        return loader.get_single_node(), loader
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


def parse(text: str, file: str = "<string>") -> Document:
    """Parse YAML text into a Document. Raises SpecError on bad YAML."""
    return _parse(*_compose(text, file), file)


def _parse(node: yaml.Node | None, loader: Any, file: str) -> Document:
    doc = Document(None, file)
    looped = _self_containing(node)
    if looped is not None:
        raise SpecError.one(
            "a YAML alias (*name) is used inside its own anchor (&name), so this value would nest forever",
            _loc(file, looped.start_mark),
        )
    if node is None:
        raise SpecError.one("the spec file is empty", Location(file, 1, 1), hint="start with `netc: 1`")
    big = _biggest(node)
    if big is not None:
        raise SpecError.one(
            f"the spec holds more than {MAX_VALUES:,} values",
            _loc(file, big.start_mark),
            hint="YAML aliases (*name) that repeat other aliases multiply quickly",
        )
    errors: list[Diagnostic] = []
    doc.data = _walk(node, loader, doc, "", errors)
    if errors:
        raise SpecError(errors)
    if not isinstance(doc.data, dict):
        # Never the text itself: `netc validate /etc/passwd` must not print the file.
        kind = {list: "a list", str: "text"}.get(type(doc.data)) or f"the value {_scalar(doc.data)}"
        raise SpecError.one(
            f"a spec must be a mapping of sections (netc, name, inputs, modules, ...), got {kind}",
            doc.values[""],
            hint="see docs/spec.md for the layout of a spec",
        )
    return doc


def _read(path: Path) -> str:
    """A spec file's text; SpecError for a missing, special, huge or non-UTF-8 file."""
    name = str(path)
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise SpecError.one(f"{name} is a folder, not a spec file")
        if not stat.S_ISREG(st.st_mode):  # /dev/zero or a FIFO would be read forever
            raise SpecError.one(f"{name} is not a regular file")
        if st.st_size > MAX_BYTES:
            raise SpecError.one(f"{name} holds {st.st_size:,} bytes; a spec is at most {MAX_BYTES:,}")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError.one(f"no such spec file: {name}") from None
    except OSError as e:
        raise SpecError.one(f"cannot read spec file {name}: {e.strerror}") from None
    except ValueError as e:  # a NUL byte in the name
        raise SpecError.one(f"cannot read spec file {name!r}: {e}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise SpecError.one(
            f"the file is not UTF-8 text: byte 0x{raw[e.start]:02x} cannot be read",
            Location(name, line, col),
            hint="save the file as UTF-8",
        ) from None


def _is_spec(node: yaml.Node | None) -> bool:
    """Whether a node tree looks like a netc spec: a mapping with a `netc:` key."""
    return isinstance(node, yaml.MappingNode) and any(
        isinstance(k, yaml.ScalarNode) and k.value == "netc" for k, _ in node.value
    )


def _load_include(target: Path, inc: str, where: Location, ptr: str) -> tuple[yaml.Node | None, Any]:
    """An included file's node tree. A file that is not a netc spec is one error at the
    `include:` line, naming the position but never quoting the file: `include: /etc/passwd`
    must not print the password file (PyYAML's messages quote names and characters)."""
    hint = "an included file is a netc spec: it starts with `netc: 1` and holds `blocks:`"
    try:
        node, loader = _compose(_read(target), str(target))
    except SpecError as e:
        d = e.diagnostics[0]
        if d.location is None:  # missing, unreadable, too big: says nothing of the contents
            raise SpecError.one(d.message, where, ptr) from None
        what = "not UTF-8 text" if "UTF-8" in d.message else "not valid YAML"
        at = f"line {d.location.line}, column {d.location.col}"
        raise SpecError.one(
            f"included file {inc} is not a netc spec: {what} at {at}", where, ptr, hint
        ) from None
    if not _is_spec(node):
        raise SpecError.one(
            f"included file {inc} is not a netc spec: it has no `netc: 1` key", where, ptr, hint
        )
    return node, loader


def load(
    path: str | Path, _seen: tuple[str, ...] = (), _tree: tuple[yaml.Node, Any] | None = None
) -> Document:
    """Read and parse a spec file and, recursively, its ``include:`` files.

    An include path is relative to the folder of the file that includes it; an absolute path
    is used as written, and `..` may climb out of the folder (shared block libraries live in
    sibling folders). The target must be a .yaml/.yml netc spec (docs/spec.md)."""
    path = Path(path)
    name = str(path)
    doc = _parse(*_tree, name) if _tree is not None else parse(_read(path), name)
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
        where = doc.where(ptr)
        if not inc.lower().endswith((".yaml", ".yml")):
            raise SpecError.one(
                f"include '{_short(inc)}' is not a .yaml or .yml file",
                where,
                ptr,
                "include names netc spec files whose blocks this spec uses",
            )
        try:
            target = (path.parent / inc).resolve()
            found = target.exists()
        except (OSError, ValueError) as e:  # a NUL byte, a name longer than the system allows
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise SpecError.one(f"include '{_short(inc)}' is not a usable path: {why}", where, ptr) from None
        if str(target) in (*_seen, resolved):
            chain = [*_seen[_seen.index(str(target)) :], resolved] if str(target) in _seen else [resolved]
            names = " → ".join(Path(p).name for p in [*chain, str(target)])
            hint = "a file cannot include itself, directly or indirectly"
            raise SpecError.one(f"include cycle: {names}", where, ptr, hint)
        if not found:
            raise SpecError.one(f"included file not found: {inc}", where, ptr, f"looked for {target}")
        tree = _load_include(target, inc, where, ptr)
        doc.includes.append(load(target, (*_seen, resolved), tree))
    return doc

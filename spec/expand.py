"""Pass 3 — expand: a Spec → a flat list of modules.

Inlines blocks (unrolling ``repeat`` with readable names such as
``stage1.2.conv1``), substitutes block arguments (``$c``), turns the
``sequence:`` shorthand into named modules, resolves every ``in`` reference
to a flat module or input name, and fills op defaults. Each module keeps the
document and pointer it came from, so later passes can name the place.

Longer than 500 lines because it is one pass: block instances, argument substitution and
arithmetic, repeat and the size bounds all work on the same scope stack and error list, and
split apart they would pass that state around.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, field
from typing import Any

from ..compiler.ops import OPS
from ..compiler.ops.base import Op
from .errors import Diagnostic, Location, SpecError, did_you_mean, pointer
from .load import MAX_INT, Document
from .schema import ARG
from .validate import Spec, _describe, _diag, check_attributes

COMMON_KEYS = ("op", "in", "doc", "trainable", "lr_mult", "name", "weight", "share")
INSTANCE_KEYS = ("block", "in", "repeat", "doc", "name", "share")
# Bounds on what a short spec can ask for. Each is checked before the work it guards:
# `repeat: 99999` three blocks deep would make 10^15 modules, and a chain of blocks nested
# hundreds deep or a 1,000-term `$c + $c + ...` would exhaust Python's stack.
MAX_MODULES = 100_000  # modules after expansion (ResNet-152 has ~500, GPT-3 ~1,000)
MAX_NESTING = 32  # block instances inside block instances
MAX_TERMS = 16  # operators in one `$c * 4 + 1` expression


@dataclass
class Module:
    """One module of the flat network."""

    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, Any]
    doc: Document
    ptr: str
    blocks: tuple[str, ...] = ()  # enclosing block instances, outermost first
    is_loss: bool = False
    weight: float = 1.0
    trainable: bool = True
    lr_mult: float = 1.0
    note: str = ""
    # tied weights (compiler.ties): a module name, or param -> "module.param"; None: its own
    share: str | dict[str, str] | None = None
    # where `share` was written: the module's own key, or the block instance it inherits it from
    share_at: tuple[Document, str] | None = None
    share_inherited: bool = False  # from `share:` on an enclosing block instance

    def where(self, sub: str = "", key: bool = False) -> Location:
        return self.doc.where(self.ptr + sub, key=key)


@dataclass
class Network:
    """The expanded network, still in declaration order."""

    name: str
    inputs: dict[str, dict[str, Any]]
    modules: list[Module]
    outputs: list[str] | None
    output_ptrs: list[str]
    train: dict[str, Any]
    data: dict[str, Any] | None
    doc: Document
    clusters: dict[str, str] = field(default_factory=dict)  # instance name -> block name
    warnings: list[Diagnostic] = field(default_factory=list)

    def module(self, name: str) -> Module:
        for m in self.modules:
            if m.name == name:
                return m
        raise KeyError(name)


@dataclass
class _Env:
    """The arguments of one block instance: name -> value, and where each value was written
    (the instance's `name: value`, or the block's `args:` default), for messages."""

    values: dict[str, Any]
    where: dict[str, tuple[Document, str]]


class _ArithError(Exception):
    """An argument expression that cannot be evaluated; ``arg`` names the argument at fault
    (its value is not a number), else the expression itself is."""

    def __init__(self, message: str, arg: str | None = None) -> None:
        super().__init__(message)
        self.arg = arg


class _Expander:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.modules: list[Module] = []
        self.aliases: dict[str, str] = {}  # block instance name -> name of its output
        self.errors: list[Diagnostic] = []
        self.clusters: dict[str, str] = {}
        self.names: set[str] = set()
        self.failed: set[str] = set()  # modules not created; references to them are not errors again
        self.sizes: dict[str, int] = {}  # block name -> modules one instance of it makes
        # pointer -> where the argument substituted there was given, for the module being
        # expanded: an attribute error then names the value's place, not only the block's
        self.given: dict[str, str] = {}
        # block instances with `share:` being expanded: (name prefix, the twin's prefix, doc, pointer)
        self.twins: list[tuple[str, str, Document, str]] = []

    # -- references -------------------------------------------------------
    def resolve(self, ref: str) -> str:
        seen = set()
        while ref in self.aliases and ref not in seen:
            seen.add(ref)
            ref = self.aliases[ref]
        return ref

    # -- one mapping of modules in one scope -----------------------------
    def scope(
        self,
        mods: dict[str, Any],
        doc: Document,
        base: str,
        prefix: str,
        env: _Env | None,
        bind: dict[str, list[str]],
        stack: tuple[str, ...],
        blocks: tuple[str, ...],
        note: str,
    ) -> None:
        """Expand ``mods`` (a modules mapping at ``doc``/``base``).

        prefix: name prefix for this scope ("" at top level, "stage1.2." in a block).
        env: block argument values, None at top level (no $args allowed).
        bind: block input name -> the qualified reference(s) it stands for.
        """
        local = set(mods)
        for name, raw in mods.items():
            ptr = base + pointer(name)
            if env is not None:
                raw = self.substitute(raw, env, doc, ptr, stack[-1])
                if raw is None or not self.names_after_substitution(raw, doc, ptr):
                    self.failed.add(prefix + name)
                    continue
            if prefix and raw.get("share") is not None:
                raw = {**raw, "share": _qualify_share(raw["share"], prefix, local)}
            ins = raw.get("in")
            refs = [ins] if isinstance(ins, str) else list(ins or [])
            qualified = []
            for i, r in enumerate(refs):
                rptr = ptr + ("/in" if isinstance(ins, str) else pointer("in", i))
                qualified += self.qualify(r, prefix, local, bind, doc, rptr, stack)
            if "block" in raw:
                if not self.instance(prefix + name, raw, qualified, doc, ptr, stack, blocks, env):
                    self.failed.add(prefix + name)
            else:
                self.add(prefix + name, raw, qualified, doc, ptr, blocks, note)

    def qualify(
        self,
        ref: str,
        prefix: str,
        local: set[str],
        bind: dict[str, list[str]],
        doc: Document,
        ptr: str,
        stack: tuple[str, ...],
    ) -> list[str]:
        if not prefix:
            return [ref]  # top level: checked after all modules exist
        if ref in bind:
            return bind[ref]
        if ref in local:
            return [prefix + ref]
        choices = [*bind, *local]
        self.errors.append(
            Diagnostic(
                f"unknown name '{ref}' in block '{stack[-1]}': a block sees its inputs "
                f"({', '.join(bind)}) and its own modules",
                doc.where(ptr),
                ptr,
                did_you_mean(ref, choices),
            )
        )
        return []

    def names_after_substitution(self, raw: dict[str, Any], doc: Document, ptr: str) -> bool:
        """``in`` still names modules once $arguments are substituted (``in: $c // 3 + 1``
        passes the schema as text and becomes a number). (``block:`` takes no $argument.)"""
        ins = raw.get("in")
        if ins is None or all(isinstance(x, str) for x in (ins if isinstance(ins, list) else [ins])):
            return True
        p = ptr + "/in"
        given = next((g for q, g in self.given.items() if (q + "/").startswith(p + "/")), "")
        what = f"'in' must be a module name or a list of them, got {_describe(ins)}"
        self.errors.append(Diagnostic(what, doc.where(p), p, given))
        return False

    def substitute(self, raw: Any, env: _Env, doc: Document, ptr: str, block: str) -> Any:
        """Replace "$arg" strings, at any depth (`kernel: [1, $k]`), by argument values and
        evaluate arithmetic on them; None (with errors) if any argument is unknown or an
        expression cannot be evaluated."""
        ok = True
        self.given = {}

        def fail(message: str, where: tuple[Document, str], hint: str = "") -> None:
            nonlocal ok
            ok = False
            self.errors.append(Diagnostic(message, where[0].where(where[1]), where[1], hint))

        def sub(v: Any, p: str) -> Any:
            if isinstance(v, str) and v.startswith("$"):
                names = _ARG_RE.findall(v)
                key = next((n for n in names if n not in env.values), None)
                if key is not None:
                    fail(
                        f"unknown block argument '${key}' in block '{block}'",
                        (doc, p),
                        did_you_mean("$" + key, ["$" + a for a in env.values])
                        or f"arguments of '{block}': {', '.join('$' + a for a in env.values) or 'none'}",
                    )
                    return v
                self.given[p] = "; ".join(
                    f"${a} is {_describe(env.values[a])}, given at {_at(env.where[a])}"
                    for a in dict.fromkeys(names)
                )
                if len(names) == 1 and v == "$" + names[0]:
                    return env.values[names[0]]
                if not _EXPR_RE.fullmatch(v):
                    return v  # free text such as a `doc:`; the attribute check judges it
                try:
                    return _arith(v, env.values)
                except _ArithError as e:
                    if e.arg is None:
                        fail(f"{e} (in block '{block}')", (doc, p))
                    else:  # the value is wrong, not the expression: point at the value
                        fail(
                            f"block argument '{e.arg}' is {_describe(env.values[e.arg])}, but "
                            f"'{v}' in block '{block}' needs a number",
                            env.where[e.arg],
                            "an argument's value is a number; arithmetic is written inside the "
                            "block, on $arguments (`$c * 4`)",
                        )
                    return v
            if isinstance(v, list):
                return [sub(x, p + pointer(i)) for i, x in enumerate(v)]
            if isinstance(v, dict):
                return {k: sub(x, p + pointer(k)) for k, x in v.items()}
            return v

        out = sub(raw, ptr)
        return out if ok else None

    def size(self, bname: str, depth: int = 0) -> int:
        """Modules one instance of block ``bname`` makes, nested instances and repeats
        included, computed without expanding anything. Capped just past MAX_MODULES; an
        unknown block or a cycle counts 1 (both are reported when expanded)."""
        if bname in self.sizes:
            return self.sizes[bname]
        if bname not in self.spec.blocks or depth > MAX_NESTING:
            return 1
        self.sizes[bname] = 1  # while being computed: a block that uses itself counts 1
        n = 0
        for raw in self.spec.blocks[bname][0]["modules"].values():
            if isinstance(raw, dict) and isinstance(raw.get("block"), str):
                repeat = raw.get("repeat", 1)
                repeat = repeat if isinstance(repeat, int) and repeat > 0 else 1
                n += repeat * self.size(raw["block"], depth + 1)
            else:
                n += 1
            n = min(n, MAX_MODULES + 1)
        self.sizes[bname] = n
        return n

    # -- a block instance ---------------------------------------------------
    def instance(
        self,
        name: str,
        raw: dict[str, Any],
        ins: list[str],
        doc: Document,
        ptr: str,
        stack: tuple[str, ...],
        blocks: tuple[str, ...],
        env: _Env | None,
    ) -> bool:
        bname = raw["block"]
        if bname not in self.spec.blocks:
            self.errors.append(
                Diagnostic(
                    f"unknown block '{bname}' in module '{name}'",
                    doc.where(ptr + "/block"),
                    ptr + "/block",
                    did_you_mean(bname, self.spec.blocks)
                    or f"blocks: {', '.join(self.spec.blocks) or 'none'}",
                )
            )
            return False
        if bname in stack:
            path = " → ".join([*stack[stack.index(bname) :], bname])
            self.errors.append(
                Diagnostic(
                    f"block '{bname}' uses itself: {path}",
                    doc.where(ptr + "/block"),
                    ptr + "/block",
                    "a block cannot contain an instance of itself, directly or through other blocks",
                )
            )
            return False
        if len(stack) >= MAX_NESTING:
            self.errors.append(
                Diagnostic(
                    f"blocks nest more than {MAX_NESTING} deep here: {' → '.join([*stack[:3], '…', bname])}",
                    doc.where(ptr + "/block"),
                    ptr + "/block",
                )
            )
            return False
        body, bdoc, bptr = self.spec.blocks[bname]
        defaults = body.get("args") or {}
        args = {k: v for k, v in raw.items() if k not in INSTANCE_KEYS}
        bad = False
        for k, v in args.items():
            if env is None and _has_arg(v):
                bad = True
                self.errors.append(
                    Diagnostic(
                        f"'{v}' in module '{name}': block arguments ($name) exist only inside a block",
                        doc.where(ptr + pointer(k)),
                        ptr + pointer(k),
                    )
                )
            if k not in defaults:
                bad = True
                self.errors.append(
                    Diagnostic(
                        f"block '{bname}' has no argument '{k}' (module '{name}')",
                        doc.where(ptr + pointer(k), key=True),
                        ptr + pointer(k),
                        did_you_mean(k, defaults) or f"arguments: {', '.join(defaults) or 'none'}",
                    )
                )
        for k, v in defaults.items():
            if v is None and k not in args:
                bad = True
                self.errors.append(
                    Diagnostic(
                        f"module '{name}' must give block argument '{k}' of '{bname}' (it has no default)",
                        doc.where(ptr),
                        ptr,
                        f"add `{k}: ...` to module '{name}'",
                    )
                )
        if bad:
            return False
        args_ptr = bptr + "/args"
        env2 = _Env(
            {**defaults, **args},
            {
                **{k: (bdoc, args_ptr + pointer(k)) for k in defaults},
                **{k: (doc, ptr + pointer(k)) for k in args},
            },
        )
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        repeat = raw.get("repeat", 1)
        # Counted before anything is expanded: nested repeats multiply (a → b → c, each
        # `repeat: 99999`, is 10^15 modules) and would otherwise run for ever.
        total = len(self.modules) + repeat * self.size(bname)
        if total > MAX_MODULES:
            sub = "/repeat" if "repeat" in raw else "/block"
            times = f"repeats block '{bname}' {repeat:,} times" if repeat > 1 else f"uses block '{bname}'"
            self.errors.append(
                Diagnostic(
                    f"module '{name}' {times}: the network would have more than the "
                    f"{MAX_MODULES:,} modules netc compiles",
                    doc.where(ptr + sub),
                    ptr + sub,
                    f"one instance of '{bname}' makes {self.size(bname):,} module(s), nested blocks and "
                    "repeats included"
                    if self.size(bname) <= MAX_MODULES
                    else f"one instance of '{bname}' makes more than {MAX_MODULES:,} modules",
                )
            )
            return False
        if repeat > 1 and len(inputs) != 1:
            self.errors.append(
                Diagnostic(
                    f"module '{name}' repeats block '{bname}', which has {len(inputs)} inputs; "
                    "repeat needs a block with one input",
                    doc.where(ptr + "/repeat"),
                    ptr + "/repeat",
                )
            )
            return False
        if len(ins) != len(inputs):
            self.errors.append(
                Diagnostic(
                    f"module '{name}' gives {len(ins)} input(s) to block '{bname}', which takes "
                    f"{len(inputs)} ({', '.join(inputs)})",
                    doc.where(ptr + "/in"),
                    ptr + "/in",
                )
            )
            return False
        out_local = body.get("output") or list(body["modules"])[-1]
        if out_local not in body["modules"]:
            optr = bptr + "/output"
            self.errors.append(
                Diagnostic(
                    f"output '{out_local}' of block '{bname}' is not one of its modules",
                    bdoc.where(optr),
                    optr,
                    did_you_mean(out_local, body["modules"]),
                )
            )
            return False
        cur = ins
        for i in range(1, repeat + 1):
            rep = f"{name}.{i}" if repeat > 1 else name
            self.clusters[rep] = bname
            note = f"instance '{rep}' of block '{bname}'"
            if raw.get("share") is not None:  # its twin's copy i: `share: left` -> left.2.conv
                self.twins.append((rep + ".", raw["share"] + rep[len(name) :] + ".", doc, ptr + "/share"))
            self.scope(
                body["modules"],
                bdoc,
                bptr + "/modules",
                rep + ".",
                env2,
                dict(zip(inputs, [[c] for c in cur], strict=True)),
                (*stack, bname),
                (*blocks, rep),
                note,
            )
            if raw.get("share") is not None:
                self.twins.pop()
            self.aliases[rep] = f"{rep}.{out_local}"
            cur = [f"{rep}.{out_local}"]
        if repeat > 1:
            self.aliases[name] = cur[0]
        return True

    # -- a plain module -----------------------------------------------------
    def add(
        self,
        name: str,
        raw: dict[str, Any],
        ins: list[str],
        doc: Document,
        ptr: str,
        blocks: tuple[str, ...],
        note: str,
        is_loss: bool = False,
    ) -> None:
        op = raw["op"]
        if name in self.names:
            self.errors.append(
                Diagnostic(
                    f"module name '{name}' is used twice (a block instance makes it too)",
                    doc.where(ptr, key=True),
                    ptr,
                )
            )
            return
        self.names.add(name)
        if blocks:  # block modules were checked loosely ($args); check them now
            before = len(self.errors)
            for e in check_attributes(op, raw):
                e.path.extendleft(reversed(_parts(ptr)))
                for d in _diag(doc, e):
                    given = next(
                        (g for q, g in self.given.items() if (d.pointer + "/").startswith(q + "/")), ""
                    )
                    hint = "; ".join(h for h in (d.hint, given) if h)
                    self.errors.append(Diagnostic(d.message + f" (in {note})", d.location, d.pointer, hint))
            if len(self.errors) > before:
                self.failed.add(name)
                return
        attrs = OPS[op].fill_defaults({k: v for k, v in raw.items() if k not in COMMON_KEYS})
        share, share_at, inherited = raw.get("share"), (doc, ptr + "/share"), False
        if share is None:  # inside a block instance that shares its twin's parameters
            twin = next((t for t in reversed(self.twins) if name.startswith(t[0])), None)
            # (an op without parameters, a relu of the block, has nothing to share)
            if twin is not None and type(OPS[op]).params is not Op.params:
                share, share_at, inherited = twin[1] + name[len(twin[0]) :], (twin[2], twin[3]), True
        self.modules.append(
            Module(
                name=name,
                op=op,
                inputs=ins,
                attrs=attrs,
                doc=doc,
                ptr=ptr,
                blocks=blocks,
                is_loss=is_loss,
                weight=float(raw.get("weight", 1.0)),
                trainable=bool(raw.get("trainable", True)),
                lr_mult=float(raw.get("lr_mult", 1.0)),
                note=note,
                share=share,
                share_at=share_at if share is not None else None,
                share_inherited=inherited,
            )
        )


_ARG_RE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_EXPR_RE = re.compile(ARG)  # what the schema admits as an argument expression
_TOKEN_RE = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*|[0-9]+|//|[-+*/%]")
_ARITH = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "//": operator.floordiv,
    "/": operator.truediv,
    "%": operator.mod,
}


def _has_arg(v: Any) -> bool:
    """Whether a value holds a "$name" anywhere (a list item included)."""
    if isinstance(v, str):
        return v.startswith("$")
    if isinstance(v, list):
        return any(_has_arg(x) for x in v)
    if isinstance(v, dict):
        return any(_has_arg(x) for x in v.values())
    return False


def _at(where: tuple[Document, str]) -> str:
    return str(where[0].where(where[1]))


def _arith(text: str, env: dict[str, Any]) -> int | float:
    """Evaluate a schema-checked expression such as "$c * 4 + 1": the usual precedence
    (* / // % before + -), left to right, without recursion, so its length cannot exhaust the
    stack; bounded in length and in the size of every intermediate result."""
    tokens = _TOKEN_RE.findall(text)
    ops, operands = tokens[1::2], tokens[0::2]
    if len(ops) > MAX_TERMS:
        raise _ArithError(f"'{text[:40]}…' has {len(ops)} operators; an expression may have {MAX_TERMS}")

    def value(tok: str) -> int | float:
        if not tok.startswith("$"):
            if len(tok) > 10:
                raise _ArithError(f"the number {tok[:12]}… in '{text[:40]}' is too large")
            return int(tok)
        v = env[tok[1:]]
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise _ArithError("not a number", arg=tok[1:])
        return v

    def apply(op: str, a: int | float, b: int | float) -> int | float:
        try:
            out = _ARITH[op](a, b)
        except ZeroDivisionError:
            raise _ArithError(f"'{text}' divides by zero") from None
        except OverflowError:
            out = math.inf
        if not (abs(out) <= MAX_INT if isinstance(out, int) else math.isfinite(out)):
            raise _ArithError(f"'{text}' is too large to compute")
        return out

    vals = [value(t) for t in operands]
    terms, signs = [vals[0]], []  # fold * / // % first, then + and -
    for op, v in zip(ops, vals[1:], strict=True):
        if op in "+-":
            signs.append(op)
            terms.append(v)
        else:
            terms[-1] = apply(op, terms[-1], v)
    out = terms[0]
    for op, v in zip(signs, terms[1:], strict=True):
        out = apply(op, out, v)
    return int(out) if isinstance(out, float) and out.is_integer() else out


def _qualify_share(share: Any, prefix: str, local: set[str]) -> Any:
    """A `share:` written inside a block: a name of the block's own modules means this copy's
    module (prefixed); any other name is a module of the flattened network (e.g. an embedding
    outside the block)."""

    def one(ref: Any) -> Any:
        if not isinstance(ref, str):
            return ref
        return prefix + ref if ref.split(".", 1)[0] in local else ref

    if isinstance(share, dict):
        return {k: one(v) for k, v in share.items()}
    return one(share)


def _parts(ptr: str) -> list[str | int]:
    out: list[str | int] = []
    for p in ptr.split("/")[1:]:
        p = p.replace("~1", "/").replace("~0", "~")
        out.append(int(p) if p.isdigit() else p)
    return out


def sequence_to_modules(seq: list[dict[str, Any]], inputs: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The ``sequence:`` shorthand as a modules mapping: each item reads the
    previous one (the first reads the first input) unless it says otherwise."""
    mods: dict[str, Any] = {}
    counts: dict[str, int] = {}
    names: list[str] = []  # one per item: a repeated name shows up twice
    prev: str | None = inputs[0]  # the first declared input (labels usually come later)
    for item in seq:
        kind = item.get("block") or item["op"]
        counts[kind] = counts.get(kind, 0) + 1
        name = item.get("name") or f"{kind}{counts[kind]}"
        body = {k: v for k, v in item.items() if k != "name"}
        if "in" not in body and prev is not None:
            body["in"] = prev
        mods[name] = body
        names.append(name)
        prev = name
    return mods, names


def expand(spec: Spec) -> Network:
    """Flatten a validated Spec; raise SpecError listing every problem."""
    ex = _Expander(spec)
    doc = spec.doc
    if spec.sequence is not None:
        mods, names = sequence_to_modules(spec.sequence, list(spec.inputs))
        first: dict[str, int] = {}
        for i, n in enumerate(names):
            if n in first or n in spec.inputs:
                p = pointer("sequence", i, "name") if "name" in spec.sequence[i] else pointer("sequence", i)
                if n in first:
                    line = doc.where(pointer("sequence", first[n])).line
                    msg = f"name '{n}' is used twice (first at line {line})"
                else:
                    msg = f"name '{n}' is the name of an input; modules and inputs need different names"
                ex.errors.append(Diagnostic(msg, doc.where(p), p))
            first.setdefault(n, i)
        # Point each generated module at its sequence item.
        ptrs = {n: pointer("sequence", i) for n, i in first.items()}
        for n, raw in mods.items():
            ins = raw.get("in")
            refs = [ins] if isinstance(ins, str) else list(ins or [])
            if "block" in raw:
                if not ex.instance(n, raw, refs, doc, ptrs[n], (), (), None):
                    ex.failed.add(n)
            else:
                ex.add(n, raw, refs, doc, ptrs[n], (), "")
    else:
        ex.scope(spec.modules or {}, doc, "/modules", "", None, {}, (), (), "")
    for name, raw in spec.losses.items():
        ins = raw.get("in")
        refs = [ins] if isinstance(ins, str) else list(ins or [])
        ex.add(name, {**raw}, refs, doc, pointer("losses", name), (), "", is_loss=True)

    # Resolve references now that every module and alias exists.
    known = {m.name for m in ex.modules} | set(spec.inputs)
    visible = [*spec.inputs, *(spec.modules or {}), *(m.name for m in ex.modules if not m.blocks)]
    for m in ex.modules:
        resolved = []
        for i, r in enumerate(m.inputs):
            q = ex.resolve(r)
            if q not in known and not ({r, q} & ex.failed):
                sub = "/in" if isinstance(_raw_in(m), str) else pointer("in", i)
                ex.errors.append(
                    Diagnostic(
                        f"module '{m.name}' reads '{r}', which is not an input or a module",
                        m.where(sub),
                        m.ptr + sub,
                        did_you_mean(r, visible + list(ex.aliases)) or _known(visible),
                    )
                )
            resolved.append(q)
        m.inputs = resolved
    outputs = None
    out_ptrs: list[str] = []
    if spec.outputs is not None:
        outputs = []
        for i, o in enumerate(spec.outputs):
            q = ex.resolve(o)
            p = pointer("outputs", i)
            out_ptrs.append(p)
            if q not in known:
                ex.errors.append(
                    Diagnostic(
                        f"output '{o}' is not a module",
                        doc.where(p),
                        p,
                        did_you_mean(o, visible + list(ex.aliases)) or _known(visible),
                    )
                )
            outputs.append(q)
    if ex.errors:
        # A block used N times repeats its definition's errors N times: once is enough.
        unique = {(str(d.location), d.message): d for d in ex.errors}
        raise SpecError(list(unique.values()))
    return Network(
        name=spec.name,
        inputs=spec.inputs,
        modules=ex.modules,
        outputs=outputs,
        output_ptrs=out_ptrs,
        train=spec.train,
        data=spec.data,
        doc=doc,
        clusters=ex.clusters,
        warnings=list(spec.warnings),
    )


def _known(names: list[str]) -> str:
    """A hint listing the names a reference may use (when a did-you-mean finds none)."""
    names = list(dict.fromkeys(names))
    more = f", ... ({len(names)} in all)" if len(names) > 12 else ""
    return f"inputs and modules: {', '.join(names[:12])}{more}" if names else ""


def _raw_in(m: Module) -> Any:
    data: Any = m.doc.data
    for p in _parts(m.ptr):
        data = data[p] if isinstance(data, dict | list) else None
    return data.get("in") if isinstance(data, dict) else None

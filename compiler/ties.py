"""Tied weights: which parameters a module's ``share:`` takes from another module.

``share: enc`` on a module uses every parameter of module ``enc`` (same op, same parameter
names and shapes): a siamese twin. ``share: {w: emb.w}`` takes single parameters, across ops
when the shapes agree: a linear decoder tied to an embedding (both [V, D], PyTorch's layout).
``share:`` on a block instance gives each of its modules the share of the twin instance's
module of the same name (``spec.expand``).

``resolve`` checks every share against the shaped modules and returns the tie of each sharing
parameter to its *root* owner: a chain ``c → b → a`` resolves to ``a`` (sharing is transitive,
so ``c`` and ``b`` both use ``a``'s memory); a cycle, a module sharing itself, an unknown
module or parameter, another op or another shape is an error at the sharing module's
``share:``, naming both modules and the mismatch. A tied parameter belongs to its owner: its
init, ``trainable`` and ``lr_mult`` are the owner's (a whole-module share that sets other values
is an error), and the plan counts it once
(``compiler.plan``; the runtime sums the gradients of all its users).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..spec.errors import Diagnostic, SpecError, did_you_mean
from ..spec.expand import Module
from .ops.base import Param


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _yaml(v: object) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def resolve(order: list[Module], params: Mapping[str, list[Param]]) -> dict[str, str]:
    """Sharing parameter ("dec.w") -> its root owner ("emb.w"), in network order. Raises a
    SpecError listing every bad share."""
    mods = {m.name: m for m in order}
    errors: list[Diagnostic] = []
    edges: dict[str, str] = {}  # sharing parameter -> the parameter it names (maybe shared too)
    at: dict[str, Module] = {}  # sharing parameter -> its module (for cycle messages)

    def fail(m: Module, message: str, hint: str = "") -> None:
        doc, ptr = m.share_at or (m.doc, m.ptr)
        ctx = f" (in {m.note})" if m.note else ""
        errors.append(Diagnostic(f"module '{m.name}' ({m.op}) {message}{ctx}", doc.where(ptr), ptr, hint))

    def owner_module(m: Module, name: str) -> Module | None:
        if name == m.name:
            fail(m, "shares itself", "`share:` names another module whose parameters this one uses")
            return None
        if name not in mods:
            names = [n for n in mods if params.get(n) and n != m.name]
            more = f", ... ({len(names)} in all)" if len(names) > 12 else ""
            fail(
                m,
                f"shares '{name}', which is not a module",
                did_you_mean(name, names) or f"modules with parameters: {', '.join(names[:12])}{more}",
            )
            return None
        return mods[name]

    for m in order:
        if m.share is None:
            continue
        own = {p.name: p for p in params.get(m.name, [])}
        if isinstance(m.share, str):
            if not own:
                if not m.share_inherited:  # a relu in a shared block instance has nothing to share
                    fail(m, f"shares '{m.share}' but has no parameters")
                continue
            o = owner_module(m, m.share)
            if o is None:
                continue
            if o.op != m.op:
                fail(
                    m,
                    f"cannot share module '{o.name}' ({o.op}): `share: {o.name}` needs the same op",
                    f"to tie single parameters across ops, name them: share: {{w: {o.name}.w}}",
                )
                continue
            theirs = {p.name: p for p in params.get(o.name, [])}
            if list(theirs) != list(own):
                fail(
                    m,
                    f"cannot share module '{o.name}': its parameters are ({', '.join(theirs) or 'none'}), "
                    f"this module's are ({', '.join(own)})",
                    "both modules need the same parameters (e.g. both with or without a bias)",
                )
                continue
            wanted = {k: f"{o.name}.{k}" for k in own}
            # Every parameter is the owner's, so its init, trainable and lr_mult would be ignored
            # here: a different value is an error, never a silent default.
            diff = [
                f"{key}: {_yaml(mine)} (the owner has {_yaml(theirs_v)})"
                for key, mine, theirs_v in (
                    ("init", m.attrs.get("init"), o.attrs.get("init")),
                    ("trainable", m.trainable, o.trainable),
                    ("lr_mult", m.lr_mult, o.lr_mult),
                )
                if mine != theirs_v
            ]
            if diff:
                fail(
                    m,
                    f"shares '{o.name}' but sets {', '.join(diff)}",
                    f"a shared parameter follows its owner: set these on '{o.name}'",
                )
                continue
        else:
            wanted = {}
            for k, ref in m.share.items():
                if k not in own:
                    fail(
                        m,
                        f"shares parameter '{k}', which it does not have",
                        did_you_mean(k, own) or f"its parameters: {', '.join(own) or 'none'}",
                    )
                    continue
                oname, _, pname = ref.rpartition(".")
                if not oname:
                    fail(m, f"shares '{ref}' as its '{k}': write module.parameter, e.g. {ref}.w")
                    continue
                o = owner_module(m, oname)
                if o is None:
                    continue
                theirs = {p.name: p for p in params.get(o.name, [])}
                if pname not in theirs:
                    fail(
                        m,
                        f"shares '{ref}' as its '{k}', but module '{o.name}' ({o.op}) has no parameter "
                        f"'{pname}'",
                        did_you_mean(pname, theirs) or f"its parameters: {', '.join(theirs) or 'none'}",
                    )
                    continue
                wanted[k] = ref
        bad = []  # every parameter whose shape differs, in one message per module
        for k, ref in wanted.items():
            oname, _, pname = ref.rpartition(".")
            theirs_p = next(p for p in params[oname] if p.name == pname)
            if own[k].shape != theirs_p.shape:
                bad.append(
                    f"its {k} would be {_shape(own[k].shape)} here, and '{ref}' is {_shape(theirs_p.shape)}"
                )
        if bad:
            what = (
                f"module '{m.share}'"
                if isinstance(m.share, str)
                else ", ".join(f"'{r}'" for r in wanted.values())
            )
            fail(
                m,
                f"cannot share {what}: {'; '.join(bad)}",
                "a shared parameter keeps one shape: make the two modules' attributes agree",
            )
            continue
        for k, ref in wanted.items():
            edges[f"{m.name}.{k}"] = ref
            at[f"{m.name}.{k}"] = m
    ties: dict[str, str] = {}
    for name, m in at.items():
        path, cur = [name], edges[name]
        while cur in edges and cur not in path:
            path.append(cur)
            cur = edges[cur]
        if cur in path:
            loop = [*path[path.index(cur) :], cur]
            if name == min(loop[:-1], key=list(at).index):  # reported at its first module
                cycle = " → ".join(n.rpartition(".")[0] for n in loop)
                fail(
                    m, f"is in a cycle of shares: {cycle}", "one module of the cycle must own the parameters"
                )
            continue
        ties[name] = cur
    if errors:  # a cycle through several parameters of the same modules is one error
        raise SpecError(list({(str(d.location), d.message): d for d in errors}.values()))
    return ties

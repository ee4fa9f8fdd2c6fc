"""The `netc` command: argument parsing and printing only; the work is done
by the passes behind netc's Python API.

Every error a person can cause (spec, flags, files) ends in one clear message
on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from .spec.errors import Diagnostic, SpecError


class UsageError(Exception):
    """A bad flag or argument."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse exits 2; netc promises 1
        raise UsageError(f"{self.prog}: {message}\n(see `{self.prog} --help`)")


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _print_warnings(ws: list[Diagnostic]) -> None:
    for w in ws:
        print(str(w), file=sys.stderr)


def cmd_validate(a: argparse.Namespace) -> int:
    from . import load

    net = load(a.spec)
    _print_warnings(net.warnings)
    n = len(net.expanded.modules)
    print(f"{a.spec}: ok — {n} modules, {len(net.warnings)} warning(s)")
    return 0


def cmd_compile(a: argparse.Namespace) -> int:
    from . import load

    net = load(a.spec)
    if a.expand:
        from .compiler.report.expanded import expanded_yaml

        print(expanded_yaml(net.expanded), end="")
        return 0
    plan = net.compile(a.batch, a.optimizer)
    _print_warnings(net.warnings)
    if a.output:
        _write(Path(a.output), plan.to_json() + "\n")
        print(f"wrote {a.output}", file=sys.stderr)
    if a.json:
        from .compiler.report.summary import summary_dict

        print(json.dumps(summary_dict(plan), indent=1))
    elif not a.output:
        print(plan.summary())
    return 0


def cmd_draw(a: argparse.Namespace) -> int:
    from . import load
    from .compiler.report.draw import DrawError, draw

    net = load(a.spec)
    plan = net.compile(a.batch)
    try:
        result = draw(plan, a.output, collapse=a.collapse, renderer=a.renderer)
    except DrawError as e:  # a bad file name or a missing renderer: one clear line, exit 1
        raise UsageError(f"netc draw: {e}") from None
    print(result.message)
    return 0


def cmd_gradcheck(a: argparse.Namespace) -> int:
    from . import load

    plan = load(a.spec).compile(a.batch, input_grads=True)
    from .runtime.check import gradcheck

    try:
        rows = gradcheck(plan, a.batch, samples=a.samples)
    except ValueError as e:
        raise UsageError(f"netc gradcheck: {e}") from None
    width = max(len(r.name) for r in rows)
    print(f"{'tensor':<{width}}  {'kind':<9}  {'checked':>7}  {'max rel. error':>14}")
    bad = 0
    for r in rows:
        flag = "" if r.max_rel_error <= a.tol else "  FAIL"
        bad += bool(flag)
        print(f"{r.name:<{width}}  {r.kind:<9}  {r.checked:>7}  {r.max_rel_error:>14.2e}{flag}")
    verdict = f"{bad} of {len(rows)} over the tolerance {a.tol:g}" if bad else f"all within {a.tol:g}"
    print(f"float64 central differences, eps 1e-5, batch {a.batch}: {verdict}")
    return 1 if bad else 0


def cmd_profile(a: argparse.Namespace) -> int:
    from . import load

    plan = load(a.spec).compile(a.batch)
    from .runtime.check import profile

    rows = profile(plan, a.batch, a.repeats)
    total = sum(r.forward_s + r.backward_s for r in rows) or 1.0
    width = max(len(r.module) for r in rows)
    print(f"{'module':<{width}}  {'op':<20}  {'forward ms':>10}  {'backward ms':>11}  {'share':>6}")
    for r in rows:
        share = (r.forward_s + r.backward_s) / total
        print(
            f"{r.module:<{width}}  {r.op:<20}  {r.forward_s * 1e3:>10.3f}  "
            f"{r.backward_s * 1e3:>11.3f}  {share:>6.1%}"
        )
    fwd = sum(r.forward_s for r in rows)
    print(f"step {total * 1e3:.2f} ms (forward {fwd * 1e3:.2f}, backward {(total - fwd) * 1e3:.2f}); "
          f"median of {a.repeats} at batch {a.batch}; {a.batch / total:,.0f} samples/s")  # fmt: skip
    return 0


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as e:
        why = f"the folder {path.parent} does not exist" if not path.parent.is_dir() else e.strerror
        raise UsageError(f"netc: cannot write {path}: {why}") from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="netc", description="A declarative neural-network compiler.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    v = sub.add_parser("validate", help="check a spec; list every error with file:line:col")
    v.add_argument("spec", help="the YAML spec")
    v.set_defaults(func=cmd_validate)

    c = sub.add_parser("compile", help="shapes, parameters, FLOPs and the memory ledger")
    c.add_argument("spec")
    c.add_argument("--batch", type=_positive, default=32, help="batch size for the memory ledger (32)")
    c.add_argument(
        "--optimizer",
        choices=["sgd", "momentum", "adam", "adamw", "rmsprop", "adagrad"],
        help="optimizer state in the ledger",
    )
    c.add_argument("--json", action="store_true", help="print a JSON summary instead of the table")
    c.add_argument("-o", "--output", metavar="PLAN.json", help="write the full plan as JSON")
    c.add_argument("--expand", action="store_true", help="print the flattened spec (blocks inlined)")
    c.set_defaults(func=cmd_compile)

    d = sub.add_parser("draw", help="draw the network with Graphviz")
    d.add_argument("spec")
    d.add_argument("-o", "--output", required=True, metavar="FILE", help="FILE.svg, .png, .pdf or .dot")
    d.add_argument("--collapse", action="store_true", help="draw each block instance as one node")
    d.add_argument("--batch", type=_positive, default=1, help=argparse.SUPPRESS)
    d.add_argument(
        "--renderer", choices=["auto", "system", "pypi", "none"], default="auto", help=argparse.SUPPRESS
    )
    d.set_defaults(func=cmd_draw)

    g = sub.add_parser("gradcheck", help="analytic vs finite-difference gradients on your network")
    g.add_argument("spec")
    g.add_argument("--batch", type=_positive, default=4)
    g.add_argument("--samples", type=_positive, default=6, help="elements checked per tensor (6)")
    g.add_argument("--tol", type=float, default=1e-4, help="largest relative error allowed (1e-4)")
    g.set_defaults(func=cmd_gradcheck)

    pr = sub.add_parser("profile", help="forward and backward time per module")
    pr.add_argument("spec")
    pr.add_argument("--batch", type=_positive, default=32)
    pr.add_argument("--repeats", type=_positive, default=10)
    pr.set_defaults(func=cmd_profile)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        func: Callable[[argparse.Namespace], int] = args.func
        return func(args)
    except SpecError as e:
        print(str(e), file=sys.stderr)
        n = len(e.diagnostics)
        if n > 1:
            print(f"{n} errors", file=sys.stderr)
        return 1
    except UsageError as e:
        print(str(e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The `netc` command: argument parsing and printing only; the work is done
by the passes behind netc's Python API.

Every error a person can cause (spec, flags, files) ends in one clear message
on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .compiler import optimizers
from .runtime.device import DEVICES  # the backends registry: cheap, no numba
from .spec.errors import Diagnostic, SpecError


class UsageError(Exception):
    """A bad flag or argument."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse exits 2; netc promises 1
        raise UsageError(f"{self.prog}: {message}\n(see `{self.prog} --help`)")


_MAX_COUNT = 2**31 - 1
_MAX_SEED = 2**63 - 1


def _parsed(text: str, kind: type, want: str, ok: Callable[[Any], bool], bounds: str) -> Any:
    """``text`` as ``kind`` (int or float), or an argparse error naming what was expected:
    ``want`` when it does not parse, ``bounds`` when it parses but ``ok`` refuses it."""
    try:
        v = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {want}, got '{text}'") from None
    if not ok(v):
        raise argparse.ArgumentTypeError(f"expected {bounds}, got {text}")
    return v


def _positive(text: str) -> int:
    # Counts and sizes beyond _MAX_COUNT are typos, and overflow int32 kernel indices.
    _parsed(text, int, "a positive integer", lambda v: v >= 1, "a positive integer")
    return _parsed(text, int, "", lambda v: v <= _MAX_COUNT, f"a positive integer of at most {_MAX_COUNT:,}")


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


def _warn_memory(plan: Any) -> None:
    """One line on stderr when the training step would not fit in this machine's memory."""
    from .compiler.host import short_of_memory
    from .compiler.report.summary import human_bytes

    led = plan.memory["ledger"]
    have = short_of_memory(led["training_peak_bytes"])
    if have is not None:
        print(
            f"netc compile: warning: the training-step peak at batch {led['batch']} "
            f"({human_bytes(led['training_peak_bytes'])}) exceeds the {human_bytes(have)} of memory "
            "available on this machine; `netc run` would refuse it",
            file=sys.stderr,
        )


def cmd_compile(a: argparse.Namespace) -> int:
    from . import load

    net = load(a.spec)
    if a.expand:
        from .compiler.report.expanded import expanded_yaml

        print(expanded_yaml(net.expanded), end="")
        return 0
    plan = net.compile(a.batch, a.optimizer, mode="inference" if a.inference else "training")
    _print_warnings(net.warnings)
    _warn_memory(plan)
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
    from .runtime.check import gradcheck, target_inputs

    try:
        rows = gradcheck(
            plan, a.batch, samples=a.samples, device=a.device, tol=a.tol, inputs=a.inputs, tensors=a.tensors
        )
    except ValueError as e:
        raise UsageError(f"netc gradcheck: {e}") from None
    width = max(len(r.name) for r in rows)
    print(f"{'tensor':<{width}}  {'kind':<9}  {'checked':>7}  {'max rel. error':>14}")
    bad = 0
    for r in rows:
        flag = "" if r.max_rel_error <= a.tol else "  FAIL"
        bad += bool(flag)
        note = f"  ({r.kinks} near a kink, skipped)" if r.kinks else ""
        print(f"{r.name:<{width}}  {r.kind:<9}  {r.checked:>7}  {r.max_rel_error:>14.2e}{flag}{note}")
    if a.inputs == "data" and (targets := [t for t in target_inputs(plan) if f"d:{t}" in plan.tensors]):
        print(f"not checked: {', '.join(targets)} (loss targets; --inputs all checks them)")
    verdict = f"{bad} of {len(rows)} over the tolerance {a.tol:g}" if bad else f"all within {a.tol:g}"
    print(f"float64 central differences, eps 1e-5, batch {a.batch}: {verdict}")
    return 1 if bad else 0


def cmd_profile(a: argparse.Namespace) -> int:
    from . import load

    plan = load(a.spec).compile(a.batch)
    from .runtime.check import profile

    rows = profile(plan, a.batch, a.repeats, device=a.device)
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


def _lr(text: str) -> float:
    return _parsed(text, float, "a positive number", lambda v: 0 < v < float("inf"), "a positive number")


def _tolerance(text: str) -> float:
    """A finite number >= 0: a NaN tolerance would let every gradient pass."""
    return _parsed(text, float, "a number >= 0", lambda v: 0 <= v < float("inf"), "a finite number >= 0")


def _nonneg(text: str) -> int:
    return _parsed(
        text, int, "an integer >= 0", lambda v: 0 <= v <= _MAX_SEED, "an integer from 0 to 2**63 - 1"
    )


def cmd_run(a: argparse.Namespace) -> int:
    from .runtime.run import run

    overrides = {"epochs": a.epochs, "batch_size": a.batch_size, "lr": a.lr, "seed": a.seed}
    r = run(a.spec, overrides, out=a.out, resume=a.resume, init=a.init_from, overfit_batch=a.overfit_batch,
            progress=a.progress, plots=not a.no_plots, device=a.device)  # fmt: skip
    if a.progress == "silent" and r.status in ("finished", "early_stopped", "complete", "overfit"):
        return 0  # --silent: errors only; the run directory holds the rest
    if r.status == "complete":  # a resumed run that had already ended
        print(r.message)
        return 0
    if r.status in ("overfit", "overfit_failed"):
        print(r.message, file=sys.stdout if r.status == "overfit" else sys.stderr)
        return 0 if r.status == "overfit" else 1
    if r.status == "diverged":
        print(f"netc run: {r.message}", file=sys.stderr)
        return 1
    if r.status == "interrupted":
        import shlex

        cmd = f"netc run {shlex.quote(str(a.spec))} --resume {shlex.quote(str(r.run_dir))}"
        print(f"{r.message}\nresume with: {cmd}", file=sys.stderr)
        return 130
    if r.message:
        print(r.message)
    last = r.history[-1] if r.history else {}
    shown = {k: v for k, v in last.items() if k.startswith(("train_", "val_")) and isinstance(v, float)}
    best = f" (best epoch {r.best['epoch']}, restored)" if r.best else ""
    print(f"done: {r.epoch} epochs, {r.step} steps{best}; "
          + "  ".join(f"{k} {v:.4f}" for k, v in shown.items()))  # fmt: skip
    if r.best:
        print("best: " + "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                   for k, v in r.best.items()))  # fmt: skip
    print(f"run directory: {r.run_dir} (metrics.jsonl, plots/, checkpoints/, weights.safetensors)")
    return 0


def _setup_with_weights(a: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .runtime.run import build, load_weights

    s = build(Path(a.spec), overrides={"batch_size": a.batch_size}, device=a.device, mode="inference")
    norm, run_dir = load_weights(s, a.checkpoint)
    return s, norm, run_dir


def cmd_eval(a: argparse.Namespace) -> int:
    s, norm, run_dir = _setup_with_weights(a)
    from .runtime.run import eval_split, evaluate

    ds, name = eval_split(s, norm, a.split, a.data)
    e = evaluate(s, ds, "eval")
    print(f"{a.spec} on {name} ({e.samples} samples):")
    for k, v in e.metrics.items():
        print(f"  {k.removeprefix('eval_'):<12} {v:.4f}")
    if e.confusion is not None:
        from .runtime.plots import plot_confusion

        k = len(e.confusion)
        if k <= 20:
            print("confusion matrix (rows: true class, columns: predicted):")
            w = max(len(str(int(e.confusion.max()))), len(str(k - 1))) + 1
            print(" " * 4 + "".join(f"{j:>{w}}" for j in range(k)))
            for i, row in enumerate(e.confusion):
                print(f"{i:>3} " + "".join(f"{int(c):>{w}}" for c in row))
        _print_per_class(e.per_class, rows=k <= 20)
        out = Path(a.output) if a.output else run_dir / "confusion.png"
        try:
            plot_confusion(e.confusion, out)
        except OSError as err:
            raise UsageError(f"netc eval: cannot write {out}: {err.strerror}") from None
        print(f"wrote {out}")
    return 0


def _print_per_class(scores: Any, rows: bool) -> None:
    """Precision, recall, F1 and support per class (``rows``) and their macro and
    support-weighted averages, laid out as scikit-learn's classification_report."""
    import numpy as np

    support = scores[:, 3]
    print(f"{'class':>12}  {'precision':>9}  {'recall':>9}  {'f1-score':>9}  {'support':>8}")
    for i, (p, r, f, n) in enumerate(scores if rows else []):
        print(f"{i:>12}  {p:>9.4f}  {r:>9.4f}  {f:>9.4f}  {int(n):>8}")
    weights = support / support.sum() if support.sum() else np.zeros_like(support)
    for label, avg in (("macro avg", scores[:, :3].mean(0)), ("weighted avg", weights @ scores[:, :3])):
        print(f"{label:>12}  {avg[0]:>9.4f}  {avg[1]:>9.4f}  {avg[2]:>9.4f}  {int(support.sum()):>8}")


def cmd_predict(a: argparse.Namespace) -> int:
    if a.output and Path(a.output).suffix not in (".csv", ".npz"):  # before any work is done
        raise UsageError(f"netc predict: -o {a.output}: write .npz or .csv")
    s, norm, _ = _setup_with_weights(a)
    import numpy as np

    from .runtime.run import predict

    out = predict(s, norm, a.input, probabilities=a.probabilities)
    n = len(next(iter(out.values())))
    if a.output:
        path = Path(a.output)
        if path.suffix == ".csv":
            cols = [v.reshape(n, -1) for v in out.values()]
            names = [f"{k}[{i}]" if v.shape[1] > 1 else k for k, v in zip(out, cols, strict=True)
                     for i in range(v.shape[1])]  # fmt: skip
            body = np.concatenate([c.astype(np.float64) for c in cols], axis=1)
            try:
                np.savetxt(path, body, delimiter=",", header=",".join(names), comments="", fmt="%.8g")
            except OSError as e:
                raise UsageError(f"netc predict: cannot write {path}: {e.strerror}") from None
        elif path.suffix == ".npz":
            try:
                np.savez(path, **out)
            except OSError as e:
                raise UsageError(f"netc predict: cannot write {path}: {e.strerror}") from None
        print(f"wrote {path}: {', '.join(f'{k} {list(v.shape)}' for k, v in out.items())}")
        return 0
    classes = [k for k in out if k.endswith("_class")]

    def predicted(k: str, i: int) -> str:
        c, prob = out[k][i], out.get(k.removesuffix("_class") + "_prob")
        if prob is None or np.ndim(c) != 0:
            return f"{k.removesuffix('_class')} -> {c}"
        return f"{k.removesuffix('_class')} -> {int(c)} (p {float(prob[i][int(c)]):.4f})"

    for i in range(min(n, 20)):
        if classes:
            print(f"{i}: " + "  ".join(predicted(k, i) for k in classes))
        else:
            print(f"{i}: " + "  ".join(f"{k} {np.array2string(out[k][i], precision=4)}" for k in out))
    if n > 20:
        print(f"... {n - 20} more (use -o FILE.npz or FILE.csv to save all {n})")
    return 0


def cmd_lr_find(a: argparse.Namespace) -> int:
    from .runtime.plots import plot_lr_find, suggest_lr
    from .runtime.run import build, find_lr

    overrides = {"batch_size": a.batch_size, "seed": a.seed}
    s = build(Path(a.spec), overrides=overrides, device=a.device, bind=False)  # bound once the data is read
    lrs, losses = find_lr(s, a.steps)
    lr = suggest_lr(lrs, losses)
    out = Path(a.output)
    try:
        plot_lr_find(lrs, losses, lr, out)
    except OSError as e:
        raise UsageError(f"netc lr-find: cannot write {out}: {e.strerror}") from None
    print(f"LR range test: {len(lrs)} minibatches, learning rate {lrs[0]:.1e} to {lrs[-1]:.1e}; wrote {out}")
    if lr is None:
        print("no suggestion: the loss did not fall over the range (check the data and the loss)")
        return 0
    print(f"suggested learning rate: {lr:.3g} (steepest descent of the smoothed loss)")
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
        choices=optimizers.TYPES,
        help="optimizer state in the ledger",
    )
    c.add_argument("--json", action="store_true", help="print a JSON summary instead of the table")
    c.add_argument("-o", "--output", metavar="PLAN.json", help="write the full plan as JSON")
    c.add_argument("--expand", action="store_true", help="print the flattened spec (blocks inlined)")
    c.add_argument(
        "--inference",
        action="store_true",
        help="the inference plan: forward only, dropout removed",
    )
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
    g.add_argument("--tol", type=_tolerance, default=1e-4, help="largest relative error allowed (1e-4)")
    g.add_argument(
        "--inputs",
        choices=["data", "all", "none"],
        default="data",
        help="whose input gradients to check: data (all but loss targets; default), all, none",
    )
    g.add_argument(
        "--tensors", type=_positive, default=None, help="check only K tensors, spread first to last (all)"
    )
    g.add_argument("--device", choices=DEVICES, default="cpu", help="whose kernels (cpu)")
    g.set_defaults(func=cmd_gradcheck)

    pr = sub.add_parser("profile", help="forward and backward time per module")
    pr.add_argument("spec")
    pr.add_argument("--batch", type=_positive, default=32)
    pr.add_argument("--repeats", type=_positive, default=10)
    pr.add_argument("--device", choices=DEVICES, default="cpu", help="where to run (cpu)")
    pr.set_defaults(func=cmd_profile)

    device = {"choices": DEVICES, "default": "cpu", "help": "where to run (cpu)"}
    r = sub.add_parser("run", help="train the network on the spec's data")
    r.add_argument("spec")
    r.add_argument("--epochs", type=_positive, help="override train.epochs")
    r.add_argument("--batch-size", type=_positive, help="override train.batch_size")
    r.add_argument("--lr", type=_lr, help="override train.optimizer.lr")
    r.add_argument("--seed", type=_nonneg, help="override train.seed")
    r.add_argument("--out", metavar="DIR", help="run directory (default runs/<name>)")
    r.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint "
                   "(with --epochs above the run's: train it longer)")  # fmt: skip
    r.add_argument("--init-from", metavar="PATH", help="start a new run from saved weights (a run directory, "
                   "weights, best or checkpoint file), matched by parameter name and shape")  # fmt: skip
    r.add_argument("--overfit-batch", action="store_true", help="train on one minibatch until its loss is ~0")
    r.add_argument("--device", **device)
    shown = r.add_mutually_exclusive_group()
    shown.add_argument("--quiet", dest="progress", action="store_const", const="quiet", default="live",
                       help="no live progress line; epoch summaries and notes only")  # fmt: skip
    shown.add_argument("--silent", dest="progress", action="store_const", const="silent",
                       help="print nothing but errors")  # fmt: skip
    r.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    r.set_defaults(func=cmd_run)

    e = sub.add_parser("eval", help="metrics (and a confusion matrix) of trained weights")
    e.add_argument("spec")
    e.add_argument("--checkpoint", required=True, metavar="PATH", help="run dir, checkpoint or weights file")
    e.add_argument(
        "--data", metavar="FILE", help="evaluate on this .npz/.csv/IDX file instead of the spec's data"
    )
    e.add_argument("--split", choices=["train", "val", "test", "all"], help="which split of the spec's data")
    e.add_argument("--batch-size", type=_positive, default=256)
    e.add_argument("-o", "--output", metavar="PNG", help="confusion matrix image (default RUN/confusion.png)")
    e.add_argument("--device", **device)
    e.set_defaults(func=cmd_eval)

    pd = sub.add_parser("predict", help="outputs of trained weights on new inputs")
    pd.add_argument("spec")
    pd.add_argument("--checkpoint", required=True, metavar="PATH", help="run dir, checkpoint or weights file")
    pd.add_argument("--input", required=True, metavar="FILE", help=".npz, .npy, .csv or IDX file of inputs")
    pd.add_argument("-o", "--output", metavar="FILE", help="write all outputs to FILE.npz or FILE.csv")
    pd.add_argument(
        "--probabilities",
        action="store_true",
        help="add OUTPUT_prob: softmax (cross-entropy) or sigmoid (binary cross-entropy) per class",
    )
    pd.add_argument("--batch-size", type=_positive, default=256)
    pd.add_argument("--device", **device)
    pd.set_defaults(func=cmd_predict)

    lf = sub.add_parser("lr-find", help="learning-rate range test: loss vs LR, and a suggested LR")
    lf.add_argument("spec")
    lf.add_argument("--steps", type=_positive, default=200, help="minibatches, LR from 1e-7 to 10 (200)")
    lf.add_argument("--batch-size", type=_positive, help="override train.batch_size")
    lf.add_argument("--seed", type=_nonneg, help="override train.seed")
    lf.add_argument("-o", "--output", default="lr_find.png", metavar="PNG", help="the plot (lr_find.png)")
    lf.add_argument("--device", **device)
    lf.set_defaults(func=cmd_lr_find)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        func: Callable[[argparse.Namespace], int] = args.func
        code = func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at exit
        return code
    except BrokenPipeError:
        # The reader went away (`netc compile X --json | head`): stop quietly, as `yes | head`
        # does. Python flushes stdout once more at exit; point it at devnull so that flush
        # cannot fail again with a traceback.
        with contextlib.suppress(OSError, ValueError, AttributeError):  # a stdout without a descriptor
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE: what a shell reports for a writer the closed pipe stopped
    except SpecError as e:
        print(e.report(), file=sys.stderr)  # at most 50 errors, then "… and N more", then the count
        return 1
    except UsageError as e:
        print(str(e), file=sys.stderr)
        return 1
    except MemoryError:
        # The ledger checks refuse what cannot fit before allocating; this is the last resort for an
        # allocation they cannot foresee (a data set larger than memory, a busy machine).
        print("netc: out of memory; reduce the batch size, the model or the data set", file=sys.stderr)
        return 1
    except Exception as e:
        # Data, checkpoint and run errors are a person's to fix: one line, no traceback.
        # The runtime is imported lazily (it pulls in numba), hence the name check.
        if type(e).__name__ in ("DataError", "CheckpointError", "TrainError", "WeightsError", "DeviceError"):
            print(f"netc: {e}", file=sys.stderr)
            return 1
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

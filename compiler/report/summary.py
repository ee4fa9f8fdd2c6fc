"""Reports of a plan: the summary table, readable units, and the JSON
summary that `netc compile --json` prints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: Plan.summary()/draw() import these modules
    from ..plan import Plan


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError


def human_count(n: float, unit: str = "") -> str:
    for suffix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {suffix}{unit}"
    return f"{n:.0f} {unit}".rstrip()


def _shape(row: Any) -> str:
    dims = ", ".join(str(d) for d in row.output_shape)
    if not row.batched:
        return f"[{dims}]"
    return f"[N, {dims}]" if dims else "[N]"


def params_headline(plan: Plan) -> str:
    """``11,689,512 trainable · 0 non-trainable (frozen)``: trainable
    parameters first, the figure papers and PyTorch's ``parameters()`` quote."""
    return f"{plan.trainable_params:,} trainable · {plan.non_trainable_params:,} non-trainable (frozen)"


def summary_dict(plan: Plan) -> dict[str, Any]:
    """The machine-readable summary (`netc compile --json`)."""
    ledger = dict(plan.memory["ledger"]) if plan.memory else {}
    return {
        "name": plan.name,
        "total_params": plan.total_params,
        "trainable_params": plan.trainable_params,
        "non_trainable_params": plan.non_trainable_params,
        "buffers": plan.buffers,
        "forward_flops": plan.forward_flops,
        "backward_flops": plan.backward_flops,
        "flops_unit": "per sample; one multiply-add = 2 FLOPs",
        "inputs": plan.inputs,
        "outputs": plan.outputs,
        "losses": plan.losses,
        "mode": plan.mode,
        "fusion": plan.fusion,
        "memory": ledger,
        "modules": [
            {
                "name": r.name,
                "op": r.op,
                "output_shape": r.output_shape,
                "params": r.params,
                "buffers": r.buffers,
                "forward_flops": r.forward_flops,
                "backward_flops": r.backward_flops,
                "blocks": r.blocks,
            }
            for r in plan.modules
        ],
    }


def fusion_lines(plan: Plan) -> list[str]:
    """One line per decision of the fusion pass (compiler.fusion), for ``netc compile``."""
    ops = {m.name: m.op for m in plan.modules}
    lines = []
    for d in plan.fusion:
        if d["kind"] == "epilogue":
            p, a = d["modules"]
            lines.append(f"{p} ({ops[p]}) + {a} ({ops[a]}): one step, {a} in {p}'s output buffer")
        elif d["kind"] == "chain":
            h, *c = d["modules"]
            names = " -> ".join(f"{a} ({ops[a]})" for a in c)
            lines.append(
                f"{h} ({ops[h]}) -> {names}: one step, the chain in one loop over {h}'s output buffer"
            )
        elif d["kind"] == "folded":
            p, b = d["modules"]
            lines.append(f"{b} ({ops[b]}): folded into {p}'s ({ops[p]}) weights and bias")
        else:
            m = d["modules"][0]
            lines.append(f"{m} ({ops[m]}): removed, {d['note']}")
    return lines


def summary_table(plan: Plan) -> str:
    """A Keras-style table: module, op, output shape, params, forward FLOPs;
    totals; the memory ledger in readable units."""
    head = ("module", "op", "output shape", "params", "fwd FLOPs/sample")
    rows = [
        (
            r.name,
            r.op + (f" ({r.describe})" if r.describe else ""),
            _shape(r),
            f"{r.params:,}",
            human_count(r.forward_flops),
        )
        for r in plan.modules
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    right = {3, 4}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "─" * (sum(widths) + 2 * (len(widths) - 1))
    out = [f"netc plan: {plan.name}", rule, line(head), rule, *(line(r) for r in rows), rule]
    out.append(f"params        {params_headline(plan)}")
    # Running statistics are state the forward pass updates, not parameters;
    # they get their own figure (their bytes stay in the memory ledger).
    out.append(f"buffers       {plan.buffers:,} (BatchNorm running statistics)")
    out.append(
        f"FLOPs/sample  {human_count(plan.forward_flops)} forward · "
        f"{human_count(plan.backward_flops)} backward"
        " (1 multiply-add = 2 FLOPs)"
    )
    if plan.memory:
        m = plan.memory["ledger"]
        b = m["batch"]
        out.append(
            f"FLOPs/batch   {human_count(plan.forward_flops * b)} forward · "
            f"{human_count((plan.forward_flops + plan.backward_flops) * b)} training step (batch {b})"
        )
    if plan.ties:  # a sharing module's row counts none of them: its owner's row counts them once
        out.append(rule)
        out.append("shared parameters (share:, counted once, at the owner; gradients summed):")
        out.extend(f"  {t.name} = {t.owner}" for t in plan.ties)
    if plan.fusion:
        out.append(rule)
        out.append(f"fused ({plan.mode} plan; NETC_FUSE=0 turns it off):")
        out.extend(f"  {line}" for line in fusion_lines(plan))
    if plan.memory:
        m = plan.memory["ledger"]
        b = m["batch"]
        out.append(rule)
        if plan.mode == "inference":
            out.append(f"memory at batch {b}, inference plan (no gradients, nothing saved for backward):")
        else:
            out.append(f"memory at batch {b}, optimizer {m['optimizer']}:")
        items = [
            ("parameters", m["params_bytes"]),
            ("gradients", m["grads_bytes"]),
            *([("tied gradients", m["tied_grads_bytes"])] if m.get("tied_grads_bytes") else []),
            ("optimizer state", m["optimizer_bytes"]),
            ("saved activations", m["activations_bytes"]),
            ("workspace", m["workspace_bytes"]),
            ("inference arena", m["inference_arena_bytes"]),
            ("training arena", m["training_arena_bytes"]),
            ("inference peak", m["inference_peak_bytes"]),
            ("training-step peak", m["training_peak_bytes"]),
        ]
        if plan.mode == "inference":
            keep = ("parameters", "workspace", "inference arena", "inference peak")
            items = [(label, v) for label, v in items if label in keep]
        for label, v in items:
            out.append(f"  {label:<20}{human_bytes(v):>12}")
    return "\n".join(out)

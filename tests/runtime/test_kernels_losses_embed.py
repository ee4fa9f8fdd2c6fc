"""Parity with PyTorch and finite-difference gradient checks for the loss kernels (mse, l1, smooth_l1,
cross_entropy, nll_loss, binary_cross_entropy, hinge) and the embedding-style kernels (embedding,
positional_encoding, cls_token, parameter)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from harness import OpRun, gradcheck

from netc.runtime.kernels import kernel_module

RTOL, ATOL = 1e-4, 1e-5
rng = np.random.default_rng(0)


def tt(a: np.ndarray, grad: bool = True) -> torch.Tensor:
    t = torch.from_numpy(np.array(a))
    return t.requires_grad_(grad and t.is_floating_point())


def close(ours: np.ndarray, theirs: torch.Tensor, what: str) -> None:
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg=what)


def rebind_with_acc(run: OpRun) -> None:
    """Re-bind the kernels with every input gradient accumulating (acc is read at bind time)."""
    run.binding.acc[:] = [True] * len(run.binding.acc)
    run.forward, run.backward = kernel_module(run.contract.name).bind_cpu(run.binding)


def check_acc(run: OpRun) -> None:
    """Backward with acc adds into whatever the input gradients held."""
    run.run()
    fresh = [None if d is None else d.copy() for d in run.dx]
    rebind_with_acc(run)
    before = [None if d is None else rng.standard_normal(d.shape).astype(d.dtype) for d in run.dx]
    for d, b in zip(run.dx, before, strict=True):
        if d is not None:
            d[:] = b
    run.run()
    checked = 0
    for d, f, b in zip(run.dx, fresh, before, strict=True):
        if d is not None:
            np.testing.assert_allclose(d, b + f, rtol=1e-5, atol=1e-6)
            checked += 1
    assert checked


# -- pointwise losses ----------------------------------------------------------------------------

POINTWISE = {
    "mse": F.mse_loss,
    "l1": F.l1_loss,
    "binary_cross_entropy": F.binary_cross_entropy_with_logits,
    "smooth_l1": F.smooth_l1_loss,
}


def pointwise_inputs(op: str, shape: tuple[int, ...], dtype: type = np.float32) -> list[np.ndarray]:
    x = rng.standard_normal(shape) * 2
    t = rng.uniform(0, 1, shape) if op == "binary_cross_entropy" else rng.standard_normal(shape)
    return [x.astype(dtype), t.astype(dtype)]


@pytest.mark.parametrize("op", list(POINTWISE))
@pytest.mark.parametrize(("reduction", "weight"), [("mean", 1.0), ("sum", 0.7)])
def test_pointwise_loss_matches_torch(op: str, reduction: str, weight: float) -> None:
    xs = pointwise_inputs(op, (6, 3, 5))
    run = OpRun(op, {"reduction": reduction}, xs, weight=weight).run()
    x, t = tt(xs[0]), tt(xs[1])
    loss = POINTWISE[op](x, t, reduction=reduction)
    (weight * loss).backward()
    assert run.y.shape == (1,)
    close(run.y[0], loss, "loss")
    close(run.dx[0], x.grad, "dx")
    close(run.dx[1], t.grad, "dtarget")


def test_bce_is_stable_for_large_logits() -> None:
    x = np.array([[-200.0, -30.0, 0.0, 30.0, 200.0]], np.float32)
    t = np.array([[0.0, 1.0, 0.5, 0.0, 1.0]], np.float32)
    run = OpRun("binary_cross_entropy", {"reduction": "sum"}, [x, t]).run()
    xt, ttt = tt(x), tt(t)
    loss = F.binary_cross_entropy_with_logits(xt, ttt, reduction="sum")
    loss.backward()
    assert np.isfinite(run.y).all() and np.isfinite(run.dx[0]).all()
    close(run.y[0], loss, "loss")
    close(run.dx[0], xt.grad, "dx")


@pytest.mark.parametrize("op", list(POINTWISE))
def test_pointwise_loss_gradcheck(op: str) -> None:
    xs = pointwise_inputs(op, (4, 5), np.float64)
    for reduction in ("mean", "sum"):
        gradcheck(OpRun(op, {"reduction": reduction}, [a.copy() for a in xs], dtype=np.float64))


def test_pointwise_loss_needs_only_the_gradients_asked_for() -> None:
    xs = pointwise_inputs("mse", (3, 4))
    run = OpRun("mse", {}, xs, need_dx=[True, False]).run()
    x = tt(xs[0])
    F.mse_loss(x, tt(xs[1], grad=False)).backward()
    close(run.dx[0], x.grad, "dx")
    check_acc(OpRun("mse", {}, xs, need_dx=[True, True]))


# -- cross_entropy -------------------------------------------------------------------------------


def ce_inputs(shape: tuple[int, ...], dtype: type = np.float32) -> list[np.ndarray]:
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    return [x, rng.integers(0, shape[-1], shape[:-1]).astype(np.int64)]


def torch_ce(xs: list[np.ndarray], reduction: str, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    x = tt(xs[0])
    logits = x.permute(0, x.dim() - 1, *range(1, x.dim() - 1)) if x.dim() > 2 else x
    return x, F.cross_entropy(logits, torch.from_numpy(xs[1]), reduction=reduction, label_smoothing=eps)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize(
    ("shape", "reduction", "eps", "weight"),
    [
        ((8, 10), "mean", 0.0, 1.0),
        ((8, 10), "sum", 0.1, 1.0),
        ((4, 6, 7), "mean", 0.2, 0.5),
        ((4, 6, 7), "sum", 0.0, 2.0),
    ],
)
def test_cross_entropy_matches_torch(
    monkeypatch: pytest.MonkeyPatch, parallel: bool, shape: tuple, reduction: str, eps: float, weight: float
) -> None:
    if parallel:
        monkeypatch.setattr(kernel_module("cross_entropy"), "PARALLEL_MIN", 1)
    xs = ce_inputs(shape)
    run = OpRun("cross_entropy", {"reduction": reduction, "label_smoothing": eps}, xs, weight=weight).run()
    x, loss = torch_ce(xs, reduction, eps)
    (weight * loss).backward()
    close(run.y[0], loss, "loss")
    close(run.dx[0], x.grad, "dx")
    assert run.dx[1] is None


def test_cross_entropy_gradcheck_and_acc() -> None:
    xs = ce_inputs((3, 4, 5), np.float64)
    for attrs in ({}, {"reduction": "sum", "label_smoothing": 0.3}):
        gradcheck(OpRun("cross_entropy", attrs, [xs[0].copy(), xs[1]], dtype=np.float64))
    check_acc(OpRun("cross_entropy", {"label_smoothing": 0.1}, ce_inputs((5, 6))))


def test_cross_entropy_large_logits_stay_finite() -> None:
    x = np.array([[1000.0, -1000.0, 0.0], [-500.0, 500.0, 499.0]], np.float32)
    labels = np.array([1, 2], np.int64)
    run = OpRun("cross_entropy", {}, [x, labels]).run()
    xt, loss = torch_ce([x, labels], "mean", 0.0)
    loss.backward()
    close(run.y[0], loss, "loss")
    close(run.dx[0], xt.grad, "dx")


@pytest.mark.parametrize("op", ["cross_entropy", "cross_entropy/parallel", "hinge"])
@pytest.mark.parametrize("bad", [-1, 5, 1 << 40])
def test_label_out_of_range_raises(monkeypatch: pytest.MonkeyPatch, op: str, bad: int) -> None:
    op, _, parallel = op.partition("/")
    if parallel:
        monkeypatch.setattr(kernel_module(op), "PARALLEL_MIN", 1)
    x, labels = ce_inputs((4, 5))
    run = OpRun(op, {}, [x, labels])
    run.run()
    labels[2] = bad
    with pytest.raises(ValueError, match=rf"{op} '{op}': label {bad} out of range \[0, 5\)"):
        run.forward()
    with pytest.raises(ValueError, match=rf"label {bad} out of range"):
        run.backward()
    labels[2] = 0
    run.run()  # the flag clears on the next good call


# -- class weights, ignore_index and the class axis (cross_entropy, nll_loss) ---------------------


def class_case(op: str, shape: tuple, axis: int, attrs: dict, dtype: type = np.float32) -> list[np.ndarray]:
    """Logits (log-probabilities for nll_loss) and labels, every third one ignore_index."""
    x = rng.standard_normal(shape) * 2
    if op == "nll_loss":
        x = x - np.log(np.exp(x).sum(axis=axis, keepdims=True))
    c = shape[axis]
    labels = rng.integers(0, c, shape[:-1] if axis == -1 else (shape[0], *shape[2:]))
    labels.flat[::3] = attrs.get("ignore_index", -100)
    return [x.astype(dtype), labels.astype(np.int64)]


def torch_class_loss(op: str, xs: list[np.ndarray], attrs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    x = tt(xs[0])
    z = x if attrs.get("axis", -1) == 1 else x.movedim(-1, 1)
    w = attrs.get("class_weights")
    kw = {
        "weight": None if w is None else torch.tensor(w, dtype=x.dtype),
        "ignore_index": attrs.get("ignore_index", -100),
        "reduction": attrs.get("reduction", "mean"),
    }
    labels = torch.from_numpy(xs[1])
    if op == "nll_loss":
        return x, F.nll_loss(z, labels, **kw)
    return x, F.cross_entropy(z, labels, label_smoothing=attrs.get("label_smoothing", 0.0), **kw)


W6 = [0.5, 1.0, 2.0, 0.0, 3.0, 1.5]
CLASS_ATTRS = [
    {},
    {"reduction": "sum"},
    {"class_weights": W6},
    {"class_weights": W6, "reduction": "sum", "ignore_index": 2},
    {"ignore_index": 4},
    {"ignore_index": 255, "class_weights": W6},
]
CLASS_SHAPES = [(-1, (5, 6)), (-1, (3, 4, 6)), (1, (3, 6, 4)), (1, (3, 6, 2, 3)), (1, (4, 6))]


@pytest.mark.parametrize("op_eps", ["cross_entropy/0", "cross_entropy/0.2", "nll_loss/0"])
@pytest.mark.parametrize("attrs", CLASS_ATTRS, ids=range(len(CLASS_ATTRS)))
@pytest.mark.parametrize(("axis", "shape"), CLASS_SHAPES)
def test_class_losses_match_torch(op_eps: str, attrs: dict, axis: int, shape: tuple) -> None:
    op, _, eps = op_eps.partition("/")
    attrs = {**attrs, "axis": axis, **({"label_smoothing": float(eps)} if float(eps) else {})}
    xs = class_case(op, shape, axis, attrs)
    run = OpRun(op, attrs, xs, weight=0.7).run()
    x, loss = torch_class_loss(op, xs, attrs)
    (0.7 * loss).backward()
    close(run.y[0], loss, "loss")
    close(run.dx[0], x.grad, "dx")


@pytest.mark.parametrize(
    "attrs", [{"class_weights": W6, "label_smoothing": 0.3}, {"axis": 1, "ignore_index": 1}]
)
def test_cross_entropy_parallel_with_weights_and_axis(monkeypatch: pytest.MonkeyPatch, attrs: dict) -> None:
    monkeypatch.setattr(kernel_module("cross_entropy"), "PARALLEL_MIN", 1)
    axis = attrs.get("axis", -1)
    xs = class_case("cross_entropy", (4, 6, 5) if axis == 1 else (4, 5, 6), axis, attrs)
    run = OpRun("cross_entropy", attrs, xs).run()
    x, loss = torch_class_loss("cross_entropy", xs, attrs)
    loss.backward()
    close(run.y[0], loss, "loss")
    close(run.dx[0], x.grad, "dx")
    check_acc(OpRun("cross_entropy", attrs, xs))


@pytest.mark.parametrize("op", ["cross_entropy", "nll_loss"])
def test_class_losses_gradcheck_and_acc(op: str) -> None:
    for attrs in (
        {
            "class_weights": W6,
            "ignore_index": 1,
            **({"label_smoothing": 0.3} if op == "cross_entropy" else {}),
        },
        {"axis": 1, "reduction": "sum", "class_weights": W6},
    ):
        axis = attrs.get("axis", -1)
        shape = (3, 6, 4) if axis == 1 else (3, 4, 6)
        gradcheck(OpRun(op, attrs, class_case(op, shape, axis, attrs, np.float64), dtype=np.float64))
        check_acc(OpRun(op, attrs, class_case(op, shape, axis, attrs)))


@pytest.mark.parametrize("op", ["cross_entropy", "nll_loss"])
def test_a_mean_over_ignored_labels_only_is_nan_as_torch(op: str) -> None:
    xs = class_case(op, (3, 6), -1, {})
    xs[1][:] = -100
    run = OpRun(op, {}, xs).run()
    assert np.isnan(run.y[0]) and np.isnan(torch_class_loss(op, xs, {})[1].item())
    run = OpRun(op, {"reduction": "sum"}, xs).run()
    assert run.y[0] == 0 and not run.dx[0].any()


@pytest.mark.parametrize("op", ["cross_entropy", "nll_loss"])
def test_class_loss_bad_label_raises_but_ignore_index_passes(op: str) -> None:
    x, labels = class_case(op, (4, 5), -1, {"ignore_index": 7})
    run = OpRun(op, {"ignore_index": 7}, [x, labels]).run()
    labels[1] = 5
    with pytest.raises(ValueError, match=rf"{op} '{op}': label 5 out of range \[0, 5\)"):
        run.forward()
    labels[1] = 7
    run.run()


def test_smooth_l1_beta_matches_torch() -> None:
    xs = pointwise_inputs("smooth_l1", (6, 7))
    xs[1].flat[::4] = xs[0].flat[::4]  # d = 0: the l1 kink at β = 0
    for beta, reduction in ((0.0, "mean"), (0.5, "sum"), (3.0, "mean")):
        run = OpRun("smooth_l1", {"beta": beta, "reduction": reduction}, xs).run()
        x, t = tt(xs[0]), tt(xs[1])
        loss = F.smooth_l1_loss(x, t, beta=beta, reduction=reduction)
        loss.backward()
        close(run.y[0], loss, f"loss β={beta}")
        close(run.dx[0], x.grad, f"dx β={beta}")
        close(run.dx[1], t.grad, f"dt β={beta}")
    for beta in (0.3, 2.0):
        xs = pointwise_inputs("smooth_l1", (4, 5), np.float64)
        gradcheck(OpRun("smooth_l1", {"beta": beta}, xs, dtype=np.float64))


# -- hinge ---------------------------------------------------------------------------------------


def hinge_inputs(n: int, c: int, margin: float, dtype: type = np.float32) -> list[np.ndarray]:
    """Logits whose margin violations all stay clear of 0 (the hinge's kink)."""
    while True:
        x, labels = ce_inputs((n, c), dtype)
        v = margin - x[np.arange(n), labels][:, None] + x
        if np.abs(v).min() > 1e-2:
            return [x, labels]


@pytest.mark.parametrize(("reduction", "margin", "weight"), [("mean", 1.0, 1.0), ("sum", 0.5, 0.3)])
def test_hinge_matches_torch(reduction: str, margin: float, weight: float) -> None:
    xs = hinge_inputs(8, 6, margin)
    run = OpRun("hinge", {"reduction": reduction, "margin": margin}, xs, weight=weight).run()
    x = tt(xs[0])
    loss = F.multi_margin_loss(x, torch.from_numpy(xs[1]), p=1, margin=margin, reduction=reduction)
    (weight * loss).backward()
    close(run.y[0], loss, "loss")
    close(run.dx[0], x.grad, "dx")


def test_hinge_gradcheck_and_acc() -> None:
    for attrs in ({}, {"reduction": "sum", "margin": 2.0}):
        xs = hinge_inputs(5, 4, attrs.get("margin", 1.0), np.float64)
        gradcheck(OpRun("hinge", attrs, xs, dtype=np.float64))
    check_acc(OpRun("hinge", {}, hinge_inputs(5, 4, 1.0)))


# -- embedding -----------------------------------------------------------------------------------


@pytest.mark.parametrize("ids_shape", [(6,), (4, 5)])
def test_embedding_matches_torch(ids_shape: tuple) -> None:
    n_emb, dim = 7, 20  # few rows: ids repeat, so the scatter adds
    ids = rng.integers(0, n_emb, (3, *ids_shape)).astype(np.int64)
    run = OpRun("embedding", {"num_embeddings": n_emb, "dim": dim}, [ids])
    run.dp["w"][:] = 9.0  # backward must zero dw, not add into it
    run.run()
    assert run.y.shape == (3, *ids_shape, dim)
    w = tt(run.params["w"])
    y = F.embedding(torch.from_numpy(ids), w)
    y.backward(torch.from_numpy(run.dy))
    close(run.y, y, "y")
    close(run.dp["w"], w.grad, "dw")
    assert run.dx == [None]


def test_embedding_gradcheck() -> None:
    ids = rng.integers(0, 5, (3, 4)).astype(np.int64)
    gradcheck(OpRun("embedding", {"num_embeddings": 5, "dim": 3}, [ids], dtype=np.float64))


@pytest.mark.parametrize("bad", [-3, 10, 1 << 62])
def test_embedding_id_out_of_range_raises(bad: int) -> None:
    ids = rng.integers(0, 10, (2, 3)).astype(np.int64)
    run = OpRun("embedding", {"num_embeddings": 10, "dim": 4}, [ids]).run()
    ids[1, 2] = bad
    msg = rf"embedding 'embedding': token id {bad} out of range \[0, 10\)"
    with pytest.raises(ValueError, match=msg):
        run.forward()
    with pytest.raises(ValueError, match=msg):
        run.backward()
    ids[1, 2] = 9
    run.run()


def test_embedding_frozen_table_has_no_backward() -> None:
    ids = rng.integers(0, 10, (2, 3)).astype(np.int64)
    run = OpRun("embedding", {"num_embeddings": 10, "dim": 4}, [ids])
    run.binding.dp["w"] = None
    fwd, bwd = kernel_module("embedding").bind_cpu(run.binding)
    fwd()
    bwd()
    np.testing.assert_array_equal(run.y, run.params["w"][ids])


# -- positional_encoding, cls_token, parameter ---------------------------------------------------


def torch_pe(t: int, d: int) -> torch.Tensor:
    """The table as the PyTorch transformer tutorial builds it."""
    position = torch.arange(t, dtype=torch.float64).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d, 2, dtype=torch.float64) * (-math.log(10000.0) / d))
    pe = torch.zeros(t, d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe.float()


def test_positional_encoding_matches_torch() -> None:
    x = rng.standard_normal((3, 50, 16)).astype(np.float32)
    run = OpRun("positional_encoding", {"max_len": 64}, [x]).run()
    xt = tt(x)
    y = xt + torch_pe(50, 16)
    y.backward(torch.from_numpy(run.dy))
    close(run.y, y, "y")
    close(run.dx[0], xt.grad, "dx")
    check_acc(OpRun("positional_encoding", {}, [x]))


def test_cls_token_matches_torch() -> None:
    x = rng.standard_normal((3, 5, 8)).astype(np.float32)
    w0 = rng.standard_normal((1, 8)).astype(np.float32)
    run = OpRun("cls_token", {}, [x], params={"w": w0}).run()
    assert run.y.shape == (3, 6, 8)
    xt, w = tt(x), tt(w0)
    y = torch.cat([w.expand(3, 1, 8), xt], dim=1)
    y.backward(torch.from_numpy(run.dy))
    close(run.y, y, "y")
    close(run.dx[0], xt.grad, "dx")
    close(run.dp["w"], w.grad, "dw")
    check_acc(OpRun("cls_token", {}, [x]))


@pytest.mark.parametrize("shape", [(5, 8), (2, 3, 4)])
def test_parameter_matches_torch(shape: tuple) -> None:
    x = rng.standard_normal((4, *shape)).astype(np.float32)
    run = OpRun("parameter", {}, [x]).run()
    xt, w = tt(x), tt(run.params["w"])
    y = xt + w
    y.backward(torch.from_numpy(run.dy))
    close(run.y, y, "y")
    close(run.dx[0], xt.grad, "dx")
    close(run.dp["w"], w.grad, "dw")
    check_acc(OpRun("parameter", {}, [x]))


@pytest.mark.parametrize(
    ("op", "shape"), [("positional_encoding", (4, 6)), ("cls_token", (4, 6)), ("parameter", (4, 6))]
)
def test_table_ops_gradcheck(op: str, shape: tuple) -> None:
    x = rng.standard_normal((3, *shape))
    gradcheck(OpRun(op, {}, [x], dtype=np.float64))


def test_table_ops_skip_frozen_or_unneeded_gradients() -> None:
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    for op in ("cls_token", "parameter"):
        run = OpRun(op, {}, [x], need_dx=[False])
        run.run()
        assert run.dp["w"].any()
        run.binding.dp["w"] = None
        fwd, bwd = kernel_module(op).bind_cpu(run.binding)
        fwd()
        bwd()  # nothing to write, nothing to crash on

"""The optimizer registry: every family is complete (contract, CPU and CUDA
updates, docs rows), a family missing a part is named with what it lacks, and
everything else (schema, ledger keys, CLI choices) reads the registry."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import types
from pathlib import Path

import pytest

from netc.compiler import optimizers
from netc.compiler.optimizers.adadelta import OPTIMIZER as ADADELTA
from netc.compiler.plan import OPTIMIZER_SLOTS
from netc.runtime.optimizers import check, kernel_module
from netc.spec.schema import OPTIMIZER_FIELDS, OPTIMIZERS

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "docs" / "training.md").read_text()


@pytest.mark.parametrize("family", optimizers.NAMES)
def test_every_family_is_complete(family):
    assert check(optimizers.FAMILIES[family], kernel_module(family), DOCS) == []


def test_types_and_ledger_keys_are_unique_and_everything_reads_the_registry():
    types_ = [t for f in optimizers.FAMILIES.values() for t in f.types]
    keys = [k for f in optimizers.FAMILIES.values() for k in f.slots]
    assert len(types_) == len(set(types_)) and len(keys) == len(set(keys))
    assert OPTIMIZERS == optimizers.TYPES == types_
    assert {t: list(d) for t, d in optimizers.DEFAULTS.items()} == OPTIMIZER_FIELDS
    assert list(OPTIMIZER_SLOTS) == keys  # the plan JSON's key strings, in order
    # A field two families read has one fragment: no family redeclares a shared one.
    own = [f for fam in optimizers.FAMILIES.values() for f in fam.fields]
    assert len(own) == len(set(own)) and not set(own) & set(optimizers.base.COMMON_FIELDS)


def test_the_cli_offers_every_type():
    from netc.cli import build_parser

    compile_ = build_parser()._subparsers._group_actions[0].choices["compile"]
    (opt,) = [a for a in compile_._actions if "--optimizer" in a.option_strings]
    assert list(opt.choices) == optimizers.TYPES


def test_the_contracts_never_import_numba():
    code = "import sys, netc.compiler.optimizers, netc.spec.schema; assert 'numba' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- deliberately incomplete registrations ------------------------------------------

KERNELS = types.ModuleType("fake_kernels")
KERNELS.update_cpu = KERNELS.update_cuda = lambda opt: None
ROW = "| `lion` | `Lion` | `lr` (1e-4) | 1 |\n"
LION = dataclasses.replace(
    ADADELTA, name="lion", types={"lion": ("Lion", {"lr": 1e-4, "rho": 0.9})}, slots={"lion": ("exp_avg",)}
)


def test_a_complete_fake_passes():
    assert check(LION, KERNELS, ROW) == []


@pytest.mark.parametrize(
    ("broken", "kernels", "docs", "says"),
    [
        # contract: a field without a schema fragment
        ({"types": {"lion": ("Lion", {"lr": 1e-4, "beta_lion": 0.9})}}, KERNELS, ROW,
         "field 'beta_lion' of type 'lion' has no schema fragment"),
        ({"types": {}}, KERNELS, ROW, "the contract declares no types"),
        ({"doc": None}, KERNELS, ROW, "the contract has no docstring"),
        ({"types": {"lion": ("Lion", {"rho": 0.9})}}, KERNELS, ROW, "type 'lion' has no default lr"),
        # slot names
        ({"slots": {}}, KERNELS, ROW, "ledger key 'lion' of type 'lion' has no slot names"),
        ({"implies": {"lion_big": ("lion", {})}}, KERNELS, ROW,
         "implied ledger key 'lion_big' has no slot names"),
        # kernels
        ({}, None, ROW, "no kernel module runtime/optimizers/lion.py"),
        ({}, types.SimpleNamespace(update_cuda=print), ROW,
         "runtime/optimizers/lion.py has no CPU update update_cpu(opt)"),
        ({}, types.SimpleNamespace(update_cpu=print), ROW,
         "runtime/optimizers/lion.py has no CUDA update update_cuda(opt)"),
        # docs
        ({}, KERNELS, "| `adam` | ...\n", "docs/training.md has no optimizer table row for type 'lion'"),
    ],
)  # fmt: skip
def test_a_missing_part_is_named(broken, kernels, docs, says):
    fake = dataclasses.replace(LION, **broken)
    missing = check(fake, kernels, docs)
    assert len(missing) == 1 and missing[0] == f"optimizer family 'lion': {says}", missing

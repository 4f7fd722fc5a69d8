"""Shared fixtures: the real data and model in ../shared, skipped with a reason where absent."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (see jpo.cli.main)

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test: users of the library do not have that folder."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found: the shared sample data/model is only beside the project's own checkout")
    return path


@pytest.fixture
def shared_data():
    return lambda *parts: shared_path("data", *parts)


@pytest.fixture(scope="session")
def tiny_model_path() -> Path:
    """stories260K: a real pretrained Llama (260K parameters) with a sentencepiece tokenizer and no pad token."""
    return shared_path("models", "stories260K")


def perturbed(path: str | Path, scale: float = 0.02, seed: int = 0):
    """The causal LM at `path` with every weight moved by `scale` x N(0, 1) noise (torch seeded with `seed`): a
    policy that differs from its reference everywhere, so log-ratios and margins are not zero."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path)
    torch.manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(scale * torch.randn_like(param))
    return model


@pytest.fixture(scope="module")
def policy_and_ref(tiny_model_path):
    """(perturbed stories260K, stories260K): a policy and its reference."""
    from transformers import AutoModelForCausalLM

    return perturbed(tiny_model_path), AutoModelForCausalLM.from_pretrained(tiny_model_path)


def ulps(count: float, magnitude: float = 1.0, dtype=None) -> float:
    """`count` units of `dtype`'s resolution (float32 by default) at `magnitude`: the stated tolerance of a test that
    compares two computations differing only in rounding (summation order, batch layout, kernels), so that it holds
    on any machine with the same float format. Exactness tests compare with == instead, where the two computations
    are the same operations by construction."""
    import torch

    return count * torch.finfo(dtype or torch.float32).eps * max(abs(magnitude), 1.0)


def script_module(relative: str):
    """A repository script (e.g. "scripts/readme_numbers.py") imported as a module, for tests of its functions."""
    import importlib.util

    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

"""Shared pytest fixtures and markers."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

from ript_fast.ops._buffers import cuda_available

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
# The installed console script, for tests that start runs in subprocesses: `python -m ript_fast.cli` would put
# the working directory (the source checkout, whose ript_fast has no compiled _C) ahead of the installed package.
RIPT_FAST = shutil.which("ript-fast", path=str(Path(sys.executable).parent)) or "ript-fast"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """CUDA tests skip cleanly on machines without a device (or a core built without CUDA)."""
    if cuda_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device (or ript_fast built without CUDA kernels)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _deterministic_seed() -> None:
    torch.manual_seed(0)

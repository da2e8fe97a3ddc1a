"""Shared pytest fixtures and markers."""

from __future__ import annotations

import pytest
import torch

from ript_fast.ops._buffers import cuda_available

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


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

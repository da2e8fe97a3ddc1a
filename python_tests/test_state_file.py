"""State files (`ript_fast.train.state_file`): what a resume reads back is exactly what was saved, and a
damaged, foreign or misformatted file is refused with a CheckpointError naming it."""

from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from ript_fast.train.checkpoint import CheckpointError
from ript_fast.train.context_sampling import TaskGroupSampler
from ript_fast.train.state_file import SFT_STATE_FORMAT, TRAINER_STATE_FORMAT, load_state, save_state

FMT = TRAINER_STATE_FORMAT
NAN_WITH_PAYLOAD = struct.unpack(">d", bytes.fromhex("fff8000000c0ffee"))[0]


def assert_identical(a: Any, b: Any, where: str = "state") -> None:
    """Same types all the way down (dict key types and order, tuple vs list, int vs float vs bool), floats
    equal bit for bit, tensors of the same dtype, shape and bytes."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, dict):
        assert [(type(k), k) for k in a] == [(type(k), k) for k in b], f"{where}: keys"
        for k in a:
            assert_identical(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: length"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert struct.pack(">d", a) == struct.pack(">d", b), f"{where}: {a!r} vs {b!r}"
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{tuple(a.shape)} vs {b.dtype}"
        assert torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8)), f"{where}: bytes"
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def every_kind() -> dict[Any, Any]:
    return {
        "ints": [0, -1, 2**127 + 12345, -(2**70)],  # a PCG64 state is a 128-bit int
        "floats": [0.1, -0.0, 1e308, 5e-324, 1 / 3, math.inf, -math.inf, math.nan, NAN_WITH_PAYLOAD],
        "other": [True, False, None, "", "ünïcode \"quoted\" {'dict': []}"],
        "betas": (0.9, 0.999),
        0: {1: "int keys stay ints", "1": "and str keys strs"},
        "looks_like_a_tag": {"tensor": "0", "float": "nan", "dict": [], "tuple": []},
        "nested": [[], (), {}, [(1, [2.5])]],
        "tensors": {
            "f32": torch.randn(3, 4),
            "f64": torch.tensor([math.nan, -0.0, math.inf], dtype=torch.float64),
            "bf16": torch.randn(5).to(torch.bfloat16),
            "f16": torch.randn(2, 2).half(),
            "i64": torch.tensor([-(2**62), 7]),
            "u8": torch.arange(256, dtype=torch.uint8),
            "bool": torch.tensor([True, False]),
            "scalar": torch.tensor(3.5),
            "empty": torch.zeros(0, 3),
            "view": torch.arange(12.0).reshape(3, 4).t()[1:],  # non-contiguous, shares storage with nothing saved
        },
    }


def test_every_kind_of_value_round_trips_exactly(tmp_path: Path) -> None:
    tree = every_kind()
    save_state(tmp_path / "s.safetensors", tree, FMT)
    assert_identical(tree, load_state(tmp_path / "s.safetensors", FMT))


def test_two_tensors_sharing_storage_are_saved_apart(tmp_path: Path) -> None:
    base = torch.arange(10.0)
    tree = {"a": base, "b": base[2:5], "c": base}
    save_state(tmp_path / "s.safetensors", tree, FMT)
    back = load_state(tmp_path / "s.safetensors", FMT)
    assert_identical(tree, back)


def training_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> float:
    """One AdamW step on a batch drawn from torch's global RNG; its loss."""
    loss = model(torch.randn(8, 6)).square().mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()
    return loss.item()


def make_trainer(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer, Any]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    groups = [
        {"params": list(model[0].parameters()), "lr": 1e-2, "weight_decay": 0.1, "name": "first"},
        {"params": list(model[2].parameters()), "lr": 3e-3, "weight_decay": 0.0, "name": "second"},
    ]
    optimizer = torch.optim.AdamW(groups, betas=(0.8, 0.99))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (1 + step))
    return model, optimizer, scheduler


def test_optimizer_schedule_samplers_and_rngs_resume_bit_exactly(tmp_path: Path) -> None:
    """The states a trainer checkpoints, saved mid-run and loaded into fresh objects, continue exactly as
    the uninterrupted objects do."""
    model, optimizer, scheduler = make_trainer(0)
    sampler = TaskGroupSampler(["a", "a", "b", "b", "b"], ["a", "b", "b"], seed=3)
    generator = torch.Generator().manual_seed(5)
    for _ in range(3):
        training_step(model, optimizer, scheduler)
        sampler.draw(3)
        torch.randn(2, generator=generator)
    state = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "samplers": [sampler.state_dict()],
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "weights": model.state_dict(),
    }
    save_state(tmp_path / "s.safetensors", state, SFT_STATE_FORMAT)
    back = load_state(tmp_path / "s.safetensors", SFT_STATE_FORMAT)
    assert_identical(state["optimizer"], back["optimizer"])
    assert_identical(state["scheduler"], back["scheduler"])

    model2, optimizer2, scheduler2 = make_trainer(1)
    model2.load_state_dict(back["weights"])
    optimizer2.load_state_dict(back["optimizer"])
    scheduler2.load_state_dict(back["scheduler"])
    sampler2 = TaskGroupSampler(["a", "a", "b", "b", "b"], ["a", "b", "b"], seed=99)
    sampler2.load_state_dict(back["samplers"][0])
    generator2 = torch.Generator().manual_seed(0)
    generator2.set_state(back["generator"])

    torch.set_rng_state(state["torch_rng"])
    first = [training_step(model, optimizer, scheduler) for _ in range(3)]
    torch.set_rng_state(back["torch_rng"])
    second = [training_step(model2, optimizer2, scheduler2) for _ in range(3)]
    assert first == second
    for (name, a), b in zip(model.state_dict().items(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert scheduler.get_last_lr() == scheduler2.get_last_lr()
    np.testing.assert_array_equal(sampler.draw(3), sampler2.draw(3))
    assert torch.equal(torch.randn(4, generator=generator), torch.randn(4, generator=generator2))


def test_rng_state_is_restored_exactly(tmp_path: Path) -> None:
    torch.manual_seed(11)
    torch.randn(3)
    save_state(tmp_path / "s.safetensors", {"torch_rng": torch.get_rng_state()}, FMT)
    expected = torch.randn(5)
    torch.manual_seed(0)
    torch.set_rng_state(load_state(tmp_path / "s.safetensors", FMT)["torch_rng"])
    assert torch.equal(torch.randn(5), expected)


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"samplers": [{"pos": np.int64(3)}]}, "state['samplers'][0]['pos']: a numpy.int64"),
        ({"order": np.arange(3)}, "state['order']: a numpy.ndarray"),
        ({"f": lambda: 0}, "state['f']: a builtins.function"),
        ({(1, 2): 0}, "dict key (1, 2)"),
        ({True: 0}, "dict key True"),
    ],
)
def test_values_outside_the_format_are_refused_naming_where(tmp_path: Path, value: Any, where: str) -> None:
    with pytest.raises(TypeError, match=re.escape(where)):
        save_state(tmp_path / "s.safetensors", value, FMT)


def saved(tmp_path: Path) -> Path:
    path = tmp_path / "s.safetensors"
    save_state(path, every_kind(), FMT)
    return path


def test_truncated_file_is_named(tmp_path: Path) -> None:
    path = saved(tmp_path)
    data = path.read_bytes()
    for cut in (len(data) - 1, len(data) // 2, 9, 3, 0):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=rf"^{re.escape(str(path))}: damaged, truncated or not a state file"):
            load_state(path, FMT)


def header_tree(tree_json: str) -> dict[str, str]:
    return {"format": FMT, "version": "0", "tree": tree_json}


@pytest.mark.parametrize(
    "tree_json",
    [
        '{"dict": [[0, {"tensor": "7"}]]}',  # a tensor the file lacks
        '{"dict": [[[1], 2]]}',  # a key that is neither str nor int
        '{"float": "zz"}',
        '{"set": [1, 2]}',
        "NaN",
        '{"dict": [[0, 1]]',  # torn JSON
        "[" * 100_000 + "]" * 100_000,
    ],
)
def test_malformed_tree_is_named(tmp_path: Path, tree_json: str) -> None:
    path = tmp_path / "s.safetensors"
    save_file({"0": torch.zeros(1)}, str(path), metadata=header_tree(tree_json))
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(path))}: damaged, truncated or not a state file"):
        load_state(path, FMT)


def test_other_format_missing_file_and_foreign_safetensors_are_named(tmp_path: Path) -> None:
    path = saved(tmp_path)
    wrong = f"{path}: a file of format '{FMT}', this version reads '{SFT_STATE_FORMAT}'"
    with pytest.raises(CheckpointError, match=f"^{re.escape(wrong)}$"):
        load_state(path, SFT_STATE_FORMAT)
    with pytest.raises(CheckpointError, match=f"^{re.escape(str(tmp_path / 'absent'))}: no such state file"):
        load_state(tmp_path / "absent", FMT)
    policy_like = tmp_path / "policy.safetensors"
    save_file({"w": torch.zeros(2)}, str(policy_like), metadata={"ript_fast": json.dumps({})})
    with pytest.raises(CheckpointError, match=f"^{re.escape(str(policy_like))}: a file of format None"):
        load_state(policy_like, FMT)

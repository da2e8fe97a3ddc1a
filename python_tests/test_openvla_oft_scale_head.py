"""OpenVLA-OFT's scale head (RIPT, paper Sec. 4.3): the released file layout, its refusals, the chunk density through
the fused ops, and the NLL objective that trains the head (not in RIPT's released code).

The tiny model folder is the one test_openvla_oft.py writes (official layout, random weights).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from python_tests.test_openvla_oft import inputs
from ript_fast.policies.openvla_oft import FolderError, load_openvla_oft
from ript_fast.policies.openvla_oft.distribution import chunk_logprob, scale_nll
from ript_fast.policies.openvla_oft.scale_head import (
    LaplaceScaleHead,
    clip_log_scale,
    read_scale_head_file,
    save_released_layout,
)

LLM_DIM, ACTION_DIM = 16, 7  # the tiny folder's Llama width and LIBERO's action size


@pytest.fixture(scope="module")
def folder(oft_folder: Path) -> Path:
    """The session's tiny random folder (conftest); tests that damage one work on a copy."""
    return oft_folder


def trained_head(seed: int = 1) -> LaplaceScaleHead:
    torch.manual_seed(seed)
    head = LaplaceScaleHead(LLM_DIM, ACTION_DIM)
    with torch.no_grad():
        for p in head.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return head


# ------------------------------------------------------------------------------------------ architecture and file


def test_the_architecture_and_keys_are_the_released_ones() -> None:
    """Full size on the meta device: the released LaplaceScaleHead's names and shapes (trunk ends in 4096 features)."""
    with torch.device("meta"):
        head = LaplaceScaleHead(4096, 7)
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert shapes["trunk.layer_norm1.weight"] == (7 * 4096,)
    assert shapes["trunk.fc1.weight"] == (4096, 7 * 4096)
    assert shapes["trunk.mlp_resnet_blocks.1.ffn.1.weight"] == (4096, 4096)
    assert shapes["trunk.layer_norm2.bias"] == (4096,)
    assert shapes["trunk.fc2.weight"] == (4096, 4096)
    assert shapes["log_b_head.weight"] == (7, 4096)
    assert shapes["log_b_head.bias"] == (7,)
    assert len(shapes) == 8 + 2 * 4 + 2  # 2 layer norms + 2 Linears, 2 blocks (norm + Linear), the output Linear


def test_a_fresh_head_starts_at_log_scale_minus_3_per_chunk_step() -> None:
    torch.manual_seed(0)
    head = LaplaceScaleHead(LLM_DIM, ACTION_DIM)
    out = head(torch.randn(3, 8 * ACTION_DIM, LLM_DIM))
    assert out.shape == (3, 8, ACTION_DIM)
    assert torch.equal(head.log_b_head.bias, torch.full((ACTION_DIM,), -3.0))
    assert (out + 3.0).abs().max() < 0.1  # xavier gain 0.01: every output near the bias


def test_the_released_file_loads_with_the_folder(folder: Path, tmp_path: Path) -> None:
    head = trained_head()
    path = tmp_path / "LIBERO_GOAL_scale_header.pth"
    save_released_layout(head, path)
    assert set(torch.load(path, weights_only=True)) == {"scale_trunk", "log_b_head"}
    ckpt = load_openvla_oft(folder, scale_head=path)
    assert ckpt.scale_head is not None and not ckpt.scale_head.training
    for key, value in head.state_dict().items():
        assert torch.equal(ckpt.scale_head.state_dict()[key], value), key
    px, ids, mask, proprio = inputs(ckpt, ["open the drawer", "put the bowl on the plate"])
    with torch.no_grad():
        hidden = ckpt.model.action_hidden_states(px, ids, mask, proprio)
        log_scale = ckpt.scale_head(hidden)
    assert log_scale.shape == (2, 8, ACTION_DIM)
    torch.testing.assert_close(log_scale, head(hidden), atol=0, rtol=0)


def test_a_flat_state_dict_with_ddp_prefix_loads(tmp_path: Path) -> None:
    head = trained_head()
    path = tmp_path / "scale_head.pt"
    torch.save({f"module.{k}": v for k, v in head.state_dict().items()}, path)
    assert read_scale_head_file(path).keys() == head.state_dict().keys()


def test_without_a_file_the_folder_gets_a_fresh_head(folder: Path) -> None:
    ckpt = load_openvla_oft(folder)
    assert ckpt.scale_head is not None
    assert torch.equal(ckpt.scale_head.log_b_head.bias, torch.full((ACTION_DIM,), -3.0))
    assert load_openvla_oft(folder, with_scale_head=False).scale_head is None


def _released(head: LaplaceScaleHead) -> dict:
    return {
        "scale_trunk": dict(head.trunk.state_dict()),
        "log_b_head": dict(head.log_b_head.state_dict()),
    }


def _edit(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        state = _released(trained_head())
        change(state)
        torch.save(state, path)

    return write


REFUSALS: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing trunk key": (_edit(lambda s: s["scale_trunk"].pop("fc2.bias")), "trunk.fc2.bias is missing"),
    "missing part": (_edit(lambda s: s.pop("log_b_head")), "log_b_head is missing or not a state dict"),
    "wrong width": (
        _edit(lambda s: s["log_b_head"].update(weight=torch.zeros(ACTION_DIM, 32))),
        r"log_b_head.weight has shape \(7, 32\); expected \(7, 16\)",
    ),
    "wrong action dim": (
        _edit(lambda s: s["log_b_head"].update(bias=torch.zeros(6))),
        r"log_b_head.bias has shape \(6,\)",
    ),
    "unknown key": (
        _edit(lambda s: s["scale_trunk"].update({"mlp_resnet_blocks.2.ffn.1.weight": torch.zeros(16, 16)})),
        "trunk.mlp_resnet_blocks.2.ffn.1.weight is not a parameter of the scale head",
    ),
    "extra entry": (_edit(lambda s: s.update(optimizer={})), "optimizer is not part of a scale-head file"),
    "non-finite": (
        _edit(lambda s: s["scale_trunk"]["fc1.weight"].fill_(math.nan)),
        "trunk.fc1.weight holds non-finite",
    ),
    "not a dict": (lambda p: torch.save([torch.zeros(3)], p), "is not a state dict"),
    "not a torch file": (lambda p: p.write_bytes(b"garbage"), "is not a readable torch file"),
    "a pickle of objects": (lambda p: torch.save({"head": torch.nn.Linear(2, 2)}, p), "holds more than tensors"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_scale_head_file_that_does_not_fit_is_refused_naming_file_and_key(
    case: str, folder: Path, tmp_path: Path
) -> None:
    write, message = REFUSALS[case]
    path = tmp_path / "LIBERO_GOAL_scale_header.pth"
    write(path)
    with pytest.raises(FolderError, match=message) as err:
        load_openvla_oft(folder, scale_head=path)
    assert str(err.value).startswith(str(path))


def test_a_missing_scale_head_file_is_refused(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(FolderError, match="scale-head file"):
        load_openvla_oft(folder, scale_head=tmp_path / "absent.pth")


def test_log_scales_clip_to_the_released_range() -> None:
    x = torch.tensor([-3.0, -2.0, 0.0, 0.5, 1.0], requires_grad=True)
    y = clip_log_scale(x)
    assert y.tolist() == [-2.0, -2.0, 0.0, 0.5, 0.5]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    assert clip_log_scale(x, None) is x


# ------------------------------------------------------------------------------------------ density and NLL


@pytest.mark.parametrize("kind", ["laplace", "gaussian"])
def test_chunk_logprob_is_the_closed_form_density_per_chunk_step(kind: str) -> None:
    g = torch.Generator().manual_seed(0)
    mean, log_scale, actions = (torch.randn(3, 8, ACTION_DIM, generator=g, dtype=torch.float64) for _ in range(3))
    mask = torch.ones(3, 8, dtype=torch.float64)
    mask[1, 5:] = 0
    b = log_scale.exp()
    if kind == "laplace":
        dens = -(actions - mean).abs() / b - log_scale - math.log(2)
    else:
        dens = -((actions - mean) ** 2) / (2 * b**2) - log_scale - 0.5 * math.log(2 * math.pi)
    got = chunk_logprob(kind, mean, log_scale, actions, mask)
    torch.testing.assert_close(got, dens.sum(-1) * mask)
    torch.testing.assert_close(scale_nll(kind, mean, log_scale, actions, mask), -got.sum() / (mask.sum() * 7))


def test_the_nll_moves_only_the_scale(folder: Path) -> None:
    """The mean enters detached: no gradient reaches what produced it."""
    mean = torch.zeros(2, 8, ACTION_DIM, requires_grad=True)
    log_scale = torch.zeros(2, 8, ACTION_DIM, requires_grad=True)
    scale_nll("laplace", mean, log_scale, torch.full((2, 8, ACTION_DIM), 2.0)).backward()
    assert mean.grad is None and log_scale.grad is not None and log_scale.grad.abs().sum() > 0


def test_nll_training_recovers_known_laplace_scales(folder: Path) -> None:
    """Targets = frozen head's mean + Laplace noise of KNOWN scale (a teacher scale head's output: it varies with
    chunk step, dimension and observation, from about e^-2.5 to e^0.3); 300 Adam steps of the NLL on a fresh head.

    Tolerance: with M draws per (query, step, dim) even the exact per-element maximum-likelihood estimate
    log(mean |a - mean|) misses the true log-scale by about 1/sqrt(M) (|a - mean| is exponential: relative std 1);
    that noise floor is computed from the same draws, and the learned log-scales must come within 1.25x of its RMS
    error, with a mean bias under 0.05. A wrong objective misses by far more: a Gaussian fit to Laplace data is off by
    log sqrt(2) = 0.35 everywhere; one global scale instead of per-element ones leaves the truth's spread (~0.5).
    """
    ckpt = load_openvla_oft(folder)
    words = ["put the bowl on the plate", "open the drawer", "open it", "put the bowl", "the robot should open it"]
    n, m = 16, 64
    px, ids, mask, proprio = inputs(ckpt, [words[i % len(words)] for i in range(n)], seed=1)
    with torch.no_grad():
        hidden = ckpt.model.action_hidden_states(px, ids, mask, proprio)
        mean = ckpt.model.action_head(hidden)
        torch.manual_seed(1)
        teacher = LaplaceScaleHead(LLM_DIM, ACTION_DIM)
        teacher.log_b_head.weight.normal_(0, 0.15)
        teacher.log_b_head.bias.copy_(torch.linspace(-1.5, 0.0, ACTION_DIM))
        true = teacher(hidden)
    noise = torch.distributions.Laplace(0.0, 1.0).sample((m, *mean.shape))
    targets = (mean + noise * true.exp()).reshape(m * n, *mean.shape[1:])
    floor = ((noise * true.exp()).abs().mean(0).log() - true).pow(2).mean().sqrt()

    torch.manual_seed(3)
    student = LaplaceScaleHead(LLM_DIM, ACTION_DIM)
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    means = mean.repeat(m, 1, 1)
    for _ in range(300):
        loss = scale_nll("laplace", means, student(hidden).repeat(m, 1, 1), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        err = student(hidden) - true
    rmse = err.pow(2).mean().sqrt()
    assert true.std() > 0.4  # the truth varies: one global scale could not pass
    assert rmse <= 1.25 * floor, (rmse.item(), floor.item())
    assert err.mean().abs() < 0.05, err.mean().item()

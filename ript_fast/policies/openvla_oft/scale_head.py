"""RIPT's scale head for OpenVLA-OFT (paper Sec. 4.3) and the loader of its released file.

The L1 action head gives the mean of each chunk step; the scale head gives a log-scale per action dimension from the
same action-token hidden states, so that the policy is a factorized Laplace (or Gaussian) whose log-prob RIPT's PPO
ratio needs. Architecture and key names as the released `LaplaceScaleHead` (ript-vla,
`openvla_oft_interface.py`): the hidden states of one chunk step concatenated (action_dim * llm_dim, the row-major
reshape the action head also does) -> the action head's MLP-ResNet trunk (2 blocks, width llm_dim) but ending in
llm_dim features -> `log_b_head`, a Linear to action_dim log-scales, initialized with bias -3 and xavier gain 0.01
(every step starts near scale e^-3 and NLL training widens it where the data varies). Keys: `trunk.*` (the
MLP-ResNet's official names) and `log_b_head.{weight,bias}`.

The released file (`LIBERO_*_scale_header.pth`, RIPT's model zoo) is `{"scale_trunk": <trunk state dict>,
"log_b_head": <Linear state dict>}`; a flat `{"trunk.*", "log_b_head.*"}` state dict (what RIPT's
`openvla_headers.pt` holds under `scale_header`, or what ript-fast saves) loads too, with or without DDP's `module.`.
Read with `torch.load(weights_only=True)`; any mismatch is a `FolderError` naming the file and the key.

Log-scales are clipped to `LOG_SCALE_CLIP` = [-2, 0.5] (the released scripts' `log_scale_clip`) by the caller,
`clip_log_scale`, before sampling and scoring.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from ript_fast.policies.openvla_oft.action_head import MLPResNet
from ript_fast.policies.openvla_oft.errors import FolderError

LOG_SCALE_CLIP = (-2.0, 0.5)
INIT_BIAS = -3.0
RELEASED_TRUNK, RELEASED_OUT = "scale_trunk", "log_b_head"
DDP_PREFIX = "module."


class LaplaceScaleHead(nn.Module):
    """(B, chunk_len * action_dim, llm_dim) action-token hidden states -> (B, chunk_len, action_dim) raw log-scales."""

    def __init__(self, llm_dim: int, action_dim: int, num_blocks: int = 2, init_bias: float = INIT_BIAS) -> None:
        super().__init__()
        self.action_dim = action_dim
        self.trunk = MLPResNet(num_blocks, input_dim=llm_dim * action_dim, hidden_dim=llm_dim, output_dim=llm_dim)
        self.log_b_head = nn.Linear(llm_dim, action_dim)
        if not self.log_b_head.weight.is_meta:
            nn.init.constant_(self.log_b_head.bias, init_bias)
            nn.init.xavier_uniform_(self.log_b_head.weight, gain=0.01)

    def forward(self, action_hidden_states: torch.Tensor) -> torch.Tensor:
        b, tokens, d = action_hidden_states.shape
        per_step = action_hidden_states.reshape(b, tokens // self.action_dim, self.action_dim * d)
        return self.log_b_head(self.trunk(per_step))


def clip_log_scale(log_scale: torch.Tensor, clip: tuple[float, float] | None = LOG_SCALE_CLIP) -> torch.Tensor:
    """log_scale clamped to [low, high] (None: unchanged). The clamp passes no gradient outside the range."""
    return log_scale if clip is None else log_scale.clamp(clip[0], clip[1])


def _flat_state(raw: object, path: Path) -> dict[str, torch.Tensor]:
    """The released nested layout or a flat one -> `{trunk.*, log_b_head.*}` tensors."""
    if not isinstance(raw, dict):
        raise FolderError(path, "", "is not a state dict (a mapping of names to tensors)")
    if RELEASED_TRUNK in raw or RELEASED_OUT in raw:
        state: dict[str, object] = {}
        for part, prefix in ((RELEASED_TRUNK, "trunk."), (RELEASED_OUT, "log_b_head.")):
            sub = raw.get(part)
            if not isinstance(sub, dict):
                raise FolderError(path, part, "is missing or not a state dict (the released scale-head layout)")
            state.update({f"{prefix}{str(k).removeprefix(DDP_PREFIX)}": v for k, v in sub.items()})
        extra = sorted(str(k) for k in raw if k not in (RELEASED_TRUNK, RELEASED_OUT))
        if extra:
            raise FolderError(path, extra[0], "is not part of a scale-head file")
    else:
        state = {str(k).removeprefix(DDP_PREFIX): v for k, v in raw.items()}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise FolderError(path, key, f"is a {type(value).__name__}, not a tensor")
    return state  # type: ignore[return-value]


def read_scale_head_file(path: str | Path) -> dict[str, torch.Tensor]:
    """The file's tensors as a `LaplaceScaleHead` state dict (`trunk.*`, `log_b_head.*`), read tensors-only."""
    path = Path(path)
    if not path.is_file():
        raise FolderError(path, "", "is missing (the scale-head file)")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" in str(err):
            raise FolderError(path, "", "holds more than tensors (a pickle that could run code); refused") from None
        raise FolderError(path, "", "is not a readable torch file") from None
    except (OSError, RuntimeError, EOFError) as err:
        raise FolderError(path, "", f"is not a readable torch file ({err})") from None
    return _flat_state(raw, path)


def load_scale_head_state(head: LaplaceScaleHead, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Copies `state` into `head` after checking every key and shape both ways (errors name `path` and the key)."""
    path = Path(path)
    expected = head.state_dict()
    for key, tensor in state.items():
        if key not in expected:
            raise FolderError(path, key, "is not a parameter of the scale head (trunk.*, log_b_head.*)")
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise FolderError(
                path, key, f"has shape {tuple(tensor.shape)}; expected {tuple(expected[key].shape)} for this model"
            )
        if not tensor.is_floating_point() or not bool(torch.isfinite(tensor).all()):
            raise FolderError(path, key, "holds non-finite or non-float values")
    missing = sorted(set(expected) - set(state))
    if missing:
        raise FolderError(path, missing[0], f"is missing ({len(missing)} scale-head parameter(s) absent)")
    with torch.no_grad():
        for key, param in expected.items():
            param.copy_(state[key].to(param.dtype))


def load_scale_head(path: str | Path, llm_dim: int, action_dim: int, num_blocks: int = 2) -> LaplaceScaleHead:
    """A scale head for a model of width llm_dim and action_dim, with the weights of `path` (float32, CPU)."""
    head = LaplaceScaleHead(llm_dim, action_dim, num_blocks)
    load_scale_head_state(head, read_scale_head_file(path), path)
    return head.eval()


def save_released_layout(head: LaplaceScaleHead, path: str | Path) -> None:
    """Writes `head` as the released file does (`scale_trunk` / `log_b_head` state dicts), for RIPT's own code too."""
    torch.save(
        {
            RELEASED_TRUNK: {k: v.detach().cpu().contiguous() for k, v in head.trunk.state_dict().items()},
            RELEASED_OUT: {k: v.detach().cpu().contiguous() for k, v in head.log_b_head.state_dict().items()},
        },
        Path(path),
    )

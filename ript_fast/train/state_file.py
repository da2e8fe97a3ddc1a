"""Run state (optimizer, schedule, RNG and sampler states, counters) in a file whose reading executes nothing.

Run folders travel, and `--resume` reads what is in them: a pickle would run whatever code it names. A state
file is one safetensors file instead: the tensors are raw bytes, everything else is JSON in its header, so
`load_state` only ever builds dicts, lists, tuples, tensors, str, int, float, bool and None.

The header holds `format` (checked before anything else is parsed), the ript-fast `version` that wrote it
(for the user's information) and `tree`, the state as JSON:

- None, bool, int, str: themselves (ints of any size, as a numpy bit generator's 128-bit state needs);
- float: itself when finite (Python writes the shortest repr that reads back to the same bits, -0.0
  included), otherwise `{"float": "<its 8 IEEE bytes in hex>"}` (inf, -inf, NaN with its payload);
- list: a JSON list; tuple: `{"tuple": [...]}` (AdamW's `betas` is one);
- dict: `{"dict": [[key, value], ...]}` in insertion order, keys str or int kept as such
  (`optimizer.state_dict()` keys its per-parameter state by int);
- tensor: `{"tensor": "<name>"}`, a tensor of the file (on the CPU when read).

JSON objects occur only as these one-key tags, so no dict of the state can pass for one.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

import ript_fast
from ript_fast.train.checkpoint import CheckpointError

# The formats this version writes and reads. "/2" is the encoding above; "/1" states were pickles.
TRAINER_STATE_FORMAT = "ript_fast.trainer_state/2"
SFT_STATE_FORMAT = "ript_fast.sft_state/2"

_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save's zip archive; a bare pickle (protocol >= 2)


def save_state(path: str | Path, tree: Any, format: str) -> None:
    """Writes `tree` to `path` as a state file of `format`. Not atomic by itself: write to a temporary name or
    folder and rename it into place (`atomic_write`), as the checkpoint writers do."""
    tensors: dict[str, torch.Tensor] = {}
    encoded = _encode(tree, tensors, "state")
    header = {"format": format, "version": ript_fast.__version__, "tree": json.dumps(encoded, allow_nan=False)}
    save_file(tensors, str(path), metadata=header)


def load_state(path: str | Path, format: str) -> Any:
    """The tree a state file of `format` holds. A pickle (what older versions wrote), a file of another format
    and a damaged or truncated file raise CheckpointError naming the file; none of them is ever unpickled."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such state file")
    try:
        header, tensors = _read(path, format)
        return _decode(json.loads(header["tree"], parse_constant=_reject_constant), tensors)
    except CheckpointError:  # a ValueError too, but already the message to give
        raise
    except (SafetensorError, OSError, KeyError, ValueError, RecursionError) as err:
        if _looks_like_pickle(path):
            raise older_version_error(path) from None
        raise CheckpointError(f"{path}: damaged, truncated or not a state file ({type(err).__name__}: {err})") from None


def _read(path: Path, format: str) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The header and tensors of a state file, the format checked before any tensor is read."""
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata() or {}
        if header.get("format") != format:
            raise CheckpointError(f"{path}: a file of format {header.get('format')!r}, this version reads {format!r}")
        return header, {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (safe_open is no mapping)


def older_version_error(path: Path) -> CheckpointError:
    """What a state written by ript-fast before state files (a pickle) gets: refused unread."""
    return CheckpointError(
        f"{path}: this run was made by an older ript-fast version (its state is a pickle, which this version "
        "never loads) and cannot be resumed by this one"
    )


def _looks_like_pickle(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4).startswith(_PICKLE_MAGIC)


def _reject_constant(name: str) -> float:
    raise ValueError(f"bare {name} in the state tree (non-finite floats are stored as tagged IEEE bytes)")


def _encode(value: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    """`value` as JSON, its tensors moved into `tensors` (a CPU copy each: safetensors refuses shared storage).
    `where` names the value in the tree, for the TypeError a type outside the format gets."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else {"float": struct.pack(">d", value).hex()}
    if isinstance(value, torch.Tensor):
        name = str(len(tensors))
        tensors[name] = value.detach().to("cpu").clone(memory_format=torch.contiguous_format)
        return {"tensor": name}
    if isinstance(value, list):
        return [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, dict):
        return {"dict": [[_encode_key(k, where), _encode(v, tensors, f"{where}[{k!r}]")] for k, v in value.items()]}
    raise TypeError(
        f"{where}: a {type(value).__module__}.{type(value).__qualname__} cannot go into a state file "
        "(convert it to a tensor, int, float, bool, str, None, list, tuple or dict)"
    )


def _encode_key(key: Any, where: str) -> str | int:
    if isinstance(key, str):
        return str(key)
    if isinstance(key, int) and not isinstance(key, bool):
        return int(key)
    raise TypeError(f"{where}: dict key {key!r} ({type(key).__qualname__}); a state file keeps str and int keys")


def _decode(node: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of `_encode`; anything it did not write is a ValueError (the file is damaged)."""
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, list):
        return [_decode(n, tensors) for n in node]
    if isinstance(node, dict) and len(node) == 1:
        ((tag, body),) = node.items()
        if tag == "tensor" and isinstance(body, str) and body in tensors:
            return tensors[body]
        if tag == "float" and isinstance(body, str) and len(body) == 16:
            return struct.unpack(">d", bytes.fromhex(body))[0]
        if tag == "tuple" and isinstance(body, list):
            return tuple(_decode(n, tensors) for n in body)
        if tag == "dict" and isinstance(body, list) and all(_is_pair(pair) for pair in body):
            return {key: _decode(value, tensors) for key, value in body}
    raise ValueError(f"unexpected node {json.dumps(node)[:80]} in the state tree")


def _is_pair(pair: Any) -> bool:
    return (
        isinstance(pair, list)
        and len(pair) == 2
        and (isinstance(pair[0], str) or (isinstance(pair[0], int) and not isinstance(pair[0], bool)))
    )

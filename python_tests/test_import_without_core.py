"""Importing ript_fast from a source tree that has no built extension says so and how to build it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path


def test_a_source_tree_without_the_built_core_says_how_to_build_it(tmp_path: Path) -> None:
    """A copy of the package without `_C`, first on the path (`-S` keeps this venv's editable-install finder out,
    as a plain checkout next to an installed ript-fast would be; site-packages stays reachable for torch and
    mujoco)."""
    package = Path(__file__).resolve().parents[1] / "ript_fast"
    shutil.copytree(package, tmp_path / "ript_fast", ignore=shutil.ignore_patterns("_C*", "__pycache__"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), sysconfig.get_paths()["purelib"]])}
    done = subprocess.run(
        [sys.executable, "-S", "-c", "import ript_fast.ops"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1 and "cannot import name" not in done.stderr
    assert last.startswith("ImportError: ript_fast's compiled core (ript_fast._C) is not built in")
    assert str(tmp_path / "ript_fast") in last and "`pip install .`" in last

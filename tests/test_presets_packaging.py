"""The built-in presets ship inside the package (ggufrope.builtin_presets <- presets/), for an
editable install and a wheel alike; pyproject lists every ggufrope subpackage."""
from __future__ import annotations

import glob
import os
import subprocess
import sys
import tomllib
import zipfile

import pytest

from conftest import REPO


def _pyproject() -> dict:
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def test_every_subpackage_is_listed():
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    found = {os.path.relpath(os.path.dirname(p), REPO).replace(os.sep, ".")
             for p in glob.glob(os.path.join(REPO, "ggufrope", "**", "__init__.py"), recursive=True)}
    assert found <= listed, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(found - listed)}"
    assert "ggufrope.builtin_presets" in listed


def test_installed_package_finds_the_builtin_presets():
    # run from elsewhere, so only the installed (editable) package can resolve it
    code = "import ggufrope.builtin_presets as b, os; print(os.path.dirname(b.__file__))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True)
    d = r.stdout.strip()
    assert os.path.samefile(d, os.path.join(REPO, "presets"))
    from ggufrope.presets.load import builtin_dir
    assert os.path.samefile(builtin_dir(), d)


@pytest.mark.slow
def test_wheel_carries_the_presets(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "--disable-pip-version-check", "-w", str(tmp_path), REPO],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = glob.glob(str(tmp_path / "ggufrope-*.whl"))
    names = set(zipfile.ZipFile(whl).namelist())
    shipped = {os.path.basename(n) for n in names if n.startswith("ggufrope/builtin_presets/")}
    expected = {os.path.basename(p) for p in glob.glob(os.path.join(REPO, "presets", "*.toml"))}
    assert expected and expected <= shipped
    assert "ggufrope/presets/schema.py" in names

"""The environment files agree: lock file, environment.yml, pyproject.toml, the installed venv."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        match = PIN.match(line)
        assert match, f"not an exact pin: {line!r}"
        name = canonical(match.group(1))
        assert name not in pins, f"{name} pinned twice"
        pins[name] = match.group(2)
    return pins


@pytest.fixture(scope="module")
def lock() -> dict[str, str]:
    return read_pins((ROOT / "requirements-lock.txt").read_text().splitlines())


def test_lock_pins_torch_without_local_label(lock):
    assert lock["torch"] == "2.13.0"
    assert all("+" not in version for version in lock.values())


def test_environment_yml_has_the_same_pins_as_the_lock(lock):
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps and "pip" in deps
    (pip_section,) = [d["pip"] for d in deps if isinstance(d, dict)]
    assert read_pins(pip_section) == lock
    assert "-e ." in pip_section


def test_pyproject_dependencies_are_pinned_in_the_lock(lock):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for name, extra in project["optional-dependencies"].items():
        if name != "bench":  # the peers of bench_peers.py: benchmark-only, never in the lock
            requirements += extra
    for requirement in requirements:
        name = canonical(re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0])
        assert name in lock, f"{requirement} is not pinned in requirements-lock.txt"
        if "==" in requirement:
            assert requirement.split("==")[1] == lock[name], requirement
    assert project["requires-python"] == ">=3.11,<3.12"


def test_installed_environment_matches_the_lock(lock):
    assert sys.version_info[:2] == (3, 11)
    wrong = {}
    for name, version in lock.items():
        try:
            installed = metadata.version(name).split("+")[0]
        except metadata.PackageNotFoundError:
            installed = "missing"
        if installed != version:
            wrong[name] = f"{installed} (lock: {version})"
    assert not wrong, f"run `make setup`: {wrong}"
    check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.skipif(
    Path(sys.prefix).resolve() != (ROOT / ".venv").resolve(), reason="not running in .venv"
)
def test_setup_is_a_fast_no_op_when_up_to_date():
    start = time.perf_counter()
    out = subprocess.run(
        ["bash", "scripts/setup.sh"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "up to date" in out.stdout
    assert time.perf_counter() - start < 2.0

"""The environment files agree with each other and with what CI runs."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9][A-Za-z0-9.+!_-]*)$")


def normal(name: str) -> str:
    """PEP 503 name: case-, underscore-, dot- and dash-insensitive."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_lines() -> list[str]:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in lock_lines():
        match = PIN.match(line)
        assert match, f"requirements.lock line is not an exact pin: {line!r}"
        pins[normal(match.group(1))] = match.group(2)
    return pins


def environment_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip) == 1, "environment.yml needs one pip: list"
    pins = {}
    for entry in pip[0]:
        match = PIN.match(entry.strip())
        assert match, f"environment.yml pip entry is not an exact pin: {entry!r}"
        pins[normal(match.group(1))] = match.group(2)
    return pins


def test_lock_pins_exact_versions_only():
    lines = lock_lines()
    assert len(lines) > 20
    for line in lines:
        assert PIN.match(line), f"not an exact '==' pin: {line!r}"
        assert not any(op in line for op in (">=", "<=", "~=", "!=", ">", "<", "*")), line
    names = [normal(PIN.match(line).group(1)) for line in lines]
    assert len(names) == len(set(names)), "a package is pinned twice"


def test_environment_yml_pins_equal_the_lock():
    lock, env = lock_pins(), environment_pins()
    assert env, "environment.yml pins nothing"
    missing = sorted(set(env) - set(lock))
    assert not missing, f"pinned in environment.yml but not in requirements.lock: {missing}"
    differ = {name: (version, lock[name]) for name, version in env.items() if lock[name] != version}
    assert not differ, f"environment.yml vs requirements.lock: {differ}"


def test_environment_python_is_311():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in [d for d in env["dependencies"] if isinstance(d, str)]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11,<3.12"


def test_every_direct_dependency_is_locked():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = lock_pins()
    for requirement in project["dependencies"]:
        name = normal(re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0])
        assert name in lock, f"pyproject dependency {requirement!r} is not pinned in requirements.lock"
    for name in ("pytest", "pyyaml", "omegaconf", "numpy"):  # what the tests and configs import directly
        assert name in lock, name


@pytest.mark.parametrize("name", sorted(environment_pins()))
def test_installed_versions_match_the_pins(name):
    """The environment running the tests is the locked one (``make`` builds .venv from the lock)."""
    installed = metadata.version(name).split("+")[0]
    assert installed == lock_pins()[name], f"{name}: installed {installed}, locked {lock_pins()[name]}"


def test_ci_runs_make_test():
    script = ROOT / ".ci" / "run"
    assert script.is_file()
    commands = [
        line.strip() for line in script.read_text().splitlines() if line.strip() and not line.strip().startswith("#")
    ]
    assert "make test" in commands, commands
    assert commands[-1] == "make test" or any(c.startswith("make test") for c in commands)
    assert script.stat().st_mode & 0o111, ".ci/run is not executable"


def makefile_recipe(target: str) -> list[str]:
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"^{re.escape(target)}\s*:", line))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_makefile_test_target_runs_pytest():
    recipe = makefile_recipe("test")
    assert recipe, "the test target has no recipe"
    assert any(re.search(r"(-m pytest|\bpytest\b)", line) for line in recipe), recipe
    assert ".PHONY" in (ROOT / "Makefile").read_text() and re.search(
        r"\.PHONY:.*\btest\b", (ROOT / "Makefile").read_text()
    )


def test_makefile_installs_from_the_lock():
    text = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*-r requirements\.lock", text)
    prereq = next(line for line in text.splitlines() if re.match(r"^test\s*:", line))
    assert "$(STAMP)" in prereq  # `make test` builds the locked venv first


EXTRAS = {"mlflow": "mlflow", "wandb": "wandb", "art": "adversarial-robustness-toolbox"}


def extra_pins(extra: str) -> dict[str, str]:
    lines = (ROOT / f"requirements-{extra}.lock").read_text().splitlines()
    pins = {}
    for line in (line.strip() for line in lines):
        if line and not line.startswith("#"):
            match = PIN.match(line)
            assert match, f"requirements-{extra}.lock line is not an exact pin: {line!r}"
            pins[normal(match.group(1))] = match.group(2)
    return pins


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_each_extra_is_locked_on_top_of_the_core_lock(extra):
    """pyproject's extra names its package; its lock pins that package and adds nothing the core lock pins
    (one version of each package, whichever extras are installed)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert [normal(r) for r in project["optional-dependencies"][extra]] == [normal(EXTRAS[extra])]
    pins = extra_pins(extra)
    assert normal(EXTRAS[extra]) in pins
    assert not set(pins) & set(lock_pins()), f"requirements-{extra}.lock re-pins core packages"
    others = {name: version for other in EXTRAS if other != extra for name, version in extra_pins(other).items()}
    clash = {name: (v, others[name]) for name, v in pins.items() if name in others and others[name] != v}
    assert not clash, f"extras pin different versions: {clash}"


def test_make_extras_installs_every_extra_lock_and_ci_runs_it():
    recipe = " ".join(makefile_recipe("extras"))
    assert "EXTRAS_LOCKS" in recipe and "-r requirements.lock" in recipe
    text = (ROOT / "Makefile").read_text()
    for extra in EXTRAS:
        assert f"requirements-{extra}.lock" in text
    commands = [line.split("#")[0].strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert commands.index("make extras") < commands.index("make test")

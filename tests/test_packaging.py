"""pyproject.toml and environment.yml must list the same dependencies."""
import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return Requirement(req.strip()).name.lower().replace("_", "-")


def _spec(req: str) -> str:
    """Extras and version range, normalised (``dask[distributed]>=2024.1`` -> ``[distributed]>=2024.1``)."""
    r = Requirement(req.strip())
    extras = f"[{','.join(sorted(r.extras))}]" if r.extras else ""
    return extras + str(r.specifier)


def _conda_deps():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip = {}, {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for p in dep.get("pip", []):
                if not p.startswith("-e"):
                    pip[_name(p)] = _spec(p)
        else:
            conda[_name(dep)] = _spec(dep)
    return conda, pip


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r): _spec(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    conda, pip = _conda_deps()
    listed = {**conda, **pip}
    listed.pop("python", None)
    listed.pop("pip", None)
    assert set(listed) == set(wanted), f"only in pyproject: {set(wanted) - set(listed)}; only in environment.yml: {set(listed) - set(wanted)}"
    for name, spec in wanted.items():
        assert listed[name] == spec, f"{name}: pyproject says {spec!r}, environment.yml says {listed[name]!r}"


def test_torch_range_admits_the_tested_builds():
    from packaging.specifiers import SpecifierSet

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = {_name(d): SpecifierSet(str(Requirement(d).specifier)) for d in deps}
    assert "2.14.1" in spec["torch"] and "0.29.1" in spec["torchvision"]


def test_console_script_and_dev_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["medgan"] == "medgan_utils.tools.cli:main"
    assert {"pytest", "nbval"} <= {_name(r) for r in project["optional-dependencies"]["dev"]}

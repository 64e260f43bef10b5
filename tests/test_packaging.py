"""pyproject.toml and environment.yml must list the same dependencies."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _spec(req: str) -> str:
    return re.sub(r"\s+", "", req.strip()[len(_name(req)):]).replace("==", "=") if req else ""


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
        conda_spec = spec.replace("==", "=")
        assert listed[name] in (spec, conda_spec), f"{name}: pyproject says {spec!r}, environment.yml says {listed[name]!r}"


def test_torch_range_admits_the_tested_builds():
    from packaging.specifiers import SpecifierSet

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = {(_name(d)): SpecifierSet(d[len(_name(d)):].strip()) for d in deps}
    assert "2.14.1" in spec["torch"] and "0.29.1" in spec["torchvision"]


def test_console_script_and_dev_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["medgan"] == "medgan_utils.tools.cli:main"
    assert {"pytest", "nbval"} <= {_name(r) for r in project["optional-dependencies"]["dev"]}

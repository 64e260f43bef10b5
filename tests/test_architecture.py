"""The package's shape: module and function sizes, one-way layering, one facade, documented variables,
and the training step of notebook 03 tied bit for bit to the package's copy."""
import ast
import json
import re
from pathlib import Path

import pytest
import torch

import medgan_utils
from medgan_utils.core.env import VARIABLES

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "medgan_utils"
# course/solutions/NN.K.py are exercise solutions stored as package data (run by student_exercise), not modules.
MODULES = sorted(p for p in PKG.rglob("*.py") if "solutions" not in p.relative_to(PKG).parts)
LAYERS = ["core", "data", "nets", "gan", "evaluation", "course", "tools"]
# What each layer may import (besides itself). evaluation never imports gan; nothing below tools imports tools.
ALLOWED = {
    "core": set(),
    "data": {"core"},
    "nets": {"core"},
    "gan": {"core", "data", "nets"},
    "evaluation": {"core", "data", "nets"},
    "course": {"core", "data", "nets", "gan", "evaluation"},
    "tools": {"core", "data", "nets", "gan", "evaluation", "course"},
    "": {"core", "data", "nets", "gan", "evaluation", "course"},  # the facade
}


def _layer_of(path: Path) -> str:
    rel = path.relative_to(PKG).parts
    return rel[0] if len(rel) > 1 else ""


def _imported_layers(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    pkg_parts = ["medgan_utils", *path.relative_to(PKG).parts[:-1]]
    found = set()
    for node in ast.walk(tree):  # nested (lazy) imports count too
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg_parts[: len(pkg_parts) - node.level + 1]
                target = base + (node.module.split(".") if node.module else [])
            else:
                target = (node.module or "").split(".")
            if target[0] == "medgan_utils":
                names = [target[1]] if len(target) > 1 else [a.name for a in node.names]
                found |= {n for n in names if n in LAYERS}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "medgan_utils" and len(parts) > 1:
                    found.add(parts[1])
    return found


def test_every_module_sits_in_a_layer():
    stray = [p.relative_to(PKG) for p in MODULES if _layer_of(p) not in LAYERS and p.name != "__init__.py"]
    assert not stray, f"modules outside the layers {LAYERS}: {stray}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_imports_go_one_way(path):
    layer = _layer_of(path)
    bad = _imported_layers(path) - ALLOWED[layer] - {layer}
    assert not bad, f"{path.relative_to(PKG)} (layer {layer or 'facade'}) imports {sorted(bad)}"


def test_layering_check_can_fail(tmp_path):
    """The checker sees relative, absolute and nested imports (so the test above is not vacuous)."""
    fake = PKG / "evaluation" / "_probe_for_test.py"
    fake.write_text("def f():\n    from ..gan import trainer\n    import medgan_utils.tools.cli\n")
    try:
        assert _imported_layers(fake) == {"gan", "tools"}
    finally:
        fake.unlink()


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_module_and_function_sizes(path):
    text = path.read_text()
    assert len(text.splitlines()) <= 450, f"{path.relative_to(PKG)} has {len(text.splitlines())} lines (max 450)"
    long = [(n.name, n.end_lineno - n.lineno + 1) for n in ast.walk(ast.parse(text))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 80]
    assert not long, f"{path.relative_to(PKG)}: functions over 80 lines: {long}"


def test_facade_exports_resolve_and_are_documented():
    assert len(set(medgan_utils.__all__)) == len(medgan_utils.__all__)
    for name in medgan_utils.__all__:
        assert hasattr(medgan_utils, name), name
    for sub in LAYERS[:-1]:
        mod = __import__(f"medgan_utils.{sub}", fromlist=["__all__"])
        for name in mod.__all__:
            assert hasattr(mod, name), f"medgan_utils.{sub}.{name}"


def _notebook_imports():
    for nb_path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(nb_path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            src = "".join(cell["source"])
            try:
                tree = ast.parse("\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("%", "!"))))
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("medgan_utils"):
                    yield nb_path.name, node.module, [a.name for a in node.names]


def test_notebooks_import_public_names_from_the_facade_or_a_subpackage():
    seen = 0
    for nb, module, names in _notebook_imports():
        seen += 1
        parts = module.split(".")
        assert len(parts) <= 2 and (len(parts) == 1 or parts[1] in LAYERS[:-1]), \
            f"{nb} imports from {module}: use medgan_utils or a subpackage (never tools or a module)"
        mod = __import__(module, fromlist=["__all__"])
        for name in names:
            assert not name.startswith("_") and name in mod.__all__, f"{nb}: {name} is not public in {module}"
    assert seen >= 4


def test_every_medgan_variable_is_parsed_in_one_place_and_documented():
    readme = (ROOT / "README.md").read_text()
    used = set()
    for path in MODULES:
        used |= set(re.findall(r"MEDGAN_[A-Z_]+", path.read_text()))
    assert used <= set(VARIABLES), f"undocumented variables: {sorted(used - set(VARIABLES))}"
    missing = [v for v in VARIABLES if f"`{v}`" not in readme]
    assert not missing, f"README.md does not list {missing}"
    readers = [p.relative_to(PKG) for p in MODULES if "os.environ.get(\"MEDGAN_" in p.read_text()
               or "os.environ[\"MEDGAN_" in p.read_text()]
    assert not readers, f"MEDGAN_* read outside core/env.py: {readers}"


def test_readme_layout_lists_every_module():
    """The README's Layout tree has one line per module, under its layer."""
    readme = (ROOT / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    listed, layer = set(), None
    for line in layout.splitlines():
        if m := re.match(r"^  (\w+)/\s", line):
            layer = m.group(1)
        elif (m := re.match(r"^    (\w+\.py)\s+\S", line)) and layer:
            listed.add(f"{layer}/{m.group(1)}")
    modules = {str(p.relative_to(PKG)) for p in MODULES if p.name != "__init__.py"}
    assert modules == listed, f"missing: {sorted(modules - listed)}; stale: {sorted(listed - modules)}"


def _notebook_train_step():
    nb = json.loads((ROOT / "notebooks" / "03_dcgan.ipynb").read_text())
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "code" and src.startswith("def train_step("):
            return src
    raise AssertionError("notebook 03 has no train_step cell")


def test_notebook_03_writes_the_step_with_backward():
    src = _notebook_train_step()
    assert src.count(".backward()") == 2 and "zero_grad" in src and "scaler.step(opt_D)" in src
    assert "tr.update" not in src


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_notebook_step_is_bit_identical_to_the_package_step(precision, one_thread):
    import torch.nn.functional as F

    from medgan_utils.gan import DCGANTrainer, dcgan_step
    from medgan_utils.nets import make_dcgan

    namespace = {"torch": torch, "F": F}
    exec(_notebook_train_step(), namespace)
    data = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    trainers = []
    for step in (namespace["train_step"], dcgan_step):
        G, D = make_dcgan(28, 1, 16, base=8, seed=0)
        tr = DCGANTrainer(G, D, data, step_fn=step, batch_size=16, precision=precision, progress=False, seed=3)
        tr.run_steps(3)
        trainers.append(tr)
    a, b = trainers
    for net in ("G_raw", "D_raw"):
        for (k, x), y in zip(getattr(a, net).state_dict().items(), getattr(b, net).state_dict().values()):
            assert torch.equal(x, y), f"{net}.{k} differs ({precision})"
    if precision == "fp16":
        assert a.scaler.is_enabled() and a.scaler.get_scale() == b.scaler.get_scale()

"""Every committed notebook: clean, parameterised, with the standard opening and closing."""
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXPECTED = ["00_setup", "01_background", "02_minimax_loss", "03_dcgan"]


def test_course_notebooks_present_in_order():
    stems = [p.stem for p in NOTEBOOKS]
    assert stems[: len(EXPECTED)] == EXPECTED


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.stem)
def nb(request):
    return request.param, nbformat.read(request.param, as_version=4)


def test_committed_without_outputs(nb):
    path, book = nb
    dirty = [i for i, c in enumerate(book.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; clear them before committing"


def test_standard_header(nb):
    path, book = nb
    first = book.cells[0]
    assert first.cell_type == "markdown" and first.source.lstrip().startswith("# ")
    assert f"colab.research.google.com/github/" in first.source and f"notebooks/{path.name}" in first.source
    for heading in ("Learning objectives", "Prerequisites", "Estimated time"):
        assert heading in first.source, f"{path.name}: header lacks '{heading}'"
    code = [c for c in book.cells if c.cell_type == "code"]
    tagged = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0], "the first code cell, and only it, is tagged 'parameters'"
    params = tagged[0].source
    for name in ("FAST", "SEED", "DEVICE"):
        assert re.search(rf"^{name}\s*=", params, re.M), f"{path.name}: parameter {name} missing"


def test_standard_closing(nb):
    path, book = nb
    md = "\n".join(c.source for c in book.cells if c.cell_type == "markdown")
    for heading in ("## Exercises", "## Key takeaways", "## References"):
        assert heading in md, f"{path.name}: missing '{heading}'"
    solutions = [c for c in book.cells if "solution" in c.metadata.get("tags", []) or "<details>" in c.source]
    stubs = [c for c in book.cells if "Student exercise" in c.source]
    assert len(solutions) >= 3 and len(stubs) >= 3, f"{path.name}: needs >= 3 exercises with hidden solutions"
    hidden = [c for c in book.cells if "solution" in c.metadata.get("tags", [])]
    assert all(c.metadata.get("jupyter", {}).get("source_hidden") for c in hidden)
    for stub in stubs:
        assert "raises-exception" in stub.metadata.get("tags", []), "exercise stubs must be tagged raises-exception"
    raw = [i for i, c in enumerate(book.cells) if c.cell_type == "code" and "raise NotImplementedError" in c.source]
    assert not raw, f"{path.name}: cells {raw} raise directly; use medgan_utils.exercises.student_exercise so papermill runs pass"
    src = "\n".join(c.source for c in book.cells if c.cell_type == "code")
    assert "record_results(" in src and "setup(" in src
    hard_coded = re.findall(r"\.cuda\(\)|device\s*=\s*[\"']cuda|torch\.device\([\"']cuda", src)
    assert not hard_coded, f"{path.name}: hard-coded CUDA device {hard_coded}; use cfg.device"

def test_readme_lists_every_notebook():
    readme = (ROOT / "README.md").read_text()
    for p in NOTEBOOKS:
        assert p.name in readme, f"README's notebook table lacks {p.name}"

"""Every committed notebook: clean, parameterised, with the standard opening and closing, and exercises that
follow the course convention: task, answer cell ending in student_exercise("NN.K", ...), a show_solution hint,
no solution code or raises-exception tags in the notebook, every answer cell after all teaching content."""
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXPECTED = ["00_setup", "01_background", "02_minimax_loss", "03_dcgan", "04_augmentation", "05_segmentation",
            "06_enhancement", "07_challenges", "08_trust"]


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


def _exercise_section(book):
    """Index of the '## Exercises' heading, and the answer cells after it as (index, exercise id)."""
    heads = [i for i, c in enumerate(book.cells)
             if c.cell_type == "markdown" and c.source.lstrip().startswith("## Exercises")]
    assert len(heads) == 1, "exactly one markdown cell must start with '## Exercises'"
    answers = [(i, m.group(1)) for i, c in enumerate(book.cells) if c.cell_type == "code"
               for m in [STUB.search(c.source)] if m]
    return heads[0], answers


STUB = re.compile(r"""^student_exercise\(\s*["'](\d\d\.\d+)["']""", re.M)


def test_standard_closing(nb):
    path, book = nb
    md = "\n".join(c.source for c in book.cells if c.cell_type == "markdown")
    for heading in ("## Exercises", "## Key takeaways", "## References"):
        assert heading in md, f"{path.name}: missing '{heading}'"
    src = "\n".join(c.source for c in book.cells if c.cell_type == "code")
    assert "record_results(" in src and "setup(" in src
    hard_coded = re.findall(r"\.cuda\(\)|device\s*=\s*[\"']cuda|torch\.device\([\"']cuda", src)
    assert not hard_coded, f"{path.name}: hard-coded CUDA device {hard_coded}; use cfg.device"
    raw = [i for i, c in enumerate(book.cells) if c.cell_type == "code" and "raise NotImplementedError" in c.source]
    assert not raw, f"{path.name}: cells {raw} raise directly; end an answer cell with student_exercise(...) instead"


def test_exercises_follow_the_convention(nb):
    """Task (markdown), answer cell ending in student_exercise("NN.K", ...), a show_solution hint; no solutions."""
    path, book = nb
    head, answers = _exercise_section(book)
    nn = path.stem[:2]
    assert len(answers) >= 3, f"{path.name}: needs >= 3 exercises"
    assert [a for _, a in answers] == [f"{nn}.{k}" for k in range(1, len(answers) + 1)], \
        f"{path.name}: exercise ids must be {nn}.1, {nn}.2, ... in order, got {[a for _, a in answers]}"
    for n, (i, ex) in enumerate(answers):
        cell = book.cells[i]
        assert not {"raises-exception", "solution"} & set(cell.metadata.get("tags", [])), f"{path.name} {ex}: tagged"
        body = [ln for ln in cell.source.strip().splitlines() if ln.strip()]
        assert STUB.match(body[-1]), f"{path.name} {ex}: the answer cell must end with student_exercise(\"{ex}\", ...)"
        assert any(ln.lstrip().startswith("#") for ln in body[:-1]), \
            f"{path.name} {ex}: the answer cell needs a '# your code here' comment"
        assert book.cells[i - 1].cell_type == "markdown" and f"Exercise {ex}" in book.cells[i - 1].source, \
            f"{path.name} {ex}: the cell before the answer cell must be the task, naming 'Exercise {ex}'"
        stop = answers[n + 1][0] if n + 1 < len(answers) else len(book.cells)
        hints = [c for c in book.cells[i + 1:stop]
                 if c.cell_type == "markdown" and f'show_solution("{ex}")' in c.source]
        assert hints, f"{path.name} {ex}: tell the learner about show_solution(\"{ex}\") after the answer cell"


def test_no_solution_in_the_notebook(nb):
    path, book = nb
    for i, c in enumerate(book.cells):
        tags = set(c.metadata.get("tags", []))
        assert not tags & {"solution", "raises-exception"}, f"{path.name} cell {i}: tags {sorted(tags)}"
        assert not c.metadata.get("jupyter", {}).get("source_hidden"), f"{path.name} cell {i}: hidden source"
        for block in re.findall(r"<details>.*?</details>", c.source, re.S):
            assert "<summary>Discussion (after you tried)</summary>" in block, \
                f"{path.name} cell {i}: a <details> block other than 'Discussion (after you tried)'"
            assert not re.search(r"\d", block.split("</summary>", 1)[1]), \
                f"{path.name} cell {i}: numbers in a discussion block must be computed, not written"


def test_run_all_runs_the_lesson_before_the_first_answer_cell(nb):
    """Every answer cell comes after all teaching content, and results.json is written before the first one."""
    path, book = nb
    head, answers = _exercise_section(book)
    first = answers[0][0]
    early = [i for i, c in enumerate(book.cells[:head]) if "student_exercise(" in c.source]
    assert not early, f"{path.name}: exercise cells {early} sit inside the teaching content; move them to the end"
    assert first > head
    records = [i for i, c in enumerate(book.cells) if c.cell_type == "code" and "record_results(" in c.source]
    assert records and records[0] < first, f"{path.name}: record_results must run before the first answer cell"
    closing = [i for i, c in enumerate(book.cells) if c.cell_type == "markdown" and "## Key takeaways" in c.source]
    assert closing and closing[0] > answers[-1][0], f"{path.name}: takeaways must follow the exercises"


def test_readme_lists_every_notebook():
    readme = (ROOT / "README.md").read_text()
    for p in NOTEBOOKS:
        assert p.name in readme, f"README's notebook table lacks {p.name}"

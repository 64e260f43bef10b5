"""Exercises: answer cells, stored solutions, show_solution, and the graders of the training steps.

* every ``student_exercise("NN.K", ...)`` in a notebook has ``solutions/NN.K.py`` and every solution is used;
* outside a batch run the answer cell stops with one clean message (what to do, show_solution, skip_exercise) and
  never runs the solution, whatever the front end; in a batch run (MEDGAN_HEADLESS=1) it runs the solution;
* skip_exercise lets the check cell report "skipped"; a wrong answer is reported without package frames;
* ``grade_step`` passes the reference step and names the first differing tensor for the usual faults
  (a missing ``detach()``, swapped labels), for notebook 03's DCGAN step and notebook 02's toy step; it rejects a
  step that changes nothing or returns nothing, explains a batch-norm-only difference with the order of calls
  (03.1 with the fakes first, 05.1 with a second S call), and grades 06.1 with λ = 0 and λ > 0;
* the package's toy step is bit-identical to notebook 02's own ``train_step``.
"""
import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

import medgan_utils
from medgan_utils.core.errors import CourseError
from medgan_utils.course import exercises
from medgan_utils.course.checking import check_exercise
from medgan_utils.course.exercises import show_solution, skip_exercise, solution_code, solution_ids, student_exercise
from medgan_utils.course.feedback import AnswerIncorrect, ExerciseNotDone
from medgan_utils.course.graders import ToyGANTrainer, grade_step, toy_gan_step
from medgan_utils.gan import DCGANTrainer, d_loss_bce, dcgan_step, g_loss_nonsaturating
from medgan_utils.nets import make_dcgan

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = ROOT / "medgan_utils" / "course" / "solutions"
CALL = re.compile(r"""student_exercise\(\s*["'](\d\d\.\d+)["']""")


def _code_cells(path):
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def _ids_in_notebooks():
    return {path.stem[:2]: [i for src in _code_cells(path) for i in CALL.findall(src)] for path in NOTEBOOKS}


# ------------------------------------------------------------------------------------------ ids and files

def test_every_exercise_id_has_a_solution_and_every_solution_is_used():
    used = [i for ids in _ids_in_notebooks().values() for i in ids]
    files = {p.stem for p in SOLUTIONS.glob("*.py")}
    assert len(used) == len(set(used)), f"an exercise id is used twice: {sorted(used)}"
    assert set(used) == files, \
        f"ids without a solution: {sorted(set(used) - files)}; solutions not used: {sorted(files - set(used))}"
    assert solution_ids() == sorted(files, key=lambda i: tuple(map(int, i.split("."))))
    extra = {p.stem for p in SOLUTIONS.glob("*.md")} - files
    assert not extra, f"discussions without a solution: {sorted(extra)}"


def test_exercise_ids_are_numbered_per_notebook_in_order():
    for nn, ids in _ids_in_notebooks().items():
        assert ids == [f"{nn}.{k}" for k in range(1, len(ids) + 1)], f"notebook {nn}: ids {ids}"
        assert len(ids) >= 3, f"notebook {nn} has only {len(ids)} exercises"


@pytest.mark.parametrize("path", sorted(SOLUTIONS.glob("*.py")), ids=lambda p: p.name)
def test_solution_files_are_valid_python(path):
    ast.parse(path.read_text(), filename=str(path))


def test_solutions_are_package_data():
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert {"solutions/*.py", "solutions/*.md"} <= set(data["medgan_utils.course"])


def test_no_notebook_holds_solution_code_or_raises_exception_stubs():
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        for i, c in enumerate(cells):
            tags = c["metadata"].get("tags", [])
            assert "solution" not in tags, f"{path.name} cell {i} is tagged 'solution': solutions live in the package"
            assert "raises-exception" not in tags, f"{path.name} cell {i} is tagged 'raises-exception'"
            assert not c["metadata"].get("jupyter", {}).get("source_hidden"), f"{path.name} cell {i} is hidden"
        code = "\n".join(_code_cells(path))
        for sol in SOLUTIONS.glob(f"{path.stem[:2]}.*.py"):
            long_lines = [ln.strip() for ln in sol.read_text().splitlines()  # the answer cell may repeat a signature
                          if len(ln.strip()) >= 40 and not ln.strip().startswith(("def ", "#"))]
            start = code.find("student_exercise(")
            copied = [ln for ln in long_lines if ln in code[start:]]
            assert len(copied) < 2, f"{path.name} repeats solution {sol.name} after its first exercise: {copied[:2]}"


# ------------------------------------------------------------------------------------------ student_exercise

@pytest.fixture
def learner_env(monkeypatch):
    """A learner's environment: no batch flag, whatever the front end looks like."""
    monkeypatch.delenv("MEDGAN_HEADLESS", raising=False)
    for var in ("JPY_SESSION_NAME", "VSCODE_PID", "VSCODE_CWD"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("widgets", ["0", "1"])
def test_outside_a_batch_run_the_answer_cell_stops_and_never_runs_the_solution(learner_env, monkeypatch, widgets):
    """Guessing the front end decides only whether widgets render: with or without one, no solution runs."""
    monkeypatch.setenv("MEDGAN_WIDGETS", widgets)
    ns = {}
    with pytest.raises(NotImplementedError) as info:
        student_exercise("03.2", "compare runs", namespace=ns)
    assert isinstance(info.value, ExerciseNotDone)
    text = str(info.value)
    assert text.startswith("Exercise 03.2 (compare runs) is waiting for your answer.")
    for part in ('delete its last line', 'show_solution("03.2")', 'skip_exercise("03.2")', "check cell"):
        assert part in text, part
    assert ns == {}, "outside a batch run the solution must never run"


def test_in_a_plain_python_process_02_6_raises_and_never_runs_the_solution(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDGAN_HEADLESS", "JPY_", "VSCODE"))}
    code = ("from medgan_utils import student_exercise\n"
            "ns = {}\n"
            "try:\n"
            "    student_exercise('02.6', 'write my_toy_step', namespace=ns)\n"
            "except NotImplementedError as err:\n"
            "    print('STOPPED', type(err).__name__, 'my_toy_step' in ns)\n"
            "student_exercise('02.6', 'write my_toy_step')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=120)
    assert "STOPPED ExerciseNotDone False" in out.stdout, out.stdout + out.stderr
    assert out.returncode != 0 and "ExerciseNotDone: Exercise 02.6" in out.stderr, out.stderr[-2000:]
    assert "batch run" not in out.stdout, "the solution ran"


def test_the_stop_renders_one_clean_message_without_package_frames(learner_env):
    with pytest.raises(ExerciseNotDone) as info:
        student_exercise("02.6", "write my_toy_step", namespace={})
    lines = info.value._render_traceback_()
    assert lines[0].startswith("Exercise 02.6 (write my_toy_step) is waiting for your answer.")
    assert not [ln for ln in lines if "File " in ln or ".py" in ln or "Traceback" in ln], lines


def test_in_ipython_the_stop_shows_only_the_message(tmp_path):
    """IPython uses _render_traceback_: the learner sees the message, no frame of the course package."""
    pytest.importorskip("IPython")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDGAN_HEADLESS", "JPY_", "VSCODE"))}
    env["IPYTHONDIR"] = str(tmp_path / "ipython")
    code = "from medgan_utils import student_exercise\nstudent_exercise('02.6', 'write my_toy_step')\n"
    script = tmp_path / "cell.ipy"
    script.write_text(code)
    out = subprocess.run([sys.executable, "-m", "IPython", "--quick", "--colors=NoColor", str(script)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    shown = out.stdout + out.stderr
    assert "Exercise 02.6 (write my_toy_step) is waiting for your answer." in shown, shown
    assert "exercises.py" not in shown and "medgan_utils" not in shown and "Traceback" not in shown, shown


def test_batch_run_runs_the_solution_in_the_given_namespace(monkeypatch, capsys):
    monkeypatch.setenv("MEDGAN_HEADLESS", "1")
    ns = {}
    student_exercise("03.1", "write my_train_step", namespace=ns)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "Exercise 03.1 (write my_train_step)" in out and "reference solution" in out
    assert callable(ns["my_train_step"])
    ns2 = {}
    student_exercise("02.5", namespace=ns2)  # the faults exercise: reproduces the shadowing fault
    assert "UnboundLocalError" in capsys.readouterr().out and "generator" not in ns2
    assert ns2["faults_found"] == set("abcdef")


def test_batch_solution_replaces_the_learners_stub_and_passes_its_check(monkeypatch, capsys, one_thread):
    """The order the notebooks rely on: the answer cell defines a stub, student_exercise redefines it, the
    check cell then grades the solution (and passes)."""
    monkeypatch.setenv("MEDGAN_HEADLESS", "1")
    ns = {"grading_toy_trainer": _toy_trainer}
    exec("def my_toy_step(G, D, opt_g, opt_d, real, z):\n    ...\n", ns)
    stub = ns["my_toy_step"]
    student_exercise("02.6", "write my_toy_step", namespace=ns)
    assert ns["my_toy_step"] is not stub
    assert check_exercise("02.6", namespace=ns) is True
    assert "PASS (exercise 02.6)" in capsys.readouterr().out


def test_skip_exercise_lets_the_check_and_the_cells_below_run(learner_env, capsys):
    ns = {}
    with pytest.raises(AnswerIncorrect, match=r"your answer should define my_toy_step.*skip_exercise\(\"02\.6\"\)"):
        check_exercise("02.6", namespace=ns, grading_toy_trainer=_toy_trainer)
    skip_exercise("02.6", namespace=ns)
    assert "skipped" in capsys.readouterr().out
    assert check_exercise("02.6", namespace=ns) is None
    assert "Exercise 02.6: skipped, so not checked" in capsys.readouterr().out
    with pytest.raises(AnswerIncorrect):  # the mark is per exercise
        check_exercise("02.1", namespace=ns)


def test_a_wrong_answer_is_reported_without_package_frames(learner_env):
    ns = {"my_toy_step": lambda *args: None, "grading_toy_trainer": _toy_trainer}
    with pytest.raises(AnswerIncorrect) as info:
        check_exercise("02.6", namespace=ns)
    lines = info.value._render_traceback_()
    assert lines[0].startswith("Exercise 02.6: your step changed nothing"), lines[0]
    assert not [ln for ln in lines if "medgan_utils" in ln], lines


def test_an_error_in_the_learners_code_shows_only_the_learners_frames(learner_env, tmp_path):
    mine = tmp_path / "my_answer.py"
    mine.write_text("def my_toy_step(G, D, opt_g, opt_d, real, z):\n    return 1 / 0\n")
    ns = {"grading_toy_trainer": _toy_trainer}
    exec(compile(mine.read_text(), str(mine), "exec"), ns)
    with pytest.raises(AnswerIncorrect) as info:
        check_exercise("02.6", namespace=ns)
    shown = "\n".join(info.value._render_traceback_())
    assert "raised ZeroDivisionError in step 1" in shown and "my_answer.py" in shown and "return 1 / 0" in shown
    assert "graders.py" not in shown and "trainer" not in shown.split("Where it happened")[1]


def test_unknown_ids_name_the_known_ones():
    for bad in ("9.9", "03.99", "Student exercise: plot the loss", 3.2):
        with pytest.raises(CourseError, match=r"Known ids: 00\.1, 00\.2"):
            student_exercise(bad)
    with pytest.raises(CourseError, match="03.1"):
        show_solution("99.1")


def test_show_solution_shows_discussion_and_code_and_can_run_it(capsys):
    ns = {"torch": torch}
    show_solution("02.6", run=True, namespace=ns)
    out = capsys.readouterr().out
    assert "```python\n" in out and "def my_toy_step(G, D, opt_g, opt_d, real, z):" in out
    assert "non-saturating" in out  # from 02.6.md
    assert callable(ns["my_toy_step"])
    show_solution("02.1")  # no namespace needed when not running
    assert solution_code("02.1") in capsys.readouterr().out


def test_exported_from_the_facade():
    for name in ("student_exercise", "show_solution", "grade_step", "toy_gan_step", "ToyGANTrainer"):
        assert name in medgan_utils.__all__ and name in medgan_utils.course.__all__


# ------------------------------------------------------------------------------------------ wrong steps

def _dcgan_missing_detach(tr, real, z):
    """A realistic fault: all gradients cleared once at the top, then D's loss on fakes that are not detached
    (retain_graph silences the 'backward twice' error), so G also collects D's gradients."""
    G, D, opt_G, opt_D = tr.G, tr.D, tr.opt_G, tr.opt_D
    ones = torch.ones(real.shape[0])
    opt_D.zero_grad(set_to_none=True)
    opt_G.zero_grad(set_to_none=True)
    fake = G(z)
    loss_D = (F.binary_cross_entropy_with_logits(D(real), ones)
              + F.binary_cross_entropy_with_logits(D(fake), torch.zeros_like(ones)))  # BUG: fake not detached
    loss_D.backward(retain_graph=True)
    opt_D.step()
    loss_G = F.binary_cross_entropy_with_logits(D(fake), ones)
    loss_G.backward()
    opt_G.step()
    return {}


def _dcgan_swapped_labels(tr, real, z):
    G, D, opt_G, opt_D = tr.G, tr.D, tr.opt_G, tr.opt_D
    ones = torch.ones(real.shape[0])
    fake = G(z)
    loss_D = (F.binary_cross_entropy_with_logits(D(real), torch.zeros_like(ones))  # BUG: real labelled 0 ...
              + F.binary_cross_entropy_with_logits(D(fake.detach()), ones))  # ... and fake labelled 1
    opt_D.zero_grad(set_to_none=True)
    loss_D.backward()
    opt_D.step()
    loss_G = F.binary_cross_entropy_with_logits(D(fake), ones)
    opt_G.zero_grad(set_to_none=True)
    loss_G.backward()
    opt_G.step()


def _dcgan_plain_missing_detach(tr, real, z):
    """The same fault written naively: the second backward fails inside the learner's step."""
    ones = torch.ones(real.shape[0])
    fake = tr.G(z)
    loss_D = (F.binary_cross_entropy_with_logits(tr.D(real), ones)
              + F.binary_cross_entropy_with_logits(tr.D(fake), torch.zeros_like(ones)))
    tr.opt_D.zero_grad(set_to_none=True)
    loss_D.backward()
    tr.opt_D.step()
    loss_G = F.binary_cross_entropy_with_logits(tr.D(fake), ones)
    tr.opt_G.zero_grad(set_to_none=True)
    loss_G.backward()
    tr.opt_G.step()


def _dcgan_trainer(step):
    data = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    G, D = make_dcgan(28, 1, 16, base=8, seed=0)
    return DCGANTrainer(G, D, data, step_fn=step, device="cpu", batch_size=16, precision="fp32",
                        progress=False, seed=3)


def _toy_missing_detach(G, D, opt_g, opt_d, real, z):
    b = real.size(0)
    opt_d.zero_grad(set_to_none=True)
    opt_g.zero_grad(set_to_none=True)
    fake = G(z)
    logits = D(torch.cat([real, fake]))  # BUG: fake not detached
    d_loss_bce(logits[:b], logits[b:]).backward(retain_graph=True)
    opt_d.step()
    g_loss_nonsaturating(D(fake)).backward()
    opt_g.step()


def _toy_detached_but_zeroed_at_the_top(G, D, opt_g, opt_d, real, z):
    """Correct: the same layout as _toy_missing_detach, with the detach. G's gradients are then G's loss only."""
    b = real.size(0)
    opt_d.zero_grad(set_to_none=True)
    opt_g.zero_grad(set_to_none=True)
    fake = G(z)
    logits = D(torch.cat([real, fake.detach()]))
    loss_d = d_loss_bce(logits[:b], logits[b:])
    loss_d.backward()
    opt_d.step()
    loss_g = g_loss_nonsaturating(D(fake))
    loss_g.backward()
    opt_g.step()
    return loss_d.detach(), loss_g.detach()


def _toy_swapped_labels(G, D, opt_g, opt_d, real, z):
    b = real.size(0)
    fake = G(z)
    logits = D(torch.cat([real, fake.detach()]))
    loss_d = d_loss_bce(logits[b:], logits[:b])  # BUG: fakes scored as real, reals as fake
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    loss_g = g_loss_nonsaturating(D(fake))
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()


def _toy_plain_missing_detach(G, D, opt_g, opt_d, real, z):
    b = real.size(0)
    fake = G(z)
    logits = D(torch.cat([real, fake]))
    opt_d.zero_grad(set_to_none=True)
    d_loss_bce(logits[:b], logits[b:]).backward()
    opt_d.step()
    opt_g.zero_grad(set_to_none=True)
    g_loss_nonsaturating(D(fake)).backward()
    opt_g.step()


def _ring_sampler(n, generator):
    return torch.randn(n, 1, generator=generator) * 0.5 + 2.0


def _toy_trainer(step):
    return ToyGANTrainer(step, _ring_sampler, latent_dim=1, data_dim=1, seed=0)


GRADERS = {"dcgan": (dcgan_step, _dcgan_trainer), "toy": (toy_gan_step, _toy_trainer)}
WRONG = {
    ("dcgan", "missing detach"): (_dcgan_missing_detach, r"^G\.\S+ differs after step 1: max \|diff\| \d"),
    ("dcgan", "swapped labels"): (_dcgan_swapped_labels, r"^D\.\S+ differs after step 1: max \|diff\| \d"),
    ("toy", "missing detach"): (_toy_missing_detach, r"^G\.\d\.(weight|bias) differs after step 1: max \|diff\|"),
    ("toy", "swapped labels"): (_toy_swapped_labels, r"^D\.\d\.(weight|bias) differs after step 1: max \|diff\|"),
}


@pytest.mark.parametrize("grader", GRADERS)
def test_grader_passes_the_reference(grader, capsys, one_thread):
    reference, make_trainer = GRADERS[grader]
    assert grade_step(reference, reference, make_trainer, steps=3) is True
    assert capsys.readouterr().out.startswith("PASS")


@pytest.mark.parametrize("case", WRONG, ids=lambda c: f"{c[0]}-{c[1].replace(' ', '-')}")
def test_grader_names_the_first_differing_tensor(case, one_thread):
    wrong, pattern = WRONG[case]
    reference, make_trainer = GRADERS[case[0]]
    with pytest.raises(AssertionError) as info:
        grade_step(wrong, reference, make_trainer)
    message = str(info.value)
    assert re.search(pattern, message, re.M), message
    assert "Usual faults" in message and "detach" in message and "swapped labels" in message


@pytest.mark.parametrize("grader,wrong", [("dcgan", _dcgan_plain_missing_detach), ("toy", _toy_plain_missing_detach)])
def test_grader_turns_an_error_in_the_step_into_a_hint(grader, wrong, one_thread):
    reference, make_trainer = GRADERS[grader]
    with pytest.raises(AssertionError, match=r"raised RuntimeError in step 1: .*backward through the graph") as info:
        grade_step(wrong, reference, make_trainer)
    assert "fake.detach()" in str(info.value)


def test_grader_accepts_equivalent_code(one_thread, capsys):
    """It compares what a step does, not how it is written."""
    assert grade_step(_toy_detached_but_zeroed_at_the_top, toy_gan_step, _toy_trainer)
    ns = {}
    exec(solution_code("03.1"), ns)  # no D.requires_grad_(False): same weights as dcgan_step
    assert grade_step(ns["my_train_step"], dcgan_step, _dcgan_trainer)
    assert capsys.readouterr().out.count("PASS") == 2


@pytest.mark.parametrize("grader", GRADERS)
def test_a_step_that_changes_nothing_is_rejected_with_a_message_that_says_so(grader, one_thread):
    reference, make_trainer = GRADERS[grader]
    with pytest.raises(AnswerIncorrect, match=r"^your step changed nothing: after one call of \w+ every weight, "
                                              r"buffer and optimiser state is exactly as before"):
        grade_step(_do_nothing, reference, make_trainer)


def _do_nothing(*args):
    """The answer cell's stub, left as it is."""
    return None


def _dcgan_returns_nothing(tr, real, z):
    out = dcgan_step(tr, real, z)  # a correct step ...
    del out  # ... that forgets to return its numbers


def _dcgan_returns_attached(tr, real, z):
    out = dcgan_step(tr, real, z)
    return {**out, "loss_D": out["loss_D"].clone().requires_grad_(True)}


def _toy_returns_nothing(G, D, opt_g, opt_d, real, z):
    toy_gan_step(G, D, opt_g, opt_d, real, z)


@pytest.mark.parametrize("exercise", [None, "03.1"])
def test_a_step_that_returns_nothing_is_rejected_with_a_message_that_says_so(exercise, one_thread):
    with pytest.raises(AnswerIncorrect, match=r"_dcgan_returns_nothing returned nothing \(None\): it must return a "
                                              r"dict with 'loss_D', 'loss_G', 'D_x', 'D_G_z'"):
        grade_step(_dcgan_returns_nothing, dcgan_step, _dcgan_trainer, exercise=exercise)
    with pytest.raises(AnswerIncorrect, match=r"returned nothing \(None\): it must return a tuple of 2"):
        grade_step(_toy_returns_nothing, toy_gan_step, _toy_trainer, exercise="02.6")
    with pytest.raises(AnswerIncorrect, match=r"'loss_D' is still attached to its graph: return loss\.detach\(\)"):
        grade_step(_dcgan_returns_attached, dcgan_step, _dcgan_trainer, exercise=exercise)


def _fakes_first_03_1():
    ns = {}
    src = solution_code("03.1")
    swapped = src.replace("        real_logits = D(real).float()\n        fake_logits = D(fake.detach()).float()",
                          "        fake_logits = D(fake.detach()).float()\n        real_logits = D(real).float()")
    assert swapped != src
    exec(swapped, ns)
    return ns["my_train_step"]


def test_03_1_with_the_fakes_scored_first_gets_the_batch_norm_explanation(one_thread):
    with pytest.raises(AnswerIncorrect) as info:
        grade_step(_fakes_first_03_1(), dcgan_step, _dcgan_trainer, exercise="03.1")
    text = str(info.value)
    assert text.startswith("Exercise 03.1: only buffers differ after step 1 (first: D.net.3.running_mean"), text
    assert "You called the networks a different number of times or in a different order" in text
    assert "your calls:      G(z) → D(G's output) → D(real) → opt_D.step()" in text
    assert "the reference: G(z) → D(real) → D(G's output) → opt_D.step() → D(G's output) → opt_G.step()" in text
    assert "The task's order: G(z); D(real); D(fake.detach())" in text


def _pair_trainer(step, lambda_adv=0.1, nets=("S", "D")):
    from medgan_utils.gan import PairTrainer
    from medgan_utils.nets import make_patch_discriminator, make_unet

    g = torch.Generator().manual_seed(0)
    images = torch.rand(16, 1, 32, 32, generator=g) * 2 - 1
    masks = (torch.rand(16, 1, 32, 32, generator=g) > 0.7).float()
    built = {"S": make_unet(1, 1, 4, 3, seed=0), "G": make_unet(1, 1, 4, 3, out_activation="tanh", seed=0),
             "D": make_patch_discriminator(2, 8, 3, "batch", seed=1)}
    return PairTrainer({n: built[n] for n in nets}, images, masks, step, lr={n: 1e-3 for n in nets},
                       betas=(0.5, 0.999), batch_size=8, seed=0, precision="fp32", lambda_adv=lambda_adv)


def test_05_1_with_a_second_S_call_gets_the_batch_norm_explanation(one_thread):
    ns = {}
    src = solution_code("05.1").replace("    loss_S = dice_bce_loss(logits, masks)",
                                        "    loss_S = dice_bce_loss(S(images).float(), masks)")
    exec(src, {"torch": torch, "F": F, "dice_bce_loss": medgan_utils.dice_bce_loss, **ns}, ns)
    with pytest.raises(AnswerIncorrect) as info:
        grade_step(ns["my_adv_step"], medgan_utils.adversarial_segmentation_step, _pair_trainer, exercise="05.1")
    text = str(info.value)
    assert "only buffers differ after step 1 (first: S." in text and "running_" in text, text
    assert "your calls:      S(images) → D(images, masks)" in text and "opt_D.step() → D(images, ·) → S(images)" in text
    assert "S run a second time for its own update" in text  # 05.1's own usual faults


def test_each_step_exercise_lists_its_own_usual_faults(one_thread):
    def hinge_without_margin(tr, real, z, y):
        return {}

    from medgan_utils.course.step_faults import STEP_SPECS

    assert {"02.6", "03.1", "04.1", "05.1", "06.1"} <= set(STEP_SPECS)
    assert any("hinge" in f for f in STEP_SPECS["04.1"].faults)
    assert any("shared logits" in f for f in STEP_SPECS["05.1"].faults)
    assert len({tuple(s.faults) for s in STEP_SPECS.values()}) == len(STEP_SPECS), "every exercise has its own list"
    with pytest.raises(AnswerIncorrect, match="Usual faults of exercise 02.6:\n  - the fake batch is not detached"):
        grade_step(_toy_swapped_labels, toy_gan_step, _toy_trainer, exercise="02.6")


def _enhance_without_l1_branch(tr, clean, degraded):
    """Right only when there is a critic: it always trains one, even with λ = 0."""
    saved = tr.lambda_adv
    tr.lambda_adv = saved or 1e-12  # pretends λ > 0
    try:
        return medgan_utils.enhancement_step(tr, clean, degraded)
    finally:
        tr.lambda_adv = saved


def test_06_1_is_graded_with_lambda_0_and_lambda_above_0(one_thread, capsys):
    def grading_trainer(step, lambda_adv=0.1):
        return _pair_trainer(step, lambda_adv, nets=("G", "D"))

    ns = {"grading_trainer": grading_trainer}
    exec(solution_code("06.1"), {"torch": torch, "F": F}, ns)
    assert check_exercise("06.1", namespace=ns) is True
    out = capsys.readouterr().out
    assert out.count("PASS: my_enhance_step matches enhancement_step") == 2 and "λ = 0:" in out and "λ = 0.1:" in out
    assert grade_step(_enhance_without_l1_branch, medgan_utils.enhancement_step,
                      lambda s: grading_trainer(s, 0.1))  # λ > 0 alone would accept it ...
    ns["my_enhance_step"] = _enhance_without_l1_branch
    with pytest.raises(AnswerIncorrect, match=r"Exercise 06\.1: D\.\S+ differs after step 1"):
        check_exercise("06.1", namespace=ns)  # ... the λ = 0 grading does not


def test_not_implemented_passes_through(one_thread):
    def stub(*args):
        raise NotImplementedError("Exercise 02.6: write your answer")

    with pytest.raises(NotImplementedError):
        grade_step(stub, toy_gan_step, _toy_trainer)


# ------------------------------------------------------------------------------------------ notebook 02's step

def _notebook_02_step_definitions() -> str:
    """The classes, autocast() and train_step(real) of notebook 02's 'correct training step' cell."""
    cells = _code_cells(ROOT / "notebooks" / "02_minimax_loss.ipynb")
    src = next(s for s in cells if "def train_step(real)" in s)
    tree = ast.parse(src)
    wanted = [n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))]
    assert {n.name for n in wanted} >= {"train_step", "autocast"}
    return "\n\n".join(ast.get_source_segment(src, n) for n in wanted)


def test_toy_step_is_bit_identical_to_notebook_02s_step(one_thread):
    from torch import nn

    from medgan_utils import autocast as precision_autocast
    from medgan_utils import resolve_precision

    ns = {"torch": torch, "nn": nn, "LATENT": 16, "d_loss_bce": d_loss_bce, "resolve_precision": resolve_precision,
          "precision_autocast": precision_autocast, "g_loss_nonsaturating": g_loss_nonsaturating,
          "cfg": SimpleNamespace(device=torch.device("cpu")), "PRECISION": "fp32"}
    exec(_notebook_02_step_definitions(), ns)
    make_g = ns["ToyConvG"] if "ToyConvG" in ns else None
    make_d = ns["ToyConvD"] if "ToyConvD" in ns else None
    assert make_g and make_d, "notebook 02's step cell no longer defines ToyConvG / ToyConvD"
    data = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    runs = []
    for use_notebook in (True, False):
        torch.manual_seed(0)
        G, D = make_g(latent=16, width=8), make_d(width=8)
        opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        ns.update(G=G, D=D, opt_g=opt_g, opt_d=opt_d)
        losses = []
        for step in range(3):
            real = data[step * 8:(step + 1) * 8]
            torch.manual_seed(100 + step)  # the notebook's step draws z itself, from the global generator
            if use_notebook:
                losses.append(ns["train_step"](real))
            else:
                losses.append(toy_gan_step(G, D, opt_g, opt_d, real, torch.randn(8, 16)))
        runs.append((G, D, losses))
    (g1, d1, l1), (g2, d2, l2) = runs
    for net, a, b in (("G", g1, g2), ("D", d1, d2)):
        for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), f"{net}.{k} differs between notebook 02's train_step and toy_gan_step"
    assert all(torch.equal(x, y) for pair_a, pair_b in zip(l1, l2) for x, y in zip(pair_a, pair_b))

"""report.md's Evidence section: the pre-declared contrast with its CI and method, the operating point, every
choice with the split it was made on, split hygiene and how often the test split was opened, per run, from
results.json fields that are untrusted (notebooks 04-08 write them; anyone may have edited them)."""
import csv
import json
from pathlib import Path

import pytest

from medgan_utils.tools import cli
from medgan_utils.tools.report import write_report

EVIDENCE = {
    "primary": {"contrast": "AUC(gan) - AUC(real) at 10 %", "estimate": 0.0312, "ci": [-0.004, 0.0664],
                "method": "paired bootstrap over seeds"},
    "operating_point": {"threshold_from": "validation", "rule": "Youden's J", "threshold": 0.4321,
                        "sensitivity": {"estimate": 0.81, "ci": [0.7, 0.9], "name": "malignant sensitivity"},
                        "specificity": {"estimate": 0.66, "ci": [0.55, 0.75], "name": "specificity"}},
    "selection": [{"name": "epoch", "chosen": 12, "chosen_on": "validation", "rule": "best AUC",
                   "candidates": [4, 8, 12, 16]},
                  {"name": "classifier", "chosen": "cnn", "chosen_on": "validation", "rule": "best AUC",
                   "candidates": ["cnn", "resnet18"]}],
    "split": {"grouped": True, "near_copies": {"val_train": 3, "test_train": 0}, "label_conflicts": 1},
    "test_opened": 1,
}


def _run(folder: Path, metrics: dict, notebook="04_augmentation") -> None:
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({"notebook": notebook, "mode": "fast", "seed": 0,
                                                     "params": {}, "metrics": {"auc": 0.8, **metrics}}))


def _evidence(md: str) -> str:
    assert "\n## Evidence\n" in md
    return md.split("\n## Evidence\n", 1)[1]


def test_evidence_section_shows_every_field(tmp_path):
    _run(tmp_path / "run_a", EVIDENCE)
    write_report(tmp_path)
    ev = _evidence((tmp_path / "report.md").read_text())
    assert "### run_a (04_augmentation)" in ev
    assert ("- **Primary contrast**: AUC(gan) - AUC(real) at 10 %: 0.0312 (CI -0.004 to 0.0664; paired "
            "bootstrap over seeds)") in ev
    assert ("- **Operating point**: threshold 0.4321 from the validation split (Youden's J); malignant "
            "sensitivity 0.81 (CI 0.7 to 0.9); specificity 0.66 (CI 0.55 to 0.75)") in ev
    assert ("epoch = 12 (chosen on validation by best AUC; candidates: 4, 8, 12, 16); classifier = cnn (chosen on "
            "validation by best AUC; candidates: cnn, resnet18)") in ev
    assert "- **Split hygiene**: grouped (related images kept in one split); near copies val–train 3, " \
           "test–train 0; label conflicts 1" in ev
    assert "- **Test split opened**: 1 time(s)" in ev
    assert "(!)" not in ev.split("\n", 2)[2]  # nothing to flag (the intro explains the mark)
    with open(tmp_path / "report.csv") as fh:
        row = next(csv.DictReader(fh))
    assert float(row["metric.primary.estimate"]) == 0.0312 and row["metric.operating_point.threshold_from"] == \
        "validation" and row["metric.split.near_copies.val_train"] == "3"


def evidence_lines(ev):
    from medgan_utils.tools.evidence import evidence_lines as lines

    return lines(ev)


def test_choices_not_made_on_validation_are_flagged():
    bad = {**EVIDENCE, "operating_point": {**EVIDENCE["operating_point"], "threshold_from": "test"},
           "selection": [{**EVIDENCE["selection"][0], "chosen_on": "test"}],
           "split": {"grouped": False}, "test_opened": 3}
    lines = {line.split("**")[1]: line for line in evidence_lines(bad)}
    assert "(!)** not chosen on validation" in lines["Operating point"]
    assert "chosen on test **(!)**" in lines["Selections"]
    assert "not grouped **(!)**" in lines["Split hygiene"]
    assert "3 time(s) **(!)** a sealed test split is opened once" in lines["Test split opened"]


@pytest.mark.parametrize("key, value", [
    ("primary", "AUC went up"), ("primary", {"contrast": "x", "estimate": "big", "ci": [0, 1], "method": "m"}),
    ("primary", {"contrast": "x", "estimate": 1.0, "ci": [0], "method": "m"}),
    ("primary", {"contrast": "x", "estimate": 10 ** 400, "ci": [0, 1], "method": "m"}),
    ("operating_point", {"threshold_from": "validation", "rule": "r", "threshold": None}),
    ("operating_point", {**EVIDENCE["operating_point"], "sensitivity": [0.8]}),
    ("selection", {"name": "epoch"}), ("selection", []), ("selection", ["epoch"]),
    ("split", {"grouped": "yes"}), ("split", {"grouped": True, "near_copies": [1, 2]}),
    ("split", {"grouped": True, "label_conflicts": -1}), ("test_opened", "once"), ("test_opened", 1.5),
])
def test_a_malformed_field_is_shown_as_malformed_and_the_rest_still_shows(tmp_path, capsys, key, value):
    _run(tmp_path / "r", {**EVIDENCE, key: value})
    assert cli.main(["report", str(tmp_path)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    ev = _evidence((tmp_path / "report.md").read_text())
    lines = [line for line in ev.splitlines() if line.startswith("- **")]
    assert len(lines) == 5
    bad = [line for line in lines if "malformed in results.json" in line]
    label = {"primary": "Primary", "operating_point": "Operating", "selection": "Selections", "split": "Split",
             "test_opened": "Test"}[key]
    assert len(bad) == 1 and bad[0].startswith(f"- **{label}")


def test_runs_without_evidence_get_no_section_and_partial_evidence_shows_what_is_there(tmp_path):
    _run(tmp_path / "plain", {}, notebook="03_dcgan")
    write_report(tmp_path)
    assert "## Evidence" not in (tmp_path / "report.md").read_text()
    _run(tmp_path / "some", {"test_opened": 0, "split": {"grouped": True}})
    write_report(tmp_path)
    ev = _evidence((tmp_path / "report.md").read_text())
    assert "plain" not in ev and "### some" in ev
    assert [line.split("**")[1] for line in ev.splitlines() if line.startswith("- **")] == ["Split hygiene",
                                                                                          "Test split opened"]


def test_evidence_text_is_escaped(tmp_path):
    evil = "<img src=x onerror=alert(1)> | [click](http://evil.example)"
    _run(tmp_path / "r", {"primary": {**EVIDENCE["primary"], "contrast": evil, "method": evil},
                          "selection": [{**EVIDENCE["selection"][0], "name": evil, "candidates": [evil]}]})
    write_report(tmp_path)
    ev = _evidence((tmp_path / "report.md").read_text())
    assert "<img" not in ev and "&lt;img" in ev and "[click](" not in ev and " | " not in ev.replace("\\|", "")


def test_per_dataset_split_and_per_arm_operating_points():
    ev = {"split": {"breastmnist": {"grouped": True, "near_copies": {"val_train": 0, "test_train": 0}},
                    "busi": {"near_copies": {"val_train": 2, "test_train": 1}}},
          "operating_point": {"threshold_from": "validation", "rule": "sensitivity >= 0.9 on validation",
                              "by_arm": [{"arm": "real", "threshold": 0.31, "sensitivity": {"estimate": 0.9},
                                          "specificity": 0.5}, {"arm": "gan", "threshold": 0.27}]}}
    lines = {line.split("**")[1]: line for line in evidence_lines(ev)}
    assert ("breastmnist: grouped (related images kept in one split); near copies val–train 0, test–train 0 / "
            "busi: near copies val–train 2, test–train 1") in lines["Split hygiene"]
    assert ("thresholds from the validation split (sensitivity &gt;= 0.9 on validation); per real: threshold 0.31, "
            "sensitivity 0.9, specificity 0.5 / gan: threshold 0.27") in lines["Operating point"]

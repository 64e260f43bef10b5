import pytest

from medgan_utils.course.exercises import student_exercise


def test_stub_raises_with_a_front_end(monkeypatch):
    monkeypatch.delenv("MEDGAN_HEADLESS", raising=False)
    monkeypatch.setenv("MEDGAN_WIDGETS", "1")
    with pytest.raises(NotImplementedError, match="Student exercise: plot the loss"):
        student_exercise("plot the loss")


def test_stub_only_notes_in_headless_runs(monkeypatch, capsys):
    monkeypatch.setenv("MEDGAN_HEADLESS", "1")
    student_exercise("Student exercise: plot the loss")
    assert "skipped in a headless run" in capsys.readouterr().out

"""No oversubscription (issue 25): a course kernel takes only the cores that live kernels leave free."""
import json
import os
import subprocess
import sys
import time

import pytest

from medgan_utils.core import cores
from medgan_utils.course.envinfo import format_report


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDGAN_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_a_new_kernel_gets_the_cores_the_others_leave():
    assert cores.threads_for_new_kernel(2, []) == 2
    assert cores.threads_for_new_kernel(2, [{"pid": 1, "threads": 2}]) == 1          # never 0
    assert cores.threads_for_new_kernel(8, [{"pid": 1, "threads": 2}, {"pid": 2, "threads": 3}]) == 3


def test_a_live_kernel_in_another_process_is_seen_and_forgotten_when_it_dies(cache):
    code = ("import time; from medgan_utils.core.cores import register_kernel; register_kernel(2); "
            "print('ready', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "MEDGAN_CACHE_DIR": str(cache)})
    try:
        assert child.stdout.readline().strip() == "ready"
        live = cores.live_kernels()
        assert [k["pid"] for k in live] == [child.pid] and live[0]["threads"] == 2
        assert cores.threads_for_new_kernel(2) == 1
        report = format_report({**_report(), "usable_cores": 2, "course_kernels": live})
        assert "WARNING" in report and str(child.pid) in report
    finally:
        child.kill()
        child.wait()
    assert cores.live_kernels() == [] and cores.threads_for_new_kernel(2) == 2   # killed: the record is dropped
    assert not list((cache / "kernels").glob("*.json"))


def test_a_reused_pid_is_not_a_live_kernel(cache):
    folder = cache / "kernels"
    folder.mkdir()
    (folder / "1.json").write_text(json.dumps({"pid": os.getppid(), "threads": 2, "start": "not-its-start-time"}))
    (folder / "junk.json").write_text("{not json")
    assert cores.live_kernels() == []
    assert not (folder / "1.json").exists()


def test_an_explicit_medgan_threads_wins(cache, monkeypatch):
    import torch

    from medgan_utils.core.device import configure_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(cores, "live_kernels", lambda exclude_self=True: [{"pid": 1, "threads": 5}])
        monkeypatch.setenv("MEDGAN_THREADS", "2")
        assert configure_threads() == 2
        monkeypatch.delenv("MEDGAN_THREADS")
        assert configure_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_setup_registers_only_inside_a_kernel(cache):
    from medgan_utils.course.settings import setup

    setup(quiet=True)                      # a plain Python process (a test, a script): no record
    assert not (cache / "kernels").exists() or not list((cache / "kernels").glob("*.json"))


def _report():
    return {"python": "3", "platform": "x", "versions": {}, "device": "cpu", "device_name": "cpu",
            "device_error": None, "gpu": None, "precision_auto": "fp32", "torch_threads": 1, "cpu_count": 2,
            "fast_mode": True, "require_real_data": False, "offline": False, "data_dir": "d",
            "data_dir_writable": True, "datasets": []}

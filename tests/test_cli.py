import json
import subprocess
import sys

import pytest

from medgan_utils.tools.cli import main
from tests.helpers import real_data_dir, require_real


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "medgan_utils.tools.cli", *args], capture_output=True, text=True, env=env)


def test_data_info_pneumoniamnist_json(capsys):
    require_real("pneumoniamnist", 28)
    assert main(["data", "info", "pneumoniamnist", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["splits"] == {"train": 4708, "val": 524, "test": 624}
    assert info["source"] == "real" and info["checksum_verified"] is True and info["channels"] == 1


def test_data_info_busi_json(capsys):
    require_real("busi", 128)
    assert main(["data", "info", "busi", "--size", "128", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["splits"] == {"train": 452, "val": 64, "test": 131} and info["source"] == "real"


def test_bad_input_exit_codes(capsys):
    assert main(["data", "info", "nosuchset"]) == 2
    assert "Fix: use one of" in capsys.readouterr().err
    assert main(["data", "info", "breastmnist", "--size", "100"]) == 2
    assert "Fix: use one of 28, 64, 128, 224" in capsys.readouterr().err


def test_fetch_offline_reports_the_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MEDGAN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MEDGAN_OFFLINE", "1")
    assert main(["data", "fetch", "octmnist", "--size", "64"]) == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and "octmnist_64.npz" in err and "medgan data fetch octmnist --size 64" in err


def test_fetch_present_file_is_verified_without_network(monkeypatch, capsys):
    require_real("breastmnist", 28)
    monkeypatch.setenv("MEDGAN_OFFLINE", "1")
    assert main(["data", "fetch", "breastmnist"]) == 0
    assert "already present, verified" in capsys.readouterr().out


def test_env_and_list_commands(capsys):
    assert main(["env", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert {"device", "versions", "torch_threads", "datasets", "data_dir"} <= set(rep)
    assert str(real_data_dir()) == rep["data_dir"]
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "pneumoniamnist" in out and "busi" in out and "128, 256" in out


def test_console_script_entry_point():
    res = run_cli("--help")
    assert res.returncode == 0 and "bench" in res.stdout and "run" in res.stdout
    with pytest.raises(SystemExit):
        main(["run", "--no-such-flag"])

import collections

import pytest
import torch

from medgan_utils.core.io import CheckpointError, atomic_path, atomic_write_json, atomic_write_text, load_checkpoint, save_checkpoint


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "old")
    atomic_write_text(p, "new")
    assert p.read_text() == "new"
    assert [f.name for f in tmp_path.iterdir()] == ["a.txt"]


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "a.json"
    atomic_write_json(p, {"v": 1})
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(p) as tmp:
            tmp.write_text('{"v": 2, "trunc')
            raise KeyboardInterrupt  # e.g. Ctrl-C mid-write
    assert p.read_text().strip().startswith('{\n  "v": 1')
    assert sorted(f.name for f in tmp_path.iterdir()) == ["a.json"]


def test_checkpoint_round_trip_weights_only(tmp_path):
    net = torch.nn.Linear(3, 2)
    state = {"model": net.state_dict(), "epoch": 4, "history": {"loss": [0.5, 0.25]}, "rng": torch.get_rng_state()}
    path = save_checkpoint(tmp_path / "ck.pt", state)
    back = load_checkpoint(path)
    assert back["epoch"] == 4 and back["history"]["loss"] == [0.5, 0.25]
    assert torch.equal(back["model"]["weight"], net.weight.detach())


Unsafe = collections.namedtuple("Unsafe", "x")  # a pickled class: not allowed with weights_only=True


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path):
    p = tmp_path / "bad.pt"
    torch.save({"obj": Unsafe(1)}, p)
    with pytest.raises(RuntimeError, match="could not be loaded safely"):
        load_checkpoint(p)


def test_truncated_and_missing_checkpoints(tmp_path):
    p = save_checkpoint(tmp_path / "ck.pt", {"w": torch.ones(1000)})
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="truncated.*Fix"):
        load_checkpoint(p)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")

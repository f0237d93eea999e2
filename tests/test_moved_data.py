"""Data files that moved after training: ``--data`` and ``--test-data`` on export, check, explain and prune
stand for the files the model was trained with, at their new paths (their bytes checked against the
recorded SHA-256); a user model's ``--test-data`` is its held-out file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tinylstm.api import check, explain, export, prune
from tinylstm.errors import TinyLSTMError
from tinylstm.host.cli.main import main
from tinylstm.trainer.checkpoint import load_checkpoint


def _sets(where: Path) -> None:
    rng = np.random.default_rng(0)
    where.mkdir(parents=True)
    for name, n in (("d", 40), ("t", 10)):
        y = np.arange(n) % 2
        x = rng.standard_normal((n, 12, 2)).astype(np.float32) + 2 * y[:, None, None]
        np.savez(where / f"{name}.npz", X=x, y=y)


@pytest.fixture(scope="module")
def moved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on data/d.npz with the held-out file data/t.npz, both since moved to elsewhere/."""
    root = tmp_path_factory.mktemp("moved")
    _sets(root / "data")
    argv = ["train", "--data", str(root / "data" / "d.npz"), "--test-data", str(root / "data" / "t.npz")]
    assert main([*argv, "--hidden", "4", "--epochs", "20", "--quiet", "--out", str(root / "run")]) == 0
    (root / "data").rename(root / "elsewhere")
    return root


def test_each_command_takes_the_moved_held_out_file(moved: Path, tmp_path: Path) -> None:
    ckpt, new = moved / "run" / "model.pt", moved / "elsewhere"
    _, meta = load_checkpoint(ckpt)
    assert meta.metrics["test_accuracy"] >= 0.8  # a score other held-out data would not reproduce
    with pytest.raises(TinyLSTMError, match="trained with \\(--test-data\\) is gone: pass its new path"):
        export(ckpt, tmp_path / "e0", data=new / "d.npz")
    export(ckpt, tmp_path / "e", data=new / "d.npz", test_data=new / "t.npz")
    report = check(tmp_path / "e", json_out="-")  # the export recorded the new paths
    assert report["data"]["test_sequences"] == 10
    assert report["quality"]["float"] == pytest.approx(100 * meta.metrics["test_accuracy"])

    (moved / "elsewhere").rename(moved / "again")
    again = moved / "again"
    with pytest.raises(
        TinyLSTMError, match="held-out file .*t.npz this export was made from is gone: pass --test-data"
    ):
        check(tmp_path / "e", data=again / "d.npz", json_out="-")
    moved_again = check(tmp_path / "e", data=again / "d.npz", test_data=again / "t.npz", json_out="-")
    assert moved_again["quality"] == report["quality"]
    explain(tmp_path / "e", data=again / "d.npz", test_data=again / "t.npz", out=tmp_path / "x")
    assert (tmp_path / "x" / "explain.json").is_file()

    pruned = prune(ckpt, tmp_path / "p", hidden=2, epochs=1, data=again / "d.npz", test_data=again / "t.npz")
    assert pruned["test"]["sequences"] == 10
    _, pruned_meta = load_checkpoint(tmp_path / "p" / "model.pt")  # records where the files are now
    assert pruned_meta.dataset.test_spec == str((again / "t.npz").resolve())
    assert set(pruned_meta.dataset.sha256 or {}) == {str((again / f).resolve()) for f in ("d.npz", "t.npz")}
    export(tmp_path / "p" / "model.pt", tmp_path / "pe")  # no options: the pruned model knows the new paths
    (moved / "again").rename(moved / "elsewhere")


def test_a_test_data_that_is_not_the_recorded_file_is_refused(moved: Path, tmp_path: Path) -> None:
    ckpt, new = moved / "run" / "model.pt", moved / "elsewhere"
    with pytest.raises(TinyLSTMError, match="d.npz is not the held-out file the model was trained with"):
        export(ckpt, tmp_path / "e", data=new / "d.npz", test_data=new / "d.npz")
    with pytest.raises(TinyLSTMError, match="--test-data .*nothing.npz: no such file"):
        export(ckpt, tmp_path / "e", data=new / "d.npz", test_data=new / "nothing.npz")
    assert not (tmp_path / "e").exists()


def test_a_model_trained_without_a_held_out_file_refuses_one(tmp_path: Path) -> None:
    _sets(tmp_path / "data")
    argv = ["train", "--data", str(tmp_path / "data" / "d.npz"), "--hidden", "4", "--epochs", "1", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    with pytest.raises(TinyLSTMError, match="trained without one .*: leave --test-data out"):
        export(tmp_path / "run" / "model.pt", tmp_path / "e", test_data=tmp_path / "data" / "t.npz")


def test_a_user_models_held_out_file(tmp_path: Path) -> None:
    """All of --data calibrates and --test-data is scored, where a 70/30 split of --data was the only way."""
    _sets(tmp_path / "data")
    rnn, head = nn.LSTM(2, 6, batch_first=True), nn.Linear(6, 2)
    sd = {
        **{f"rnn.{k}": v for k, v in rnn.state_dict().items()},
        "fc.weight": head.weight,
        "fc.bias": head.bias,
    }
    torch.save(sd, tmp_path / "sd.pt")
    (tmp_path / "desc.json").write_text(json.dumps({"classes": ["0", "1"], "window": 12}))
    data, held_out = tmp_path / "data" / "d.npz", tmp_path / "data" / "t.npz"
    exp = export(
        tmp_path / "sd.pt", tmp_path / "e", description=tmp_path / "desc.json", data=data, test_data=held_out
    )
    assert exp.report["calibration"]["sequences"] == 40  # the whole of --data (a 70/30 split: 28)
    report = check(tmp_path / "e", json_out="-")
    assert report["data"]["test_sequences"] == 10
    split = export(tmp_path / "sd.pt", tmp_path / "s", description=tmp_path / "desc.json", data=data)
    assert split.report["calibration"]["sequences"] == 28
    assert check(tmp_path / "s", json_out="-")["data"]["test_sequences"] == 12


def test_the_board_commands_take_the_moved_files(tmp_path: Path) -> None:
    """parity, stream --feed and build's replay data read an export's held-out data: when its files moved
    they said "pass --data NEW_PATH", an option none of them had."""
    from tinylstm.api import build, parity, stream

    _sets(tmp_path / "data")
    argv = [
        "train",
        "--data",
        str(tmp_path / "data" / "d.npz"),
        "--test-data",
        str(tmp_path / "data" / "t.npz"),
    ]
    assert main([*argv, "--hidden", "4", "--epochs", "1", "--quiet", "--out", str(tmp_path / "run")]) == 0
    exp = export(tmp_path / "run" / "model.pt", tmp_path / "e").dir
    (tmp_path / "data").rename(tmp_path / "new")
    moved = {"data": tmp_path / "new" / "d.npz", "test_data": tmp_path / "new" / "t.npz"}
    gone = "this export was made from is gone: pass --data"
    with pytest.raises(TinyLSTMError, match=gone):
        build(exp, "arduino-lib", replay_steps=24, out=tmp_path / "fw0")
    fw = build(exp, "arduino-lib", replay_steps=24, out=tmp_path / "fw", **moved)
    assert "24 held-out samples" in (fw.project / "src" / "tl_replay.c").read_text()
    with pytest.raises(TinyLSTMError, match="this one embeds none"):
        build(exp, "arduino-lib", out=tmp_path / "fw1", **moved)
    with pytest.raises(TinyLSTMError, match=gone):
        stream("loop://", export=exp, feed="held-out")
    stream("loop://", export=exp, feed="held-out", **moved)  # the samples are loaded before the board opens
    with pytest.raises(TinyLSTMError, match="add --feed held-out"):
        stream("loop://", export=exp, **moved)
    with pytest.raises(TinyLSTMError, match=gone):
        parity(exp, "loop://", steps=5)
    with pytest.raises(TinyLSTMError, match="no HELLO frame"):  # past the data: no board answers on loop://
        parity(exp, "loop://", steps=5, **moved)

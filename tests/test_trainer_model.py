"""TinyRNN shapes, size validation, padding invariance, and checkpoint robustness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tinylstm.contract.cells import NAMES
from tinylstm.errors import TinyLSTMError
from tinylstm.trainer.checkpoint import CheckpointMeta, DatasetRef, load_checkpoint, save_checkpoint
from tinylstm.trainer.models import TinyGRU, TinyLSTM, TinyRNN


@pytest.mark.parametrize("factory", [TinyLSTM, TinyGRU])
def test_padding_does_not_change_last_valid_output(factory: type) -> None:
    torch.manual_seed(0)
    model = factory(3, 8, 2, 4).eval()
    short = torch.randn(1, 5, 3)
    long = torch.randn(1, 9, 3)
    batch = torch.zeros(2, 9, 3)
    batch[0, :5] = short[0]
    batch[0, 5:] = 100.0  # garbage in the padding must not matter
    batch[1] = long[0]
    with torch.no_grad():
        out = model(batch, torch.tensor([5, 9]))
        alone = model(short)
        alone_long = model(long)
    assert out.shape == (2, 9, 4)
    torch.testing.assert_close(out[0, :5], alone[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out[1], alone_long[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", NAMES)
@pytest.mark.parametrize(
    ("readout", "stack", "bidirectional"),
    [("last", 1, False), ("mean", 1, False), ("max", 2, False), ("mean", 1, True), ("last", 2, True)],
)
def test_a_padded_batch_trains_as_its_sequences_alone(
    cell: str, readout: str, stack: int, bidirectional: bool
) -> None:
    """The stack runs over the padded batch as one tensor (no packing): each sequence's valid outputs, and
    the gradient of a loss on its last valid output, are those of the sequence run alone."""
    torch.manual_seed(1)
    model = TinyRNN(cell, 2, 6, 2, 3, readout=readout, stack=stack, bidirectional=bidirectional)
    lengths = [7, 12, 3]
    seqs = [torch.randn(n, 2) for n in lengths]
    batch = torch.full((3, 12, 2), 50.0)  # garbage in the padding must not matter
    for i, seq in enumerate(seqs):
        batch[i, : len(seq)] = seq
    out = model(batch, torch.tensor(lengths))
    model.zero_grad()
    out[torch.arange(3), torch.tensor(lengths) - 1].square().sum().backward()
    padded = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    for i, seq in enumerate(seqs):
        alone = model(seq[None])
        torch.testing.assert_close(out[i, : len(seq)], alone[0], rtol=1e-5, atol=1e-6)
        alone[0, -1].square().sum().backward()
    for got, want in zip(padded, [p.grad for p in model.parameters()], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_model_attributes_and_validation() -> None:
    model = TinyRNN("lstm", 6, 16, 1, 7)
    assert isinstance(model.rnn, torch.nn.LSTM) and model.rnn.batch_first and not model.rnn.bidirectional
    assert isinstance(model.head, torch.nn.Linear) and model.head.in_features == 16
    for args in [
        ("transformer", 6, 16, 1, 7),
        ("lstm", 6, 257, 1, 7),
        ("lstm", 6, 0, 1, 7),
        ("gru", 6, 16, 4, 7),
        ("gru", 0, 16, 1, 7),
    ]:
        with pytest.raises(TinyLSTMError):
            TinyRNN(*args)  # type: ignore[arg-type]
    with pytest.raises(TinyLSTMError, match="model input"):
        model(torch.zeros(2, 5, 3))


def make_meta(input_size: int = 3, hidden: int = 8, output: int = 2) -> CheckpointMeta:
    return CheckpointMeta(
        cell="gru",
        input_size=input_size,
        hidden_size=hidden,
        num_layers=1,
        output_size=output,
        task="classification",
        mode="window",
        window=None,
        classes=["a", "b"],
        channels=[f"c{i}" for i in range(input_size)],
        norm={"mean": [0.0] * input_size, "std": [1.0] * input_size},
        target_norm=None,
        dataset=DatasetRef(spec="watch", options={}, seed=0, val=0.15, test=0.15),
        metrics={"test_accuracy": 0.5},
    )


def test_checkpoint_roundtrip_is_weights_only(tmp_path: Path) -> None:
    model = TinyRNN("gru", 3, 8, 1, 2)
    given = make_meta()
    path = save_checkpoint(tmp_path / "model.pt", model, given)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "tinylstm-checkpoint" and raw["version"] == 1
    loaded, meta = load_checkpoint(tmp_path)  # a run directory works too
    # saving pins the data files by SHA-256 in the given metadata too (the builtin watch data: none)
    assert given.dataset.sha256 == {} and make_meta().dataset.sha256 is None
    assert meta == given and not loaded.training
    x = torch.randn(2, 4, 3)
    torch.testing.assert_close(loaded(x), model(x))


def test_bad_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(TinyLSTMError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(TinyLSTMError, match="corrupt, truncated"):
        load_checkpoint(junk)
    good = save_checkpoint(tmp_path / "good.pt", TinyRNN("gru", 3, 8, 1, 2), make_meta())
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(TinyLSTMError, match="corrupt, truncated"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(TinyLSTMError, match="not a TinyLSTM checkpoint"):
        load_checkpoint(foreign)
    blob = torch.load(good, weights_only=True)
    for change, message in [
        ({"version": 99}, "version 99"),
        ({"hidden_size": 16}, "do not match"),
        ({"channels": None}, "malformed|channel"),
    ]:
        torch.save({**blob, **change}, foreign)
        with pytest.raises(TinyLSTMError, match=message):
            load_checkpoint(foreign)
    torch.save({k: v for k, v in blob.items() if k != "norm"}, foreign)
    with pytest.raises(TinyLSTMError, match="lacks keys"):
        load_checkpoint(foreign)


def test_the_data_record_of_a_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dataset record's SHA-256 pins: a malformed record is refused; an unreadable data file is one line,
    not a PermissionError; a channel name that kept a CSV's byte order mark (the reader before it dropped
    the mark) still matches the file it came from."""
    import tinylstm.trainer.checkpoint as ckpt
    from tinylstm.trainer.sequence_set import SequenceSet

    blob = {**make_meta().to_dict(), "state_dict": {}}
    blob["dataset"] = {**blob["dataset"], "sha256": "x"}
    with pytest.raises(TinyLSTMError, match="the data's SHA-256 record is malformed"):
        CheckpointMeta.from_dict(blob, "m.pt")
    data = tmp_path / "d.csv"
    data.write_text("a,b\n")
    ref = DatasetRef(spec=str(data), options={}, seed=0, val=0.0, test=0.15, sha256={str(data): "0" * 64})

    def unreadable(path: Path) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(ckpt, "sha256_file", unreadable)
    with pytest.raises(TinyLSTMError, match="cannot read .*d.csv: Permission denied"):
        ref.verify(str(data))
    meta = make_meta()
    meta.channels = ["\ufeffc0", "c1", "c2"]
    x = [np.zeros((4, 3), np.float32)] * 2
    ds = SequenceSet(x, np.array([0, 1]), "classification", "window", ["a", "b"], ["c0", "c1", "c2"], "d")
    assert ckpt.mismatches(ds, meta) == []
    ds.channels = ["c0", "c1", "c9"]
    assert ckpt.mismatches(ds, meta) == ["channels ['c0', 'c1', 'c9'] (the model's: ['c0', 'c1', 'c2'])"]

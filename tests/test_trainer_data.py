"""Dataset loaders (.ts, .csv, .npz, watch), split and normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinylstm.errors import TinyLSTMError
from tinylstm.trainer.data import Normalizer, load_dataset, split

TS_HEADER = (
    "# comment line\n@problemName Toy\n@timeStamps false\n@missing {missing}\n@univariate false\n"
    "@dimensions 2\n@equalLength false\n{label}\n@data\n"
)


def write_ts(
    tmp_path: Path, rows: list[str], label: str = "@classLabel true a b", missing: str = "false"
) -> Path:
    path = tmp_path / "toy.ts"
    path.write_text(TS_HEADER.format(label=label, missing=missing) + "\n".join(rows) + "\n")
    return path


def test_ts_variable_length_classification(tmp_path: Path) -> None:
    path = write_ts(tmp_path, ["1,2,3:4,5,6:a", "1,2:3,4:b", "7,8,9,10:1,2,3,4:a"])
    ds = load_dataset(str(path))
    assert ds.task == "classification" and ds.mode == "window"
    assert ds.classes == ["a", "b"] and ds.name == "Toy"
    assert [s.shape for s in ds.sequences] == [(3, 2), (2, 2), (4, 2)]
    np.testing.assert_array_equal(ds.labels, [0, 1, 0])
    np.testing.assert_allclose(ds.sequences[0][:, 1], [4, 5, 6])
    assert ds.sequences[0].dtype == np.float32


def test_ts_regression(tmp_path: Path) -> None:
    path = write_ts(
        tmp_path, ["1,2:3,4:0.5", "1,2,3:3,4,5:-1.25"], label="@classLabel false\n@targetLabel true"
    )
    ds = load_dataset(str(path))
    assert ds.task == "regression" and ds.classes is None
    np.testing.assert_allclose(ds.labels, [[0.5], [-1.25]])


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["1,2,3:4,5:a"], "different lengths"),
        (["1,x:3,4:a"], "not a number"),
        (["1,2:3,4:c"], "not among the declared classes"),
        (["1,2:3,4:a", "1,2:a"], "dimensions"),
        (["1,?:3,4:a"], "missing value"),
        (["1,inf:3,4:a"], "infinite"),
    ],
)
def test_ts_errors(tmp_path: Path, rows: list[str], message: str) -> None:
    with pytest.raises(TinyLSTMError, match=message):
        load_dataset(str(write_ts(tmp_path, rows)))


def test_ts_missing_interpolated(tmp_path: Path) -> None:
    path = write_ts(tmp_path, ["1,?,3,?:4,5,6,7:a", "1,2:3,4:b"], missing="true")
    ds = load_dataset(str(path), missing="interpolate")
    np.testing.assert_allclose(ds.sequences[0][:, 0], [1, 2, 3, 3])


def test_ts_not_a_ts_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.ts"
    path.write_text("hello world\n")
    with pytest.raises(TinyLSTMError, match="header"):
        load_dataset(str(path))


def write_csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return path


def test_csv_groups_window_mode(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "rec,ax,ay,label\nA,1,2,walk\nA,2,3,walk\nB,5,6,run\nC,0,0,walk\nB,6,7,run\n")
    ds = load_dataset(str(path), group="rec")
    assert ds.mode == "window" and ds.task == "classification"
    assert ds.classes == ["run", "walk"] and ds.channels == ["ax", "ay"]
    np.testing.assert_array_equal(ds.labels, [1, 0, 1])
    np.testing.assert_allclose(ds.sequences[1], [[5, 6], [6, 7]])  # group B in file order


def test_csv_stream_mode_cut_into_windows(tmp_path: Path) -> None:
    rows = "\n".join(f"{i},{i * 2},{i % 3}" for i in range(10))
    ds = load_dataset(str(write_csv(tmp_path, "a,b,state\n" + rows + "\n")), window=4)
    assert ds.mode == "stream" and ds.classes == ["0", "1", "2"] and ds.window == 4
    assert [len(s) for s in ds.sequences] == [4, 4]
    np.testing.assert_array_equal(ds.labels[1], [1, 2, 0, 1])


def test_csv_forecast_regression(tmp_path: Path) -> None:
    rows = "\n".join(f"{i * 0.5},{i * 1.5}" for i in range(8))
    ds = load_dataset(str(write_csv(tmp_path, "u,temp\n" + rows + "\n")), target="temp", forecast=2, window=3)
    assert ds.task == "regression" and ds.mode == "stream" and ds.channels == ["u", "temp"]
    np.testing.assert_allclose(ds.sequences[0][:, 1], [0, 1.5, 3.0])
    np.testing.assert_allclose(ds.labels[0][:, 0], [3.0, 4.5, 6.0])


def test_csv_nan_names_row_and_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "ax,ay,label\n1,2,0\n3,nan,1\n")
    with pytest.raises(TinyLSTMError, match=r"row 3 column 'ay'.*NaN"):
        load_dataset(str(path))


def test_csv_single_class_rejected(tmp_path: Path) -> None:
    with pytest.raises(TinyLSTMError, match="at least 2"):
        load_dataset(str(write_csv(tmp_path, "ax,label\n1,x\n2,x\n")), window=2)


def test_csv_unknown_column(tmp_path: Path) -> None:
    with pytest.raises(TinyLSTMError, match="no target column 'nope'"):
        load_dataset(str(write_csv(tmp_path, "ax,label\n1,0\n2,1\n")), target="nope")


def test_npz_variable_length_and_per_step(tmp_path: Path) -> None:
    x = np.arange(2 * 4 * 3, dtype=np.float64).reshape(2, 4, 3)
    np.savez(
        tmp_path / "a.npz", X=x, y=np.array([0, 1]), lengths=np.array([4, 2]), classes=np.array(["u", "v"])
    )
    ds = load_dataset(str(tmp_path / "a.npz"))
    assert ds.mode == "window" and ds.classes == ["u", "v"] and [len(s) for s in ds.sequences] == [4, 2]
    np.savez(tmp_path / "b.npz", X=x, y=np.zeros((2, 4), dtype=np.float32) + 0.5)
    ds = load_dataset(str(tmp_path / "b.npz"))
    assert ds.mode == "stream" and ds.task == "regression" and ds.labels[0].shape == (4, 1)


def test_npz_groups_keep_recordings_in_one_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(20), 5)
    np.savez(tmp_path / "g.npz", X=rng.normal(size=(100, 6, 2)), y=groups % 2, groups=groups)
    ds = load_dataset(str(tmp_path / "g.npz"))
    parts = [set(p.groups.tolist()) for p in split(ds, val=0.2, test=0.2, seed=1)]
    assert (
        all(parts) and not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    )
    np.savez(tmp_path / "bad.npz", X=np.zeros((3, 4, 1)), y=np.array([0, 1, 0]), groups=np.array([1, 2]))
    with pytest.raises(TinyLSTMError, match="groups must hold one recording id per sequence, shape"):
        load_dataset(str(tmp_path / "bad.npz"))


def test_npz_errors(tmp_path: Path) -> None:
    x = np.zeros((2, 4, 3))
    x[1, 2, 0] = np.nan
    np.savez(tmp_path / "nan.npz", X=x, y=np.array([0, 1]))
    with pytest.raises(TinyLSTMError, match=r"sequence 1, step 2, channel 0"):
        load_dataset(str(tmp_path / "nan.npz"))
    np.savez(tmp_path / "shape.npz", X=np.zeros((2, 4)), y=np.array([0, 1]))
    with pytest.raises(TinyLSTMError, match="expected a numeric"):
        load_dataset(str(tmp_path / "shape.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(TinyLSTMError, match="not a readable"):
        load_dataset(str(tmp_path / "junk.npz"))


def test_unknown_spec_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TinyLSTMError, match="unknown dataset"):
        load_dataset("nosuchset")
    with pytest.raises(TinyLSTMError, match="does not exist"):
        load_dataset(str(tmp_path / "absent.csv"))
    with pytest.raises(TinyLSTMError, match="do not apply"):
        load_dataset("watch", target="x")


def test_watch_split_by_recording_is_stratified_and_deterministic() -> None:
    ds = load_dataset("watch")
    assert ds.num_channels == 6 and len(ds.classes or []) == 7 and ds.sequences[0].shape == (128, 6)
    train, val, test = split(ds, seed=3)
    groups = [set(part.groups.tolist()) for part in (train, val, test)]
    assert not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])
    assert len(train) + len(val) + len(test) == len(ds)
    assert set(np.asarray(test.labels).tolist()) == set(range(7))
    again = split(ds, seed=3)[2]
    np.testing.assert_array_equal(again.groups, test.groups)


def test_normalizer_roundtrip_and_floor() -> None:
    norm = Normalizer.fit([np.array([[1.0, 5.0], [3.0, 5.0]], dtype=np.float32)])
    np.testing.assert_allclose(norm.mean, [2, 5])
    assert norm.std[1] == pytest.approx(1e-6)
    back = Normalizer.from_dict(norm.to_dict())
    np.testing.assert_allclose(back.apply(np.array([[3.0, 5.0]])), [[1.0, 0.0]])


def test_channel_warnings_name_the_channel_and_the_fix() -> None:
    from tinylstm.trainer.data import channel_warnings

    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(50, 4)) for _ in range(20)]
    assert channel_warnings(seqs, ["a", "b", "c", "d"]) == []  # ordinary data: nothing to say
    for s in seqs:
        s[:, 1] = 3.0  # constant
        s[:, 3] = 1e38  # beyond float32's safe range
    seqs[7][10, 2] = 1e30  # one outlier sets the scale
    warnings = channel_warnings(seqs, ["a", "b", "c", "d"])
    assert len(warnings) == 3
    assert warnings[0].startswith("channel 'b' is constant (3)") and "--channels" in warnings[0]
    assert warnings[1].startswith("channel 'c': 1 extreme value(s) (up to 1e+30") and "clip" in warnings[1]
    assert warnings[2].startswith("channel 'd' holds values up to 1e+38") and "rescale" in warnings[2]


def test_train_warns_about_a_constant_channel_and_check_repeats_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tinylstm.host.cli.main import main

    rng = np.random.default_rng(1)
    y = np.arange(60) % 2
    x = rng.normal(size=(60, 16, 2)).astype(np.float32) + y[:, None, None]
    x[:, :, 1] = 5.0
    np.savez(tmp_path / "d.npz", X=x, y=y)
    argv = ["train", "--data", str(tmp_path / "d.npz"), "--hidden", "4", "--epochs", "2", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    assert "WARNING: channel 'ch1' is constant (5)" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "run" / "model.pt")]) == 0
    main(["check", str(tmp_path / "run" / "export")])
    assert "WARNING: training data: channel 'ch1' is constant" in capsys.readouterr().out

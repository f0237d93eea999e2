"""Dataset loaders (.ts, .csv, .npz, watch), split and normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tinylstm
from tinylstm.errors import TinyLSTMError
from tinylstm.trainer.data import (
    Normalizer,
    check_training_classes,
    load_dataset,
    load_test_set,
    split,
    split_warnings,
    window_warnings,
)

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


def test_csv_recordings_of_one_label_cut_by_a_given_window(tmp_path: Path) -> None:
    """Given --window (and --hop), each one-label recording is cut into windows that keep its label and
    group, and the model's window is the given one (it trained on whole recordings, the flags ignored)."""
    rows = [f"A,{i},walk" for i in range(10)] + [f"B,{i},run" for i in range(7)]
    path = write_csv(tmp_path, "rec,ax,label\n" + "\n".join(rows) + "\n")
    ds = load_dataset(str(path), group="rec", window=4, hop=2)
    assert ds.mode == "window" and ds.window == 4 and [len(q) for q in ds.sequences] == [4] * 6
    np.testing.assert_array_equal(ds.labels, [1, 1, 1, 1, 0, 0])  # A: starts 0, 2, 4, 6; B: 0, 2
    np.testing.assert_array_equal(ds.groups, [0, 0, 0, 0, 1, 1])
    np.testing.assert_allclose(ds.sequences[5][:, 0], [2, 3, 4, 5])
    assert load_dataset(str(path), group="rec").window is None  # whole recordings without a window
    with pytest.raises(TinyLSTMError, match="--hop 2 without --window: each recording has one label"):
        load_dataset(str(path), group="rec", hop=2)


def test_a_hop_past_the_window_warns_of_the_samples_it_skips(tmp_path: Path) -> None:
    """Sparse windows are allowed (the tests sample the watch data so), but training says what they leave out
    (300 rows trained as 10 without a word)."""
    rows = "\n".join(f"{i},{i % 2}" for i in range(300))
    ds = load_dataset(str(write_csv(tmp_path, "a,state\n" + rows + "\n")), window=10, hop=100)
    assert [len(q) for q in ds.sequences] == [10] * 3
    assert window_warnings(ds) == [
        "--hop 100 is longer than the 10-sample window: 90 of every 100 samples fall between windows and "
        "never train; use a hop of at most the window to train on all of them"
    ]
    assert window_warnings(load_dataset(str(write_csv(tmp_path, "a,state\n" + rows + "\n")), window=10)) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"window": 11}, r"--window 11 is longer than every recording \(the longest has 10 samples\)"),
        ({"window": 0}, "--window 0 must be >= 1 samples"),
        ({"hop": 0}, "--hop 0 must be >= 1 samples"),
    ],
)
def test_windows_that_would_misstate_the_model_are_refused(
    tmp_path: Path, options: dict[str, int], message: str
) -> None:
    """A window longer than every recording was recorded as the model's window (the board would reset its
    state that seldom); a size below 1 names the option given."""
    rows = "\n".join(f"{i},{i % 2}" for i in range(10))
    with pytest.raises(TinyLSTMError, match=message):
        load_dataset(str(write_csv(tmp_path, "a,state\n" + rows + "\n")), **options)
    with pytest.raises(TinyLSTMError, match="--window 100000 is longer than every recording"):
        load_dataset("watch", window=100_000)


def test_csv_stream_mode_cut_into_windows(tmp_path: Path) -> None:
    rows = "\n".join(f"{i},{i * 2},{i % 3}" for i in range(10))
    ds = load_dataset(str(write_csv(tmp_path, "a,b,state\n" + rows + "\n")), window=4)
    assert ds.mode == "stream" and ds.classes == ["0", "1", "2"] and ds.window == 4
    assert [len(s) for s in ds.sequences] == [4, 4]
    np.testing.assert_array_equal(ds.labels[1], [1, 2, 0, 1])


def test_csv_many_integer_labels_read_as_regression_say_why(tmp_path: Path) -> None:
    """More than 50 distinct integers in the target are read as regression (auto); the loader says why and
    how to read them as classes, and train's first line repeats it. Integers up to 50 and non-integer
    targets need no note."""
    rows = "\n".join(f"{i},{i * 2},{i % 60}" for i in range(120))
    path = write_csv(tmp_path, "a,b,code\n" + rows + "\n")
    ds = load_dataset(str(path), window=4)
    assert ds.task == "regression" and ds.task_note == (
        "the target 'code' holds 60 distinct integer values, more than 50: pass --task classification if "
        "they are classes"
    )
    assert load_dataset(str(path), window=4, task="classification").task_note == ""
    assert load_dataset(str(path), window=4, task="regression").task_note == ""
    (tmp_path / "few").mkdir()
    (tmp_path / "real").mkdir()
    few = write_csv(tmp_path / "few", "a,b,code\n" + "".join(f"{i},{i},{i % 50}\n" for i in range(100)))
    assert load_dataset(str(few), window=4).task_note == ""
    real = write_csv(tmp_path / "real", "a,b,y\n" + "".join(f"{i},{i},{i * 0.5}\n" for i in range(100)))
    assert load_dataset(str(real), window=4).task_note == ""
    lines: list[str] = []
    with pytest.raises(TinyLSTMError):  # the description is logged before training starts; stop there
        tinylstm.train(path, tmp_path / "run", dataset_options={"window": 4}, epochs=0, log=lines.append)
    assert lines[0].endswith("regression (stream mode; " + ds.task_note + ")"), lines[0]


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


def test_csv_single_class_rejected_for_training(tmp_path: Path) -> None:
    """One class loads (a held-out file may hold one) but does not train."""
    ds = load_dataset(str(write_csv(tmp_path, "ax,label\n1,x\n2,x\n")), window=2)
    with pytest.raises(TinyLSTMError, match=r"holds one class \('x'\): classification needs .* at least 2"):
        check_training_classes(ds)


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


def test_a_subset_keeps_every_field_but_the_sequences_it_takes() -> None:
    """The folds and splits are subsets: each keeps the set's metadata, the CSV loader's notes included."""
    import dataclasses

    from tinylstm.trainer.sequence_set import SequenceSet

    ds = SequenceSet(
        sequences=[np.full((3, 1), k, dtype=np.float32) for k in range(4)], labels=np.array([0, 1, 0, 1]),
        task="classification", mode="window", classes=["a", "b"], channels=["x"], name="n",
        groups=np.array([7, 7, 8, 9]), window=3, spec="d.csv", options={"window": 3},
        skipped=["note"], task_note="read as classification",
    )  # fmt: skip
    part = ds.subset(np.array([3, 1]))
    assert [float(s[0, 0]) for s in part.sequences] == [3.0, 1.0]
    assert part.labels.tolist() == [1, 1] and part.groups.tolist() == [9, 7]
    kept = {f.name for f in dataclasses.fields(ds)} - {"sequences", "labels", "groups"}
    assert {k: getattr(part, k) for k in kept} == {k: getattr(ds, k) for k in kept}
    assert part.options is not ds.options and part.skipped is not ds.skipped  # copies


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


def test_a_larger_test_fraction_never_holds_out_less(tmp_path: Path) -> None:
    """Fractions that would take a whole class keep one of its sequences in training and hold out the rest
    (a --test of 0.98 held out 1 sequence of 40 where 0.97 held out 38: the class went back to training
    whole)."""
    ds = load_dataset(_npz(tmp_path))  # 40 sequences, 20 per class
    held = [len(split(ds, val=0.0, test=t, seed=0)[2]) for t in (0.5, 0.9, 0.95, 0.97, 0.98)]
    assert held == [20, 36, 38, 38, 38]
    train, val, test = split(ds, val=0.5, test=0.49, seed=0)
    assert (len(train), len(val), len(test)) == (2, 18, 20)  # the validation part gives way first


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


def test_a_channel_in_small_units_keeps_its_variation() -> None:
    """Was: the std floored at 1e-6 whatever the units, so a channel of std 1e-9 (a magnetometer in tesla,
    a current in amperes) normalised to a thousandth of its variation, and trained to the majority class."""
    x = np.random.default_rng(0).standard_normal((50, 2))
    for scale in (1.0, 1e-9, 1e-20):
        norm = Normalizer.fit([x * scale])
        np.testing.assert_allclose(norm.apply(x * scale), Normalizer.fit([x]).apply(x), rtol=1e-4, atol=1e-5)
        assert np.all(np.isfinite(1.0 / norm.std))
    zero = Normalizer.fit([np.zeros((5, 1))])
    assert zero.std[0] > 0 and zero.apply(np.zeros((1, 1)))[0, 0] == 0.0


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


def test_csv_utf8_bom_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    rows = "".join(f"{i % 2},{i * 0.5},{i * 0.25}\n" for i in range(8))
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + ("label,a,b\n" + rows).encode())  # Excel's "CSV UTF-8"
    ds = load_dataset(str(path), window=4)
    assert ds.channels == ["a", "b"] and ds.task == "classification" and ds.classes == ["0", "1"]


def test_csv_bytes_that_are_not_utf8_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"a,b,label\n0.1,0.2,tea\n0.3,0.4,caf\xe9\n0.5,0.6,tea\n")
    with pytest.raises(
        TinyLSTMError, match=r"row 3 column 3: b'caf\\xe9' is not UTF-8.*save the file as UTF-8"
    ):
        load_dataset(str(path), window=2)


def test_case_formats_drop_a_bom_and_refuse_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bom.tsv"
    path.write_bytes(b"\xef\xbb\xbf1\t0.1\t0.2\n2\t0.3\t0.4\n1\t0.5\t0.6\n")
    assert load_dataset(str(path)).classes == ["1", "2"]
    ts = write_ts(tmp_path, ["1,2:3,4:a", "1,2:3,4:b"])
    ts.write_bytes(b"\xef\xbb\xbf" + ts.read_bytes())
    assert load_dataset(str(ts)).classes == ["a", "b"]
    path.write_bytes(b"1\t0.1\t0.2\ncaf\xe9\t0.3\t0.4\n")
    with pytest.raises(TinyLSTMError, match=r"bom.tsv:2: b'\\xe9' is not UTF-8 text; save the file as UTF-8"):
        load_dataset(str(path))
    ts.write_bytes(b"# Creator: J\xfcrgen (Latin-1, in a comment no reader reads)\n" + ts.read_bytes()[3:])
    assert load_dataset(str(ts)).classes == ["a", "b"]


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_csv_nonfinite_class_label_names_the_row(tmp_path: Path, value: str) -> None:
    path = write_csv(tmp_path, f"ax,label\n1,0\n2,{value}\n3,1\n")
    with pytest.raises(
        TinyLSTMError, match=f"row 3: the target column 'label' holds '{value}', which is not"
    ):
        load_dataset(str(path), task="classification", window=2)


@pytest.mark.parametrize(
    ("channels", "message"),
    [
        (["a", "b", "label"], "the target column 'label' cannot also be an input.*--forecast"),
        (["a", "a"], "--channels lists 'a' twice"),
        ([], "has an empty column name"),
        (["a", ""], "'a,' has an empty column name"),
    ],
)
def test_csv_channels_refused(tmp_path: Path, channels: list[str], message: str) -> None:
    path = write_csv(tmp_path, "a,b,label\n1,2,0\n3,4,1\n5,6,0\n")
    with pytest.raises(TinyLSTMError, match=message):
        load_dataset(str(path), channels=channels, window=2)


def test_csv_channels_may_be_any_sequence_of_names(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "a,b,label\n1,2,0\n3,4,1\n5,6,0\n")
    assert load_dataset(str(path), channels=np.array(["b", "a"]), window=2).channels == ["b", "a"]


def test_csv_group_column_is_no_input(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "rec,a,label\n1,2,0\n1,4,1\n2,6,0\n2,7,1\n")
    with pytest.raises(
        TinyLSTMError, match="the group column 'rec' names recordings and cannot also be an input"
    ):
        load_dataset(str(path), channels=["rec", "a"], group="rec", window=2)
    assert load_dataset(str(path), channels=["a"], group="rec", window=2).channels == ["a"]


def test_csv_forecast_may_read_the_target_as_an_input(tmp_path: Path) -> None:
    rows = "".join(f"{i},{i * 0.5}\n" for i in range(8))
    path = write_csv(tmp_path, "u,temp\n" + rows)
    ds = load_dataset(str(path), target="temp", channels=["temp", "u"], forecast=1, window=3)
    assert ds.channels == ["temp", "u"] and ds.task == "regression"


def _npz(tmp_path: Path, **arrays: np.ndarray) -> str:
    rng = np.random.default_rng(0)
    full = {"X": rng.normal(size=(40, 16, 3)).astype(np.float32), "y": np.arange(40) % 2, **arrays}
    np.savez(tmp_path / "d.npz", **full)  # type: ignore[arg-type]
    return str(tmp_path / "d.npz")


def test_npz_float_whole_number_labels_say_they_were_read_as_regression(tmp_path: Path) -> None:
    """A float y of 0.0 and 1.0 trains as regression, as its dtype says, and the loader says so (a CSV did, an
    .npz did not); real-valued targets need no note."""
    ds = load_dataset(_npz(tmp_path, y=(np.arange(40) % 2).astype(np.float64)))
    assert ds.task == "regression" and ds.task_note.startswith(
        "y holds float64 values, all whole numbers (2 distinct), read as regression targets"
    )
    assert load_dataset(_npz(tmp_path, y=np.linspace(0, 1, 40))).task_note == ""


@pytest.mark.parametrize("high", [20, 100_000, 10**9])
def test_npz_labels_with_gaps_are_classes_named_by_their_values(tmp_path: Path, high: int) -> None:
    """Labels 10 and 20 (or 0 and 10^9) are two classes named by their values, as a CSV's numeric labels,
    not range(max + 1) classes (21, or a 100,001-output model, or out of memory)."""
    y = np.where(np.arange(40) % 2 == 0, high // 2, high)
    ds = load_dataset(_npz(tmp_path, y=y))
    assert ds.classes == [str(high // 2), str(high)] and ds.output_size == 2
    assert list(ds.labels[:4]) == [0, 1, 0, 1]


def test_an_npz_held_out_file_may_lack_a_class(tmp_path: Path) -> None:
    """A held-out .npz whose labels skip a middle class is matched to the training classes by name."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 8, 2)).astype(np.float32)
    np.savez(tmp_path / "tr.npz", X=x, y=np.arange(30) % 3)
    np.savez(tmp_path / "te.npz", X=x[:10], y=np.where(np.arange(10) % 2 == 0, 0, 2))
    train = load_dataset(str(tmp_path / "tr.npz"))
    test = load_test_set(str(tmp_path / "te.npz"), train)
    assert test.classes == ["0", "1", "2"] and list(test.labels[:2]) == [0, 2]
    np.savez(tmp_path / "one.npz", X=x[:5], y=np.full(5, 2))  # one class: a valid held-out file (was refused)
    one = load_test_set(str(tmp_path / "one.npz"), train)
    assert one.classes == ["0", "1", "2"] and list(one.labels) == [2] * 5


def test_npz_classes_array_may_name_unused_class_numbers(tmp_path: Path) -> None:
    y = np.where(np.arange(40) % 2 == 0, 0, 2)
    ds = load_dataset(_npz(tmp_path, y=y, classes=np.array(["a", "b", "c"])))
    assert ds.classes == ["a", "b", "c"] and ds.output_size == 3
    with pytest.raises(TinyLSTMError, match=r"labels must lie in 0..2 to match 'classes'"):
        load_dataset(_npz(tmp_path, y=np.arange(40) % 2 - 1, classes=np.array(["a", "b", "c"])))


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"y": np.array(1)}, r"y has shape \(\); expected \[40\]"),
        ({"y": np.array(["a", "b"] * 20)}, r"y holds <U1 values; labels must be integers 0..K-1.*floats"),
        ({"X": np.ones((40, 16, 3), dtype=np.complex64)}, "X holds complex64 values; the model reads real"),
        ({"X": np.zeros((40, 16, 3), dtype="timedelta64[s]")}, "X holds timedelta64"),
        ({"classes": np.array(["a", "a"])}, "classes names 'a' twice"),
        ({"classes": np.array([["a", "b"], ["c", "d"]])}, r"classes has shape \(2, 2\); give a 1-D array"),
    ],
)
def test_npz_arrays_of_the_wrong_kind_are_refused(
    tmp_path: Path, arrays: dict[str, np.ndarray], message: str
) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's ComplexWarning is not an answer
        with pytest.raises(TinyLSTMError, match=message):
            load_dataset(_npz(tmp_path, **arrays))


def test_values_beyond_float32_say_so_without_runtime_warnings(tmp_path: Path) -> None:
    import warnings

    x = np.ones((40, 16, 3))
    x[3, 2, 1] = 1e39
    overflow = r"is 1e\+39, which overflows float32 \(the model's number type.*rescale the data"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(
            TinyLSTMError, match=r"X\[3, 2, 1\] \(sequence 3, step 2, channel 1\) " + overflow
        ):
            load_dataset(_npz(tmp_path, X=x))
        with pytest.raises(TinyLSTMError, match=r"y\[1\] " + overflow):
            load_dataset(_npz(tmp_path, y=np.array([0.5, 1e39] * 20)))
    with pytest.raises(TinyLSTMError, match="dimension 1: value 2 is 1e39, which overflows float32"):
        load_dataset(str(write_ts(tmp_path, ["1,1e39:3,4:a", "1,2:3,4:b"])))
    with pytest.raises(TinyLSTMError, match="row 3 column 'ay': value is 1e39, which overflows float32"):
        load_dataset(str(write_csv(tmp_path, "ax,ay,label\n1,2,0\n3,1e39,1\n")), window=2)


def test_npz_labels_beyond_lengths_are_never_read(tmp_path: Path) -> None:
    lengths = np.arange(40) % 10 + 6
    pad = np.arange(16)[None, :] >= lengths[:, None]
    steps = np.broadcast_to(np.arange(16) % 2, (40, 16))
    ds = load_dataset(_npz(tmp_path, y=np.where(pad, -1, steps), lengths=lengths))
    assert ds.classes == ["0", "1"] and [len(lab) for lab in ds.labels] == lengths.tolist()
    targets = np.where(pad, np.nan, steps * 0.5)
    ds = load_dataset(_npz(tmp_path, y=targets, lengths=lengths))
    assert ds.task == "regression" and all(np.isfinite(lab).all() for lab in ds.labels)
    targets[5, 0] = np.nan  # inside sequence 5: read, so refused
    with pytest.raises(TinyLSTMError, match=r"y\[5, 0\] is nan"):
        load_dataset(_npz(tmp_path, y=targets, lengths=lengths))


@pytest.mark.parametrize(
    ("name", "arrays"),
    [
        ("y0d", {"y": np.array(1)}),
        ("strings", {"y": np.array(["a", "b"] * 20)}),
        ("complex", {"X": np.ones((40, 16, 3), dtype=np.complex64)}),
        ("huge", {"X": np.full((40, 16, 3), 1e39)}),
    ],
)
def test_cli_train_refuses_bad_npz_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, arrays: dict[str, np.ndarray]
) -> None:
    from tinylstm.host.cli.main import main

    argv = ["train", "--data", _npz(tmp_path, **arrays), "--epochs", "1", "--hidden", "4", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinylstm train: error: ") and err.count("\n") == 1, err


def test_npz_classes_with_float_targets_are_refused(tmp_path: Path) -> None:
    """Float y and a `classes` array: the names would be dropped and the model made a regressor, silently."""
    y = (np.arange(40) % 2).astype(np.float32)
    path = _npz(tmp_path, y=y, classes=np.array(["rest", "walk"]))
    with pytest.raises(TinyLSTMError, match="a `classes` array names classes, but y holds float32 targets"):
        load_dataset(path)
    assert load_dataset(path, task="classification").classes == ["rest", "walk"]


def test_held_out_copies_of_training_sequences_are_named() -> None:
    """Was: 9 of 9 held-out windows byte-identical to training ones scored 100 % with no word."""
    from tinylstm.trainer.data import duplicate_warnings

    rng = np.random.default_rng(0)
    train = [rng.standard_normal((8, 2)).astype(np.float32) for _ in range(5)]
    assert duplicate_warnings(train, [rng.standard_normal((8, 2)).astype(np.float32)]) == []
    (line,) = duplicate_warnings(train, [train[1].copy(), train[3][:4], train[4].copy()])
    assert line.startswith("2 of the 3 held-out sequences are exact copies of training sequences")


def test_a_split_far_coarser_than_asked_warns() -> None:
    """Two recordings and --test 0.15 held out one of them, half the data: only the sizes line showed it."""
    from tinylstm.trainer.sequence_set import SequenceSet

    two = SequenceSet(
        sequences=list(np.zeros((40, 5, 1), dtype=np.float32)), labels=np.arange(40) % 2,
        task="classification", mode="window", classes=["a", "b"], channels=["x"], name="d",
        groups=np.arange(40) // 20, window=5,
    )  # fmt: skip
    train, val, test = split(two, val=0.0, test=0.15, seed=0)
    assert split_warnings(two, {"--val": (val, 0.0), "--test": (test, 0.15)}) == [
        "--test 0.15 held out 1 of 2 recordings (50%): each recording goes whole to one split, so few "
        "recordings split coarsely; add recordings, or give the held-out data as a file (--test-data)"
    ]
    two.groups = np.arange(40) // 2  # 20 recordings: 3 held out, 15 %
    train, val, test = split(two, val=0.0, test=0.15, seed=0)
    assert split_warnings(two, {"--test": (test, 0.15)}) == []

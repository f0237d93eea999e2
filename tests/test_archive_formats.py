"""The time-series archives' other formats beside .ts: the UCR archive's .tsv and the UCR/UEA .arff
(trainer/tsv_format.py, trainer/arff_format.py) read the same cases, labels and classes as the .ts of the
same data, and refuse what they cannot read in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinylstm.errors import TinyLSTMError
from tinylstm.host.cli.main import main
from tinylstm.trainer.data import load_dataset
from tinylstm.trainer.sequence_set import SequenceSet

RNG = np.random.default_rng(5)
# unequal lengths, two channels; the declared class order (b before a) is not the sorted one
MULTI = [
    (np.round(RNG.normal(size=(n, 2)), 3), label) for n, label in ((5, "a"), (3, "b"), (4, "a"), (5, "b"))
]
UNI = [
    (np.round(RNG.normal(size=(n, 1)), 3), label) for n, label in ((6, "2"), (4, "-1"), (6, "10"), (5, "2"))
]


def _values(column: np.ndarray, width: int, pad: str) -> list[str]:
    return [f"{v:g}" for v in column] + [pad] * (width - len(column))


def write_ts(path: Path, cases: list[tuple[np.ndarray, str]], classes: list[str]) -> Path:
    dims = cases[0][0].shape[1]
    head = f"@problemName Toy\n@univariate {str(dims == 1).lower()}\n@dimensions {dims}\n@equalLength false\n"
    rows = [":".join([",".join(_values(x[:, d], len(x), "")) for d in range(dims)] + [y]) for x, y in cases]
    path.write_text(head + f"@classLabel true {' '.join(classes)}\n@data\n" + "\n".join(rows) + "\n")
    return path


def write_arff(path: Path, cases: list[tuple[np.ndarray, str]], classes: list[str]) -> Path:
    width, dims = max(len(x) for x, _ in cases), cases[0][0].shape[1]
    steps = "".join(f"@attribute t{k} numeric\n" for k in range(width))
    target = f"@attribute target {{{','.join(classes)}}}\n"
    if dims == 1:
        head = "% a comment\n@relation Toy\n" + steps + target
        rows = [",".join(_values(x[:, 0], width, "?") + [y]) for x, y in cases]
    else:
        head = "@relation 'Toy'\n@attribute series relational\n" + steps + "@end series\n" + target
        rows = [
            "'" + "\\n".join(",".join(_values(x[:, d], width, "?")) for d in range(dims)) + f"',{y}"
            for x, y in cases
        ]
    path.write_text(head + "\n@data\n" + "\n".join(rows) + "\n")
    return path


def write_tsv(path: Path, cases: list[tuple[np.ndarray, str]]) -> Path:
    width = max(len(x) for x, _ in cases)
    path.write_text("".join("\t".join([y, *_values(x[:, 0], width, "NaN")]) + "\n" for x, y in cases))
    return path


def assert_same_cases(a: SequenceSet, b: SequenceSet) -> None:
    assert len(a) == len(b) and a.classes == b.classes and a.task == b.task and a.mode == b.mode == "window"
    for x, y in zip(a.sequences, b.sequences, strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_multivariate_arff_reads_the_cases_of_the_ts_file(tmp_path: Path) -> None:
    ts = load_dataset(str(write_ts(tmp_path / "toy.ts", MULTI, ["b", "a"])))
    arff = load_dataset(str(write_arff(tmp_path / "toy.arff", MULTI, ["b", "a"])))
    assert_same_cases(ts, arff)
    assert arff.classes == ["b", "a"] and [len(s) for s in arff.sequences] == [5, 3, 4, 5]  # padding dropped
    assert arff.name == "Toy" and arff.channels == ["dim0", "dim1"]


def test_ucr_tsv_and_univariate_arff_read_the_cases_of_the_ts_file(tmp_path: Path) -> None:
    ts = load_dataset(str(write_ts(tmp_path / "toy.ts", UNI, ["-1", "2", "10"])))
    tsv = load_dataset(str(write_tsv(tmp_path / "toy.tsv", UNI)))
    arff = load_dataset(str(write_arff(tmp_path / "toy.arff", UNI, ["-1", "2", "10"])))
    assert tsv.classes == ["-1", "2", "10"]  # numeric order, not text order
    assert_same_cases(ts, tsv)
    assert_same_cases(ts, arff)


def test_missing_values_inside_a_case_follow_the_policy(tmp_path: Path) -> None:
    path = tmp_path / "gap.tsv"
    path.write_text(
        "1\t1\tNaN\t3\tNaN\n2\t4\t5\t6\t7\n"
    )  # the trailing NaN is padding, the inner one missing
    with pytest.raises(TinyLSTMError, match=r"gap.tsv:1, value 2: missing value .* --missing interpolate"):
        load_dataset(str(path))
    ds = load_dataset(str(path), missing="interpolate")
    np.testing.assert_array_equal(ds.sequences[0][:, 0], [1, 2, 3])


def test_numeric_targets_are_regression(tmp_path: Path) -> None:
    arff = tmp_path / "r.arff"
    arff.write_text(
        "@relation r\n@attribute t0 numeric\n@attribute t1 numeric\n@attribute y numeric\n"
        "@data\n1,2,0.5\n3,?,-2\n"
    )
    ds = load_dataset(str(arff))
    assert ds.task == "regression" and ds.classes is None and [len(s) for s in ds.sequences] == [2, 1]
    np.testing.assert_allclose(ds.labels, [[0.5], [-2.0]])
    with pytest.raises(TinyLSTMError, match="numeric target; drop --task classification"):
        load_dataset(str(arff), task="classification")
    tsv = write_tsv(tmp_path / "r.tsv", [(np.ones((3, 1)), "0.25"), (np.zeros((2, 1)), "1.5")])
    np.testing.assert_allclose(load_dataset(str(tsv), task="regression").labels, [[0.25], [1.5]])


HEAD = "@relation x\n@attribute t0 numeric\n@attribute t1 numeric\n@attribute c {a,b}\n@data\n"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("sparse.arff", HEAD + "{0 1.5, 2 a}\n", "sparse ARFF data is not supported"),
        (
            "date.arff",
            "@relation x\n@attribute when date\n@attribute c {a}\n@data\n",
            "type 'date' is not supported",
        ),
        ("label.arff", HEAD + "1,2,c\n", "labels \\['c'\\] are not among the declared classes"),
        ("count.arff", HEAD + "1,2,3,a\n", "3 values per dimension, the header declares 2 time steps"),
        ("nodata.arff", "@relation x\n@attribute t0 numeric\n", "no @data line"),
        (
            "notarget.arff",
            "@relation x\n@attribute t0 numeric\n@data\n1\n",
            "the last attribute must be the target",
        ),
        ("comma.tsv", "1,2,3\n", "found no tab; a file with a header row and named columns is a .csv"),
        ("text.tsv", "a\t1\tx\n", "value 2: 'x' is not a number"),
    ],
)
def test_what_the_readers_refuse(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(TinyLSTMError, match=message):
        load_dataset(str(tmp_path / name))


def test_train_refuses_a_bad_arff_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.arff"
    bad.write_text(HEAD + "1,2,c\n")
    assert main(["train", "--data", str(bad), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not among the declared classes" in err[0], err
    assert not (tmp_path / "run").exists()

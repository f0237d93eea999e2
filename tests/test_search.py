"""`tinylstm search` (host/search/study.py): a small study on the shipped watch data draws only architectures
within its budgets, writes the Pareto files, resumes from its SQLite file and leaves a best export that
builds for the QEMU board; a tight budget on JapaneseVowels-shaped data (12 channels, 9 classes) trains
every trial, the hidden-state bits it draws reach QAT and the export, a pooled readout it draws reaches
the checkpoint and the export, stream data is searched with the last-h readout only, and a budget
nothing fits fails at once; stacked architectures (input stacking, --stacks) are priced with layer 0's
wider weights, the stacking buffer and a per-sample latency, default to the recipe's choice for the data,
and the stacking a trial draws reaches its checkpoint and export; the same study on a real PostgreSQL
server with two worker processes shares its trials. Two studies in one --out keep their own trials and
best export; trials on small data are scored by cross-validation (--folds 0: the held-out split); a
resumed study refuses changed data; a trial that always fails stops the study in one
line; bad options (budgets, seeds, sizes, empty lists, stackings longer than a window) are one line.

The PostgreSQL test needs a server: set TINYLSTM_TEST_POSTGRES_URL (scripts/test-postgres.sh starts
one on 127.0.0.1 and prints the URL; .ci/run does this)."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from firmware_fixtures import require_board_tools

from tinylstm.contract.cells import cell_type
from tinylstm.contract.constants import stack_bytes, state_words
from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards.csources import csrc_dir
from tinylstm.host.boards.firmware import build_firmware
from tinylstm.host.boards.registry import get_board
from tinylstm.host.cli.main import main
from tinylstm.host.search import cost, study
from tinylstm.host.search.cost import STATE_STRUCT_BYTES, CostCache, countable, priced_latency
from tinylstm.host.search.study import (
    Architecture,
    Budget,
    SearchConfig,
    Space,
    fitting,
    open_study,
    price_space,
    search,
    trial_dir,
)
from tinylstm.trainer.checkpoint import CHECKPOINT_NAME, load_checkpoint

BOARD = "qemu-stm32f405"


@pytest.fixture(autouse=True)
def one_qat_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial that draws QAT fine-tunes one epoch here, not the search's 3: the same code runs (the hidden
    state it trains for, its export), and tests/test_qat.py measures what the epochs buy."""
    monkeypatch.setattr(study, "QAT_EPOCHS", 1)


FLASH = 8 * 1024
# small and quick (1 epoch per trial); LSTM and GRU with 64 units are over the flash budget; the watch
# data is windows (a label each), so a pooled mean readout applies
SPACE = Space(
    cells=("lstm", "gru"),
    hidden=(8, 12, 64),
    layers=(1,),
    hidden_bits=(8,),
    readouts=("last", "mean"),
    qat=(False,),
)


def config(out: Path, trials: int, hop: int = 64, **kw: object) -> SearchConfig:
    """The watch data's held-out split is a few recordings, so the trials would be cross-validated (3 more
    trainings each) and the best trained again: what these tests check does not depend on the score, so
    they score on the held-out split (test_windows_of_a_few_recordings_are_cross_validated has the rule)."""
    return SearchConfig(
        data="watch", board=BOARD, out=out, trials=trials, budget=Budget(max_flash=FLASH, max_ram=512),
        space=SPACE, epochs=1, progress=False, dataset_options={"hop": hop},
        **{"folds": 0, **kw},  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.mark.slow
def test_small_search_respects_budget_resumes_and_its_best_export_builds(tmp_path: Path) -> None:
    require_board_tools(BOARD)
    cfg = config(tmp_path / "s", 2)
    study = open_study(cfg, "maximize")
    study.enqueue_trial({"arch": "gru-8x1-h8-mean", "lr": 3e-3, "qat": False})
    doc = search(cfg)
    first = {t["number"]: t for t in doc["trials"]}
    # the architectures over the flash budget (64 units: 4*64*70 LSTM weight bytes alone) are priced
    # before the study and never drawn: every trial trains
    archs = doc["architectures"]
    assert archs["priced"] == 12 and set(archs["fit"]) == {
        f"{c}-{h}x1-h8-{r}" for c in ("lstm", "gru") for h in (8, 12) for r in ("last", "mean")
    }
    assert all(
        archs["prices"][f"{c}-64x1-h8-{r}"]["flash_bytes"] > FLASH
        for c in ("lstm", "gru")
        for r in ("last", "mean")
    )
    # no latency budget reads them, so the space's prices count no instructions; each trial counts its own,
    # and search.json's prices carry them
    drawn = {t["params"]["arch"] for t in first.values()}
    assert all((p["instructions"] is None) == (k not in drawn) for k, p in archs["prices"].items())
    assert len(first) == 2 and all(t["state"] == "complete" for t in first.values())
    assert first[0]["params"] | {"lr": 0} == {"arch": "gru-8x1-h8-mean", "cell": "gru", "hidden": 8,
                                             "layers": 1, "hidden_bits": 8, "readout": "mean", "stack": 1,
                                             "bidirectional": False, "input16": False, "lr": 0,
                                             "qat": False}  # fmt: skip
    assert first[0]["measured"]["readout"] == "mean"
    complete = [t for t in doc["trials"] if t["state"] == "complete"]
    for t in complete:
        m = t["measured"]
        assert t["params"]["arch"] in archs["fit"] and trial_dir(cfg, t["number"]).is_dir()
        assert m["flash_bytes"] <= FLASH and m["ram_bytes"] <= 512 and 0 < m["int8"] <= 100
        assert t["estimate"]["instructions"] is not None  # counted for the drawn architecture
        # the size and the state are known before training
        assert (
            m["flash_bytes"] == t["estimate"]["flash_bytes"] and m["ram_bytes"] == t["estimate"]["ram_bytes"]
        )
        assert m["epochs"] == 1 and m["hidden_bits"] == 8 and m["qat_hidden_bits"] is None
        assert (
            m["readout"] == t["params"]["readout"] and m["select"] == "last"
        )  # classification: the recipe's
        assert m["stack"] == 1  # windows of 128 samples: the recipe's choice is no stacking
        assert isinstance(m["check_passed"], bool)  # every trained trial's export went through check
    for name in ("search.json", "search.md", "pareto.png", "study.db"):
        assert (tmp_path / "s" / name).stat().st_size > 0
    assert doc["pareto"]["flash"] and set(doc["pareto"]["flash"]) <= {t["number"] for t in complete}
    md = (tmp_path / "s" / "search.md").read_text()
    assert (
        "| trial | cell | hidden | layers | h bits | readout |" in md
        and "| 0 | gru | 8 | 1 | 8 | mean |" in md
    )

    doc2 = search(replace(cfg, trials=3))  # resume: the two trials stay, one more runs
    assert [t["number"] for t in doc2["trials"]] == [0, 1, 2]
    assert {t["number"]: t["params"] for t in doc2["trials"][:2]} == {
        n: t["params"] for n, t in first.items()
    }
    best = doc2["best"]
    assert best["value"] == max(t["value"] for t in doc2["trials"] if t["state"] == "complete")
    build = build_firmware(Path(doc2["best_export"]), BOARD, tmp_path / "fw")
    assert build.elf is not None and build.elf.stat().st_size > 0
    assert json.loads((tmp_path / "s" / "search.json").read_text())["best"]["number"] == best["number"]


@pytest.mark.slow
def test_studies_sharing_an_out_keep_their_own_trials_and_best_export(tmp_path: Path) -> None:
    """Two studies in one --out (another --study-name) write their trials apart, so each one's best-export is
    its own model; best-export is replaced only by the best trial's recorded model, and kept when that is
    gone or another."""
    out = tmp_path / "s"
    a, b = config(out, 1, hop=256), config(out, 1, hop=256, study_name="b")
    open_study(a, "maximize").enqueue_trial({"arch": "gru-8x1-h8-last", "lr": 1e-2, "qat": False})
    open_study(b, "maximize").enqueue_trial({"arch": "lstm-8x1-h8-last", "lr": 1e-2, "qat": False})
    want = search(a)["best"]["measured"]
    doc_b = search(b)
    assert doc_b["best"]["measured"]["hash"] != want["hash"]
    assert doc_b["replaced_study"] == a.study_name  # the results files held a's: cmd_search says so
    assert trial_dir(a, 0).is_dir() and trial_dir(b, 0).is_dir() and trial_dir(a, 0) != trial_dir(b, 0)
    assert trial_dir(replace(a, study_name="../x"), 0).parent.parent == out / "trials"  # a safe folder name
    held = out / "best-export" / "export-report.json"

    def best_export_hash() -> str:
        return str(json.loads(held.read_text())["hash"])

    doc = search(a)  # resumed, nothing to train: best-export is study a's again
    assert best_export_hash() == want["hash"] and isinstance(want["check_failed"], list)
    assert doc["replaced_study"] == "b" and search(a)["replaced_study"] is None
    assert "(tinylstm check " in (out / "search.md").read_text()
    assert doc["best"]["measured"]["hash"] == want["hash"]
    # the best trial's export holds another model: refused, best-export kept
    report = Path(want["export"]) / "export-report.json"
    original = report.read_text()
    report.write_text(json.dumps(json.loads(original) | {"hash": "0xdeadbeef"}))
    with pytest.raises(
        TinyLSTMError, match=r"the best trial 0's export .* holds another model \(hash 0xdeadbeef"
    ):
        search(a)
    assert best_export_hash() == want["hash"]
    report.write_text(original)
    # the trial exports are gone: refused before best-export is touched
    (out / "trials").rename(out / "trials.bak")
    with pytest.raises(TinyLSTMError, match=r"the best trial 0's export .* is gone: restore it"):
        search(a)
    assert best_export_hash() == want["hash"]


def japanese_vowels_like(path: Path) -> Path:
    """A small stand-in for UEA JapaneseVowels (the aeon wheel's copy is not a test dependency): 12 LPC
    channels, 9 speakers named "1".."9", 7..29 steps per utterance, one label per sequence."""
    rng = np.random.default_rng(0)
    n, t, c = 90, 29, 12
    y = np.arange(n) % 9
    lengths = rng.integers(7, t + 1, n)
    x = rng.standard_normal((n, t, c)) * 0.5 + np.linspace(-1, 1, 9)[y][:, None, None] * (np.arange(c) % 3)
    np.savez(
        path, X=x.astype(np.float32), y=y, lengths=lengths, classes=np.array([str(k) for k in range(1, 10)])
    )
    return path


# JapaneseVowels' shapes (12 inputs, 9 classes) under 12 KB of flash: of these 24 architectures half are
# over the budget (every 64-unit one, the two-layer 32-unit ones); a study that drew them all would prune
# many trials (the issue: 3 of 3 pruned, exit 1, although 5-9 KB models fit)
# LSTM and GRU: over 12 KB at 64 units (the RNN, a third of their rows, would fit and change the counts)
JV_SPACE = Space(
    cells=("lstm", "gru"), hidden=(8, 32, 64), layers=(1, 2), hidden_bits=(8, 16), readouts=("last",)
)
JV_FLASH = 12 * 1024


@pytest.mark.slow
def test_tight_budget_trains_every_trial_with_the_hidden_bits_it_draws(tmp_path: Path) -> None:
    data = japanese_vowels_like(tmp_path / "jv.npz")
    cfg = SearchConfig(
        data=str(data), board=BOARD, out=tmp_path / "s", trials=3, budget=Budget(max_flash=JV_FLASH),
        space=JV_SPACE, epochs=1, progress=False,
        folds=0,  # the budget is what this tests: the held-out score (3 trainings less per trial, no refit)
    )  # fmt: skip
    # a stacked int16-state GRU with QAT first: its hidden_bits must reach QAT and the export
    open_study(cfg, "maximize").enqueue_trial(
        {"arch": "gru-8x2-h16-last", "lr": 1e-2, "dropout": 0.1, "qat": True}
    )
    doc = search(cfg)
    archs = doc["architectures"]
    over = [k for k, c in archs["prices"].items() if c["flash_bytes"] > JV_FLASH]
    assert archs["priced"] == 24 and len(over) >= 12 and set(archs["fit"]) == set(archs["prices"]) - set(over)
    assert doc["counts"]["complete"] == 3 and doc["best"] is not None  # 3 trials, all trained
    for t in doc["trials"]:
        p, m = t["params"], t["measured"]
        assert p["arch"] in archs["fit"] and m["flash_bytes"] <= JV_FLASH
        report = json.loads((Path(m["export"]) / "export-report.json").read_text())
        assert p["hidden_bits"] == m["hidden_bits"] == report["hidden_bits"]
        assert m["qat_hidden_bits"] == (p["hidden_bits"] if p["qat"] else None)
    first = doc["trials"][0]
    assert first["params"]["arch"] == "gru-8x2-h16-last" and first["measured"]["qat_hidden_bits"] == 16
    assert first["measured"]["hidden_bits"] == 16 and 0 < first["params"]["dropout"] <= 0.3


def assert_drawn_knob_trained(trial: dict[str, Any], prices: dict[str, Any], knob: str) -> Path:
    """A complete trial's drawn ``knob`` (a TrainConfig field the search draws) reached its training (the
    checkpoint's meta), its export report and its measured record, and its measured RAM is the price the study
    drew it at; returns its export directory."""
    value, m = trial["params"][knob], trial["measured"]
    assert trial["state"] == "complete" and m[knob] == value
    export = Path(m["export"])
    _, meta = load_checkpoint(export.parent / "run" / CHECKPOINT_NAME)
    assert getattr(meta, knob) == value
    assert json.loads((export / "export-report.json").read_text())[knob] == value
    assert m["ram_bytes"] == trial["estimate"]["ram_bytes"] == prices[trial["params"]["arch"]]["ram_bytes"]
    return export


def test_a_drawn_pooled_readout_reaches_the_checkpoint_and_the_export(tmp_path: Path) -> None:
    data = japanese_vowels_like(tmp_path / "jv.npz")
    space = Space(cells=("gru",), hidden=(8,), layers=(1,), hidden_bits=(8,), qat=(False,))  # 3 readouts
    cfg = SearchConfig(
        data=str(data), board=BOARD, out=tmp_path / "s", trials=2, budget=Budget(max_flash=JV_FLASH),
        space=space, epochs=1, progress=False, folds=0,  # the drawn readout is what this tests, not the score
    )  # fmt: skip
    study = open_study(cfg, "maximize")
    # windows of 7..29 steps: the recipe alone would read the last h; the drawn readout is what trains
    for read in ("max", "mean"):
        study.enqueue_trial({"arch": f"gru-8x1-h8-{read}", "lr": 1e-2, "qat": False})
    doc = search(cfg)
    prices = doc["architectures"]["prices"]
    assert sorted(prices) == ["gru-8x1-h8-last", "gru-8x1-h8-max", "gru-8x1-h8-mean"]
    for read in ("mean", "max"):  # a pool: one int32 per unit more state, the same model data
        pooled, last = prices[f"gru-8x1-h8-{read}"], prices["gru-8x1-h8-last"]
        assert pooled["ram_bytes"] == last["ram_bytes"] + 4 * 8
        assert pooled["model_data_bytes"] == last["model_data_bytes"]
        # the firmware of a last-h model links no pooling code (codegen/emit_c.py model_settings)
        assert pooled["code_bytes"] > last["code_bytes"]
    assert [t["params"]["readout"] for t in doc["trials"]] == ["max", "mean"]
    for t in doc["trials"]:
        export = assert_drawn_knob_trained(t, prices, "readout")
        assert json.loads((export / "int_model.json").read_text())["readout"] == t["params"]["readout"]
    # the readouts are part of the space: a resumed study with others is refused
    with pytest.raises(TinyLSTMError, match="was started with other settings.*readouts"):
        search(replace(cfg, trials=3, space=replace(space, readouts=("last",))))


def test_a_new_study_starts_with_the_default_model_where_it_fits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first trial of a new study is the model `tinylstm train` makes with no flags (LSTM 32, int8 h, the
    recipe's readout and stacking, its peak learning rate, no QAT), so the search never returns a model the
    default would beat; the CLI says what that trial scored."""
    data = japanese_vowels_like(tmp_path / "jv.npz")  # windows of 7..29 steps: the recipe reads the last h
    args = ["search", "--data", str(data), "--board", BOARD, "--out", str(tmp_path / "s"),
            "--cells", "gru,lstm", "--hidden", "8,32", "--layers", "1", "--hidden-bits", "8",
            "--readouts", "last", "--max-flash", "12k", "--trials", "1", "--epochs", "1",
            "--quiet"]  # fmt: skip
    assert main(args) == 0
    doc = json.loads((tmp_path / "s" / "search.json").read_text())
    (t,) = doc["trials"]
    assert t["origin"] == study.DEFAULT_ORIGIN and t["state"] == "complete"
    assert {k: t["params"][k] for k in ("arch", "lr", "qat")} == {
        "arch": "lstm-32x1-h8-last",
        "lr": 1e-2,
        "qat": False,
    }
    out = capsys.readouterr().out
    assert f"trial 0 is the training recipe's default model, lstm-32x1-h8-last: {t['value']:.4g}" in out
    assert "Trial 0: the training recipe's default model" in (tmp_path / "s" / "search.md").read_text()
    two = {**doc, "trials": [t, {**t, "number": 1}]}  # where the recipe cross-validates two readouts
    assert (
        "Trials 0, 1: the training recipe's default model (`tinylstm train` with no flags), one per readout"
        in (study.render_md(two))
    )
    # long windows: one trial per readout the recipe's cross-validation chooses among; only those in the space
    # and the budget
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "long.npz", X=rng.standard_normal((24, 80, 2)).astype(np.float32), y=np.arange(24) % 2
    )
    cfg = SearchConfig(data=str(tmp_path / "long.npz"), board=BOARD, out=tmp_path / "l", space=Space())
    data_ = study._Data(cfg)
    keys = [a.key for a in Space().architectures()]
    assert study.default_trials(cfg, data_, keys) == [
        {"arch": f"lstm-32x1-h8-{r}", "lr": 1e-2, "qat": False} for r in ("mean", "max")
    ]
    assert study.default_trials(cfg, data_, [k for k in keys if not k.endswith("max")]) == [
        {"arch": "lstm-32x1-h8-mean", "lr": 1e-2, "qat": False}
    ]
    assert study.default_trials(replace(cfg, space=Space(lr=(1e-3, 5e-3), qat=(True,))), data_, keys)[0] == {
        "arch": "lstm-32x1-h8-mean",
        "lr": 5e-3,
    }  # the peak within the space's range; QAT where the space has nothing else


def test_stream_data_searches_the_last_readout_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 40, 3)).astype(np.float32)
    y = (x[:, :, 0] > 0).astype(np.int64)  # a label per step: stream mode
    np.savez(tmp_path / "stream.npz", X=x, y=y)
    space = Space(cells=("gru",), hidden=(8,), layers=(1,), hidden_bits=(8,), qat=(False,))
    assert [a.key for a in space.architectures(window=False)] == ["gru-8x1-h8-last"]
    assert Architecture.parse("gru-8x1-h8-last") == Architecture("gru", 8, 1, 8, "last")
    cfg = SearchConfig(
        data=str(tmp_path / "stream.npz"), board=BOARD, out=tmp_path / "s", trials=1, space=space, epochs=1,
        progress=False,
    )  # fmt: skip
    assert list(price_space(cfg, get_board(BOARD))) == ["gru-8x1-h8-last"]
    doc = search(cfg)
    (t,) = doc["trials"]
    assert t["state"] == "complete" and t["params"]["readout"] == t["measured"]["readout"] == "last"
    # a label per step: each sequence's 40 steps are its case's predictions, adding up to the score
    assert {c[1] for c in t["measured"]["cases"].values()} == {40}
    assert hit_rate(t["measured"]["cases"]) == pytest.approx(t["value"])
    # a space of pooled readouts alone has nothing for stream data: one line, nothing started
    args = ["search", "--data", str(tmp_path / "stream.npz"), "--board", BOARD, "--out",
            str(tmp_path / "p"), "--cells", "gru", "--hidden", "8", "--layers", "1", "--readouts", "mean,max",
            "--quiet"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--readouts mean,max: a pooled readout reads a window" in err[0], err
    assert "stream mode" in err[0] and not (tmp_path / "p" / "study.db").exists()


def test_a_budget_nothing_fits_fails_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["search", "--data", "watch", "--hop", "64", "--board", BOARD, "--out", str(tmp_path / "s"),
            "--cells", "gru,lstm", "--hidden", "8,12", "--layers", "1", "--hidden-bits", "8",
            "--readouts", "last", "--max-flash", "2k", "--quiet"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no architecture of the search space fits" in err[0], err
    assert "the smallest of 4, gru-8x1-h8-last, costs flash" in err[0] and "flash <= 2048 B" in err[0]
    # nothing was written (the prices' cache was): a looser budget in the same directory is a new study
    assert not (tmp_path / "s").exists()
    (tmp_path / "s").mkdir()  # an --out that was there keeps the prices for the next run, and only them
    assert main(args) == 2
    assert [f.name for f in (tmp_path / "s").iterdir()] == ["costs.json"]


def small_windows(path: Path, n: int = 24, per_recording: int = 1) -> Path:
    """``n`` windows of 16 samples, 2 channels, 2 classes told apart by their mean; ``per_recording``
    consecutive windows (of one class) cut from each recording."""
    rng = np.random.default_rng(0)
    y = np.arange(n) // per_recording % 2
    x = rng.standard_normal((n, 16, 2)).astype(np.float32) + y[:, None, None].astype(np.float32)
    groups = {"groups": np.arange(n) // per_recording} if per_recording > 1 else {}
    np.savez(path, X=x, y=y, **groups)
    return path


def one_trial(out: Path, data: Path, **kw: object) -> SearchConfig:
    space = Space(
        cells=("lstm",), hidden=(8,), layers=(1,), hidden_bits=(8,), readouts=("last",), qat=(False,)
    )
    return SearchConfig(
        data=str(data), board=BOARD, out=out, trials=1, space=space, epochs=2, progress=False,
        **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def hit_rate(cases: dict[str, list[float]]) -> float:
    return 100.0 * sum(c[0] for c in cases.values()) / sum(c[1] for c in cases.values())


def test_small_data_trials_are_scored_by_cross_validation(tmp_path: Path) -> None:
    """24 windows hold out 4: each trial is also trained on 3 folds of all 24, and the study ranks it by its
    integer model's accuracy over every window, pooled; its export is still the training split's, checked
    on the held-out 4. --folds 0 scores on the held-out split; a study started before cross-validation
    (no CROSS_VALIDATES mark) keeps doing so."""
    data = small_windows(tmp_path / "w.npz")
    doc = search(one_trial(tmp_path / "cv", data))
    (t,) = doc["trials"]
    cv = t["measured"]["cv"]
    assert cv["folds"] == 3 and [f["sequences"] for f in cv["per_fold"]] == [8, 8, 8]
    assert cv["why"] == "the held-out split has 4 sequences, < 30"
    assert t["value"] == pytest.approx(cv["int8"])
    assert cv["int8"] == pytest.approx(sum(f["int8"] for f in cv["per_fold"]) / 3)  # equal folds
    # its sums per case (each window its own case here), for weighing it against the default model: they
    # add up to its score
    assert sorted(t["measured"]["cases"]) == sorted(f"sequence {i}" for i in range(24))
    assert hit_rate(t["measured"]["cases"]) == pytest.approx(t["value"])
    assert (tmp_path / "cv" / "trials" / "tinylstm" / "0000" / "cv" / "fold2" / CHECKPOINT_NAME).is_file()
    assert doc["objective"] == "integer-model accuracy (%), 3-fold cross-validated on all the data"
    assert "Score: what the study ranks by" in (tmp_path / "cv" / "search.md").read_text()

    held = search(one_trial(tmp_path / "held", data, folds=0))
    (t0,) = held["trials"]
    assert t0["measured"]["cv"] is None and t0["value"] == t0["measured"]["int8"]
    assert len(t0["measured"]["cases"]) == 4 and hit_rate(t0["measured"]["cases"]) == pytest.approx(
        t0["value"]
    )
    assert held["objective"] == "integer-model accuracy (%) on the held-out split"
    # the same model either way: the export is the training split's
    assert t0["measured"]["hash"] == t["measured"]["hash"]

    old = one_trial(tmp_path / "old", data)
    open_study(old, "maximize").set_user_attr(study.CROSS_VALIDATES, False)
    (t_old,) = search(old)["trials"]
    assert t_old["measured"]["cv"] is None


def test_windows_of_a_few_recordings_are_cross_validated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scoring rule counts a held-out split's recordings, not the windows cut from them (they share a
    recording's conditions): 4 held-out windows of 2 recordings are 2 cases, below a threshold of 4, so the
    trial is cross-validated; a study started when the rule counted windows keeps counting them."""
    from tinylstm.host.search import selection

    monkeypatch.setattr(selection, "CV_BELOW_HELD_OUT", 4)
    data = small_windows(tmp_path / "w.npz", per_recording=2)  # 12 recordings
    (t,) = search(one_trial(tmp_path / "rec", data, refit=False))["trials"]
    assert t["measured"]["cv"]["why"] == "the held-out split has 2 recordings (4 windows), < 4"
    assert [f["sequences"] for f in t["measured"]["cv"]["per_fold"]] == [8, 8, 8]  # whole recordings
    assert sorted(t["measured"]["cases"]) == sorted(f"recording {g}" for g in range(12))
    assert {c[1] for c in t["measured"]["cases"].values()} == {2}  # two windows each

    old = one_trial(tmp_path / "old", data)
    open_study(old, "maximize").set_user_attr(study.COUNTS_RECORDINGS, False)
    (t_old,) = search(old)["trials"]
    assert t_old["measured"]["cv"] is None


def test_a_cross_validated_best_is_trained_again_on_all_the_data(tmp_path: Path) -> None:
    """Where the trials were cross-validated, OUT/best-export is the best trial's settings trained again on
    all 24 windows (nothing held out), verified golden == C and blob on every one; writing the results again
    reuses it; --no-refit (and a study scored on its held-out split) keeps the trial's own export; check
    refuses the refit in one line that says where its estimate is."""
    from tinylstm.codegen.heldout import load_held_out
    from tinylstm.codegen.store import load_int_model
    from tinylstm.host.analysis.check import check
    from tinylstm.host.analysis.parity import run_parity
    from tinylstm.host.boards import QemuBoard
    from tinylstm.host.link.transport import Link

    data = small_windows(tmp_path / "w.npz")
    cfg = one_trial(tmp_path / "cv", data)
    doc = search(cfg)
    (t,) = doc["trials"]
    r = doc["refit"]
    assert r["done"] and not r["reused"] and r["sequences"] == 24, r
    assert r["why"] == (
        "the trials were cross-validated: the held-out split has 4 sequences, < 30, so it decided nothing"
    )
    assert r["bit_exact"]["ok"] and r["bit_exact"]["sequences"] == 24 and r["blob_ok"]
    assert r["of"] == {"trial": 0, "hash": t["measured"]["hash"]} and r["hash"] != t["measured"]["hash"]
    assert r["flash_bytes"] == t["measured"]["flash_bytes"]  # the same architecture
    best = tmp_path / "cv" / "best-export"
    assert load_int_model(best)[1]["hash"] == r["hash"]
    meta = load_checkpoint(Path(r["export"]).parent / "run" / CHECKPOINT_NAME)[1]
    assert meta.metrics["sizes"] == {"train": 24, "val": 0, "test": 0}
    assert (meta.hidden_size, meta.readout) == (8, "last")
    assert "trained again on all 24 sequences (refit" in (tmp_path / "cv" / "search.md").read_text()
    with pytest.raises(TinyLSTMError, match="no held-out data .*a search's refit.*its trial's score"):
        check(best)
    # a board still runs it bit-exact: parity feeds the training data it has, and says so
    require_board_tools("qemu-stm32f405")
    held = load_held_out(best)
    assert held.split == "training" and len(held.sequences) == 24
    elf = build_firmware(best, "qemu-stm32f405", tmp_path / "fw").elf
    with QemuBoard(elf) as board, Link.open(board.url) as link:  # type: ignore[arg-type]
        report = run_parity(link, best, 300)
    assert report.passed and report.mismatches == 0 and report.data == "training", report.render()
    assert "300 of 300 host-fed steps of training data compared" in report.render()

    again = study.write_results(cfg, open_study(cfg, "maximize"), "maximize")
    assert again["refit"]["reused"] and again["refit"]["hash"] == r["hash"]

    kept = study.write_results(replace(cfg, refit=False), open_study(cfg, "maximize"), "maximize")
    assert kept["refit"] == {"done": False, "why": "--no-refit: the best trial's own export"}
    assert load_int_model(best)[1]["hash"] == t["measured"]["hash"]

    held = search(one_trial(tmp_path / "held", data, folds=0))["refit"]
    assert held == {
        "done": False,
        "why": "the best trial was scored on its held-out split: its export, checked there, is kept",
    }


def test_the_default_model_is_kept_unless_a_trial_leads_it_by_more_than_one_standard_error() -> None:
    """A study's top score is its luckiest estimate: the default model (the first trial) stays the best
    unless the top trial leads it, case by case on the same cases, by more than one standard error of the
    paired difference. One window more of 20 right is exactly one standard error (kept), two are more."""
    from tinylstm.host.search.selection import paired_lead, prefer_default

    def cases(right: int, n: int = 20) -> dict[str, list[float]]:
        return {f"sequence {i}": [float(i < right), 1] for i in range(n)}

    def trial(number: int, right: int, **more: object) -> dict[str, object]:
        return {"number": number, "value": 100 * right / 20, "measured": {"cases": cases(right)}, **more}

    one = paired_lead(cases(19), cases(18), maximize=True)
    assert one is not None and one.cases == 20
    assert one.lead == pytest.approx(0.05) and one.se == pytest.approx(0.05)  # sqrt(20/19 * 0.95 / 400)
    default = trial(0, 18)
    best, choice = prefer_default(trial(3, 19), default, maximize=True)
    assert best is default and choice is not None and choice["kept_default"] and choice["top"] == 3
    assert choice["why"] == (
        "trial 3 scores 95 against 90 for the default model (trial 0): a lead of 5 pp, within one standard "
        "error (5 pp) over 20 cases, each scored by both"
    )
    two = trial(4, 20)
    best, choice = prefer_default(two, default, maximize=True)
    assert best is two and choice is not None and not choice["kept_default"]
    assert "a lead of 10 pp, more than one standard error (6.88 pp)" in choice["why"]
    # nothing to weigh: no default trial, the default on top, other cases (an older trial has none)
    assert prefer_default(two, None, True) == (two, None) and prefer_default(default, default, True) == (
        default,
        None,
    )
    assert prefer_default(two, {**default, "measured": {}}, True) == (two, None)
    assert paired_lead(cases(20), cases(18, n=21), True) is None
    assert paired_lead(cases(20), {k: [v[0], 2] for k, v in cases(18).items()}, True) is None  # other windows
    # RMSE: the gain is squared error saved; cases of more predictions weigh more
    lower = {"recording 1": [1.0, 10], "recording 2": [2.0, 10], "recording 3": [1.5, 20]}
    higher = {"recording 1": [2.0, 10], "recording 2": [2.5, 10], "recording 3": [2.5, 20]}
    lead = paired_lead(lower, higher, maximize=False)
    assert lead is not None and lead.lead == pytest.approx(2.5 / 40) and lead.se > 0
    assert paired_lead(higher, lower, maximize=False).lead == pytest.approx(-2.5 / 40)  # type: ignore[union-attr]


def test_the_scoring_rule_and_the_pooled_metric() -> None:
    from tinylstm.host.search import selection

    assert selection.folds_for(None, 29) == (selection.CV_FOLDS, "the held-out split has 29 sequences, < 30")
    assert selection.folds_for(None, 30) == (0, "the held-out split has 30 sequences")
    assert selection.folds_for(5, 300) == (5, "given")
    assert selection.folds_for(0, 4) == (0, "given: the held-out split alone")
    # windows cut from recordings: the recordings are the cases
    assert selection.folds_for(None, 18, 904) == (
        selection.CV_FOLDS,
        "the held-out split has 18 recordings (904 windows), < 30",
    )
    assert selection.folds_for(None, 30, 30) == (0, "the held-out split has 30 sequences")
    folds = [{"sequences": 2, "int8": 100.0}, {"sequences": 6, "int8": 50.0}]
    assert selection._pooled(folds, "int8", "classification") == pytest.approx(62.5)
    rmse = [{"sequences": 1, "int8": 3.0}, {"sequences": 3, "int8": 1.0}]
    assert selection._pooled(rmse, "int8", "regression") == pytest.approx(np.sqrt((9 + 3) / 4))


def test_the_best_of_equal_scores_is_the_smaller_model() -> None:
    def row(number: int, value: float, flash: int) -> dict[str, Any]:
        return {"number": number, "value": value, "measured": {"flash_bytes": flash}}

    rows = [row(0, 90.0, 9000), row(1, 95.0, 8000), row(2, 95.0, 4000), row(3, 95.0, 4000)]
    assert study.best_of(rows, maximize=True)["number"] == 2
    assert study.best_of(rows, maximize=False)["number"] == 0


def test_settings_of_a_resumed_study_must_match(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config(tmp_path / "s", 1)
    open_study(cfg, "maximize")
    args = [
        "search",
        "--data",
        "watch",
        "--hop",
        "64",
        "--board",
        BOARD,
        "--out",
        str(tmp_path / "s"),
        "--quiet",
    ]
    assert main([*args, "--max-flash", "16k"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was started with other settings" in err[0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--max-flash", "3x"], "--max-flash '3x'"),
        (["--max-latency-ms", "1"], "qemu-stm32f405 has no counted core and clock"),
        (["--hidden", "8,a"], "--hidden '8,a'"),
        (["--hidden-bits", "8,12"], "--hidden-bits 8,12: choose from 8,16"),
        (["--patience", "3"], "--patience 3: early stopping needs --select best"),
        (["--select", "cv", "--patience", "3"], "--patience 3: early stopping needs --select best"),
        (["--readouts", "last,avg"], "--readouts last,avg: choose from last, mean, max"),
        (["--epochs", "0"], "--epochs 0: each must be >= 1"),
        (["--folds", "1"], "--folds 1: give 0 (score each trial on its held-out split) or 2 or more"),
        (["--folds", "-2"], "--folds -2: give 0"),
        (["--stacks", "0,4"], "--stacks '0,4': every value must be >= 1"),
        (["--stacks", "4,256"], "--stacks 4,256: samples per recurrent step must be 1 (none) to 255"),
        # the watch data has 6 channels: 200 samples of them are 1200 values, over the kernel's 1024
        (["--stacks", "1,200"], "--stacks 1,200: stacking 200 samples of 6 channels makes a 1200-value step"),
        # an int16-h model's layer 0 reads at most 256 int16 values: 50 x 6 = 300
        (
            ["--hidden-bits", "16", "--stacks", "50"],
            "an int16 input (--hidden-bits 16, --input-bits 16) is at most",
        ),
        (
            ["--hidden-bits", "8", "--input-bits", "16", "--stacks", "50"],
            "is at most 256 values per step, and stacking",
        ),
        (["--input-bits", "12"], "--input-bits 12: choose from 8,16 (an int8 or int16 input on the int8 h)"),
        # a bidirectional model keeps an int8 h and input: these spaces would hold none
        (
            ["--bidirectional", "--hidden-bits", "16"],
            "--bidirectional with --hidden-bits 16 --input-bits 8: a bidirectional model keeps an int8",
        ),
        (["--bidirectional", "--input-bits", "16"], "--hidden-bits 8,16 --input-bits 16: a bidirectional"),
        # a budget that is not a number would compare as no budget; sizes are whole bytes
        (["--max-latency-ms", "nan"], "--max-latency-ms nan: give a finite number of milliseconds > 0"),
        (["--max-ram", "1.5"], "--max-ram '1.5' is 1.5 bytes: give whole bytes"),
        (["--max-flash", "1.1k"], "--max-flash '1.1k' is 1126.4 bytes: give whole bytes"),
        (["--max-ram", "1e9"], "--max-ram '1e9': write bytes as 4096, 32k or 1.5M"),
        (["--max-flash", "0"], "--max-flash 0 B: a budget is at least 1 byte"),
        (["--hop", "0"], "--hop 0: steps between windows must be >= 1"),
        (["--windows", "0,64"], "--windows '0,64': every value must be >= 1"),
        # limits the kernel has, before a model is built (a 100000-unit one would not fit in memory)
        (["--hidden", "8,100000"], "--hidden 8,100000: the kernel runs 1 to 256 units per layer"),
        (["--layers", "1,4"], "--layers 1,4: the kernel runs 1 to 3 layers"),
        # the sampler's seed (worker k's: seed + 1000 k) is 0 to 2**32 - 1
        (["--seed", "-1"], "--seed -1: give 0 to 4294967295"),
        (["--seed", "4294967296"], "--seed 4294967296: give 0 to 4294967295"),
        (
            ["--seed", "4294967000", "--workers", "2"],
            "--seed 4294967000: give 0 to 4294966295 with --workers 2",
        ),
        (["--cells", ""], "--cells is empty: choose from lstm, gru, rnn"),
        (["--cells", ","], "--cells is empty: choose from lstm, gru, rnn"),
        (["--readouts", ","], "--readouts is empty: choose from last, mean, max"),
        (["--hidden", ""], "--hidden '': give integers separated by commas"),
        (["--stacks", ""], "--stacks '': give integers separated by commas"),
        # watch windows are 128 samples: 150 per step would complete no recurrent step (trials would fail)
        (["--stacks", "150"], "--stacks 150: stack=150 is longer than the shortest window (128 samples)"),
        (["--windows", "1000,8", "--stacks", "15"], "--stacks 15 (--windows 8): stack=15 is longer than"),
    ],
)
def test_bad_options_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    args = ["search", "--data", "watch", "--board", BOARD, "--out", str(tmp_path / "s"), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "s").exists()  # refused before anything is written


def test_api_budgets_and_dataset_options_of_zero_are_refused(tmp_path: Path) -> None:
    """0 is a value, not "none": the API refuses it as the CLI does, instead of dropping it."""
    import tinylstm

    small = {"cells": "gru", "hidden": 8, "layers": 1, "hidden_bits": 8, "readouts": "last", "trials": 1}
    for kw, message in (
        ({"max_flash": 0}, "--max-flash 0 B: a budget is at least 1 byte"),
        ({"max_ram": 0}, "--max-ram 0 B: a budget is at least 1 byte"),
        ({"hop": 0}, "--hop 0: steps between windows must be >= 1"),
        ({"windows": 0}, "--windows '0': every value must be >= 1"),
    ):
        with pytest.raises(TinyLSTMError, match=message):
            tinylstm.search("watch", BOARD, out=tmp_path / "s", **small, **kw)  # type: ignore[arg-type]
    assert not (tmp_path / "s").exists()


def test_an_out_that_is_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("")
    args = ["search", "--data", "watch", "--board", BOARD, "--out", str(tmp_path / "afile"), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "afile is a file, not a directory; pick another output directory" in err[0], err


def test_a_resumed_study_refuses_changed_data(tmp_path: Path) -> None:
    """A study pins its data file by SHA-256: the same path with other recordings is not resumed."""
    data = japanese_vowels_like(tmp_path / "jv.npz")
    cfg = SearchConfig(data=str(data), board=BOARD, out=tmp_path / "s", space=JV_SPACE, progress=False)
    open_study(cfg, "maximize")
    assert study.existing_study(cfg) is not None  # unchanged: resumes
    moved = tmp_path / "elsewhere.npz"  # was refused as other settings: the same bytes under another path
    shutil.copy(data, moved)
    assert study.existing_study(replace(cfg, data=str(moved))) is not None
    x = np.load(data)
    np.savez(data, **{k: x[k] for k in x.files if k != "X"}, X=x["X"] + 1)
    with pytest.raises(TinyLSTMError, match=r"the data .*jv.npz changed since the study 'tinylstm' started"):
        study.existing_study(cfg)
    # a study started before the data was pinned resumes (its data unverified)
    old = {k: v for k, v in json.loads(json.dumps(cfg.identity())).items() if k != "data_sha256"}
    stored = study._optuna().load_study(study_name=cfg.study_name, storage=cfg.storage_url())
    stored.set_user_attr("identity", old)
    assert study.existing_study(cfg) is not None


def test_a_trial_that_always_fails_stops_the_study_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Failed trials do not count towards --trials: one that always fails would be retried for ever. Each is
    reported in one line (no Optuna traceback); after 3 in a row the study stops with a one-line error."""

    def fails(self: study.Objective, trial: Any) -> float:
        raise TinyLSTMError(f"trial {trial.number}: no luck")

    monkeypatch.setattr(study.Objective, "_run", fails)
    args = ["search", "--data", "watch", "--hop", "256", "--board", BOARD, "--out", str(tmp_path / "s"),
            "--cells", "gru", "--hidden", "8", "--layers", "1", "--hidden-bits", "8", "--readouts", "last",
            "--trials", "5", "--quiet"]  # fmt: skip
    assert main(args) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert err == [
        "trial 0 failed: trial 0: no luck",
        "trial 1 failed: trial 1: no luck",
        "trial 2 failed: trial 2: no luck",
        "tinylstm search: error: 3 trials failed in a row, the last (trial 2): trial 2: no luck; fix that, "
        "then run the same command again to continue the study",
    ], err


def test_failures_in_a_row_count_across_the_studys_workers() -> None:
    """Three failures in a row stop the study whichever workers ran them (was: each worker counted its own, so
    2 workers stopped after up to 6); a finished trial between them starts the count again, and an earlier
    run's failures (before ``since``) do not count."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    st = optuna.create_study()
    fail, ok = optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE
    st.add_trial(optuna.trial.create_trial(state=fail))  # an earlier run's
    since = st.get_trials()[0].datetime_complete + datetime.timedelta(microseconds=1)
    workers = [study._Failures(since), study._Failures(since)]

    def end(state: Any, worker: int) -> None:
        st.add_trial(optuna.trial.create_trial(state=state, value=1.0 if state == ok else None))
        workers[worker](st, st.get_trials()[-1])

    end(fail, 0)
    end(fail, 1)  # 2 in a row: the earlier run's is not counted
    end(ok, 1)  # the count starts again
    end(fail, 0)
    end(fail, 1)
    with pytest.raises(TinyLSTMError, match=r"^3 trials failed in a row, the last \(trial 6\)"):
        end(fail, 1)  # each worker has failed twice in a row, the study three times


def test_the_recipe_stacking_suits_every_window_length(tmp_path: Path) -> None:
    """With --windows 1000,8 the recipe would stack 15 samples for the long windows, more than the short
    ones hold: the one stacking searched is the recipe's choice for the shortest."""
    cfg = config(tmp_path / "s", 1)
    long_only = replace(cfg, space=replace(SPACE, windows=(1000,)))
    assert study.space_stacks(long_only, study._Data(long_only)) == (15,)
    both = replace(cfg, space=replace(SPACE, windows=(1000, 8)))
    assert study.space_stacks(both, study._Data(both)) == (1,)


@pytest.mark.parametrize(
    ("signal", "code", "how"), [(KeyboardInterrupt, 130, "interrupted"), (None, 143, "terminated")]
)
def test_an_interrupted_search_says_how_to_continue(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    signal: Any,
    code: int,
    how: str,
) -> None:
    from tinylstm.host.cli import cmd_search
    from tinylstm.host.cli.main import Terminated

    def stopped(*args: Any, **kw: Any) -> None:
        raise (signal or Terminated)()

    monkeypatch.setattr(cmd_search, "search", stopped)
    assert main(["search", "--data", "watch", "--board", BOARD, "--out", str(tmp_path / "s")]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"tinylstm search: {how}: run the same command again to continue the study"]
    assert study._optuna().logging.get_verbosity() == study._optuna().logging.ERROR  # no trial tracebacks


def test_the_summary_names_the_objective_and_the_best_exports_check_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A regression study's Pareto front is of RMSE, not accuracy; a best export that FAILs tinylstm check
    says so, with the rules that failed, on the console and in search.md."""
    from tinylstm.host.cli import cmd_search

    failed = "the model beats always predicting the majority class"
    measured = {"int8": 1.5, "float": 1.4, "flash_bytes": 4000, "ram_bytes": 100, "latency_ms": None,
                "check_passed": False, "check_failed": [failed]}  # fmt: skip
    params = {"arch": "gru-8x1-h8-last", "cell": "gru", "hidden": 8, "layers": 1, "hidden_bits": 8,
              "readout": "last"}  # fmt: skip
    best = {"number": 0, "state": "complete", "params": params, "measured": measured, "value": 1.5}
    doc = {"counts": {"complete": 1, "pruned": 0, "fail": 0}, "architectures": {"fit": ["a"], "priced": 1},
           "best": best, "trials": [best], "objective": "held-out int8 RMSE",
           "pareto": {"flash": [0], "latency": []},
           "best_export": str(tmp_path / "best-export"), "study": "s", "replaced_study": "old"}  # fmt: skip
    monkeypatch.setattr(cmd_search, "search", lambda *a, **kw: doc)
    assert main(["search", "--data", "watch", "--board", BOARD, "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert (
        "note: search.json, search.md, pareto.png and best-export held study 'old''s results; they now "
        "hold 's''s" in out
    )
    assert "Pareto front, held-out int8 RMSE vs flash: trials [0]" in out and "accuracy" not in out
    assert f"best's export: tinylstm check FAIL: {failed}\n" in out
    # no advice to build (and flash) what its own check refuses
    assert f"next: tinylstm check {tmp_path / 'best-export'} says what failed" in out and "build" not in out
    # best-export a refit (no held-out data): the verdict is named as its trial's export's
    refit = {"done": True, "sequences": 20, "why": "folds", "reused": False, "flash_bytes": 4000}
    doc["refit"], measured["export"] = refit, str(tmp_path / "trial-0")
    assert main(["search", "--data", "watch", "--board", BOARD, "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert f"trial 0's export: tinylstm check FAIL: {failed}\n" in out and "best's export" not in out
    del doc["refit"], measured["export"]
    as_written = {
        **doc,
        "study": "s",
        "board": BOARD,
        "budget": {},
        "direction": "minimize",
        "trials": [best],
        "architectures": {"fit": [], "priced": 1},
    }
    assert f"(tinylstm check FAIL: {failed})." in study.render_md(as_written)
    # refit on all the data: said so; a failed check is read on the trial's own export (the refit has no
    # held-out data)
    refit = {"done": True, "why": "W", "sequences": 24, "reused": False, "flash_bytes": 4000,
             "bit_exact": {"long_stream_steps": 10_000}, "blob_ok": True}  # fmt: skip
    best["measured"]["export"] = str(tmp_path / "trial-export")
    monkeypatch.setattr(cmd_search, "search", lambda *a, **kw: {**doc, "refit": refit})
    assert main(["search", "--data", "watch", "--board", BOARD, "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "refit: its settings trained again on all 24 sequences (W), golden == C bit-exact on them" in out
    assert f"next: tinylstm check {tmp_path / 'trial-export'} says what failed" in out
    md = study.render_md({**as_written, "refit": refit})
    assert "is its settings trained again on all 24 sequences (refit: W), nothing held out" in md
    # the default model weighed against the top score: said on the console and in search.md
    choice = {"kept_default": True, "why": "trial 3 scores ... over 20 cases, each scored by both"}
    monkeypatch.setattr(cmd_search, "search", lambda *a, **kw: {**doc, "choice": choice})
    assert main(["search", "--data", "watch", "--board", BOARD, "--out", str(tmp_path / "s")]) == 0
    assert f"the default model is kept: {choice['why']}\n" in capsys.readouterr().out
    md = study.render_md({**as_written, "choice": choice})
    assert f"The default model, kept: {choice['why']}. " in md


def long_windows(path: Path) -> Path:
    """Window data long enough for the recipe to stack: 2 channels, 3 classes, 24 windows of 320 samples
    (the recipe's choice: k = 320 // 64 = 5)."""
    rng = np.random.default_rng(1)
    n, t, c = 24, 320, 2
    y = np.arange(n) % 3
    x = rng.standard_normal((n, t, c)) * 0.5 + np.sin(np.arange(t) / (4.0 + 4 * y[:, None]))[:, :, None]
    np.savez(path, X=x.astype(np.float32), y=y)
    return path


def test_stacked_architectures_are_priced_per_sample(tmp_path: Path) -> None:
    data = long_windows(tmp_path / "long.npz")
    space = Space(cells=("gru",), hidden=(8,), layers=(1,), hidden_bits=(8,), readouts=("last",))
    # a clocked board: latency in ms (stm32f405, Cortex-M4F at 16 MHz as built); pricing builds nothing for it
    if not countable(get_board("stm32f405")):
        pytest.skip("pricing latency needs arm-none-eabi-gcc")
    cfg = SearchConfig(data=str(data), board="stm32f405", out=tmp_path / "s", space=space, progress=False)
    # by default one value, the recipe's choice for the data: the space does not grow
    assert list(price_space(cfg, get_board("stm32f405"))) == ["gru-8x1-h8-last-k5"]
    assert "stacks" not in cfg.identity()["space"]  # studies started before the knob resume
    # a latency budget reads the latency, so the space is priced with it
    stacked = replace(cfg, space=replace(space, stacks=(1, 4, 16)), budget=Budget(max_latency_ms=1e3))
    prices = price_space(stacked, get_board("stm32f405"))
    assert list(prices) == ["gru-8x1-h8-last", "gru-8x1-h8-last-k4", "gru-8x1-h8-last-k16"]
    G, H, C = cell_type("gru").gates, 8, 2
    one = prices["gru-8x1-h8-last"]
    for k in (1, 4, 16):
        c = prices[Architecture("gru", 8, 1, 8, "last", k).key]
        assert c.stack == k
        # layer 0 reads k * C values per step: its int8 input weights, G * H * k * C bytes, grow with k
        assert c.model_data_bytes - one.model_data_bytes == G * H * (k - 1) * C
        # the firmware links the stacking code only for a stacked model (the same code for every k > 1)
        assert c.flash_bytes == c.model_data_bytes + c.code_bytes
        assert c.code_bytes == one.code_bytes if k == 1 else c.code_bytes > one.code_bytes
        # the state holds the k * C input bytes of the step being filled
        assert c.ram_bytes == 2 * state_words(1, H, 8, False, stack_bytes(k, C, 8)) + STATE_STRUCT_BYTES
    k1, k4, k16 = (prices[key] for key in prices)
    assert k1.ram_bytes < k4.ram_bytes < k16.ram_bytes and k1.flash_bytes < k4.flash_bytes < k16.flash_bytes
    # the layers run once per k samples, the head at each: per sample, latency and instructions drop
    assert k1.latency_ms is not None and k4.latency_ms is not None and k16.latency_ms is not None
    assert k1.latency_ms > k4.latency_ms > k16.latency_ms
    assert k1.instructions is not None and k16.instructions is not None
    assert k16.instructions < k1.instructions / 3
    # the sample that runs the layers costs a whole step of the wider layer 0: more than an unstacked one
    assert k1.peak_instructions == k1.instructions and k1.peak_latency_ms == k1.latency_ms
    assert k16.peak_instructions is not None and k16.peak_instructions > k1.instructions
    # a latency budget bounds the slowest sample, so every sample is answered in time: just above the
    # unstacked step it keeps that model and sets aside the stacked ones, whose layer-running sample is slower
    budget = Budget(max_latency_ms=k1.latency_ms * 1.01)
    assert k4.peak_latency_ms is not None and k4.peak_latency_ms > budget.max_latency_ms  # type: ignore[operator]
    assert fitting(prices, budget) == ["gru-8x1-h8-last"]
    # keys: "-kN" only when stacked, so the keys of studies before stacking still parse
    assert Architecture.parse("lstm-16x2-h16-mean-k22") == Architecture("lstm", 16, 2, 16, "mean", 22)
    assert Architecture.parse("gru-8x1-h8-max") == Architecture("gru", 8, 1, 8, "max", 1)


def test_a_process_measures_an_architecture_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second search in the same process (its own OUT/costs.json) takes the price this process measured."""
    monkeypatch.setattr(cost, "_MEASURED", {})
    calls: list[tuple[Any, ...]] = []
    real = cost.architecture_cost

    def counting(*args: Any) -> cost.Cost:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(cost, "architecture_cost", counting)
    board = get_board("qemu-stm32f405")
    first = CostCache(tmp_path / "a.json", board).get("lstm", 1, 3, 8, 2, ["a", "b"])
    again = CostCache(tmp_path / "b.json", board).get("lstm", 1, 3, 8, 2, ["a", "b"])
    other = CostCache(tmp_path / "b.json", board).get("lstm", 1, 3, 8, 2, ["a", "c"])  # class names: data
    assert first == again and len(calls) == 2 and other.model_data_bytes == first.model_data_bytes
    assert len(json.loads((tmp_path / "b.json").read_text())) == 2  # the file still records both


def test_a_price_without_latency_is_the_full_ones_size_and_builds_once_per_build_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flash, RAM and the board's fit priced without latency are the full price's; the kernel code is
    compiled once per core and build settings (cell, readout pooling, ...), whatever the sizes; a cache
    holding a price without latency measures it when asked, and keeps the fuller one."""
    require_board_tools("stm32f405")
    board = get_board("stm32f405")
    assert countable(board)  # its compiler is here, and unicorn counts its Cortex-M4F
    from tinylstm.host.targets import unicorn_runner

    builds: list[Any] = []
    real = unicorn_runner.build_target

    def counting(*args: Any, **kwargs: Any) -> Any:
        builds.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(cost, "_CODE_BYTES", {})
    monkeypatch.setattr(cost, "_MEASURED", {})
    monkeypatch.setattr(unicorn_runner, "build_target", counting)
    shapes = [("lstm", 1, 8, "last"), ("lstm", 2, 24, "last"), ("gru", 1, 16, "max"), ("gru", 2, 8, "max")]
    quick = [cost.architecture_cost(board, c, n, 3, h, 2, ["a", "b"], readout=r, latency=False)
             for c, n, h, r in shapes]  # fmt: skip
    assert len(builds) == 2  # one per build settings: lstm with the last h, gru pooled
    full = [cost.architecture_cost(board, c, n, 3, h, 2, ["a", "b"], readout=r) for c, n, h, r in shapes]
    assert len(builds) == 6
    for q, f in zip(quick, full, strict=True):
        assert q == replace(f, latency_ms=None, instructions=None, peak_latency_ms=None,
                            peak_instructions=None)  # fmt: skip
        assert not priced_latency(q, board) and priced_latency(f, board) and f.latency_ms is not None
    assert len({q.code_bytes for q in quick}) == 2 and quick[0].model_data_bytes < quick[1].model_data_bytes

    monkeypatch.setattr(cost, "_MEASURED", {})
    cache = CostCache(tmp_path / "costs.json", board)
    assert cache.get("lstm", 1, 3, 8, 2, ["a", "b"], latency=False) == quick[0]
    assert cache.get("lstm", 1, 3, 8, 2, ["a", "b"]) == full[0]  # measured now
    assert cache.get("lstm", 1, 3, 8, 2, ["a", "b"], latency=False) == full[0]  # the fuller one kept
    assert list(json.loads((tmp_path / "costs.json").read_text()).values()) == [full[0].to_dict()]


def test_state_struct_bytes_is_the_kernels() -> None:
    """host/search/cost.py's sizeof(tl_state_t) for a 32-bit target, as arm-none-eabi-gcc lays it out."""
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        pytest.skip("needs arm-none-eabi-gcc")
    src = '#include "tinylstm.h"\nconst unsigned tl_state_size = sizeof(tl_state_t);\n'
    asm = subprocess.run(
        [gcc, "-mcpu=cortex-m4", "-mthumb", "-O2", "-S", "-I", str(csrc_dir()), "-x", "c", "-", "-o", "-"],
        input=src, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert f".word\t{STATE_STRUCT_BYTES}" in asm.split("tl_state_size:")[1].splitlines()[1]


def test_drawn_stacking_reaches_the_checkpoint_and_the_export(tmp_path: Path) -> None:
    data = long_windows(tmp_path / "long.npz")
    space = Space(
        cells=("gru",), hidden=(8,), layers=(1,), hidden_bits=(8,), readouts=("last",), qat=(False,),
        stacks=(1, 4),
    )  # fmt: skip
    cfg = SearchConfig(
        data=str(data), board=BOARD, out=tmp_path / "s", trials=2, space=space, epochs=1, progress=False,
        folds=0,  # the drawn stacking is what this tests, not the score
    )  # fmt: skip
    study = open_study(cfg, "maximize")
    for key in ("gru-8x1-h8-last-k4", "gru-8x1-h8-last"):  # the recipe alone would stack 5
        study.enqueue_trial({"arch": key, "lr": 1e-2, "qat": False})
    doc = search(cfg)
    prices = doc["architectures"]["prices"]
    assert sorted(prices) == ["gru-8x1-h8-last", "gru-8x1-h8-last-k4"]
    assert [t["params"]["stack"] for t in doc["trials"]] == [4, 1]
    for t in doc["trials"]:
        assert_drawn_knob_trained(t, prices, "stack")
        # the price is the export's: layer 0's weights and the stacking buffer included
        m = t["measured"]
        assert m["flash_bytes"] == t["estimate"]["flash_bytes"] == prices[t["params"]["arch"]]["flash_bytes"]
    assert "| 0 | gru | 8 | 1 | 8 | last | 4 | False | False |" in (tmp_path / "s" / "search.md").read_text()
    # the stacking is part of the space: a resumed study with others is refused
    with pytest.raises(TinyLSTMError, match="was started with other settings.*stacks"):
        search(replace(cfg, trials=3, space=replace(space, stacks=(1,))))


def test_a_drawn_bidirectional_architecture_reaches_the_checkpoint_and_the_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(2)
    y = np.arange(24) % 3
    x = rng.standard_normal((24, 20, 3)).astype(np.float32) + y[:, None, None]  # windows of one length
    np.savez(tmp_path / "w.npz", X=x, y=y)
    both = Space(cells=("gru",), hidden=(8,), layers=(1,), readouts=("last",), directions=(False, True))
    # a bidirectional model keeps an int8 h: no gru-8x1-h16-last-bi
    assert [a.key for a in both.architectures()] == [
        "gru-8x1-h8-last",
        "gru-8x1-h8-last-bi",
        "gru-8x1-h16-last",
    ]
    space = replace(both, hidden_bits=(8,), qat=(False, True))
    cfg = SearchConfig(
        data=str(tmp_path / "w.npz"), board=BOARD, out=tmp_path / "s", trials=2, space=space, epochs=1,
        progress=False,
    )  # fmt: skip
    study = open_study(cfg, "maximize")
    study.enqueue_trial({"arch": "gru-8x1-h8-last-bi", "lr": 1e-2})  # a bidirectional trial draws no QAT
    study.enqueue_trial({"arch": "gru-8x1-h8-last", "lr": 1e-2, "qat": False})
    doc = search(cfg)
    prices = doc["architectures"]["prices"]  # each with the instructions its trial counted
    bi, uni = prices["gru-8x1-h8-last-bi"], prices["gru-8x1-h8-last"]
    assert bi["model_data_bytes"] > uni["model_data_bytes"] and bi["ram_bytes"] >= uni["ram_bytes"] + 20 * 3
    assert bi["peak_instructions"] > 2 * uni["peak_instructions"]  # the backward pass at the window's end
    t, _ = doc["trials"]
    assert (
        t["params"]["bidirectional"] and "qat" not in t["params"] and t["measured"]["qat_hidden_bits"] is None
    )
    assert_drawn_knob_trained(t, prices, "bidirectional")
    assert t["measured"]["flash_bytes"] == bi["flash_bytes"]
    # data a bidirectional model cannot run on: one line, nothing started
    np.savez(tmp_path / "ragged.npz", X=x, y=y, lengths=np.where(y == 0, 12, 20))
    args = ["search", "--data", str(tmp_path / "ragged.npz"), "--board", BOARD, "--out", str(tmp_path / "r"),
            "--bidirectional", "--quiet"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--bidirectional needs windows of one length" in err[0], err
    assert not (tmp_path / "r" / "study.db").exists()


def test_a_drawn_int16_input_reaches_qat_and_the_export(tmp_path: Path) -> None:
    """--input-bits 8,16 adds each int8-h architecture with an int16 input (key ``h8x16``; an int16-h model's
    input is int16 already, a bidirectional one keeps int8): a trial that draws it fine-tunes for it and
    exports it, at the price the study drew it at, and search.md says 8x16."""
    rng = np.random.default_rng(3)
    y = np.arange(24) % 3
    x = rng.standard_normal((24, 20, 2)).astype(np.float32) * 0.3 + y[:, None, None]
    x[rng.integers(0, 24, 6), rng.integers(0, 20, 6), 0] = 60.0  # spikes
    np.savez(tmp_path / "w.npz", X=x, y=y)
    space = Space(
        cells=("gru",), hidden=(8,), layers=(1,), readouts=("last",), input_bits=(8, 16), qat=(False, True),
        directions=(False, True),
    )  # fmt: skip
    keys = [a.key for a in space.architectures()]
    assert keys == ["gru-8x1-h8-last", "gru-8x1-h8-last-bi", "gru-8x1-h8x16-last", "gru-8x1-h16-last"]
    assert all(Architecture.parse(k).key == k for k in keys)
    assert Architecture.parse("gru-8x1-h8x16-last").input_bits == 16
    space = replace(space, hidden_bits=(8,), directions=(False,))
    cfg = SearchConfig(
        data=str(tmp_path / "w.npz"), board=BOARD, out=tmp_path / "s", trials=2, space=space, epochs=1,
        progress=False, folds=0,
    )  # fmt: skip
    study = open_study(cfg, "maximize")
    study.enqueue_trial({"arch": "gru-8x1-h8x16-last", "lr": 1e-2, "qat": True})
    study.enqueue_trial({"arch": "gru-8x1-h8-last", "lr": 1e-2, "qat": False})
    doc = search(cfg)
    prices = doc["architectures"]["prices"]
    assert sorted(prices) == ["gru-8x1-h8-last", "gru-8x1-h8x16-last"]
    wide, narrow = doc["trials"]
    assert wide["params"]["input16"] and not narrow["params"]["input16"]
    for t, bits in ((wide, 16), (narrow, 8)):
        m = t["measured"]
        report = json.loads((Path(m["export"]) / "export-report.json").read_text())
        assert m["input_bits"] == report["input_bits"] == bits and report["hidden_bits"] == 8
        assert m["flash_bytes"] == t["estimate"]["flash_bytes"] == prices[t["params"]["arch"]]["flash_bytes"]
        assert m["ram_bytes"] == prices[t["params"]["arch"]]["ram_bytes"]
    _, meta = load_checkpoint(Path(wide["measured"]["export"]).parent / "run" / CHECKPOINT_NAME)
    assert meta.metrics["qat"]["input_bits"] == 16
    assert "| 0 | gru | 8 | 1 | 8x16 | last |" in (tmp_path / "s" / "search.md").read_text()
    # the inputs are part of the space: a resumed study with others is refused
    with pytest.raises(TinyLSTMError, match="was started with other settings.*input_bits"):
        search(replace(cfg, trials=3, space=replace(space, input_bits=(8,))))


POSTGRES = os.environ.get("TINYLSTM_TEST_POSTGRES_URL")


@pytest.mark.skipif(
    not POSTGRES,
    reason="opt-in: set TINYLSTM_TEST_POSTGRES_URL to a PostgreSQL database "
    "(scripts/test-postgres.sh starts one)",
)
def test_two_workers_share_one_study_on_postgresql(tmp_path: Path) -> None:
    name = f"test-{uuid.uuid4().hex[:8]}"
    # a quarter of the windows: the test is about sharing the study, not the models
    cfg = config(tmp_path / "pg", 4, hop=256, storage=POSTGRES, study_name=name, workers=2)
    doc = search(cfg)
    numbers = [t["number"] for t in doc["trials"]]
    # every trial once: none run twice, none lost; a worker may start one while the other finishes the
    # fourth (workers stop starting trials at 4 finished ones, as Optuna's MaxTrialsCallback does)
    assert sorted(numbers) == list(range(len(numbers))) and 4 <= len(numbers) <= 5
    assert {t["worker"] for t in doc["trials"]} == {0, 1}  # both processes ran trials
    params = [json.dumps(t["params"], sort_keys=True) for t in doc["trials"]]
    assert len(set(params)) == len(params)  # the workers' samplers draw different trials
    assert doc["storage"].startswith("127.0.0.1") and not (tmp_path / "pg" / "study.db").exists()
    reread = search(replace(cfg, workers=1))  # the study is in the server: nothing left to run
    assert [t["number"] for t in reread["trials"]] == sorted(numbers)

"""`tinylstm search` (host/search.py): a small study on the shipped watch data respects its budgets,
writes the Pareto files, resumes from its SQLite file and leaves a best export that builds for the QEMU
board; the same study on a real PostgreSQL server with two worker processes shares its trials.

The PostgreSQL test needs a server: set TINYLSTM_TEST_POSTGRES_URL (scripts/test-postgres.sh starts
one on 127.0.0.1 and prints the URL; .ci/run does this)."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from firmware_fixtures import require_board_tools

from tinylstm.host.cli.main import main
from tinylstm.host.firmware import build_firmware
from tinylstm.host.search import Budget, SearchConfig, Space, open_study, search

BOARD = "qemu-stm32f405"
FLASH = 8 * 1024
SPACE = Space(hidden=(8, 12, 64), layers=(1,), qat=(False,))  # small and quick: 1 epoch per trial


def config(out: Path, trials: int, **kw: object) -> SearchConfig:
    return SearchConfig(
        data="watch", board=BOARD, out=out, trials=trials, budget=Budget(max_flash=FLASH, max_ram=512),
        space=SPACE, epochs=1, patience=1, progress=False, dataset_options={"hop": 64}, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_small_search_respects_budget_resumes_and_its_best_export_builds(tmp_path: Path) -> None:
    require_board_tools(BOARD)
    cfg = config(tmp_path / "s", 3)
    # an architecture over the flash budget (LSTM 64 units: 4*64*70 weight bytes alone) is pruned unseen
    study = open_study(cfg, "maximize")
    study.enqueue_trial({"cell": "lstm", "hidden": 64, "layers": 1, "lr": 3e-3, "qat": False})
    study.enqueue_trial({"cell": "gru", "hidden": 8, "layers": 1, "lr": 3e-3, "qat": False})  # fits
    doc = search(cfg)
    first = {t["number"]: t for t in doc["trials"]}
    assert len(first) == 3 and first[0]["state"] == "pruned" and "flash" in first[0]["pruned"]
    assert not (tmp_path / "s" / "trials" / "0000").exists()  # nothing was trained for it
    complete = [t for t in doc["trials"] if t["state"] == "complete"]
    assert complete and all("flash" in t["pruned"] for t in doc["trials"] if t["state"] == "pruned")
    for t in complete:
        m = t["measured"]
        assert m["flash_bytes"] <= FLASH and m["ram_bytes"] <= 512 and 0 < m["int8"] <= 100
        assert m["flash_bytes"] == t["estimate"]["flash_bytes"]  # the size is known before training
        assert isinstance(m["check_passed"], bool)  # every trained trial's export went through check
    for name in ("search.json", "search.md", "pareto.png", "study.db"):
        assert (tmp_path / "s" / name).stat().st_size > 0
    assert doc["pareto"]["flash"] and set(doc["pareto"]["flash"]) <= {t["number"] for t in complete}
    assert "| trial | cell |" in (tmp_path / "s" / "search.md").read_text()

    doc2 = search(replace(cfg, trials=4))  # resume: the three trials stay, one more runs
    assert [t["number"] for t in doc2["trials"]] == [0, 1, 2, 3]
    assert {t["number"]: t["params"] for t in doc2["trials"][:3]} == {
        n: t["params"] for n, t in first.items()
    }
    best = doc2["best"]
    assert best["value"] == max(t["value"] for t in doc2["trials"] if t["state"] == "complete")
    build = build_firmware(Path(doc2["best_export"]), BOARD, tmp_path / "fw")
    assert build.elf is not None and build.elf.stat().st_size > 0
    assert json.loads((tmp_path / "s" / "search.json").read_text())["best"]["number"] == best["number"]


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
        (["--max-flash", "3x"], "size '3x'"),
        (["--max-latency-ms", "1"], "qemu-stm32f405 has no counted core and clock"),
        (["--hidden", "8,a"], "--hidden '8,a'"),
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


POSTGRES = os.environ.get("TINYLSTM_TEST_POSTGRES_URL")


@pytest.mark.skipif(
    not POSTGRES,
    reason="opt-in: set TINYLSTM_TEST_POSTGRES_URL to a PostgreSQL database "
    "(scripts/test-postgres.sh starts one)",
)
def test_two_workers_share_one_study_on_postgresql(tmp_path: Path) -> None:
    name = f"test-{uuid.uuid4().hex[:8]}"
    cfg = config(tmp_path / "pg", 4, storage=POSTGRES, study_name=name, workers=2)
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

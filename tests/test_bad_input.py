"""Every bad input, one table: exit code 2, one line on stderr naming the problem and the fix, no traceback,
and nothing written to the output directory.

Each case builds its damaged input in a fresh directory (a small model trained once on synthetic data
provides the good files to damage) and names the output directory the command must leave alone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tinylstm.errors import TinyLSTMError
from tinylstm.host.cli.main import main
from tinylstm.trainer.data import split
from tinylstm.trainer.sequence_set import SequenceSet


@dataclass
class Case:
    argv: list[str]
    message: str  # a fragment of the one-line error
    untouched: Path  # must not exist after the command, or be unchanged if it did
    cwd: Path | None = None


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained, exported tiny model: run/model.pt, run/export/, data.npz."""
    root = tmp_path_factory.mktemp("good")
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    x = rng.standard_normal((90, 24, 3)).astype(np.float32) + y[:, None, None]
    np.savez(root / "data.npz", X=x, y=y)
    assert (
        main(
            [
                "train",
                "--data",
                str(root / "data.npz"),
                "--hidden",
                "8",
                "--epochs",
                "2",
                "--quiet",
                "--out",
                str(root / "run"),
            ]
        )
        == 0
    )
    assert main(["export", str(root / "run" / "model.pt"), "--out", str(root / "run" / "export")]) == 0
    return root


def _copy_export(good: Path, tmp: Path) -> Path:
    shutil.copytree(good / "run" / "export", tmp / "export")
    return tmp / "export"


def _rnn_state_dict(extra: dict[str, torch.Tensor] | None = None, rnn: nn.Module | None = None) -> dict:
    rnn = rnn or nn.LSTM(3, 20, batch_first=True)
    sd = {f"rnn.{k}": v for k, v in rnn.state_dict().items()}
    return {**sd, **(extra or {}), "fc.weight": torch.zeros(3, 20), "fc.bias": torch.zeros(3)}


def _user_sd(tmp: Path, good: Path, sd: dict) -> Case:
    torch.save(sd, tmp / "sd.pt")
    (tmp / "desc.json").write_text(json.dumps({"classes": ["a", "b", "c"]}))
    return Case(
        [
            "export",
            str(tmp / "sd.pt"),
            "--description",
            str(tmp / "desc.json"),
            "--data",
            str(good / "data.npz"),
            "--out",
            str(tmp / "out"),
        ],
        "",
        tmp / "out",
    )


def case_truncated_checkpoint(tmp: Path, good: Path) -> Case:
    data = (good / "run" / "model.pt").read_bytes()
    (tmp / "t.pt").write_bytes(data[: len(data) // 2])
    return Case(
        ["export", str(tmp / "t.pt"), "--out", str(tmp / "out")],
        "is not a readable PyTorch file",
        tmp / "out",
    )


def case_junk_checkpoint(tmp: Path, good: Path) -> Case:
    (tmp / "junk.pt").write_bytes(np.random.default_rng(1).bytes(3000))
    return Case(
        ["export", str(tmp / "junk.pt"), "--out", str(tmp / "out")], "corrupt or truncated", tmp / "out"
    )


def case_missing_checkpoint(tmp: Path, good: Path) -> Case:
    return Case(["export", str(tmp / "nope.pt"), "--out", str(tmp / "out")], "does not exist", tmp / "out")


def case_truncated_int_model(tmp: Path, good: Path) -> Case:
    exp = _copy_export(good, tmp)
    npz = exp / "int_model.npz"
    npz.write_bytes(npz.read_bytes()[:300])
    return Case(["check", str(exp)], "int_model.npz, int_model.json) are damaged", exp / "check-report.json")


def case_check_a_file(tmp: Path, good: Path) -> Case:
    (tmp / "some_file").write_text("x")
    return Case(
        ["check", str(tmp / "some_file")], "is a file, not an export directory", tmp / "check-report.json"
    )


def case_check_missing_dir(tmp: Path, good: Path) -> Case:
    return Case(["check", str(tmp / "nope")], "is missing, not an export directory", tmp / "nope")


def case_float_model_deleted(tmp: Path, good: Path) -> Case:
    exp = _copy_export(good, tmp)
    (exp / "float_model.npz").unlink()
    return Case(["check", str(exp)], "float_model.npz is missing", exp / "check-report.json")


def case_float_model_replaced(tmp: Path, good: Path) -> Case:
    exp = _copy_export(good, tmp)
    z = dict(np.load(exp / "float_model.npz"))
    z["head_b"] = z["head_b"] + 0.5
    np.savez(exp / "float_model.npz", **z)  # type: ignore[arg-type]
    return Case(
        ["check", str(exp)], "is not the float model this export was made from", exp / "check-report.json"
    )


def case_data_changed_since_export(tmp: Path, good: Path) -> Case:
    shutil.copytree(good, tmp / "g")
    assert (
        main(
            [
                "export",
                str(tmp / "g" / "run" / "model.pt"),
                "--data",
                str(tmp / "g" / "data.npz"),
                "--out",
                str(tmp / "exp"),
            ]
        )
        == 0
    )  # pins tmp/g/data.npz
    z = dict(np.load(tmp / "g" / "data.npz"))
    z["X"] = z["X"] * 1.5
    np.savez(tmp / "g" / "data.npz", **z)  # type: ignore[arg-type]
    # the checkpoint pins the file too: the fix is not "--data FILE" (was offered, then refused)
    message = "changed since the export (SHA-256 differs): restore it, or train again"
    return Case(["check", str(tmp / "exp")], message, tmp / "exp" / "check-report.json")


def case_check_other_format_data_for_a_csv_model(tmp: Path, good: Path) -> Case:
    """Was: "option(s) target do not apply to watch", naming a flag the user never gave (the CSV's)."""
    rows = "".join(f"{k % 7},{(k * 3) % 5},{k % 2}\n" for k in range(200))
    (tmp / "d.csv").write_text("a,b,y\n" + rows)
    assert main(["train", "--data", str(tmp / "d.csv"), "--target", "y", "--window", "20", "--epochs", "1",
                 "--quiet", "--out", str(tmp / "o")]) == 0  # fmt: skip
    assert main(["export", str(tmp / "o" / "model.pt"), "--out", str(tmp / "e")]) == 0
    message = "watch is not the kind of data the model was trained on"
    return Case(["check", str(tmp / "e"), "--data", "watch"], message, tmp / "e" / "check-report.json")


def case_train_out_is_a_file(tmp: Path, good: Path) -> Case:
    (tmp / "existing_file").write_text("keep me")
    return Case(
        [
            "train",
            "--data",
            str(good / "data.npz"),
            "--epochs",
            "1",
            "--hidden",
            "8",
            "--out",
            str(tmp / "existing_file"),
        ],
        "is a file, not a directory",
        tmp / "existing_file",
    )


def case_train_out_below_a_file(tmp: Path, good: Path) -> Case:
    (tmp / "f").write_text("keep me")
    return Case(
        ["train", "--data", str(good / "data.npz"), "--out", str(tmp / "f" / "run")],
        "is a file, not a directory",
        tmp / "f",
    )


def case_train_zero_threads(tmp: Path, good: Path) -> Case:
    return Case(
        ["train", "--data", str(good / "data.npz"), "--threads", "0", "--out", str(tmp / "run")],
        "threads=0: this machine has",
        tmp / "run",
    )


def case_layernorm_between_rnn_and_head(tmp: Path, good: Path) -> Case:
    c = _user_sd(tmp, good, _rnn_state_dict({"norm.weight": torch.ones(20), "norm.bias": torch.zeros(20)}))
    c.message = "holds norm.weight, norm.bias, which an RNN -> Linear model does not use"
    return c


def case_elman_rnn_state_dict_without_its_cell(tmp: Path, good: Path) -> Case:
    """An nn.RNN state_dict cannot show tanh or relu: its description must name the cell."""
    c = _user_sd(tmp, good, _rnn_state_dict(rnn=nn.RNN(3, 20, batch_first=True)))
    c.message = "whose state_dict does not show nonlinearity='tanh'; if it was built with that, add \"cell\""
    return c


def case_rnn_without_bias(tmp: Path, good: Path) -> Case:
    c = _user_sd(tmp, good, _rnn_state_dict(rnn=nn.LSTM(3, 20, batch_first=True, bias=False)))
    c.message = "an RNN built with bias=False is not supported"
    return c


def _csv(tmp: Path, bad_row: int, value: str) -> Path:
    rows = ["a,b,label"] + [f"{k * 0.1:.2f},{(k % 7) * 0.3:.2f},{k % 2}" for k in range(300)]
    a, _, label = rows[bad_row].split(",")
    rows[bad_row] = f"{a},{value},{label}"
    (tmp / "d.csv").write_text("\n".join(rows) + "\n")
    return tmp / "d.csv"


def case_csv_text_in_a_numeric_column(tmp: Path, good: Path) -> Case:
    return Case(
        ["train", "--data", str(_csv(tmp, 57, "oops")), "--out", str(tmp / "run")],
        "row 58 column 'b' has 'oops', which is not a number",
        tmp / "run",
    )  # line 58 of the file


def case_csv_empty_cell(tmp: Path, good: Path) -> Case:
    return Case(
        ["train", "--data", str(_csv(tmp, 120, "")), "--out", str(tmp / "run")],
        "row 121 column 'b' is empty",
        tmp / "run",
    )


def case_ts_missing_value(tmp: Path, good: Path) -> Case:
    lines = [
        "@problemName x",
        "@timeStamps false",
        "@missing true",
        "@univariate true",
        "@equalLength true",
        "@seriesLength 4",
        "@classLabel true a b",
        "@data",
        "1,2,3,4:a",
        "1,?,3,4:b",
        "4,3,2,1:a",
        "2,2,2,2:b",
    ]
    (tmp / "m.ts").write_text("\n".join(lines) + "\n")
    return Case(
        ["train", "--data", str(tmp / "m.ts"), "--out", str(tmp / "run")],
        "--missing interpolate",
        tmp / "run",
    )


def case_module_class_defined_in_a_script(tmp: Path, good: Path) -> Case:
    script = (
        "import torch\nfrom torch import nn\nclass Net(nn.Module):\n    def __init__(self):\n        "
        "super().__init__()\n        self.rnn = nn.LSTM(3, 8, batch_first=True)\n        "
        "self.fc = nn.Linear(8, 3)\n    def forward(self, x):\n        return self.fc(self.rnn(x)[0])\n"
        f"torch.save(Net(), {str(tmp / 'main.pt')!r})\n"
    )
    (tmp / "train_script.py").write_text(script)
    import subprocess

    subprocess.run([sys.executable, str(tmp / "train_script.py")], check=True)
    return Case(
        [
            "export",
            str(tmp / "main.pt"),
            "--trust-module",
            "--data",
            str(good / "data.npz"),
            "--description",
            str(_desc(tmp)),
            "--out",
            str(tmp / "out"),
        ],
        "defined in the script that saved it (__main__)",
        tmp / "out",
    )


def _desc(tmp: Path) -> Path:
    (tmp / "desc.json").write_text(json.dumps({"classes": ["a", "b", "c"]}))
    return tmp / "desc.json"


def case_module_class_not_on_the_path(tmp: Path, good: Path) -> Case:
    mod = tmp / "lib"
    mod.mkdir()
    _write_module(mod, "tl_user_net_elsewhere")
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return Case(
        [
            "export",
            str(mod / "net.pt"),
            "--trust-module",
            "--data",
            str(good / "data.npz"),
            "--description",
            str(_desc(tmp)),
            "--out",
            str(tmp / "out"),
        ],
        "run tinylstm from the directory of the module",
        tmp / "out",
        cwd=elsewhere,
    )


def case_stream_log_suffix(tmp: Path, good: Path) -> Case:
    return Case(
        ["stream", "--port", "loop://", "--log", str(tmp / "out.txt")],
        "use a .csv or .jsonl file name",
        tmp / "out.txt",
    )


def case_stream_another_source_and_the_feed(tmp: Path, good: Path) -> Case:
    """Was: streamed the fed data, the board switched to sensor and straight back to host without a word."""
    exp = str(good / "run" / "export")
    argv = ["stream", "--port", "loop://", "--export", exp, "--source", "sensor", "--feed", "held-out"]
    return Case([*argv, "--log", str(tmp / "p.csv")], "--source sensor with --feed held-out", tmp / "p.csv")


def case_parity_zero_steps(tmp: Path, good: Path) -> Case:
    return Case(
        ["parity", str(good / "run" / "export"), "--port", "loop://", "--steps", "0"],
        "--steps must be positive",
        tmp / "parity-report.json",
    )


def case_user_model_without_data(tmp: Path, good: Path) -> Case:
    torch.save(_rnn_state_dict(), tmp / "sd.pt")
    return Case(
        ["export", str(tmp / "sd.pt"), "--description", str(_desc(tmp)), "--out", str(tmp / "out")],
        "a user model needs real data for calibration: pass --data",
        tmp / "out",
    )


def _write_module(where: Path, name: str) -> None:
    """A module defining an RNN -> Linear class, and a module pickled from it (net.pt)."""
    (where / f"{name}.py").write_text(
        "from torch import nn\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.rnn = nn.LSTM(3, 8, batch_first=True)\n        self.fc = nn.Linear(8, 3)\n"
        "    def forward(self, x):\n        return self.fc(self.rnn(x)[0])\n"
    )
    sys.path.insert(0, str(where))
    try:
        module = __import__(name)
        torch.save(module.Net(), where / "net.pt")
    finally:
        sys.path.remove(str(where))
        sys.modules.pop(name, None)


def _train(good: Path, tmp: Path, *extra: str) -> Case:
    argv = ["train", "--data", str(good / "data.npz"), "--epochs", "1", "--quiet", "--out", str(tmp / "o")]
    return Case([*argv, *extra], "", tmp / "o")


def case_train_negative_seed(tmp: Path, good: Path) -> Case:
    c = _train(good, tmp, "--seed", "-1")
    c.message = "seed=-1 must be in 0..4294967295"
    return c


def case_train_more_threads_than_cores(tmp: Path, good: Path) -> Case:
    c = _train(good, tmp, "--threads", "100000")  # PyTorch segfaulted on this
    c.message = "threads=100000: this machine has"
    return c


def case_train_infinite_learning_rate(tmp: Path, good: Path) -> Case:
    c = _train(good, tmp, "--lr", "inf")
    c.message = "must be finite and > 0"
    return c


def _parity(good: Path, tmp: Path, *extra: str) -> Case:
    exp = _copy_export(good, tmp)
    (tmp / "fw.elf").write_bytes(b"\x7fELF")
    argv = ["parity", str(exp), "--qemu", str(tmp / "fw.elf"), "--report", str(tmp / "r.json")]
    return Case([*argv, *extra], "", tmp / "r.json")


def case_parity_report_over_the_exports_c(tmp: Path, good: Path) -> Case:
    """Was: the report replaced tl_model.c, and build then refused the export as edited."""
    c = _parity(good, tmp)
    c.argv[c.argv.index("--report") + 1] = str(tmp / "export" / "tl_model.c")
    c.message = "is one of the export's own files"
    c.untouched = tmp / "export" / "tl_model.c"
    return c


def case_check_json_over_the_exports_int_model(tmp: Path, good: Path) -> Case:
    """Was: PASS, then every later command found the export damaged."""
    exp = _copy_export(good, tmp)
    return Case(
        ["check", str(exp), "--json", str(exp / "int_model.json")], "own files", exp / "int_model.json"
    )


def test_a_refused_run_leaves_no_earlier_verdict(good: Path, tmp_path: Path) -> None:
    """A parity run refused on the way (no board answers) or a refused check left the last run's report, which
    said PASS, in place for a CI job to read."""
    exp = _copy_export(good, tmp_path)
    assert main(["check", str(exp)]) == 0 and (exp / "check-report.json").is_file()
    (exp / "float_model.npz").unlink()
    assert main(["check", str(exp)]) == 2
    assert not (exp / "check-report.json").exists()
    (exp / "parity-report.json").write_text('{"passed": true}')
    assert main(["parity", str(exp), "--port", "loop://", "--steps", "5"]) == 2
    assert not (exp / "parity-report.json").exists()


def case_parity_nan_stall_timeout(tmp: Path, good: Path) -> Case:
    c = _parity(good, tmp, "--stall-timeout", "nan")  # nan turned a stall into a hang
    c.message = "--stall-timeout nan: give a finite number of seconds > 0"
    return c


def case_parity_negative_reconnect_timeout(tmp: Path, good: Path) -> Case:
    c = _parity(good, tmp, "--reconnect-timeout", "-1")
    c.message = "--reconnect-timeout -1.0: give a finite number of seconds >= 0"
    return c


def _prune(good: Path, tmp: Path, *extra: str) -> Case:
    return Case(["prune", str(good / "run" / "model.pt"), "--out", str(tmp / "p"), *extra], "", tmp / "p")


def case_prune_below_one_unit(tmp: Path, good: Path) -> Case:
    c = _prune(good, tmp, "--hidden", "0")
    c.message = "--hidden 0: a layer keeps at least one unit; give 1 to 7"
    return c


def case_prune_to_as_many_units_as_it_has(tmp: Path, good: Path) -> Case:
    c = _prune(good, tmp, "--hidden", "8")
    c.message = "already has 8 units per layer, nothing to prune"
    return c


def case_prune_budget_already_met(tmp: Path, good: Path) -> Case:
    c = _prune(good, tmp, "--board", "stm32f405", "--max-flash", "1M")
    c.message = "the model already meets flash <= 1048576 B on stm32f405"
    return c


def case_prune_budget_out_of_reach(tmp: Path, good: Path) -> Case:
    c = _prune(good, tmp, "--board", "stm32f405", "--max-flash", "1k")
    c.message = "even one unit per layer does not meet flash <= 1024 B"
    return c


def case_prune_without_a_target(tmp: Path, good: Path) -> Case:
    c = _prune(good, tmp)
    c.message = "give a target: --hidden N, or --board"
    return c


def case_prune_into_its_own_run_directory_given_as_the_model(tmp: Path, good: Path) -> Case:
    """Was: `prune RUN --out RUN` (the model given as its run directory) replaced RUN/model.pt."""
    shutil.copytree(good / "run", tmp / "run")
    argv = ["prune", str(tmp / "run"), "--out", str(tmp / "run"), "--hidden", "4"]
    return Case(argv, "holds the model being pruned", tmp / "run" / "model.pt")


def case_prune_into_another_training_run(tmp: Path, good: Path) -> Case:
    """Was: replaced that run's model.pt, its metrics.json and curves.png left describing the old model."""
    shutil.copytree(good / "run", tmp / "other")
    c = _prune(good, tmp, "--hidden", "4")
    c.argv[3], c.untouched = str(tmp / "other"), tmp / "other" / "model.pt"
    c.message = "holds another training run's model.pt; give a new directory"
    return c


def case_prune_budget_without_a_board(tmp: Path, good: Path) -> Case:
    c = _prune(good, tmp, "--max-flash", "4k")
    c.message = "a budget is a board's: give --board"
    return c


def case_export_out_is_a_file(tmp: Path, good: Path) -> Case:
    (tmp / "afile").write_text("keep me")
    return Case(
        ["export", str(good / "run" / "model.pt"), "--out", str(tmp / "afile")],
        "is a file, not a directory",
        tmp / "afile",
    )


def case_search_with_an_option_it_does_not_have(tmp: Path, good: Path) -> Case:
    """Was: `tinylstm: error: unrecognized arguments: ...`, pointing at the top-level --help."""
    argv = ["search", "--data", "watch", "--board", "stm32f405", "--timeout", "5", "--out", str(tmp / "s")]
    return Case(
        argv, "unrecognized arguments: --timeout 5 (`tinylstm search --help` lists the options)", tmp / "s"
    )


def case_export_input_bits_not_a_width(tmp: Path, good: Path) -> Case:
    return Case(
        ["export", str(good / "run" / "model.pt"), "--input-bits", "12", "--out", str(tmp / "out")],
        "'12' is not an input width: choose 8, 16 or auto",
        tmp / "out",
    )


def case_export_out_not_writable(tmp: Path, good: Path) -> Case:
    return Case(
        ["export", str(good / "run" / "model.pt"), "--out", "/proc/tinylstm-export"],
        "cannot write in /proc",
        tmp / "never",
    )


def case_train_out_not_writable(tmp: Path, good: Path) -> Case:
    c = _train(good, tmp)
    c.argv[c.argv.index("--out") + 1] = "/proc/tinylstm-run"
    c.message = "--out /proc/tinylstm-run: cannot write in /proc"
    return c


def case_check_json_in_a_missing_directory(tmp: Path, good: Path) -> Case:
    exp = _copy_export(good, tmp)
    return Case(
        ["check", str(exp), "--json", str(tmp / "missing" / "r.json")],
        "the directory",
        exp / "check-report.json",
    )


def case_explain_no_steps(tmp: Path, good: Path) -> Case:
    """Was: "--sequences 1 and --max-steps 0 must be >= 1", naming a valid option beside the bad one."""
    exp = _copy_export(good, tmp)
    argv = ["explain", str(exp), "--max-steps", "0", "--out", str(tmp / "x")]
    return Case(argv, "--max-steps 0: give a number >= 1", tmp / "x")


def case_explain_out_is_a_file(tmp: Path, good: Path) -> Case:
    exp = _copy_export(good, tmp)
    (tmp / "afile").write_text("keep me")
    return Case(
        ["explain", str(exp), "--out", str(tmp / "afile")], "is a file, not a directory", tmp / "afile"
    )


def case_build_out_not_writable(tmp: Path, good: Path) -> Case:
    exp = _copy_export(good, tmp)
    return Case(
        ["build", str(exp), "--out", "/proc/tinylstm-fw"],
        "cannot write in /proc (it takes no new files)",
        exp / "firmware",
    )


def case_parity_report_in_a_missing_directory(tmp: Path, good: Path) -> Case:
    c = _parity(good, tmp)
    c.argv[c.argv.index("--report") + 1] = str(tmp / "missing" / "r.json")
    c.message = "the directory"
    c.untouched = tmp / "missing"
    return c


def case_train_on_an_empty_npz(tmp: Path, good: Path) -> Case:
    np.savez(tmp / "empty.npz", X=np.zeros((0, 24, 3), np.float32), y=np.zeros(0, np.int64))
    return Case(
        ["train", "--data", str(tmp / "empty.npz"), "--out", str(tmp / "run")],
        "no sequences or no steps",
        tmp / "run",
    )


def case_flash_a_file_that_is_not_an_elf(tmp: Path, good: Path) -> Case:
    (tmp / "fw.elf").write_bytes(np.random.default_rng(2).bytes(100))  # QEMU would wait for a client
    return Case(["flash", str(tmp / "fw.elf")], "is not an ELF file", tmp / "never")


def case_flash_an_empty_file_to_a_board(tmp: Path, good: Path) -> Case:
    (tmp / "fw.elf").write_bytes(b"")  # a probe would be started on it
    return Case(["flash", str(tmp / "fw.elf"), "--board", "stm32f405"], "is not an ELF file", tmp / "never")


def case_checkpoint_with_a_flipped_bit(tmp: Path, good: Path) -> Case:
    path = good / "run" / "model.pt"
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:  # the largest record: the recurrent weights
        weights = max(archive.infolist(), key=lambda info: info.compress_size)
    at = weights.header_offset  # its data follow the 30-byte local header, the name and the extra field
    name_and_extra = int.from_bytes(data[at + 26 : at + 28], "little") + int.from_bytes(
        data[at + 28 : at + 30], "little"
    )
    data[at + 30 + name_and_extra + weights.compress_size // 2] ^= 0x10  # torch.load alone loads it silently
    (tmp / "flip.pt").write_bytes(bytes(data))
    return Case(
        ["export", str(tmp / "flip.pt"), "--out", str(tmp / "out")], "fails its CRC-32 check", tmp / "out"
    )


def case_stream_with_a_damaged_export_report(tmp: Path, good: Path) -> Case:
    exp = _copy_export(good, tmp)
    report = exp / "export-report.json"
    report.write_text(report.read_text()[:-40])
    return Case(
        ["stream", "--port", "socket://127.0.0.1:9", "--export", str(exp), "--log", str(tmp / "p.csv")],
        "export-report.json is damaged",
        tmp / "p.csv",
    )


def case_stream_with_an_export_whose_classes_were_edited(tmp: Path, good: Path) -> Case:
    """The labels stream prints come from int_model.json, which the model hash does not cover: an edited class
    list would name every prediction wrongly."""
    exp = _copy_export(good, tmp)
    doc = json.loads((exp / "int_model.json").read_text())
    doc["meta"]["classes"] = doc["meta"]["classes"][::-1]
    (exp / "int_model.json").write_text(json.dumps(doc))
    return Case(
        ["stream", "--port", "loop://", "--export", str(exp), "--log", str(tmp / "p.csv")],
        "is not the C that the export's model",
        tmp / "p.csv",
    )


def case_stream_log_into_a_directory(tmp: Path, good: Path) -> Case:
    (tmp / "d.csv").mkdir()
    return Case(["stream", "--port", "loop://", "--log", str(tmp / "d.csv")], "is a directory", tmp / "x")


def case_stream_log_where_nothing_can_be_written(tmp: Path, good: Path) -> Case:
    return Case(["stream", "--port", "loop://", "--log", "/proc/p.csv"], "--log /proc/p.csv", tmp / "x")


def case_stream_negative_baud(tmp: Path, good: Path) -> Case:
    return Case(
        ["stream", "--port", "loop://", "--baud", "-5"], "--baud -5: give the board's UART rate", tmp / "x"
    )


def case_stream_from_a_file_that_is_no_serial_port(tmp: Path, good: Path) -> Case:
    return Case(["stream", "--port", "/dev/null"], "/dev/null is not a serial port", tmp / "x")


def case_parity_more_steps_than_a_run_holds(tmp: Path, good: Path) -> Case:
    return Case(
        ["parity", str(good / "run" / "export"), "--port", "loop://", "--steps", "1000000000000"],
        "at most 10,000,000 per run",
        tmp / "parity-report.json",
    )


def case_build_more_replay_than_the_flash_holds(tmp: Path, good: Path) -> Case:
    argv = ["build", str(good / "run" / "export"), "--source", "replay", "--replay-steps", "100000000"]
    return Case(
        [*argv, "--out", str(tmp / "fw")],
        "the replay data does not fit qemu-stm32f405",
        tmp / "fw",
    )


def case_build_from_an_edited_model_c(tmp: Path, good: Path) -> Case:
    exp = _copy_export(good, tmp)
    c = exp / "tl_model.c"
    text = c.read_text()
    i = text.index("weights")  # the first weight array: change one digit of it
    j = next(k for k in range(text.index("{", i), len(text)) if text[k] in "123456789")
    c.write_text(text[:j] + ("2" if text[j] != "2" else "3") + text[j + 1 :])
    return Case(
        ["build", str(exp), "--out", str(tmp / "fw")],
        "is not the C that the export's model",
        tmp / "fw",
    )


def case_build_negative_replay_period(tmp: Path, good: Path) -> Case:
    exp = _copy_export(good, tmp)
    argv = ["build", str(exp), "--replay-period-ms", "-5", "--out", str(tmp / "fw")]
    return Case(argv, "--replay-period-ms -5: give 0", tmp / "fw")


def case_build_replay_period_without_replay_data(tmp: Path, good: Path) -> Case:
    """Was: accepted and ignored (a host-fed firmware has nothing to pace)."""
    exp = _copy_export(good, tmp)
    argv = ["build", str(exp), "--replay-period-ms", "5", "--out", str(tmp / "fw")]
    return Case(argv, "this firmware embeds no replay data: give --source replay", tmp / "fw")


def case_build_negative_replay_steps(tmp: Path, good: Path) -> Case:
    exp = _copy_export(good, tmp)
    argv = ["build", str(exp), "--replay-steps", "-1", "--out", str(tmp / "fw")]
    return Case(argv, "--replay-steps -1: give a number of samples >= 0", tmp / "fw")


def case_build_a_file_where_the_project_goes(tmp: Path, good: Path) -> Case:
    """Was: a FileExistsError/NotADirectoryError traceback, after gen/ and build.json were written."""
    exp = _copy_export(good, tmp)
    (tmp / "fw").mkdir()
    (tmp / "fw" / "pio").write_text("keep me")
    return Case(
        ["build", str(exp), "--board", "esp32dev", "--out", str(tmp / "fw")],
        "fw/pio is a file, where the build writes a directory",
        tmp / "fw" / "gen",
    )


def case_build_into_a_directory_of_other_files(tmp: Path, good: Path) -> Case:
    """Was: a PlatformIO/ESP-IDF/Arduino build deleted obj/, tinylstm.map and size-report.* from any --out,
    whoever had put them there."""
    exp = _copy_export(good, tmp)
    (tmp / "myproj" / "obj").mkdir(parents=True)
    (tmp / "myproj" / "obj" / "important.c").write_text("my work")
    return Case(
        ["build", str(exp), "--board", "esp32dev", "--out", str(tmp / "myproj")],
        "holds files that are not an earlier build's (no build.json)",
        tmp / "myproj" / "obj" / "important.c",
    )


def case_build_a_bare_metal_sensor_firmware(tmp: Path, good: Path) -> Case:
    """Was: built, booting into the weak tl_sensor_read() that never has a sample."""
    exp = _copy_export(good, tmp)
    argv = ["build", str(exp), "--board", "stm32f405", "--source", "sensor", "--out", str(tmp / "fw")]
    return Case(argv, "this build links only its weak default", tmp / "fw")


def test_the_api_takes_the_input_source_by_its_name_only(good: Path, tmp_path: Path) -> None:
    """source="Replay" booted the firmware into replay with no replay data embedded: it never predicted."""
    from tinylstm.api import build

    with pytest.raises(TinyLSTMError, match="unknown input source 'Replay': choose host, replay, sensor"):
        build(good / "run" / "export", "qemu-stm32f405", source="Replay", out=tmp_path / "fw")
    assert not (tmp_path / "fw").exists()


def case_build_where_the_elf_is_a_directory(tmp: Path, good: Path) -> Case:
    """Was: the linker's whole command and output, many lines."""
    exp = _copy_export(good, tmp)
    (tmp / "fw" / "tinylstm.elf").mkdir(parents=True)
    (tmp / "fw" / "build.json").write_text("{}")
    return Case(
        ["build", str(exp), "--out", str(tmp / "fw")],
        "tinylstm.elf is a directory, where the build writes a file",
        tmp / "fw" / "gen",
    )


def case_build_whose_gen_is_the_export_directory(tmp: Path, good: Path) -> Case:
    """Was: shutil.SameFileError (an export in a directory named gen, --out its parent)."""
    shutil.copytree(good / "run" / "export", tmp / "gen")
    return Case(
        ["build", str(tmp / "gen"), "--board", "arduino-lib", "--out", str(tmp)],
        "the build would write its gen/ into the export directory",
        tmp / "TinyLSTM",
    )


def case_export_on_regression_data_for_a_classifier(tmp: Path, good: Path) -> Case:
    z = np.load(good / "data.npz")
    np.savez(tmp / "reg.npz", X=z["X"], y=z["y"].astype(np.float32) * 0.5)
    argv = ["export", str(good / "run" / "model.pt"), "--data", str(tmp / "reg.npz"), "--out", str(tmp / "e")]
    return Case(argv, "task 'regression' (the model's: 'classification')", tmp / "e")


def case_check_on_data_with_other_classes(tmp: Path, good: Path) -> Case:
    exp = _copy_export(good, tmp)
    z = np.load(good / "data.npz")
    np.savez(tmp / "two.npz", X=z["X"], y=np.arange(len(z["y"])) % 2)
    return Case(
        ["check", str(exp), "--data", str(tmp / "two.npz")],
        "classes ['0', '1'] (the model's: ['0', '1', '2'])",
        exp / "check-report.json",
    )


def case_export_on_a_stream_csv_with_other_channels(tmp: Path, good: Path) -> Case:
    rows = [f"{k // 30},{k * 0.01:.2f},{-k * 0.02:.2f},{k % 3}" for k in range(90)]
    (tmp / "s.csv").write_text("seq,a,b,label\n" + "\n".join(rows) + "\n")
    argv = ["export", str(good / "run" / "model.pt"), "--data", str(tmp / "s.csv"), "--out", str(tmp / "e")]
    return Case(argv, "mode 'stream' (the model's: 'window'); channels ['seq', 'a', 'b']", tmp / "e")


def case_export_after_the_training_data_changed(tmp: Path, good: Path) -> Case:
    shutil.copy(good / "data.npz", tmp / "d.npz")
    argv = ["train", "--data", str(tmp / "d.npz"), "--epochs", "1", "--hidden", "4", "--quiet"]
    assert main([*argv, "--out", str(tmp / "run")]) == 0
    z = dict(np.load(tmp / "d.npz"))
    np.savez(tmp / "d.npz", X=z["X"] * 1000, y=z["y"])  # same shape and classes, other values
    return Case(
        ["export", str(tmp / "run" / "model.pt"), "--out", str(tmp / "e")],
        "d.npz changed since the model was trained (SHA-256 differs): pass the original data with --data",
        tmp / "e",
    )


def _edit_int_model(good: Path, tmp: Path, **fields: object) -> Path:
    exp = _copy_export(good, tmp)
    doc = json.loads((exp / "int_model.json").read_text())
    (exp / "int_model.json").write_text(json.dumps(doc | fields))
    return exp


def case_check_an_export_edited_to_stack_zero(tmp: Path, good: Path) -> Case:
    exp = _edit_int_model(good, tmp, stack=0)
    return Case(["check", str(exp)], "are damaged (stack 0, not 1 to 255)", exp / "check-report.json")


def case_build_an_export_edited_to_stack_zero(tmp: Path, good: Path) -> Case:
    exp = _edit_int_model(good, tmp, stack=0)
    return Case(["build", str(exp), "--out", str(tmp / "fw")], "are damaged (stack 0", tmp / "fw")


def case_explain_an_export_without_data_files(tmp: Path, good: Path) -> Case:
    exp = _edit_int_model(good, tmp, data_files=None)
    argv = ["explain", str(exp), "--out", str(tmp / "x")]
    return Case(argv, "are damaged (data_files is null)", tmp / "x")


def case_check_an_export_with_a_float_cell_frac(tmp: Path, good: Path) -> Case:
    exp = _edit_int_model(good, tmp, cell_frac=[1.5])
    return Case(
        ["check", str(exp)], "are damaged (cell_frac [1.5], not 1 integers)", exp / "check-report.json"
    )


def case_check_a_truncated_model_c(tmp: Path, good: Path) -> Case:
    exp = _copy_export(good, tmp)
    c = exp / "tl_model.c"
    c.write_text(c.read_text()[:2000])  # the compiler's errors would be many lines
    return Case(
        ["check", str(exp)], "tl_model.c is not the C that the export's model", exp / "check-report.json"
    )


def case_check_agreement_above_100(tmp: Path, good: Path) -> Case:
    argv = ["check", str(good / "run" / "export"), "--min-agreement", "200", "--json", str(tmp / "r.json")]
    return Case(argv, "--min-agreement 200.0: give a number from 0 to 100", tmp / "r.json")


def case_check_nan_accuracy_drop(tmp: Path, good: Path) -> Case:
    argv = [
        "check",
        str(good / "run" / "export"),
        "--max-accuracy-drop",
        "nan",
        "--json",
        str(tmp / "r.json"),
    ]
    return Case(argv, "--max-accuracy-drop nan: give a number from 0 to 100", tmp / "r.json")


def case_prune_negative_learning_rate(tmp: Path, good: Path) -> Case:
    c = _prune(good, tmp, "--hidden", "2", "--lr", "-1")
    c.message = "--lr -1.0: give a learning rate > 0"
    return c


def case_export_a_name_that_is_not_a_c_identifier(tmp: Path, good: Path) -> Case:
    argv = ["export", str(good / "run" / "model.pt"), "--name", "my-model", "--out", str(tmp / "e")]
    return Case(argv, "model name 'my-model' must be a lowercase C identifier", tmp / "e")


def case_export_an_empty_name(tmp: Path, good: Path) -> Case:
    argv = ["export", str(good / "run" / "model.pt"), "--name", "", "--out", str(tmp / "e")]
    return Case(argv, "model name '' must be a lowercase C identifier", tmp / "e")


def case_export_a_directory(tmp: Path, good: Path) -> Case:
    (tmp / "adir").mkdir()
    argv = ["export", str(tmp / "adir"), "--out", str(tmp / "e")]
    return Case(argv, "adir is a directory, not a model file: give the checkpoint in it", tmp / "e")


def case_flash_a_file_that_is_not_firmware(tmp: Path, good: Path) -> Case:
    return Case(
        ["flash", str(good / "run" / "model.pt")], "model.pt is not firmware (not a .elf or .bin)", tmp / "n"
    )


def case_a_usage_error_of_argparse(tmp: Path, good: Path) -> Case:
    """argparse's own errors (an unknown choice, a value of the wrong type) are one line too, not the usage
    block first (host/cli/main.py Parser)."""
    argv = ["prune", str(good / "run" / "model.pt"), "--board", "nope", "--out", str(tmp / "p")]
    return Case(argv, "argument --board: invalid choice: 'nope'", tmp / "p")


def _npz_with(tmp: Path, good: Path, **extra: np.ndarray) -> Path:
    z = np.load(good / "data.npz")
    np.savez(tmp / "d.npz", X=z["X"], y=z["y"], **extra)  # type: ignore[arg-type]
    return tmp / "d.npz"


def case_train_on_an_npz_with_an_array_it_does_not_read(tmp: Path, good: Path) -> Case:
    """A misspelt `lengths` (here `length`) would have the padding trained on: every array must be read."""
    data = _npz_with(tmp, good, length=np.full(90, 12))
    return Case(_train_on(tmp, data), "holds array(s) length that are not read", tmp / "o")


def case_train_on_a_npy_file_named_npz(tmp: Path, good: Path) -> Case:
    np.save(tmp / "x.npy", np.zeros((4, 3, 2)))
    (tmp / "x.npy").rename(tmp / "x.npz")
    return Case(
        _train_on(tmp, tmp / "x.npz"),
        "x.npz is not a readable .npz (it holds a single .npy array); save the arrays",
        tmp / "o",
    )


def _train_on(tmp: Path, data: Path) -> list[str]:
    return ["train", "--data", str(data), "--epochs", "1", "--quiet", "--out", str(tmp / "o")]


def _ucr(tmp: Path, first_label: str) -> Path:
    rows = [f"{first_label}\t1\t2\t3"] + [f"{k % 2}\t{k}\t{k + 1}\t{k + 2}" for k in range(20)]
    (tmp / "d.tsv").write_text("\n".join(rows) + "\n")
    return tmp / "d.tsv"


def case_train_on_a_tsv_case_labelled_nan(tmp: Path, good: Path) -> Case:
    """NaN (or an empty label) is no class: it was read as a third class named 'NaN'."""
    return Case(
        _train_on(tmp, _ucr(tmp, "NaN")), "case 1 has the label 'NaN', which names no class", tmp / "o"
    )


def case_train_on_a_ts_declaring_a_class_twice(tmp: Path, good: Path) -> Case:
    """@classLabel true 0 1 1: the model had an output no case could ever be labelled with."""
    rows = "".join(f"1,2,{k}:{k % 2}\n" for k in range(20))
    (tmp / "d.ts").write_text("@problemName p\n@univariate true\n@classLabel true 0 1 1\n@data\n" + rows)
    return Case(_train_on(tmp, tmp / "d.ts"), "declares the class(es) ['1'] twice", tmp / "o")


def case_train_on_a_semicolon_csv(tmp: Path, good: Path) -> Case:
    (tmp / "d.csv").write_text("a;b;label\n" + "".join(f"{k};{k};{k % 2}\n" for k in range(40)))
    return Case(_train_on(tmp, tmp / "d.csv"), "the file is separated by ';', not commas", tmp / "o")


def _user_desc(tmp: Path, good: Path, desc: object, sd: dict | None = None) -> Case:
    case = _user_sd(tmp, good, sd or _rnn_state_dict())
    (tmp / "desc.json").write_text(json.dumps(desc))
    return case


def case_user_description_with_a_misspelt_key(tmp: Path, good: Path) -> Case:
    """ "input_means" was ignored: the model was exported unnormalised."""
    c = _user_desc(tmp, good, {"classes": ["a", "b", "c"], "input_means": [0.0, 0.0, 0.0]})
    c.message = "the description has unknown key(s) 'input_means'"
    return c


def case_user_description_with_a_zero_std(tmp: Path, good: Path) -> Case:
    """It was blamed on the data ("calibration data contains NaN"), after a divide-by-zero warning."""
    c = _user_desc(tmp, good, {"classes": ["a", "b", "c"], "input_std": [0, 1, 1]})
    c.message = "the description's 'input_std' holds 0.0; give finite numbers > 0"
    return c


def case_user_description_of_another_task_than_the_data(tmp: Path, good: Path) -> Case:
    sd = {**_rnn_state_dict(), "fc.weight": torch.zeros(1, 20), "fc.bias": torch.zeros(1)}
    c = _user_desc(tmp, good, {"task": "regression"}, sd)
    c.message = "is not the kind of data the description says the model takes: task 'classification'"
    return c


def case_user_description_with_a_window_of_2_point_7(tmp: Path, good: Path) -> Case:
    c = _user_desc(tmp, good, {"classes": ["a", "b", "c"], "window": 2.7})
    c.message = "the description's window is 2.7; give the window length in samples, an integer >= 1"
    return c


def case_user_description_naming_a_cell_by_a_list(tmp: Path, good: Path) -> Case:
    c = _user_desc(tmp, good, {"classes": ["a", "b", "c"], "cell": ["lstm"]})
    c.message = "the description's cell ['lstm'] is not known"
    return c


def case_user_description_naming_a_head_that_is_not_there(tmp: Path, good: Path) -> Case:
    c = _user_desc(tmp, good, {"classes": ["a", "b", "c"], "head": "out"})
    c.message = "the description's head 'out' names no Linear in the state_dict"
    return c


def case_user_description_that_is_not_utf8(tmp: Path, good: Path) -> Case:
    c = _user_sd(tmp, good, _rnn_state_dict())
    (tmp / "desc.json").write_bytes(b"\xff\xfe{}")
    c.message = "cannot read the model description"
    return c


def case_user_state_dict_of_integers(tmp: Path, good: Path) -> Case:
    c = _user_sd(tmp, good, {k: v.to(torch.int32) for k, v in _rnn_state_dict().items()})
    c.message = "rnn.weight_ih_l0 holds torch.int32 values; a trained model's weights are floating point"
    return c


def case_export_a_checkpoint_with_a_description(tmp: Path, good: Path) -> Case:
    """The description was silently ignored."""
    argv = [
        "export",
        str(good / "run" / "model.pt"),
        "--description",
        str(_desc(tmp)),
        "--out",
        str(tmp / "e"),
    ]
    return Case(
        argv, "is a TinyLSTM checkpoint, which carries its own description: drop --description", tmp / "e"
    )


# Valid but extreme data (an adversarial pass): refused in one line where the result would be silently wrong.


def case_train_a_class_only_in_the_test_split(tmp: Path, good: Path) -> Case:
    """Was: the one sequence of class 2 went to the test split (an empty split took a unit from training):
    the model never saw it, and check PASSed on the head's guess."""
    x = np.random.default_rng(0).standard_normal((3, 12, 2)).astype(np.float32)
    np.savez(tmp / "d.npz", X=x, y=np.array([0, 1, 2]))
    return Case(_train_on(tmp, tmp / "d.npz"), "the test split of", tmp / "o")


def case_train_a_class_whose_only_group_is_held_out(tmp: Path, good: Path) -> Case:
    """Was: class 2, recorded in one group only (groups mix classes, so the split is not stratified), was
    held out whole: trained without it, scored on it."""
    x = np.random.default_rng(0).standard_normal((40, 12, 2)).astype(np.float32)
    y, groups = np.arange(40) % 2, np.arange(40) // 4  # 10 groups of 4, each both classes 0 and 1
    y[36:] = 2  # group 9 holds class 2, and only it does
    ds = SequenceSet(list(x), y, "classification", "window", ["0", "1", "2"], ["a", "b"], "d", groups)
    seed = next(s for s in range(50) if _split_refused(ds, s))  # a split that holds group 9 out
    np.savez(tmp / "d.npz", X=x, y=y, groups=groups)
    argv = [*_train_on(tmp, tmp / "d.npz"), "--val", "0", "--seed", str(seed)]
    return Case(argv, "class '2' of", tmp / "o")


def case_train_with_a_held_out_class_no_training_sequence_has(tmp: Path, good: Path) -> Case:
    """Was: trained, and the held-out file's class 'c' (which the training file names but never holds)
    scored: half the held-out windows could never be right. (Checked where the file loads, not in fit: the
    search's cross-validation folds are held-out sets too, and a fold may hold a class's only
    recordings.)"""
    rng = np.random.default_rng(0)
    classes = np.array(["a", "b", "c"])
    np.savez(tmp / "d.npz", X=rng.standard_normal((20, 12, 1)), y=np.arange(20) % 2, classes=classes)
    np.savez(
        tmp / "t.npz", X=rng.standard_normal((6, 12, 1)), y=np.array([2, 2, 2, 0, 0, 1]), classes=classes
    )
    argv = [*_train_on(tmp, tmp / "d.npz"), "--test-data", str(tmp / "t.npz")]
    message = f"the held-out file {tmp / 't.npz'} holds class 'c', which no sequence of the training data 'd'"
    return Case(argv, message, tmp / "o")


def case_export_after_the_held_out_file_moved(tmp: Path, good: Path) -> Case:
    """Was: "data file .../t.npz does not exist; check the path", which named neither the file's role nor
    where it has to be."""
    rng = np.random.default_rng(0)
    np.savez(tmp / "d.npz", X=rng.standard_normal((20, 12, 1)), y=np.arange(20) % 2)
    np.savez(tmp / "t.npz", X=rng.standard_normal((6, 12, 1)), y=np.arange(6) % 2)
    assert main([*_train_on(tmp, tmp / "d.npz"), "--test-data", str(tmp / "t.npz")]) == 0
    (tmp / "t.npz").rename(tmp / "moved.npz")
    message = (
        f"the held-out file {tmp / 't.npz'} the model was trained with (--test-data) is gone: pass its new "
        "path with --test-data"
    )
    return Case(["export", str(tmp / "o" / "model.pt"), "--out", str(tmp / "e")], message, tmp / "e")


def case_export_with_another_file_as_the_moved_held_out_file(tmp: Path, good: Path) -> Case:
    """--test-data stands for the held-out file the model was trained with, moved: other bytes are refused."""
    rng = np.random.default_rng(0)
    np.savez(tmp / "d.npz", X=rng.standard_normal((20, 12, 1)), y=np.arange(20) % 2)
    np.savez(tmp / "t.npz", X=rng.standard_normal((6, 12, 1)), y=np.arange(6) % 2)
    assert main([*_train_on(tmp, tmp / "d.npz"), "--test-data", str(tmp / "t.npz")]) == 0
    argv = ["export", str(tmp / "o" / "model.pt"), "--test-data", str(tmp / "d.npz"), "--out", str(tmp / "e")]
    return Case(argv, "d.npz is not the held-out file the model was trained with", tmp / "e")


def case_train_on_one_class_of_two_named(tmp: Path, good: Path) -> Case:
    """Was: trained a one-class model (its held-out score a trivial 100 %): the check counted the classes
    the file names, not those its labels hold."""
    x = np.random.default_rng(0).standard_normal((30, 12, 2))
    np.savez(tmp / "d.npz", X=x, y=np.zeros(30, dtype=np.int64), classes=np.array(["a", "b"]))
    return Case(_train_on(tmp, tmp / "d.npz"), "holds one class ('a') of the 2 it names", tmp / "o")


def case_check_data_that_is_not_the_training_file(tmp: Path, good: Path) -> Case:
    """Was: accepted, and 15 % of it (the recorded split's test part) scored as held-out data."""
    z = np.load(good / "data.npz")
    np.savez(tmp / "other.npz", X=z["X"][::-1].copy(), y=z["y"][::-1].copy())
    argv = [
        "check",
        str(good / "run" / "export"),
        "--data",
        str(tmp / "other.npz"),
        "--json",
        str(tmp / "r.json"),
    ]
    return Case(argv, "is not the data the model was trained on", tmp / "r.json")


def _split_refused(ds: SequenceSet, seed: int) -> bool:
    try:
        split(ds, val=0.0, test=0.15, seed=seed)
    except TinyLSTMError:
        return True
    return False


def case_train_a_constant_regression_target(tmp: Path, good: Path) -> Case:
    """Was: trained, exported and checked PASS (a one-class classifier is refused)."""
    x = np.random.default_rng(0).standard_normal((30, 12, 2)).astype(np.float32)
    np.savez(tmp / "d.npz", X=x, y=1e8 + np.linspace(0, 0.5, 30))  # one float32 value
    return Case(
        _train_on(tmp, tmp / "d.npz"),
        "target 0 is constant (1e+08) in the training split (float32",
        tmp / "o",
    )


def case_check_an_export_without_held_out_data(tmp: Path, good: Path) -> Case:
    """Was: a numpy traceback (need at least one array to stack)."""
    run = tmp / "r"
    assert main(["train", "--data", str(good / "data.npz"), "--test", "0", "--epochs", "1", "--quiet",
                 "--hidden", "4", "--out", str(run)]) == 0  # fmt: skip
    assert main(["export", str(run / "model.pt"), "--out", str(tmp / "e")]) == 0
    return Case(
        ["check", str(tmp / "e")],
        "has no held-out data (trained with --test 0",
        tmp / "e" / "check-report.json",
    )


def case_stream_feeds_held_out_data_a_model_has_none_of(tmp: Path, good: Path) -> Case:
    """A model trained on all its data (--test 0, as a search's refit) has no held-out data to feed: refused
    before any port is opened (parity feeds such a model its training data instead)."""
    run = tmp / "r"
    assert main(["train", "--data", str(good / "data.npz"), "--test", "0", "--epochs", "1", "--quiet",
                 "--hidden", "4", "--out", str(run)]) == 0  # fmt: skip
    assert main(["export", str(run / "model.pt"), "--out", str(tmp / "e")]) == 0
    return Case(
        [
            "stream",
            "--port",
            "socket://127.0.0.1:9",
            "--export",
            str(tmp / "e"),
            "--feed",
            "held-out",
            "--log",
            str(tmp / "p.csv"),
        ],  # fmt: skip
        "has no held-out data to feed (trained on all of it): stream the board's own source",
        tmp / "p.csv",
    )


CASES: dict[str, Callable[[Path, Path], Case]] = {
    name[len("case_") :]: fn
    for name, fn in dict(globals()).items()
    if name.startswith("case_") and callable(fn)
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_exit_2_nothing_written(
    name: str, good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    case = CASES[name](tmp_path, good)
    before = case.untouched.read_bytes() if case.untouched.is_file() else None
    if case.cwd is not None:
        monkeypatch.chdir(case.cwd)
    capsys.readouterr()
    code = main(case.argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"tinylstm {case.argv[0]}: error: ") and case.message in err, err
    if before is None:
        assert not case.untouched.exists(), f"{case.untouched} was written"
    else:
        assert case.untouched.read_bytes() == before


def test_a_module_next_to_the_working_directory_unpickles(
    good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--trust-module finds a model class defined in a module of the current directory."""
    _write_module(tmp_path, "tl_user_net_here")
    monkeypatch.chdir(tmp_path)
    code = main(
        [
            "export",
            "net.pt",
            "--trust-module",
            "--data",
            str(good / "data.npz"),
            "--description",
            str(_desc(tmp_path)),
            "--out",
            "out",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "model.tlm").is_file()
    assert str(tmp_path) not in sys.path  # the import path is restored


def test_every_state_dict_key_must_map_onto_the_model(
    good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Any key besides the RNN's and the head's refuses the export, whatever it is called or shaped."""
    extras = {
        "norm.weight": torch.ones(20),
        "embed.weight": torch.zeros(5, 3),
        "post.bias": torch.zeros(3),
        "rnn.weight_ih_l1": torch.zeros(80, 20),
    }  # half a second layer
    for key, tensor in extras.items():
        case = _user_sd(tmp_path, good, _rnn_state_dict({key: tensor}))
        assert main(case.argv) == 2
        err = capsys.readouterr().err
        assert key in err or "lacks" in err, err
        assert not case.untouched.exists()
    case = _user_sd(tmp_path, good, _rnn_state_dict())  # and the plain model exports
    assert main(case.argv) == 0


@pytest.mark.parametrize("buffered", [False, True])
def test_a_reader_that_goes_away_ends_the_command_quietly(good: Path, tmp_path: Path, buffered: bool) -> None:
    """`tinylstm export ... | head`: stdout's reader closes early. The command stops as a Unix filter does on
    SIGPIPE (exit 141), with nothing on stderr: no BrokenPipeError traceback, no complaint from the flush at
    exit. Unbuffered, the first print finds the reader gone; buffered, the flush after the command does. The
    export's files are written before its summary, so they are all there."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    argv = ["export", str(good / "run" / "model.pt"), "--out", str(tmp_path)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinylstm.host.cli.main", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the command writes anything
    code = proc.wait(timeout=120)
    err = proc.stderr.read().decode()
    assert code == 128 + signal.SIGPIPE, err
    assert err == ""
    assert (tmp_path / "export-report.json").is_file()


def test_a_command_started_with_stdout_closed_runs(good: Path, tmp_path: Path) -> None:
    """`tinylstm export ... >&-`: Python has no sys.stdout then; the command still runs and exits 0."""
    proc = subprocess.run(
        [sys.executable, "-m", "tinylstm.host.cli.main", "export", str(good / "run" / "model.pt")]
        + ["--out", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.close(1),  # in the child, before exec
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert (tmp_path / "export-report.json").is_file()


def test_the_api_refuses_in_one_line_and_writes_nothing(good: Path, tmp_path: Path) -> None:
    """export with a bad layout creates no directory; an export with edited int_model.json or truncated C
    loads (load_export, CModel.from_export) to a one-line error, not a ZeroDivisionError or compiler lines."""
    import tinylstm

    with pytest.raises(tinylstm.TinyLSTMError, match="weight layout 'x' must be one of"):
        tinylstm.export(good / "run" / "model.pt", tmp_path / "e", layout="x")
    for bits in (12, "eight"):
        with pytest.raises(
            tinylstm.TinyLSTMError, match=f"an input of {bits!r} bits: choose --input-bits 8, 16 or auto"
        ):
            tinylstm.export(good / "run" / "model.pt", tmp_path / "e", input_bits=bits)  # type: ignore[arg-type]
    assert not (tmp_path / "e").exists()
    exp = _edit_int_model(good, tmp_path, stack=0)
    with pytest.raises(tinylstm.TinyLSTMError, match=r"damaged \(stack 0, not 1 to 255\)"):
        tinylstm.load_export(exp)
    shutil.rmtree(exp)
    exp = _copy_export(good, tmp_path)
    h = exp / "tl_model.h"
    h.write_text(h.read_text()[:500])
    with pytest.raises(tinylstm.TinyLSTMError) as err:
        tinylstm.CModel.from_export(exp)
    assert "tl_model.h is not the C that the export's model" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_checkpoint_without_the_data_digest_still_exports(good: Path, tmp_path: Path) -> None:
    """Checkpoints saved before the dataset record held the data's SHA-256 export as before."""
    blob = torch.load(good / "run" / "model.pt", weights_only=True)
    assert blob["dataset"]["sha256"] == {
        str(good / "data.npz"): blob["dataset"]["sha256"][str(good / "data.npz")]
    }
    del blob["dataset"]["sha256"]
    torch.save(blob, tmp_path / "old.pt")
    assert main(["export", str(tmp_path / "old.pt"), "--out", str(tmp_path / "e")]) == 0


def test_tsv_labels_written_two_ways_are_one_class(tmp_path: Path) -> None:
    """UCR labels 1 and 1.0 are one class (they were two, the model learning a class split in half)."""
    from tinylstm.trainer.data import load_dataset

    rows = [f"{['1', '1.0', '2'][k % 3]}\t{k}\t{k + 1}" for k in range(12)]
    (tmp_path / "d.tsv").write_text("\n".join(rows) + "\n")
    ds = load_dataset(str(tmp_path / "d.tsv"))
    assert ds.classes == ["1", "2"] and np.asarray(ds.labels).tolist() == [0, 0, 1] * 4


def test_regression_scores_of_targets_near_float32_max_are_finite() -> None:
    """Errors of targets near float32's largest value overflowed float32 (an inf MAE in metrics.json and a
    numpy overflow warning on stderr): they are summed in float64."""
    from tinylstm.trainer.train import _Running

    running = _Running(std=np.array([1e38], dtype=np.float32))
    pred, target = torch.full((64, 1), 3.0), torch.full((64, 1), -3.0)
    with np.errstate(all="raise"):
        running.add(torch.tensor(1.0), pred, target, classification=False)
    scores = running.scores(classification=False)
    assert scores.mae == pytest.approx(6e38, rel=1e-6) and scores.rmse == pytest.approx(6e38, rel=1e-6)


def test_huge_user_weights_are_one_error_without_a_numpy_warning(
    good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The float forward's sigmoid overflowed exp() ("RuntimeWarning: overflow encountered in exp" on stderr
    before the error line)."""
    rnn = nn.LSTM(3, 20, batch_first=True)
    with torch.no_grad():
        rnn.weight_ih_l0.mul_(1e30)
    case = _user_sd(tmp_path, good, _rnn_state_dict(rnn=rnn))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(case.argv) == 2
    assert "too large for the int32 requantizer" in capsys.readouterr().err


def test_a_float64_user_module_exports(
    good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A module saved in float64 (model.double()) failed the forward() check on float32 inputs."""
    _write_module(tmp_path, "tl_user_net_double")
    sys.path.insert(0, str(tmp_path))
    try:
        torch.save(torch.load(tmp_path / "net.pt", weights_only=False).double(), tmp_path / "net64.pt")
        argv = ["export", str(tmp_path / "net64.pt"), "--trust-module", "--data", str(good / "data.npz")]
        assert main([*argv, "--description", str(_desc(tmp_path)), "--out", str(tmp_path / "out")]) == 0
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("tl_user_net_double", None)
    assert (tmp_path / "out" / "model.tlm").is_file(), capsys.readouterr().err


def test_a_project_rebuilt_without_replay_keeps_no_replay_data(
    good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: the first build's tl_replay.c stayed in the project (and in the ESP-IDF component's SRCS), data of
    another model when the export changed. The printed command is quoted for a path with spaces."""
    exp = str(good / "run" / "export")
    for board, project in {"esp-idf": "esp-idf", "esp32dev": "pio", "arduino-lib": "TinyLSTM"}.items():
        out = tmp_path / f"fw {board}"
        assert main(["build", exp, "--board", board, "--out", str(out), "--source", "replay"]) == 0
        assert list((out / project).rglob("tl_replay.c"))
        capsys.readouterr()
        assert main(["build", exp, "--board", board, "--out", str(out)]) == 0
        assert not list(out.rglob("tl_replay.*")), board
        assert f"'{out / project}'" in capsys.readouterr().out
    cmake = (tmp_path / "fw esp-idf" / "esp-idf" / "components" / "tinylstm" / "CMakeLists.txt").read_text()
    assert "tl_model.c" in cmake and "tl_replay" not in cmake


def test_a_model_cannot_be_named_like_a_file_of_the_kernel_or_firmware() -> None:
    """`--name replay` wrote tl_replay.c, the file a replay build generates: every tl_<stem>.c/.h of csrc/ and
    firmware/ is a reserved name (tl_model is the model's own)."""
    from tinylstm.codegen.emit_c import RESERVED_NAMES, check_name
    from tinylstm.errors import TinyLSTMError

    repo = Path(__file__).resolve().parents[1]
    stems = {
        p.stem[len("tl_") :]
        for folder in ("csrc", "firmware")
        for p in (repo / folder).rglob("tl_*")
        if p.suffix in (".c", ".h")
    }
    assert stems and not stems - {"model"} - RESERVED_NAMES, sorted(stems - RESERVED_NAMES)
    for name in ("replay", "app", "crc32", "rnn"):
        with pytest.raises(TinyLSTMError, match=f"model name '{name}' must be"):
            check_name(name)

"""The functions behind ``import tinylstm``: one per CLI command, with the command's options and defaults.

``tinylstm <command> ARG --some-option X`` is ``tinylstm.<command>(ARG, some_option=X)``: each
``host/cli/cmd_<command>.py`` parses its flags, calls the function here and prints what it returns
(tests/test_api_parity.py walks the CLI's parsers and keeps the two in step). The summaries the CLI
prints stay in the CLI; these functions return what they are made from. The few CLI-only flags:
``--quiet`` (training and search show progress bars only with ``progress=True`` here; the live status
of ``parity`` and ``stream`` goes to an ``on_status`` callback) and the negations ``--no-augment``
(``augment=None``), ``--no-qat`` (``qat=False``), ``--no-drift`` (``drift=False``); ``train --qat`` is
``qat_epochs=N``.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Callable, Generator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import numpy as np

from tinylstm.arguments import check_fields, checked
from tinylstm.codegen.emit_c import Layout
from tinylstm.codegen.export import ModelSource, export_origin, report_file
from tinylstm.codegen.export import export as _export
from tinylstm.codegen.input_range import AUTO_INPUT_BITS
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.spec import FloatModel
from tinylstm.codegen.store import load_int_model
from tinylstm.contract.cells import NAMES as CELL_NAMES
from tinylstm.contract.constants import HIDDEN_BITS
from tinylstm.errors import TinyLSTMError
from tinylstm.host.analysis.check import Thresholds
from tinylstm.host.analysis.check import check as _check
from tinylstm.host.analysis.explain import MAX_STEPS
from tinylstm.host.analysis.explain import explain as _explain
from tinylstm.host.analysis.parity import MAX_PARITY_STEPS, ParityReport, run_parity
from tinylstm.host.boards import QemuBoard
from tinylstm.host.boards.firmware import FirmwareBuild, build_firmware
from tinylstm.host.boards.firmware import replay_steps as embedded_replay_steps
from tinylstm.host.boards.flash import flash as _flash
from tinylstm.host.boards.registry import get_board
from tinylstm.host.link.drift import DEFAULT_DRIFT, DriftEvent, DriftMonitor
from tinylstm.host.link.feed import Feeder
from tinylstm.host.link.protocol import Hello, Source
from tinylstm.host.link.stream import BoardStream, Prediction, PredictionLog, StreamCounters, check_log_path
from tinylstm.host.link.transport import DEFAULT_BAUD, Link, check_baud
from tinylstm.host.search.study import Budget, SearchConfig, Space
from tinylstm.host.search.study import search as _search
from tinylstm.host.targets.bridge import CModel
from tinylstm.trainer.outputs import check_output_dir
from tinylstm.trainer.prune import DEFAULT_STEP as DEFAULT_PRUNE_STEP
from tinylstm.trainer.train import TrainConfig, TrainResult

DEFAULT_BOARD = "qemu-stm32f405"  # build, flash: the emulated STM32F405 (QEMU netduinoplus2)
DEPRECATED_LAYOUTS = {"s8": "w8", "s16": "w16"}  # export layouts' old names
SOURCES = ("host", "replay", "sensor")  # the board's input sources (build --source, stream --source)
DEFAULT_SPACE = Space()
SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kKmM]?)[bB]?$")  # search's budgets: 4096, 32k, 1.5M


def _opt_str(value: str | Path | None) -> str | None:
    return None if value is None else str(value)


@checked
def train(
    data: str | Path = "watch",
    out: str | Path = "runs/latest",
    *,
    test_data: str | Path | None = None,
    dataset_options: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
    **config: Any,
) -> TrainResult:
    """``tinylstm train``: fit a TinyLSTM/TinyGRU on ``data`` (a dataset name or a .ts/.tsv/.arff/.csv/.npz
    file) and write model.pt, curves.png and metrics.json to ``out``.

    ``config``: the fields of ``tinylstm.trainer.train.TrainConfig`` (cell, hidden, layers, epochs, lr,
    select, readout, stack, qat_epochs, ...; ``progress=True`` for progress bars); ``dataset_options``: how
    to read the file (window, hop, target, group, channels, task, forecast, missing: the CLI's flags of
    those names; ``channels`` a list or a comma-separated string, ``task`` "auto" as the CLI's default);
    ``log``: receives the data's description and the recipe's choices, as the CLI prints them."""
    from tinylstm.codegen.qat import finetune
    from tinylstm.trainer.data import load_dataset, load_test_set
    from tinylstm.trainer.train import fit

    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise TinyLSTMError(
            f"unknown training option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    check_fields("tinylstm.train", TrainConfig, config)
    check_output_dir(out)  # before loading data and training, not after
    options = dict(dataset_options or {})
    if options.get("task") == "auto":
        options["task"] = None  # the loaders' default; the builtin data takes no task option
    if isinstance(options.get("channels"), str):
        if not options["channels"].strip():
            raise TinyLSTMError(
                "channels is empty: name the input columns, comma-separated, or leave it out for every "
                "numeric column"
            )
        options["channels"] = options["channels"].split(",")
    ds = load_dataset(str(data), **options)
    cfg = TrainConfig(**{"progress": False, **config})
    if log is not None:
        log(
            f"{ds.name}: {len(ds)} sequences, {ds.num_channels} channels, {ds.task} ({ds.mode} mode"
            + (f"; {ds.task_note}" if ds.task_note else "")
            + ")"
            + (f", classes {ds.classes}" if ds.classes else "")
        )
        log(
            f"  inputs: {', '.join(ds.channels)}"
            + (f"; skipped as text: {', '.join(ds.skipped)}" if ds.skipped else "")
        )
    test_ds = load_test_set(str(test_data), ds) if test_data else None
    return fit(ds, cfg, out, test_ds, log=log, finetune=finetune)


@dataclass
class Export:
    """An export directory: the integer model, its C files, model.tlm and the float model it came from."""

    dir: Path
    model: IntModel
    doc: dict[str, Any]  # int_model.json: name, hash, pins of the float model and the data
    report: dict[str, Any] = field(default_factory=dict)  # export-report.json: sizes, files, calibration

    @property
    def name(self) -> str:
        return str(self.doc.get("name", "model"))

    def c_model(self) -> CModel:
        """The export's generated C files, compiled for the host (cffi): reset, step, run, trace. Refused when
        the directory now holds another model (exported again since this object was made)."""
        cm = CModel.from_export(self.dir)
        if cm.hash != self.model.model_hash:
            raise TinyLSTMError(
                f"{self.dir} now holds model 0x{cm.hash:08x}, not this Export's "
                f"0x{self.model.model_hash:08x} (exported again since): load it again (tinylstm.load_export)"
            )
        return cm

    def float_model(self) -> FloatModel:
        """The float model the export was made from (pinned by SHA-256)."""
        return export_origin(self.dir, self.doc).loaded.float_model


@checked
def load_export(export_dir: str | Path) -> Export:
    """Open a directory written by ``export`` / ``tinylstm export``."""
    d = Path(export_dir)
    model, doc = load_int_model(d)
    report_file = d / "export-report.json"
    report = json.loads(report_file.read_text()) if report_file.is_file() else {}
    return Export(d, model, doc, report)


@checked
def export(
    model: str | Path,
    out: str | Path | None = None,
    *,
    data: str | Path | None = None,
    test_data: str | Path | None = None,
    description: str | Path | None = None,
    trust_module: bool = False,
    name: str = "model",
    layout: Layout | str = "w8",
    hidden_bits: int = HIDDEN_BITS,
    input_bits: int | str | None = AUTO_INPUT_BITS,
) -> Export:
    """``tinylstm export``: calibrate ``model`` (a TinyLSTM checkpoint, a state_dict with a description, or a
    pickled module with ``trust_module``) on real data and write the C files, model.tlm and a report into
    ``out`` (default: the model's directory/export). ``layout``: w8 (int8 weights) or w16 (int16-widened);
    ``hidden_bits``: 8 (int8 Q0.7 hidden state) or 16 (int16 Q0.15); ``input_bits``: 8, 16 (an int16 input),
    None (the hidden state's own) or "auto" (int8 unless its outputs differ from the float model's by more
    than 5 % of their spread on the calibration data and an int16 input's come closer:
    codegen/input_range.py ``auto_input_model``). ``data``, ``test_data``: a checkpoint's training and
    held-out files at another path (moved), or a user model's data (a 30 % held-out split, or all of it
    calibrating and ``test_data`` held out)."""
    if layout in DEPRECATED_LAYOUTS:
        new = DEPRECATED_LAYOUTS[layout]
        warnings.warn(f"layout {layout!r} is now called {new!r}", DeprecationWarning, stacklevel=2)
        layout = new
    out_dir = check_output_dir(Path(out) if out is not None else Path(model).resolve().parent / "export")
    source = ModelSource(str(model), _opt_str(data), _opt_str(description), trust_module, _opt_str(test_data))
    res = _export(source, out_dir, name, cast(Layout, layout), hidden_bits, input_bits)
    exp = load_export(out_dir)
    exp.report = res.report
    return exp


@checked
def check(
    export_dir: str | Path,
    data: str | Path | None = None,
    *,
    test_data: str | Path | None = None,
    max_accuracy_drop: float = 1.0,
    min_agreement: float = 98.0,
    max_rmse_increase: float = 2.0,
    allow_below_baseline: bool = False,
    json_out: str | Path | None = None,
) -> dict[str, Any]:
    """``tinylstm check``: the report as a dict (``report["passed"]``), also written as JSON to ``json_out``
    (default: EXPORT_DIR/check-report.json; "-": not written, the CLI prints it on stdout).
    ``max_accuracy_drop``: allowed float-int8 accuracy drop in points; ``min_agreement``: required argmax
    agreement in %; ``max_rmse_increase``: regression, allowed RMSE increase in % of the target's std (as
    training saw it); ``allow_below_baseline``: pass a classifier that does not beat the majority class
    (``report["rules"]``: each rule of the verdict and whether it held); ``data``: the training data at
    another path (it moved): the recorded split is rebuilt from it and its test part scored; ``test_data``:
    the held-out file the model was trained with at another path."""
    out = None
    if json_out != "-":
        out = Path(json_out) if json_out else Path(export_dir) / "check-report.json"
        if json_out or Path(export_dir).is_dir():  # a missing export directory: _check names it
            out = report_file(Path(export_dir), json_out, "check-report.json", "--json")
    report = _check(
        Path(export_dir),
        _opt_str(data),
        Thresholds(max_accuracy_drop, min_agreement, max_rmse_increase, allow_below_baseline),
        test_data=_opt_str(test_data),
    )
    if out is not None:
        out.write_text(json.dumps(report, indent=2))
    return report


@checked
def explain(
    export_dir: str | Path,
    *,
    data: str | Path | None = None,
    test_data: str | Path | None = None,
    out: str | Path | None = None,
    sequences: int = 1,
    max_steps: int = MAX_STEPS,
) -> dict[str, Any]:
    """``tinylstm explain``: trace held-out examples (per class for a window classifier, else ``sequences``
    sequences, ``max_steps`` of a stream) through the float model and the integer golden; writes
    explain.json and one PNG per example into ``out`` (default: EXPORT_DIR/explain) and returns the JSON
    document. ``data``, ``test_data``: the training and held-out files the model was trained with, moved."""
    d = Path(export_dir)
    out_dir = check_output_dir(Path(out) if out else d / "explain") if out or d.is_dir() else d / "explain"
    return _explain(d, _opt_str(data), out_dir, sequences, max_steps, _opt_str(test_data))


MAX_REPLAY_PERIOD_MS = 60_000  # a replayed sample a minute at the slowest


@checked
def build(
    export_dir: str | Path,
    board: str = DEFAULT_BOARD,
    *,
    source: str = "host",
    replay_steps: int | None = None,
    replay_period_ms: int | None = None,
    out: str | Path | None = None,
    data: str | Path | None = None,
    test_data: str | Path | None = None,
) -> FirmwareBuild:
    """``tinylstm build``: the streaming firmware of an export for ``board`` (an ELF/BIN and a size report for
    a bare-metal board, a project for a PlatformIO/ESP-IDF/Arduino one) in ``out`` (default:
    EXPORT_DIR/firmware-BOARD). ``source``: the input source at boot (host, replay or sensor);
    ``replay_steps``: held-out samples embedded for the replay source (default: 256 with ``source="replay"``,
    else none; whole windows in window mode); ``replay_period_ms``: ms between replayed samples (0: UART
    speed; default 20, the watch data's 50 Hz), only for a firmware that embeds replay data; ``data``,
    ``test_data``: the export's data files at their new paths (moved), for the replay data."""
    defines: dict[str, str] = {}
    if replay_period_ms is not None:
        if not 0 <= replay_period_ms <= MAX_REPLAY_PERIOD_MS:
            raise TinyLSTMError(
                f"--replay-period-ms {replay_period_ms}: give 0 (as fast as the UART allows) to "
                f"{MAX_REPLAY_PERIOD_MS} ms between replayed samples"
            )
        if embedded_replay_steps(source, replay_steps, None) == 0:
            raise TinyLSTMError(
                f"--replay-period-ms {replay_period_ms} paces the replay source, but this firmware embeds no "
                "replay data: give --source replay or --replay-steps N, or leave --replay-period-ms out"
            )
        defines["TL_REPLAY_PERIOD_MS"] = str(replay_period_ms)
    d = Path(export_dir)
    out_dir = Path(out) if out else d / f"firmware-{board}"
    if out or d.is_dir():  # a missing export directory: build_firmware names it
        check_output_dir(out_dir)
    return build_firmware(
        d,
        board,
        out_dir,
        source,
        defines,
        replay=replay_steps,
        data=_opt_str(data),
        test_data=_opt_str(test_data),
    )


@checked
def flash(target: str | Path, board: str = DEFAULT_BOARD, *, port: str | None = None) -> None:
    """``tinylstm flash``: program ``target`` (an ELF/BIN, or a ``build`` output directory) onto ``board``
    the way its record says; a QEMU board starts QEMU, prints its socket:// URL and runs until Ctrl-C.
    ``port``: the serial port for ESP32 uploads."""
    _flash(Path(target), board, port)


def _size_bytes(value: int | str, option: str) -> int:
    """'32k' -> 32768, '1.5M' -> 1572864, '4096' or 4096 -> 4096; errors name ``option``."""
    if isinstance(value, int):
        return value
    m = SIZE.match(value.strip())
    if not m:
        raise TinyLSTMError(f"{option} {value!r}: write bytes as 4096, 32k or 1.5M")
    size = float(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]
    if not size.is_integer():
        raise TinyLSTMError(f"{option} {value!r} is {size:g} bytes: give whole bytes, e.g. 4096, 32k or 1.5M")
    return int(size)


def _budget(max_flash: int | str | None, max_ram: int | str | None, max_latency_ms: float | None) -> Budget:
    return Budget(
        None if max_flash is None else _size_bytes(max_flash, "--max-flash"),
        None if max_ram is None else _size_bytes(max_ram, "--max-ram"),
        max_latency_ms,
    )


def _ints(value: str | int | Sequence[int], what: str) -> tuple[int, ...]:
    """'8,16,32', (8, 16, 32) -> (8, 16, 32); 8 -> (8,); each >= 1."""
    if isinstance(value, int):
        value = (value,)
    text = value if isinstance(value, str) else ",".join(map(str, value))
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise TinyLSTMError(f"{what} {text!r}: give integers separated by commas, e.g. 8,16,32") from None
    if not values or min(values) < 1:
        raise TinyLSTMError(f"{what} {text!r}: every value must be >= 1")
    return values


def _names(value: str | Sequence[str]) -> tuple[str, ...]:
    return tuple(v for v in (value.split(",") if isinstance(value, str) else value) if v)


@checked
def search(
    data: str | Path,
    board: str,
    *,
    max_flash: int | str | None = None,
    max_ram: int | str | None = None,
    max_latency_ms: float | None = None,
    trials: int = 20,
    epochs: int | None = None,
    select: str | None = None,
    folds: int | None = None,
    refit: bool | None = None,
    patience: int | None = None,
    seed: int = 0,
    cells: str | Sequence[str] = tuple(CELL_NAMES),
    hidden: str | int | Sequence[int] = DEFAULT_SPACE.hidden,
    layers: str | int | Sequence[int] = DEFAULT_SPACE.layers,
    hidden_bits: str | int | Sequence[int] = DEFAULT_SPACE.hidden_bits,
    input_bits: str | int | Sequence[int] = DEFAULT_SPACE.input_bits,
    readouts: str | Sequence[str] = DEFAULT_SPACE.readouts,
    stacks: str | int | Sequence[int] | None = None,
    windows: str | int | Sequence[int] | None = None,
    hop: int | None = None,
    qat: bool = True,
    bidirectional: bool = False,
    storage: str | None = None,
    study_name: str = "tinylstm",
    workers: int = 1,
    out: str | Path = "runs/search",
    progress: bool = False,
) -> dict[str, Any]:
    """``tinylstm search``: the most accurate model of the space that fits ``board`` within ``max_flash``,
    ``max_ram`` (bytes, or "32k", "1.5M") and ``max_latency_ms``; an Optuna study of ``trials`` trained
    trials, resumable from ``out``/study.db (or ``storage``). The space: ``cells``, ``hidden``, ``layers``,
    ``hidden_bits``, ``input_bits`` (the int8 h's: 8, 16), ``readouts``, ``stacks`` (None: the recipe's),
    ``windows`` (None: the data's), as sequences or the CLI's comma-separated strings; ``qat=False`` never
    fine-tunes quantization-aware; ``bidirectional=True`` also tries each architecture with a backward stack
    (window classification of one length; int8 h only, never QAT). ``folds``: how a trial is scored (None:
    k-fold cross-validation where its held-out split is small, else that split; 0: the held-out split; k >= 2:
    k folds). ``refit``: train the best trial's settings again on all the data for ``best_export`` (None:
    where the trials were cross-validated; ``doc["refit"]`` says what was done). Returns the study's document
    (search.json: ``doc["best"]``, ``doc["best_export"]`` for ``build``, ``doc["pareto"]``,
    ``doc["trials"]``); also writes search.md and pareto.png into ``out``."""
    space = Space(
        cells=_names(cells),
        hidden=_ints(hidden, "--hidden"),
        layers=_ints(layers, "--layers"),
        hidden_bits=_ints(hidden_bits, "--hidden-bits"),
        input_bits=_ints(input_bits, "--input-bits"),
        readouts=_names(readouts),
        stacks=_ints(stacks, "--stacks") if stacks is not None else (),
        qat=DEFAULT_SPACE.qat if qat else (False,),
        windows=_ints(windows, "--windows") if windows is not None else (),
        directions=(False, True) if bidirectional else (False,),
    )
    cfg = SearchConfig(
        data=str(data),
        board=board,
        out=Path(out),
        trials=trials,
        budget=_budget(max_flash, max_ram, max_latency_ms),
        space=space,
        epochs=epochs,
        select=select,
        folds=folds,
        refit=refit,
        patience=patience,
        seed=seed,
        storage=storage,
        study_name=study_name,
        workers=workers,
        progress=progress,
        dataset_options={"hop": hop} if hop is not None else {},
    )
    return _search(cfg)


@checked
def prune(
    model: str | Path,
    out: str | Path,
    *,
    hidden: int | None = None,
    board: str | None = None,
    max_flash: int | str | None = None,
    max_ram: int | str | None = None,
    max_latency_ms: float | None = None,
    step: float = DEFAULT_PRUNE_STEP,
    epochs: int | None = None,
    lr: float | None = None,
    seed: int | None = None,
    data: str | Path | None = None,
    test_data: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """``tinylstm prune``: remove whole hidden units from the checkpoint ``model`` down to ``hidden`` units
    per layer, or to the most that fit ``board`` within ``max_flash``, ``max_ram`` (bytes, or "8k") and
    ``max_latency_ms``; fine-tunes after each round (``step``: the fraction of units one round removes at
    most; ``epochs`` per round, default the recipe's / 4; ``lr`` the one-cycle peak, default 1/3 of
    training's; ``seed`` default the training's). Writes ``out``/model.pt, an ordinary checkpoint for
    ``export``, and ``out``/prune-report.json; returns the report (``report["test"]``,
    ``report["model_data_bytes"]``). ``data``, ``test_data``: the training and held-out files the model was
    trained with, moved."""
    from tinylstm.host.search.prune import PruneTarget, prune_checkpoint

    target = PruneTarget(
        hidden=hidden,
        board=board,
        budget=_budget(max_flash, max_ram, max_latency_ms),
    )
    if hidden is not None and (board is not None or target.budget.describe() != "no budget"):
        raise TinyLSTMError(
            "give --hidden or a board budget (--board with --max-flash/--max-ram/--max-latency-ms), not both"
        )
    if board is None and target.budget.describe() != "no budget":
        raise TinyLSTMError(
            "a budget is a board's: give --board with --max-flash, --max-ram or --max-latency-ms"
        )
    if board is not None:
        get_board(board)
    return prune_checkpoint(
        model,
        out,
        target,
        step=step,
        epochs=epochs,
        lr=lr,
        seed=seed,
        data=_opt_str(data),
        test_data=_opt_str(test_data),
        log=log,
    )


@checked
def parity(
    export_dir: str | Path,
    port: str | None = None,
    steps: int = 10_000,
    baud: int = DEFAULT_BAUD,
    *,
    qemu: str | Path | None = None,
    stall_timeout: float = 30.0,
    reconnect_timeout: float = 10.0,
    report: str | Path | None = None,
    on_status: Callable[[Feeder], None] | None = None,
    data: str | Path | None = None,
    test_data: str | Path | None = None,
) -> ParityReport:
    """``tinylstm parity``: feed ``steps`` of held-out data to the board at ``port`` (or to the firmware ELF
    ``qemu`` booted in QEMU) and compare every output with the host kernel (``result.passed``). The JSON
    report is written to ``report`` (default: EXPORT_DIR/parity-report.json). ``stall_timeout``: give up
    when no step is delivered for that many seconds; ``reconnect_timeout``: how long to wait for a port
    that went away; ``on_status``: called with the feeder about once a second; ``data``, ``test_data``: the
    export's data files at their new paths (moved)."""
    d = Path(export_dir)
    if (port is None) == (qemu is None):
        raise TinyLSTMError("give the board's port or a firmware ELF to boot in QEMU (one of them)")
    if steps <= 0:
        raise TinyLSTMError("--steps must be positive")
    if steps > MAX_PARITY_STEPS:  # the held-out samples are laid out for the whole run before it starts
        raise TinyLSTMError(
            f"--steps {steps}: at most {MAX_PARITY_STEPS:,} per run (hours on a board; the samples are held "
            "in memory): run parity again for more"
        )
    check_baud(baud)
    if not 0 < stall_timeout < math.inf:
        raise TinyLSTMError(f"--stall-timeout {stall_timeout}: give a finite number of seconds > 0")
    if not 0 <= reconnect_timeout < math.inf:
        raise TinyLSTMError(f"--reconnect-timeout {reconnect_timeout}: give a finite number of seconds >= 0")
    if not d.is_dir():
        raise TinyLSTMError(f"export directory {d} does not exist: run `tinylstm export` first")
    from tinylstm.codegen.heldout import load_held_out

    out = report_file(d, report, "parity-report.json", "--report")
    held = load_held_out(d, _opt_str(data), _opt_str(test_data))
    with ExitStack() as stack:
        if qemu is not None:
            board = stack.enter_context(QemuBoard(Path(qemu)))

            def reopen() -> Link:
                if not board.running:  # QEMU died: power the emulated board up again
                    board.start()
                return Link.open(board.url, baud)
        else:
            url = str(port)

            def reopen() -> Link:
                return Link.open(url, baud)

        link = stack.enter_context(reopen())
        result = run_parity(
            link,
            d,
            steps,
            held,
            reopen=reopen,
            on_status=on_status,
            stall_timeout=stall_timeout,
            reconnect_timeout=reconnect_timeout,
        )
    out.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    if result.interrupt is not None:  # the partial report is written: now stop as the user asked
        raise result.interrupt
    return result


class Stream:
    """A ``tinylstm stream`` session (made by ``stream``): open it with ``with``, then iterate
    ``predictions()``. ``board`` is the ``BoardStream`` underneath (``BoardStream`` is the lower-level
    API: any count, feed or source per call)."""

    def __init__(
        self,
        board: BoardStream,
        source: str | None,
        feed: np.ndarray | None,
        count: int | None,
        log: Path | None,
    ) -> None:
        self.board, self.source, self.feed, self.count, self.log = board, source, feed, count, log
        self._log: PredictionLog | None = None

    def __enter__(self) -> Stream:
        self.board.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close_log()
        self.board.close()

    @property
    def hello(self) -> Hello:
        """The board's HELLO: its name, the model hash and shape, the mode and the input source."""
        assert self.board.hello is not None, "open the stream first: with tinylstm.stream(...) as s"
        return self.board.hello

    @property
    def drift(self) -> DriftMonitor | None:
        """The drift monitor (None: no export, ``drift=False``, or an export without a drift reference)."""
        return self.board.drift

    def live_counters(self) -> StreamCounters:
        return self.board.live_counters()

    def predictions(
        self, on_status: Callable[[StreamCounters], None] | None = None
    ) -> Generator[Prediction, None, None]:
        """Switch the source if asked (host-fed: to host) and open the log, then iterate the predictions:
        ``count`` of them, one per fed sample, or forever; each also goes to the log. ``on_status``: the
        live counters, about once a second."""
        if self.source or self.feed is not None:
            self.board.set_source(Source[(self.source or "host").upper()])
        if self.log and self._log is None:
            self._log = PredictionLog(self.log)
        return self._predictions(on_status)

    def _predictions(
        self, on_status: Callable[[StreamCounters], None] | None
    ) -> Generator[Prediction, None, None]:
        try:
            for p in self.board.predictions(self.count, self.feed, on_status=on_status):
                if self._log:
                    self._log.write(p)
                yield p
        finally:
            self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


@checked
def stream(
    port: str,
    *,
    export: str | Path | None = None,
    baud: int = DEFAULT_BAUD,
    source: str | None = None,
    feed: str | None = None,
    count: int | None = None,
    log: str | Path | None = None,
    drift: bool = True,
    on_drift: Callable[[DriftEvent], None] | None = None,
    data: str | Path | None = None,
    test_data: str | Path | None = None,
) -> Stream:
    """``tinylstm stream``: predictions from the board at ``port`` (a serial port or a socket:// URL)::

        with tinylstm.stream(url, export=exp.dir, feed="held-out", count=100, log="p.csv") as s:
            for p in s.predictions(): ...

    ``export``: real values, class names, the model hash checked and drift alerts (``drift=False``: none;
    ``on_drift`` gets each alert raised or cleared); ``source``: switch the board's input source first
    (host, replay or sensor); ``feed="held-out"``: send the export's held-out data as INPUT frames
    (INPUT_S16 for an int16-h model; ``data``, ``test_data``: the export's data files at their new paths,
    moved); ``count``: stop after that many predictions; ``log``: also write each to this .csv or .jsonl
    file."""
    from tinylstm.codegen.heldout import load_held_out

    if count is not None and count <= 0:
        raise TinyLSTMError("--count must be positive")
    check_baud(baud)
    if source is not None and source not in SOURCES:
        raise TinyLSTMError(f"source {source!r}: choose {', '.join(SOURCES)}")
    samples = None
    if (data is not None or test_data is not None) and feed is None:
        raise TinyLSTMError(
            "--data/--test-data give the held-out data --feed held-out sends: add --feed held-out"
        )
    if feed is not None:
        if feed != "held-out":
            raise TinyLSTMError(f"feed {feed!r}: the one feed is 'held-out'")
        if source not in (None, "host"):  # the feeder switched the board back to host without a word
            raise TinyLSTMError(
                f"--source {source} with --feed held-out: the board takes fed INPUT frames from the host "
                "source only (--feed switches it there); leave one of them out"
            )
        if export is None:
            raise TinyLSTMError(
                "--feed held-out needs --export EXPORT_DIR (the held-out data comes from its source)"
            )
        held = load_held_out(Path(export), _opt_str(data), _opt_str(test_data))
        if held.split != "held-out":  # a search's refit, or trained with --test 0
            raise TinyLSTMError(
                f"the model of {export} has no held-out data to feed (trained on all of it): stream the "
                "board's own source (--source replay or sensor), or check it with tinylstm parity, which "
                "feeds its training data"
            )
        samples = np.concatenate(held.sequences)
    log_path = check_log_path(Path(log)) if log else None
    board = BoardStream(
        port,
        Path(export) if export else None,
        baud,
        drift=DEFAULT_DRIFT if drift else None,
        on_drift=on_drift,
    )
    return Stream(board, source, samples, count, log_path)

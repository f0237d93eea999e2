"""`tinylstm search`: the most accurate model that fits a board, by an Optuna study (docs/search.md).

Before the study, every architecture of the space (cell x hidden size x layers x hidden-state format x readout
x input stacking, x direction when asked; stream data gets only the last-h readout; the stacking by default is
the recipe's choice for the data, one value) is priced on the board (host/search/cost.py: flash, RAM, latency
per sample (only under a latency budget: else each trial prices its own), known before training) and those
over a budget or not fitting the board are set aside; nothing fitting fails at once. The prices are stored in
the study, so its workers and resumed runs draw from the same architectures. Each trial draws one of the
architectures that fit, a peak learning rate, dropout, quantization-aware fine-tuning (and a window length
when asked), trains it with the training recipe (trainer/recipe.py) and the drawn readout and stacking,
exports and checks it (``tinylstm check``: held-out float vs int8, golden == C bit-exact, the blob); the
objective is its integer model's accuracy (or RMSE) on the held-out split, or by cross-validation where that
split is small (host/search/selection.py), and the flash and RAM it reports are the export's own. The study
lives in SQLite (``OUT/study.db``, resumable: run again to continue) or any Optuna RDB URL such as
``postgresql://`` (several machines or ``--workers`` processes share one study). The results: the trials, the
Pareto fronts (accuracy vs flash, vs latency) as ``search.json``, ``search.md`` and ``pareto.png``, and the
best export copied to ``OUT/best-export``, ready for ``tinylstm build``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import multiprocessing
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from tinylstm.contract.cells import CELLS
from tinylstm.contract.constants import (
    HIDDEN16_BITS,
    HIDDEN_BITS,
    HIDDEN_FORMATS,
    INPUT16_BITS,
    INPUT_BITS,
    MAX_HIDDEN,
    MAX_INPUT,
    MAX_INPUT16,
    MAX_LAYERS,
    MAX_STACK,
)
from tinylstm.contract.constants import input_bits as model_input_bits
from tinylstm.contract.readouts import READOUTS
from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards.registry import Board, get_board
from tinylstm.host.search.cost import STATE_STRUCT_BYTES, Cost, CostCache, countable, priced_latency
from tinylstm.host.search.refit import refit, refit_applies
from tinylstm.host.search.selection import check_folds, cross_validate, folds_for, prefer_default
from tinylstm.trainer.outputs import check_output_dir, sha256_file
from tinylstm.trainer.recipe import SELECTIONS, DataShape, choose, choose_stack
from tinylstm.trainer.train import TrainConfig, bidirectional_window

QAT_EPOCHS = 3  # fine-tuning epochs of a trial that draws QAT
BEST_EXPORT = "best-export"
FAILED_IN_A_ROW = 3  # trials of the study (any worker) that fail one after another before it stops
SEED_STRIDE = 1000  # worker k's sampler is seeded seed + SEED_STRIDE * k
MAX_SEED = 2**32 - 1  # the sampler's (numpy's) largest seed


@dataclass(frozen=True)
class Budget:
    max_flash: int | None = None  # bytes: model data + kernel code
    max_ram: int | None = None  # bytes: the model state the kernel keeps
    # the slowest sample on the board's core at its clock (a stacked model's: the one in k that runs the
    # layers), so every sample is answered before the next; the mean per sample is reported beside it
    max_latency_ms: float | None = None

    def violation(self, flash: int, ram: int, latency: float | None) -> str | None:
        if self.max_flash is not None and flash > self.max_flash:
            return f"flash {flash} B > {self.max_flash} B"
        if self.max_ram is not None and ram > self.max_ram:
            return f"RAM {ram} B > {self.max_ram} B"
        if self.max_latency_ms is not None and latency is not None and latency > self.max_latency_ms:
            return f"latency {latency:.3f} ms > {self.max_latency_ms} ms"
        return None

    def describe(self) -> str:
        parts = [
            f"{what} <= {limit} {unit}"
            for what, limit, unit in (
                ("flash", self.max_flash, "B"),
                ("RAM", self.max_ram, "B"),
                ("latency", self.max_latency_ms, "ms"),
            )
            if limit is not None
        ]
        return ", ".join(parts) if parts else "no budget"


@dataclass(frozen=True)
class Architecture:
    """What fixes a model's price on a board: cell, hidden size, layers, the hidden state's bits, what
    the head reads (a pooled readout keeps a pool in RAM and pools at every step) and the input stacking
    (k samples per recurrent step: layer 0's weights grow with k, the layers run once per k samples)."""

    cell: str
    hidden: int
    layers: int
    hidden_bits: int  # 8 (int8 Q0.7) or 16 (int16 Q0.15): the export's and QAT's hidden state
    readout: str = "last"  # contract/readouts.py: "last", or "mean" / "max" pooled over a window
    stack: int = 1  # samples per recurrent step (contract/stacking.py)
    bidirectional: bool = False  # a backward stack over each window (window classification, one length)
    input16: bool = False  # an int16 input on the int8 h (export --input-bits 16; docs/integer-contract.md)

    @property
    def input_bits(self) -> int:
        """What export and QAT take as ``input_bits``: 16 for an int16 input (on the int8 h, or an int16-h
        model's), else 8; never export's ``auto``, which could widen an architecture the study has priced."""
        return model_input_bits(self.hidden_bits, self.input16)

    @property
    def key(self) -> str:
        """The study's parameter value, e.g. ``gru-16x1-h8-mean``, ``gru-16x1-h8x16-mean`` with an int16 input
        on the int8 h, ``gru-16x1-h8-mean-k22`` for a stacked model, ``gru-16x1-h8-mean-bi`` for a
        bidirectional one (keys without the suffixes are the ones studies used before those were knobs)."""
        bits = f"h{self.hidden_bits}" + ("x16" if self.input16 else "")
        base = f"{self.cell}-{self.hidden}x{self.layers}-{bits}-{self.readout}"
        base = f"{base}-k{self.stack}" if self.stack > 1 else base
        return f"{base}-bi" if self.bidirectional else base

    @classmethod
    def parse(cls, key: str) -> Architecture:
        bidirectional = key.endswith("-bi")
        key = key.removesuffix("-bi")
        base, _, last = key.rpartition("-")
        stack = 1
        if last.startswith("k") and last[1:].isdigit():
            key, stack = base, int(last[1:])
        cell, shape, bits, read = key.rsplit("-", 3)
        hidden, layers = shape.split("x")
        h_bits, _, in_bits = bits.removeprefix("h").partition("x")
        return cls(
            cell,
            int(hidden),
            int(layers),
            int(h_bits),
            read,
            stack,
            bidirectional,
            in_bits == str(INPUT16_BITS),
        )


@dataclass(frozen=True)
class Space:
    cells: tuple[str, ...] = tuple(CELLS)
    hidden: tuple[int, ...] = (8, 12, 16, 24, 32, 48, 64)
    layers: tuple[int, ...] = (1, 2)
    hidden_bits: tuple[int, ...] = (8, 16)  # the hidden state's format: int8 Q0.7 or int16 Q0.15
    # the int8 h's input: 8, or 16 (an int16 input: --input-bits 8,16); an int16-h model's is int16 always
    input_bits: tuple[int, ...] = (INPUT_BITS,)
    readouts: tuple[str, ...] = ("last", "mean", "max")  # what the head reads; pooled ones: window data only
    # samples per recurrent step (contract/stacking.py) to try; (): the recipe's choice for the data
    stacks: tuple[int, ...] = ()
    lr: tuple[float, float] = (3e-3, 3e-2)  # the one-cycle schedule's peak, log-uniform
    dropout: tuple[float, float] = (0.0, 0.3)  # drawn only for stacked layers
    qat: tuple[bool, ...] = (False, True)
    windows: tuple[int, ...] = ()  # window lengths to try (the dataset's `window` option); () keeps its own
    # (False, True): bidirectional architectures too (window classification of one length; int8 h, no QAT)
    directions: tuple[bool, ...] = (False,)

    def readouts_for(self, window: bool) -> tuple[str, ...]:
        """The readouts that apply to the data: all for window data (a label per window), only the
        unpooled ones for stream data (a label per step: pooling over a window does not apply)."""
        return tuple(r for r in self.readouts if window or not READOUTS[r].pooled)

    def architectures(self, window: bool = True, stacks: tuple[int, ...] | None = None) -> list[Architecture]:
        """Every architecture of the space for window (or stream) data, in a fixed order (the study's
        choices keep it). ``stacks``: the stacking factors to try when the space leaves them to the
        recipe (``space_stacks``); by default the space's own, else 1."""
        ks = stacks if stacks is not None else (self.stacks or (1,))
        wide_inputs = tuple(dict.fromkeys(bits == INPUT16_BITS for bits in self.input_bits))
        return [
            Architecture(c, h, n, b, r, k, bi, x16)
            for c in self.cells
            for h in self.hidden
            for n in self.layers
            for b in self.hidden_bits
            for x16 in (wide_inputs if b == HIDDEN_BITS else (False,))
            for r in self.readouts_for(window)
            for k in ks
            for bi in self.directions
            if not (bi and (b != HIDDEN_BITS or x16))  # a bidirectional model keeps an int8 h and input
        ]


@dataclass
class SearchConfig:
    data: str
    board: str
    out: Path
    trials: int = 20
    budget: Budget = field(default_factory=Budget)
    space: Space = field(default_factory=Space)
    epochs: int | None = None  # None: the training recipe's choice from the data size (trainer/recipe.py)
    # None: the recipe's (trainer/recipe.py: "last" for classification, "cv" for small regression sets);
    # "last": the last epoch; "best": early stopping on a validation split; "cv": epochs by cross-validation
    select: str | None = None
    patience: int | None = None  # select="best" only; None: the recipe's
    # a trial's score (host/search/selection.py): None: k-fold cross-validation where the held-out split is
    # small, else that split; 0: the held-out split; k >= 2: k folds
    folds: int | None = None
    # the best trial's settings trained again on all the data for OUT/best-export (host/search/refit.py):
    # None: where the trials were cross-validated; True: always; False: never (the best trial's export)
    refit: bool | None = None
    seed: int = 0
    storage: str | None = None  # None: sqlite:///OUT/study.db
    study_name: str = "tinylstm"
    workers: int = 1
    progress: bool = True
    dataset_options: dict[str, Any] = field(default_factory=dict)

    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{(self.out / 'study.db').resolve()}"

    def data_sha256(self) -> dict[str, str]:
        """The SHA-256 of the data file, as a checkpoint pins it (none for a builtin dataset: ``watch``)."""
        return {self.data: sha256_file(Path(self.data))} if Path(self.data).is_file() else {}

    def identity(self) -> dict[str, Any]:
        """What a resumed study must share with the one on disk. The recipe's stacking (``stacks`` ()), a
        unidirectional space and int8 inputs alone are left out, so studies started before those were knobs
        resume; studies started before the data was pinned (no ``data_sha256``) resume unverified
        (``_check_identity``)."""
        space = asdict(self.space)
        if not self.space.stacks:
            del space["stacks"]
        if self.space.directions == (False,):
            del space["directions"]
        if self.space.input_bits == (INPUT_BITS,):
            del space["input_bits"]
        scoring = {} if self.folds is None else {"folds": self.folds}  # studies from before it resume
        return {
            **scoring,
            "data": self.data,
            "data_sha256": self.data_sha256(),
            "board": self.board,
            "budget": asdict(self.budget),
            "space": space,
            "epochs": self.epochs,
            "select": self.select,
            "patience": self.patience,
            "seed": self.seed,
            "dataset_options": self.dataset_options,
        }


def _optuna() -> Any:
    try:
        import optuna
    except ModuleNotFoundError:
        raise TinyLSTMError("tinylstm search needs optuna: pip install 'optuna>=4'") from None
    # errors only: a failed trial is reported in one line by _Failures, not by Optuna's warning and traceback
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


def _storage(url: str) -> Any:
    optuna = _optuna()
    if url.startswith("postgresql://"):  # SQLAlchemy's default PostgreSQL driver is psycopg 3
        try:
            import psycopg  # noqa: F401
        except ModuleNotFoundError:
            raise TinyLSTMError(
                f"--storage {url.split('@')[-1]}: PostgreSQL needs psycopg: pip install 'psycopg[binary]'"
            ) from None
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as exc:  # sqlalchemy raises many kinds for a bad URL or a server that is down
        raise TinyLSTMError(
            f"cannot open the study storage {url.split('@')[-1]}: {str(exc).splitlines()[0]}"
        ) from None


def check_config(cfg: SearchConfig) -> Board:
    """The board of ``cfg``, every option checked first: bad input is a one-line error before any file."""
    board = get_board(cfg.board)
    _check_run(cfg)
    _check_space(cfg.space)
    check_budget(cfg.budget, board, "search")
    check_output_dir(cfg.out)
    return board


def _check_run(cfg: SearchConfig) -> None:
    """The study's own options: counts, selection, seeds and the dataset's hop."""
    if cfg.trials < 1 or cfg.workers < 1 or (cfg.epochs is not None and cfg.epochs < 1):
        given = f", --epochs {cfg.epochs}" if cfg.epochs is not None else ""
        raise TinyLSTMError(f"--trials {cfg.trials}, --workers {cfg.workers}{given}: each must be >= 1")
    if cfg.select is not None and cfg.select not in SELECTIONS:
        known = ", ".join(SELECTIONS)
        raise TinyLSTMError(f"--select {cfg.select!r}: choose {known}, or leave it to the recipe")
    if cfg.patience is not None and (cfg.select != "best" or cfg.patience < 1):
        raise TinyLSTMError(
            f"--patience {cfg.patience}: early stopping needs --select best and a patience >= 1 (by default "
            "trials select as the recipe does)"
        )
    check_folds(cfg.folds)
    top = MAX_SEED - SEED_STRIDE * (cfg.workers - 1)  # the last worker's sampler seed must be <= MAX_SEED
    if not 0 <= cfg.seed <= top:
        workers = f" with --workers {cfg.workers} (worker k adds {SEED_STRIDE} k)" if cfg.workers > 1 else ""
        raise TinyLSTMError(f"--seed {cfg.seed}: give 0 to {top}{workers}")
    hop = cfg.dataset_options.get("hop")
    if hop is not None and hop < 1:
        raise TinyLSTMError(f"--hop {hop}: steps between windows must be >= 1, or leave it to the dataset")


def _check_space(space: Space) -> None:
    """The search space: no empty list, known names, sizes within the kernel's limits."""
    empty = [
        (flag, fix)
        for flag, values, fix in (
            ("--cells", space.cells, f"choose from {', '.join(CELLS)}"),
            ("--hidden", space.hidden, f"give sizes 1 to {MAX_HIDDEN}, e.g. 8,16,32"),
            ("--layers", space.layers, f"give counts 1 to {MAX_LAYERS}, e.g. 1,2"),
            ("--hidden-bits", space.hidden_bits, f"choose from {','.join(map(str, sorted(HIDDEN_FORMATS)))}"),
            ("--input-bits", space.input_bits, f"choose from {INPUT_BITS},{INPUT16_BITS}"),
            ("--readouts", space.readouts, f"choose from {', '.join(READOUTS)}"),
        )
        if not values
    ]
    if empty:
        flag, fix = empty[0]
        raise TinyLSTMError(f"{flag} is empty: {fix}")
    unknown = [c for c in space.cells if c not in CELLS]
    if unknown:
        raise TinyLSTMError(f"unknown cell(s) {unknown}: choose from {', '.join(CELLS)}")
    if not 1 <= min(space.hidden) <= max(space.hidden) <= MAX_HIDDEN:
        given = ",".join(map(str, space.hidden))
        raise TinyLSTMError(f"--hidden {given}: the kernel runs 1 to {MAX_HIDDEN} units per layer")
    if not 1 <= min(space.layers) <= max(space.layers) <= MAX_LAYERS:
        given = ",".join(map(str, space.layers))
        raise TinyLSTMError(f"--layers {given}: the kernel runs 1 to {MAX_LAYERS} layers")
    if any(b not in HIDDEN_FORMATS for b in space.hidden_bits):
        given, known = (",".join(map(str, v)) for v in (space.hidden_bits, sorted(HIDDEN_FORMATS)))
        raise TinyLSTMError(f"--hidden-bits {given}: choose from {known} (int8 or int16 hidden state)")
    if any(b not in (INPUT_BITS, INPUT16_BITS) for b in space.input_bits):
        given = ",".join(map(str, space.input_bits))
        raise TinyLSTMError(
            f"--input-bits {given}: choose from {INPUT_BITS},{INPUT16_BITS} (an int8 or int16 input on the "
            "int8 h)"
        )
    if True in space.directions and (
        HIDDEN_BITS not in space.hidden_bits or INPUT_BITS not in space.input_bits
    ):
        h, x = (",".join(map(str, v)) for v in (space.hidden_bits, space.input_bits))
        raise TinyLSTMError(
            f"--bidirectional with --hidden-bits {h} --input-bits {x}: a bidirectional model keeps an int8 "
            f"hidden state and input, so no bidirectional architecture is left; add {HIDDEN_BITS} to both"
        )
    if any(r not in READOUTS for r in space.readouts):
        given = ",".join(space.readouts)
        raise TinyLSTMError(f"--readouts {given}: choose from {', '.join(READOUTS)} (what the head reads)")
    if any(not 1 <= k <= MAX_STACK for k in space.stacks):
        given = ",".join(map(str, space.stacks))
        raise TinyLSTMError(
            f"--stacks {given}: samples per recurrent step must be 1 (none) to {MAX_STACK}, or leave them to "
            "the recipe"
        )
    if any(w < 1 for w in space.windows):
        given = ",".join(map(str, space.windows))
        raise TinyLSTMError(f"--windows {given}: every window length must be >= 1 sample")
    lo, hi = space.lr
    if not 0 < lo <= hi:
        raise TinyLSTMError(f"learning-rate range {space.lr}: needs 0 < low <= high")


def check_budget(budget: Budget, board: Board, command: str) -> None:
    """Every limit positive and finite (a NaN would compare as no limit), a latency only where measured
    (``command``: search or prune, for the message)."""
    for flag, size in (("--max-flash", budget.max_flash), ("--max-ram", budget.max_ram)):
        if size is not None and size < 1:
            raise TinyLSTMError(
                f"{flag} {size} B: a budget is at least 1 byte (whole bytes: 4096, 32k, 1.5M)"
            )
    latency = budget.max_latency_ms
    if latency is not None and not 0 < latency < math.inf:
        raise TinyLSTMError(f"--max-latency-ms {latency}: give a finite number of milliseconds > 0")
    check_latency_measurable(board, latency, command)


def check_latency_measurable(board: Board, latency: float | None, command: str) -> None:
    """Refuse a latency budget on a board whose latency cannot be priced here (no counted core or no clock)
    rather than call it met (``command``: search or prune, for the message)."""
    if latency is not None and not (countable(board) and board.cpu_hz):
        clocked = ", ".join(b for b in _clocked_boards())
        raise TinyLSTMError(
            f"--max-latency-ms: {board.name} has no counted core and clock here, so its latency cannot be "
            f"measured; drop the option or {command} for one of {clocked}"
        )


def _clocked_boards() -> list[str]:
    from tinylstm.host.boards.registry import BOARDS

    return [b.name for b in BOARDS.values() if countable(b) and b.cpu_hz]


class _Data:
    """The dataset, loaded once per window length."""

    def __init__(self, cfg: SearchConfig) -> None:
        self.cfg = cfg
        self._loaded: dict[int | None, Any] = {}

    def get(self, window: int | None) -> Any:
        from tinylstm.trainer.data import load_dataset

        if window not in self._loaded:
            options = dict(self.cfg.dataset_options)
            if window is not None:
                options["window"] = window
            self._loaded[window] = load_dataset(self.cfg.data, **options)
        return self._loaded[window]


def space_stacks(cfg: SearchConfig, data: _Data) -> tuple[int, ...]:
    """The stacking factors to search: the space's, each checked against the channels (k * C at most the
    kernel's MAX_INPUT values per step) and against the shortest window of every ``--windows`` length (a
    window shorter than k completes no recurrent step): a one-line error; or the recipe's choice for the
    data (trainer/recipe.py ``choose_stack``: one value, so the space does not grow by default), the
    smallest over the window lengths, so that it suits all of them."""
    windows = cfg.space.windows or (None,)
    shapes = {w: DataShape.of(data.get(w)) for w in windows}
    if not cfg.space.stacks:
        return (min(choose_stack(None, shape)[0] for shape in shapes.values()),)
    given = ",".join(map(str, cfg.space.stacks))
    channels = data.get(windows[0]).num_channels
    wide = [k for k in cfg.space.stacks if k * channels > MAX_INPUT]
    if wide:
        raise TinyLSTMError(
            f"--stacks {given}: stacking {wide[0]} samples of {channels} "
            f"channels makes a {wide[0] * channels}-value step, more than the kernel's {MAX_INPUT}: use "
            f"{max(MAX_INPUT // channels, 1)} or less"
        )
    for w, shape in shapes.items():
        for k in cfg.space.stacks:
            try:
                choose_stack(k, shape)
            except TinyLSTMError as exc:
                on = f" (--windows {w})" if w is not None else ""
                raise TinyLSTMError(f"--stacks {given}{on}: {exc}") from None
    return cfg.space.stacks


def _first_window(cfg: SearchConfig) -> int | None:
    """The window length the space is priced on: the first of ``--windows``, else the dataset's own."""
    return cfg.space.windows[0] if cfg.space.windows else None


def data_architectures(cfg: SearchConfig, data: _Data) -> list[Architecture]:
    """The space's architectures that apply to the data (priced on the first window length, ``ds``):
    stream data (a label per step) gets only the
    unpooled readouts; a space of pooled readouts alone is a one-line error there, as is a bidirectional
    space on data a bidirectional model cannot run on. The stacking factors
    are ``space_stacks``'s; an int16-h model reads at most MAX_INPUT16 int16 values per step, so wider steps
    keep int8 h only (none left: a one-line error)."""
    ds = data.get(_first_window(cfg))
    window = ds.mode == "window"
    if True in cfg.space.directions:
        bidirectional_window(ds, None)  # window classification of one length, else a one-line error
    archs = cfg.space.architectures(window, space_stacks(cfg, data))
    if not archs:
        pooled = ",".join(cfg.space.readouts)
        raise TinyLSTMError(
            f"--readouts {pooled}: a pooled readout reads a window, and {cfg.data} is in stream mode (a "
            "label per step): include last"
        )
    channels = ds.num_channels
    fit = [
        a
        for a in archs
        if (a.hidden_bits != HIDDEN16_BITS and not a.input16) or a.stack * channels <= MAX_INPUT16
    ]
    if not fit:
        k = min(a.stack for a in archs)
        fix = f", or use --stacks {MAX_INPUT16 // channels} or less" if channels <= MAX_INPUT16 else ""
        raise TinyLSTMError(
            f"an int16 input (--hidden-bits 16, --input-bits 16) is at most {MAX_INPUT16} values per step, "
            f"and stacking {k} samples of {channels} channels makes {k * channels}: add 8 to --hidden-bits "
            f"and --input-bits{fix}"
        )
    return fit


def over_budget(cost: Cost, budget: Budget) -> str | None:
    """Why an architecture of this cost cannot be a result (the first sentence), or None."""
    why = cost.fits_board or budget.violation(cost.flash_bytes, cost.ram_bytes, cost.slowest_sample_ms)
    return why.splitlines()[0].split(". ")[0] if why else None


def price(cfg: SearchConfig, board: Board, data: _Data, arch: Architecture, latency: bool) -> Cost:
    """``arch`` priced on the board (host/search/cost.py, cached in OUT/costs.json), on the data the trials
    use (the first window length when several are searched: a window changes the sequences, not the shapes
    or the class names a price depends on), with its latency when ``latency``; a bidirectional architecture
    over one window (data_architectures checked there is one length)."""
    ds = data.get(_first_window(cfg))
    cfg.out.mkdir(parents=True, exist_ok=True)
    return CostCache(cfg.out / "costs.json", board).get(
        arch.cell,
        arch.layers,
        ds.num_channels,
        arch.hidden,
        ds.output_size,
        ds.classes,
        arch.hidden_bits,
        arch.readout,
        arch.stack,
        bidirectional_window(ds, None) if arch.bidirectional else 0,
        latency,
        arch.input16,
    )


def price_space(cfg: SearchConfig, board: Board, data: _Data | None = None) -> dict[str, Cost]:
    """Every architecture of the space priced on the board (``price``), by key.

    The recipe's stacking, when the space leaves it to the recipe, is chosen on the priced data too. Each
    architecture is priced with its own readout (a pooled one keeps 4 bytes per unit more state) and
    stacking (layer 0's weights and a k * C byte input buffer grow with k; latency is per sample). Latency
    is priced here only under a latency budget, which reads it; otherwise each trial prices its own drawn
    architecture's (``Objective``): counting instructions costs a build and an emulator run per
    architecture, and a search trains a few of hundreds."""
    from tqdm import tqdm

    data = data or _Data(cfg)
    archs = data_architectures(cfg, data)
    latency = cfg.budget.max_latency_ms is not None
    # tqdm's disable=None: no bar when stderr is not a terminal (CI logs, redirected output)
    bar = tqdm(archs, desc="pricing", unit="arch", disable=None if cfg.progress else True, leave=False)
    return {a.key: price(cfg, board, data, a, latency) for a in bar}


def fitting(prices: dict[str, Cost], budget: Budget) -> list[str]:
    """The architectures within the budget that fit the board, in the space's order."""
    return [key for key, cost in prices.items() if over_budget(cost, budget) is None]


def require_fit(prices: dict[str, Cost], cfg: SearchConfig) -> list[str]:
    """The architectures that fit; none: a one-line error naming the smallest one's price and the budget."""
    fit = fitting(prices, cfg.budget)
    if fit:
        return fit
    key, c = min(prices.items(), key=lambda kv: (kv[1].flash_bytes, kv[1].ram_bytes, kv[1].latency_ms or 0.0))
    latency = f", {c.latency_ms:.3f} ms per sample" if c.latency_ms is not None else ""
    raise TinyLSTMError(
        f"no architecture of the search space fits {cfg.board} within {cfg.budget.describe()}: the "
        f"smallest of {len(prices)}, {key}, costs flash {c.flash_bytes} B, RAM {c.ram_bytes} B{latency} "
        f"({over_budget(c, cfg.budget)}); raise the budget or search smaller models (--hidden, --layers, "
        "--cells, --hidden-bits, --readouts, --stacks)"
    )


def study_prices(study: Any) -> dict[str, Cost] | None:
    """The prices the study was started with (open_study stores them), or None."""
    stored = study.user_attrs.get("prices")
    return None if stored is None else {key: Cost(**cost) for key, cost in stored.items()}


class Objective:
    """One trial: draw an architecture that fits and the training knobs, train, export, measure."""

    def __init__(self, cfg: SearchConfig, board: Board, worker: int, prices: dict[str, Cost]) -> None:
        self.cfg, self.board, self.worker, self.prices = cfg, board, worker, prices
        self.choices = require_fit(prices, cfg)
        self.data = _Data(cfg)

    def __call__(self, trial: Any) -> float:
        try:
            return self._run(trial)
        except TinyLSTMError as exc:  # the trial fails (Optuna catches it): _Failures reports why
            trial.set_user_attr("error", str(exc).splitlines()[0])
            raise

    def _run(self, trial: Any) -> float:
        from tinylstm.codegen.export import ModelSource, export
        from tinylstm.codegen.qat import finetune
        from tinylstm.host.analysis.check import check
        from tinylstm.trainer.train import fit

        optuna = _optuna()
        s, cfg = self.cfg.space, self.cfg
        key = trial.suggest_categorical("arch", self.choices)  # only architectures within the budget
        arch = Architecture.parse(key)
        lr = trial.suggest_float("lr", *s.lr, log=True)
        dropout = trial.suggest_float("dropout", *s.dropout) if arch.layers > 1 else 0.0
        # a bidirectional model gets no QAT (not built for it): only the others draw it
        qat = not arch.bidirectional and trial.suggest_categorical("qat", list(s.qat))
        window = trial.suggest_categorical("window", list(s.windows)) if s.windows else None
        trial.set_user_attr("worker", self.worker)
        trial.set_user_attr("architecture", asdict(arch))
        cost = self.prices[key]
        if not priced_latency(cost, self.board):  # priced without it (no latency budget): this one's now
            cost = price(cfg, self.board, self.data, arch, latency=True)
        trial.set_user_attr("estimate", cost.to_dict())
        ds = self.data.get(window)
        root = trial_dir(cfg, trial.number)
        config = trial_config(cfg, arch, lr, dropout, qat)
        result = fit(ds, config, root / "run", finetune=finetune)
        exp = export(
            ModelSource(str(result.checkpoint_path)),
            root / "export",
            hidden_bits=arch.hidden_bits,
            input_bits=arch.input_bits,
        )
        # held-out quality (with the integer model's sums per case), golden == C bit-exact, the blob
        report = check(root / "export", case_sums=True)
        if not (report["bit_exact"]["ok"] and report["blob"]["ok"]):
            raise TinyLSTMError(
                f"trial {trial.number}: its export failed tinylstm check: {report['bit_exact']}"
            )
        if exp.report["readout"] != arch.readout:  # TrainConfig(readout=...) fixes the checkpoint's head
            raise TinyLSTMError(
                f"trial {trial.number}: drew readout {arch.readout!r}, its export reads "
                f"{exp.report['readout']!r}"
            )
        if exp.report.get("stack", 1) != arch.stack:  # TrainConfig(stack=...) fixes it
            raise TinyLSTMError(
                f"trial {trial.number}: drew input stacking {arch.stack}, its export stacks "
                f"{exp.report.get('stack', 1)}"
            )
        quality = report["quality"]
        flash = exp.report["model_data_bytes"] + cost.code_bytes
        ram = exp.report["state_bytes"] + STATE_STRUCT_BYTES
        recipe = result.metrics.get("recipe", {})
        measured = {
            "flash_bytes": flash,
            "ram_bytes": ram,
            "latency_ms": cost.latency_ms,  # per sample
            "instructions": cost.instructions,
            "peak_latency_ms": cost.peak_latency_ms,  # the sample that runs the layers
            "stack": exp.report.get("stack", 1),  # the drawn one
            "model_data_bytes": exp.report["model_data_bytes"],
            "hidden_bits": exp.report["hidden_bits"],
            "input_bits": exp.report["input_bits"],
            "readout": exp.report["readout"],  # the drawn one
            "bidirectional": exp.report["bidirectional"],  # the drawn one
            "qat_hidden_bits": result.metrics["qat"]["hidden_bits"] if "qat" in result.metrics else None,
            "epochs": recipe.get("epochs"),  # the recipe's choice unless --epochs was given
            "select": recipe.get("select"),  # the recipe's choice unless --select was given
            "epochs_run": result.metrics.get("epochs_run"),
            "export": str((root / "export").resolve()),
            "hash": exp.report["hash"],
            "float": float(quality["float"]),
            "int8": float(quality["int8"]),
            "metric": quality["metric"],
            "check_passed": bool(report["passed"]),  # also within check's float-vs-int8 thresholds
            "check_failed": [r["rule"] for r in report["rules"] if not r["passed"]],  # check's FAIL rules
        }
        why = cfg.budget.violation(flash, ram, cost.slowest_sample_ms)
        if why:  # the price is exact for the shapes; this guards the rule itself
            trial.set_user_attr("measured", measured)
            trial.set_user_attr("pruned", f"measured {why}")
            raise optuna.TrialPruned(why)
        held = result.metrics["sizes"]["test"]
        if trial.study.user_attrs.get(COUNTS_RECORDINGS):
            k, why_folds = folds_for(self._given_folds(trial), result.metrics["test_cases"], held)
        else:  # a study started when the rule counted windows: its trials stay comparable
            k, why_folds = folds_for(self._given_folds(trial), held)
        cv = (
            cross_validate(ds, config, arch.hidden_bits, k, root / "cv", finetune, arch.input_bits)
            if k
            else None
        )
        # the integer model's sums per case, where it was scored: for prefer_default's paired comparison
        measured["cases"] = quality["cases"] if cv is None else cv.pop("cases")
        measured["cv"] = None if cv is None else {**cv, "why": why_folds}
        trial.set_user_attr("measured", measured)
        return float(quality["int8"] if cv is None else cv["int8"])

    def _given_folds(self, trial: Any) -> int | None:
        """--folds, or 0 (the held-out split) in a study started before trials were cross-validated."""
        if self.cfg.folds is None and not trial.study.user_attrs.get(CROSS_VALIDATES):
            return 0
        return self.cfg.folds


def trial_config(cfg: SearchConfig, arch: Architecture, lr: float, dropout: float, qat: bool) -> TrainConfig:
    """How a trial of these drawn values trains (and the refit of the best one: host/search/refit.py)."""
    return TrainConfig(
        cell=arch.cell, hidden=arch.hidden, layers=arch.layers, epochs=cfg.epochs, lr=lr,
        select=cfg.select, patience=cfg.patience, seed=cfg.seed, progress=False, dropout=dropout,
        readout=arch.readout, stack=arch.stack, qat_epochs=QAT_EPOCHS if qat else 0,
        qat_hidden_bits=arch.hidden_bits, qat_input_bits=arch.input_bits, bidirectional=arch.bidirectional,
    )  # fmt: skip


DEFAULT_ORIGIN = "the training recipe's default"
# a study's attribute: its trials are scored by selection.folds_for (older studies: the held-out split)
CROSS_VALIDATES = "cross_validates"
# a study's attribute: folds_for counts a held-out split's recordings, not its windows (older studies: its
# sequences, so a study resumed keeps one rule for all its trials)
COUNTS_RECORDINGS = "counts_recordings"


def default_trials(cfg: SearchConfig, data: _Data, choices: list[str]) -> list[dict[str, Any]]:
    """The parameters of the model ``tinylstm train`` makes with default flags, as the first trials of a new
    study: TrainConfig's cell, hidden size and layers, an int8 hidden state, the recipe's input stacking and
    readout for the data (one trial per readout its cross-validation would choose among), its peak learning
    rate (within the space's range) and no QAT. Only those in ``choices`` (the space, within the budget): so
    by the search's own score its best is never beaten by a default model it could have drawn."""
    base, s = TrainConfig(), cfg.space
    recipe = choose(base, DataShape.of(data.get(_first_window(cfg))))
    lr = min(max(base.lr, s.lr[0]), s.lr[1])
    qat = {"qat": False} if False in s.qat else {}
    params = []
    for readout in recipe.readout_candidates or (recipe.readout,):
        arch = Architecture(base.cell, base.hidden, base.layers, HIDDEN_BITS, readout, recipe.stack)
        if arch.key in choices:
            params.append({"arch": arch.key, "lr": lr, **qat})
    return params


def trial_dir(cfg: SearchConfig, number: int) -> Path:
    """A trial's files: OUT/trials/STUDY/NNNN, so studies sharing an --out (other --study-name) keep their
    own (the study's name made a safe folder name, with a digest of the name when that changed it)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", cfg.study_name).lstrip(".")
    if name != cfg.study_name:
        name = f"{name}-{hashlib.sha256(cfg.study_name.encode()).hexdigest()[:8]}"
    return cfg.out / "trials" / name / f"{number:04d}"


def _direction(cfg: SearchConfig, data: _Data | None = None) -> str:
    ds = (data or _Data(cfg)).get(None)
    return "maximize" if ds.task == "classification" else "minimize"


def open_study(
    cfg: SearchConfig, direction: str, worker: int = 0, prices: dict[str, Cost] | None = None
) -> Any:
    """Create or load the study, refusing one started with other settings. ``prices`` (price_space) are
    stored in a study that has none yet; a study's stored prices are the ones its trials draw from."""
    optuna = _optuna()
    if cfg.storage is None:
        cfg.out.mkdir(parents=True, exist_ok=True)  # the default SQLite file lives there
    sampler = optuna.samplers.TPESampler(seed=cfg.seed + SEED_STRIDE * worker, n_startup_trials=4)
    study = optuna.create_study(
        storage=_storage(cfg.storage_url()),
        study_name=cfg.study_name,
        direction=direction,
        sampler=sampler,
        load_if_exists=True,
    )
    if study.user_attrs.get("identity") is None:  # a new study: what it is, nothing to compare with
        study.set_user_attr("identity", cfg.identity())
        study.set_user_attr(CROSS_VALIDATES, True)
        study.set_user_attr(COUNTS_RECORDINGS, True)
    else:
        _check_identity(study, cfg)
    if prices is not None and "prices" not in study.user_attrs:
        study.set_user_attr("prices", {key: cost.to_dict() for key, cost in prices.items()})
    return study


def _check_identity(study: Any, cfg: SearchConfig) -> None:
    ident = study.user_attrs.get("identity")
    if ident is None:
        return
    now = json.loads(json.dumps(cfg.identity()))
    if "data_sha256" not in ident:  # started before the data was pinned: resumed, its data unverified
        del now["data_sha256"]
    elif ident["data_sha256"] and list(ident["data_sha256"].values()) == list(now["data_sha256"].values()):
        now["data"], now["data_sha256"] = ident["data"], ident["data_sha256"]  # the same bytes, moved
    elif ident["data"] == now["data"] and ident["data_sha256"] != now["data_sha256"]:
        raise TinyLSTMError(
            f"the data {cfg.data} changed since the study {cfg.study_name!r} started (SHA-256 differs): "
            "restore it, or search the changed data as a new study (another --out or --study-name)"
        )
    if ident != now:
        raise TinyLSTMError(
            f"the study {cfg.study_name!r} in {cfg.storage_url().split('@')[-1]} was started with other "
            f"settings ({_differences(ident, now)}): pass the same ones, or another --out or "
            "--study-name"
        )


def existing_study(cfg: SearchConfig) -> Any | None:
    """The study to resume, checked against ``cfg`` (before any pricing or training), or None; starts no
    study where there is none."""
    optuna = _optuna()
    if cfg.storage is None and not (cfg.out / "study.db").is_file():
        return None
    try:
        study = optuna.load_study(study_name=cfg.study_name, storage=_storage(cfg.storage_url()))
    except KeyError:  # no study of that name in the storage yet
        return None
    _check_identity(study, cfg)
    return study


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    """The settings that differ (another data file's digest goes with its path: not listed)."""
    return ", ".join(
        f"{k}: {old.get(k)!r} then, {new.get(k)!r} now"
        for k in new
        if old.get(k) != new.get(k) and k != "data_sha256"
    )


def _finished(study: Any) -> int:
    optuna = _optuna()
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


class _Failures:
    """A trial callback: each failed trial reported in one line (on stderr, below a progress bar); after
    FAILED_IN_A_ROW failed one after another, the study stops with a one-line error naming the last failure
    (a trial that always fails would otherwise be retried for ever: only finished trials count). In a row
    means in the study, by the time each trial ended, whichever worker ran it, counting the trials that
    ended since ``since`` (this run: an earlier run's failures were reported by it)."""

    def __init__(self, since: datetime.datetime) -> None:
        self.since = since

    def in_a_row(self, study: Any) -> int:
        ended = [
            t
            for t in study.get_trials(deepcopy=False)
            if t.state.is_finished() and t.datetime_complete is not None and t.datetime_complete >= self.since
        ]
        ended.sort(key=lambda t: (t.datetime_complete, t.number))
        n = 0
        for t in reversed(ended):
            if t.state.name != "FAIL":
                break
            n += 1
        return n

    def __call__(self, study: Any, trial: Any) -> None:
        from tqdm import tqdm

        if trial.state.name != "FAIL":
            return
        why = trial.user_attrs.get("error", "stopped")
        tqdm.write(f"trial {trial.number} failed: {why}", file=sys.stderr)
        n = self.in_a_row(study)
        if n >= FAILED_IN_A_ROW:
            raise TinyLSTMError(
                f"{n} trials failed in a row, the last (trial {trial.number}): {why}; fix that, "
                "then run the same command again to continue the study"
            )


def run_worker(
    cfg: SearchConfig, direction: str, worker: int, on_trial: Callable[[Any, Any], None] | None = None
) -> None:
    """Run trials in this process until the study holds ``cfg.trials`` finished ones. Every trial draws an
    architecture within the budget, so each finished trial was trained (pruned: over the budget as
    measured after its export, which the exact prices rule out)."""
    import torch

    optuna = _optuna()
    board = check_config(cfg)
    torch.set_num_threads(1)  # trials are small; parallel workers each take one core
    study = open_study(cfg, direction, worker)
    prices = study_prices(study)
    if prices is None:  # a study not opened by search(): price it here
        priced = price_space(cfg, board)
        require_fit(priced, cfg)
        prices = study_prices(open_study(cfg, direction, worker, priced))
        assert prices is not None
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    since = datetime.datetime.now()  # Optuna's trial times are local, naive
    callbacks = [optuna.study.MaxTrialsCallback(cfg.trials, states=states), _Failures(since)]
    if on_trial is not None:
        callbacks.append(on_trial)
    if _finished(study) < cfg.trials:
        study.optimize(Objective(cfg, board, worker, prices), callbacks=callbacks, catch=(TinyLSTMError,))


def _worker_main(cfg: SearchConfig, direction: str, worker: int) -> None:
    run_worker(cfg, direction, worker)


def search(cfg: SearchConfig) -> dict[str, Any]:
    """Run (or continue) the study, then write the results; returns search.json's document."""
    from tqdm import tqdm

    board = check_config(cfg)
    data = _Data(cfg)
    direction = _direction(cfg, data)
    data_architectures(cfg, data)  # --stacks too wide or too long for the data: before any file
    fresh = not cfg.out.exists()
    cfg.out.mkdir(parents=True, exist_ok=True)
    resumed = existing_study(cfg)  # other settings are refused before anything is priced
    prices = study_prices(resumed) if resumed is not None else None
    try:
        if prices is None:
            prices = price_space(cfg, board, data)
        fit = require_fit(prices, cfg)  # before the study exists: nothing fitting leaves no study behind
    except TinyLSTMError:
        if fresh:  # nor the prices' cache: a refused search writes nothing
            shutil.rmtree(cfg.out, ignore_errors=True)
        raise
    study = open_study(cfg, direction, prices=prices)
    if not study.trials:  # a new study starts with the default model (a study given trials keeps them)
        for params in default_trials(cfg, data, fit)[: cfg.trials]:
            study.enqueue_trial(params, user_attrs={"origin": DEFAULT_ORIGIN})
    done = _finished(study)
    bar = tqdm(
        total=cfg.trials,
        initial=min(done, cfg.trials),
        unit="trial",
        disable=None if cfg.progress else True,  # no bar when stderr is not a terminal
        desc="search",
    )

    def on_trial(st: Any, trial: Any) -> None:
        if trial.state.name == "FAIL":  # the bar counts the finished trials the study ends with
            return
        bar.update(1)
        try:
            bar.set_postfix(best=f"{st.best_value:.4g}", refresh=True)
        except ValueError:  # no complete trial yet
            pass

    ctx = multiprocessing.get_context("spawn")
    others = [ctx.Process(target=_worker_main, args=(cfg, direction, k)) for k in range(1, cfg.workers)]
    for p in others:
        p.start()
    try:
        run_worker(cfg, direction, 0, on_trial)
    finally:
        for p in others:
            p.join()
        bar.close()
    failed = [p.exitcode for p in others if p.exitcode]
    if failed:
        raise TinyLSTMError(
            f"{len(failed)} search worker(s) failed (exit {failed}); the study keeps what finished"
        )
    return write_results(cfg, open_study(cfg, direction), direction)


def _pareto(points: list[tuple[float, float, int]], maximize: bool) -> list[int]:
    """Trial numbers not dominated: no other trial is at most as costly and strictly better, or cheaper
    and at least as good. points: (cost, value, number)."""
    sign = 1 if maximize else -1
    front, best = [], None
    for _cost, value, number in sorted(points, key=lambda p: (p[0], -sign * p[1])):
        if best is None or sign * value > sign * best:
            front.append(number)
            best = value
    return front


def write_results(cfg: SearchConfig, study: Any, direction: str) -> dict[str, Any]:
    optuna = _optuna()
    prices = study_prices(study) or {}
    rows = []
    for t in study.get_trials(deepcopy=False):
        params = {**t.user_attrs.get("architecture", {}), **t.params}  # the architecture's parts too
        row = {"number": t.number, "state": t.state.name.lower(), "params": params, "value": t.value,
               "worker": t.user_attrs.get("worker")}  # fmt: skip
        row |= {
            k: t.user_attrs[k]
            for k in ("measured", "estimate", "pruned", "error", "origin")
            if k in t.user_attrs
        }
        rows.append(row)
        if "estimate" in row and params.get("arch") in prices:  # with the latency it priced (Objective)
            prices[params["arch"]] = Cost(**row["estimate"])
    complete = [r for r in rows if r["state"] == "complete"]
    maximize = direction == "maximize"
    fronts = {
        "flash": _pareto(
            [(r["measured"]["flash_bytes"], r["value"], r["number"]) for r in complete], maximize
        ),
        "latency": _pareto(
            [
                (r["measured"]["latency_ms"], r["value"], r["number"])
                for r in complete
                if r["measured"]["latency_ms"] is not None
            ],
            maximize,
        ),
    }
    best, choice = None, None
    if complete:
        defaults = [r for r in complete if r.get("origin") == DEFAULT_ORIGIN]
        default = best_of(defaults, maximize) if defaults else None
        best, choice = prefer_default(best_of(complete, maximize), default, maximize)
    previous = _results_study(cfg.out)
    refit_doc = None
    if best is not None:
        refit_doc = refit_best(cfg, best)
        if refit_doc["done"]:
            copy_best_export(cfg, f"trial {best['number']}'s refit", refit_doc["export"], refit_doc["hash"])
        else:
            m = best["measured"]
            copy_best_export(cfg, f"the best trial {best['number']}'s", m["export"], m["hash"])
    doc = {
        "study": cfg.study_name,
        "storage": cfg.storage_url().split("@")[-1],
        "board": cfg.board,
        "budget": asdict(cfg.budget),
        "architectures": {
            "priced": len(prices),
            "fit": fitting(prices, cfg.budget),
            "prices": {key: cost.to_dict() for key, cost in prices.items()},
        },
        "direction": direction,
        # of the integer model as exported: int8, or int16-h where a trial drew hidden_bits 16
        "objective": ("integer-model accuracy (%)" if maximize else "integer-model RMSE")
        + _scoring(complete),
        "trials": rows,
        "counts": {
            s.name.lower(): sum(r["state"] == s.name.lower() for r in rows) for s in optuna.trial.TrialState
        },
        "pareto": fronts,
        "best": best,
        "choice": choice,  # None, or how the default model and the top score were weighed (prefer_default)
        "refit": refit_doc,  # None without a best; else whether best-export is the best trained again
        "best_export": str((cfg.out / BEST_EXPORT).resolve()) if best else None,
        # another study's results these replaced (its trials stay in OUT/trials/STUDY), or None
        "replaced_study": previous if previous not in (None, cfg.study_name) else None,
    }
    (cfg.out / "search.json").write_text(json.dumps(doc, indent=1) + "\n")
    (cfg.out / "search.md").write_text(render_md(doc))
    _plot(doc, cfg.out / "pareto.png")
    return doc


def _results_study(out: Path) -> str | None:
    """The study whose results OUT/search.json holds, or None (none yet, or unreadable)."""
    try:
        study = json.loads((out / "search.json").read_text()).get("study")
    except (OSError, ValueError, AttributeError):
        return None
    return study if isinstance(study, str) else None


def best_of(complete: list[dict[str, Any]], maximize: bool) -> dict[str, Any]:
    """The complete trial of the best score; among equals the one of least flash, then the first."""
    sign = -1 if maximize else 1
    return min(complete, key=lambda r: (sign * r["value"], r["measured"]["flash_bytes"], r["number"]))


def _bits(params: dict[str, Any]) -> str:
    """A trial's numeric format as search.md's "h bits" column says it: 8, 16, or 8x16 (an int16 input)."""
    return f"{params['hidden_bits']}" + ("x16" if params.get("input16") else "")


def _scoring(complete: list[dict[str, Any]]) -> str:
    """How the trials were scored (host/search/selection.py), for the objective's name."""
    folds = sorted({(r["measured"].get("cv") or {}).get("folds", 0) for r in complete})
    if folds == [0] or not folds:
        return " on the held-out split"
    if folds[0]:
        return f", {'/'.join(map(str, folds))}-fold cross-validated on all the data"
    return ", cross-validated where a trial's held-out split is small, else on it"


def refit_best(cfg: SearchConfig, best: dict[str, Any]) -> dict[str, Any]:
    """Whether OUT/best-export is the best trial's settings trained again on all the data
    (host/search/refit.py) and why; if so, that model's record."""
    do, why = refit_applies(cfg.refit, best["measured"].get("cv"))
    if not do:
        return {"done": False, "why": why}
    p = best["params"]
    arch = Architecture.parse(p["arch"])
    config = trial_config(cfg, arch, p["lr"], p.get("dropout", 0.0), bool(p.get("qat", False)))
    root = trial_dir(cfg, best["number"]) / "refit"
    of = {"trial": best["number"], "hash": best["measured"]["hash"]}
    done = refit(_Data(cfg).get(p.get("window")), config, arch.hidden_bits, root, of, arch.input_bits)
    flash = best["measured"]["flash_bytes"] - best["measured"]["model_data_bytes"] + done["model_data_bytes"]
    return {"done": True, "why": why, **done, "flash_bytes": flash}


def copy_best_export(cfg: SearchConfig, what: str, export_dir: str, want_hash: str) -> None:
    """Copy ``what`` export (``export_dir``) to OUT/best-export: checked first (there, and the model
    recorded, by its hash ``want_hash``), copied beside it and renamed only when whole, so a failure keeps the
    old one."""
    src = Path(export_dir)
    report = src / "export-report.json"
    if not report.is_file():
        raise TinyLSTMError(
            f"{what} export {src} is gone: restore it, or start the study again in another --out"
        )
    held = json.loads(report.read_text()).get("hash")
    if held != want_hash:
        raise TinyLSTMError(
            f"{what} export {src} holds another model (hash {held}, recorded {want_hash}): something wrote "
            "over it; start the study again in another --out"
        )
    tmp = Path(tempfile.mkdtemp(prefix=f".{BEST_EXPORT}-", dir=cfg.out))
    try:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    target = cfg.out / BEST_EXPORT
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)


def check_verdict(measured: dict[str, Any]) -> str:
    """A trial's ``tinylstm check`` verdict in one phrase: PASS, or FAIL and the rules that failed."""
    if measured["check_passed"]:
        return "tinylstm check PASS"
    return "tinylstm check FAIL: " + "; ".join(measured.get("check_failed") or ["see tinylstm check"])


def render_md(doc: dict[str, Any]) -> str:
    metric = "int8 accuracy %" if doc["direction"] == "maximize" else "int8 RMSE"
    fit = doc["architectures"]["fit"]
    lines = [
        f"# Search: {doc['study']} for {doc['board']}",
        "",
        f"Objective: {doc['objective']}; budget {doc['budget']}; trials {doc['counts']}.",
        "",
        f"Architectures within the budget: {len(fit)} of {doc['architectures']['priced']}"
        + (f" ({', '.join(fit)})." if fit else "."),
        "",
        "| trial | cell | hidden | layers | h bits | readout | stack | bidirectional | qat | score | "
        f"{metric} | float | flash B | RAM B | latency ms per sample | pareto |",
        "|---:|---|---:|---:|---:|---|---:|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    fronts = doc["pareto"]
    for r in sorted((r for r in doc["trials"] if r["state"] == "complete"), key=lambda r: r["number"]):
        m, p = r["measured"], r["params"]
        tags = [k for k in ("flash", "latency") if r["number"] in fronts[k]]
        lat = "—" if m["latency_ms"] is None else f"{m['latency_ms']:.3f}"
        lines.append(
            f"| {r['number']} | {p['cell']} | {p['hidden']} | {p['layers']} | {_bits(p)} | "
            f"{p['readout']} | {p.get('stack', 1)} | {p.get('bidirectional', False)} | "
            f"{p.get('qat', False)} | {r['value']:.4g} | {m['int8']:.4g} | {m['float']:.4g} | "
            f"{m['flash_bytes']} | {m['ram_bytes']} | {lat} | {', '.join(tags)} |"
        )
    lines += [
        "",
        "Score: what the study ranks by, the integer model's; where the trial was cross-validated "
        "(host/search/selection.py) over every sequence of the data, its folds pooled, else the next column. "
        f"{metric} and float: the trial's export on its held-out split.",
    ]
    seeded = [str(r["number"]) for r in doc["trials"] if r.get("origin")]
    if seeded:
        lines += [
            "",
            f"Trial {seeded[0]}: {DEFAULT_ORIGIN} model (`tinylstm train` with no flags)."
            if len(seeded) == 1
            else f"Trials {', '.join(seeded)}: {DEFAULT_ORIGIN} model (`tinylstm train` with no flags), one "
            "per readout its cross-validation chooses between.",
        ]
    pruned = [r for r in doc["trials"] if r["state"] == "pruned"]
    if pruned:
        lines += ["", "Pruned (over the budget as measured after training):", ""]
        lines += [f"- trial {r['number']} {r['params']}: {r.get('pruned', '?')}" for r in pruned]
    failed = [r for r in doc["trials"] if r["state"] == "fail"]
    if failed:
        lines += ["", "Failed:", ""]
        lines += [f"- trial {r['number']} {r['params']}: {r.get('error', '?')}" for r in failed]
    if doc["best"]:
        choice = doc.get("choice")
        weighed = ""
        if choice:  # prefer_default weighed the default model against the top score
            kept = "The default model, kept: " if choice["kept_default"] else "Not the default model: "
            weighed = f"{kept}{choice['why']}. "
        lines += [
            "",
            f"Best: trial {doc['best']['number']} ({check_verdict(doc['best']['measured'])}). "
            + weighed
            + _best_export(doc),
        ]
    return "\n".join(lines) + "\n"


def _best_export(doc: dict[str, Any]) -> str:
    """What `OUT/best-export` holds, in a sentence: the best trial's export, or its refit on all the data."""
    r = doc.get("refit") or {"done": False, "why": ""}
    if not r["done"]:
        return f"`{doc['best_export']}` is its export ({r['why']})."
    exact = r["bit_exact"]
    return (
        f"`{doc['best_export']}` is its settings trained again on all {r['sequences']} sequences (refit: "
        f"{r['why']}), nothing held out: its estimate is the trial's score; golden == C bit-exact on every "
        f"sequence and a {exact['long_stream_steps']}-step stream, and the blob (a refit failing either "
        "fails the search)."
    )


def _plot(doc: dict[str, Any], path: Path) -> None:
    complete = [r for r in doc["trials"] if r["state"] == "complete"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, unit in (
        (axes[0], "flash_bytes", "flash (B)"),
        (axes[1], "latency_ms", "latency per sample (ms)"),
    ):
        pts = [
            (r["measured"][key], r["value"], r["number"]) for r in complete if r["measured"][key] is not None
        ]
        front = set(doc["pareto"]["flash" if key == "flash_bytes" else "latency"])
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], c="0.6", label="trials")
            fr = sorted(p for p in pts if p[2] in front)
            ax.plot([p[0] for p in fr], [p[1] for p in fr], "o-", c="C3", label="Pareto front")
            ax.legend()
        else:
            ax.text(0.5, 0.5, "not measured for this board", ha="center", transform=ax.transAxes)
        ax.set_xlabel(unit)
        ax.set_ylabel(doc["objective"])
        ax.grid(alpha=0.3)
    fig.suptitle(f"{doc['study']} on {doc['board']}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)

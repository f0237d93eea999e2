"""`tinylstm search`: the most accurate model that fits a board, by an Optuna study (docs/search.md).

Each trial draws a cell, hidden size, layers, learning rate, dropout, quantization-aware fine-tuning
(and a window length when asked), prices the architecture on the board first (host/cost.py: flash,
RAM, latency per step, known before training) and prunes it when it breaks a budget or does not fit
the board; otherwise it trains, exports and checks it (``tinylstm check``: held-out float vs int8,
golden == C bit-exact, the blob); the objective is held-out int8 accuracy (or RMSE), and the flash,
RAM and latency it reports are the export's own. The study lives in SQLite (``OUT/study.db``,
resumable: run again to continue) or any Optuna RDB URL such as ``postgresql://`` (several machines
or ``--workers`` processes share one study). The results: the trials, the Pareto fronts (accuracy vs
flash, vs latency) as ``search.json``, ``search.md`` and ``pareto.png``, and the best feasible
export copied to ``OUT/best-export``, ready for ``tinylstm build``.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from tinylstm.codegen.cells import CELLS
from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards.registry import Board, get_board
from tinylstm.host.cost import CostCache, countable

QAT_EPOCHS = 3  # fine-tuning epochs of a trial that draws QAT
BEST_EXPORT = "best-export"


@dataclass(frozen=True)
class Budget:
    max_flash: int | None = None  # bytes: model data + kernel code
    max_ram: int | None = None  # bytes: the model state the kernel keeps
    max_latency_ms: float | None = None  # one step on the board's core at its clock

    def violation(self, flash: int, ram: int, latency: float | None) -> str | None:
        if self.max_flash is not None and flash > self.max_flash:
            return f"flash {flash} B > {self.max_flash} B"
        if self.max_ram is not None and ram > self.max_ram:
            return f"RAM {ram} B > {self.max_ram} B"
        if self.max_latency_ms is not None and latency is not None and latency > self.max_latency_ms:
            return f"latency {latency:.3f} ms > {self.max_latency_ms} ms"
        return None


@dataclass(frozen=True)
class Space:
    cells: tuple[str, ...] = tuple(CELLS)
    hidden: tuple[int, ...] = (8, 12, 16, 24, 32, 48, 64)
    layers: tuple[int, ...] = (1, 2)
    lr: tuple[float, float] = (1e-3, 1e-2)
    dropout: tuple[float, float] = (0.0, 0.3)  # drawn only for stacked layers
    qat: tuple[bool, ...] = (False, True)
    windows: tuple[int, ...] = ()  # window lengths to try (the dataset's `window` option); () keeps its own


@dataclass
class SearchConfig:
    data: str
    board: str
    out: Path
    trials: int = 20
    budget: Budget = field(default_factory=Budget)
    space: Space = field(default_factory=Space)
    epochs: int = 20
    patience: int = 5
    seed: int = 0
    storage: str | None = None  # None: sqlite:///OUT/study.db
    study_name: str = "tinylstm"
    workers: int = 1
    progress: bool = True
    dataset_options: dict[str, Any] = field(default_factory=dict)

    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{(self.out / 'study.db').resolve()}"

    def identity(self) -> dict[str, Any]:
        """What a resumed study must share with the one on disk."""
        return {
            "data": self.data,
            "board": self.board,
            "budget": asdict(self.budget),
            "space": asdict(self.space),
            "epochs": self.epochs,
            "seed": self.seed,
            "dataset_options": self.dataset_options,
        }


def _optuna() -> Any:
    try:
        import optuna
    except ModuleNotFoundError:
        raise TinyLSTMError("tinylstm search needs optuna: pip install 'optuna>=4'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
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
    board = get_board(cfg.board)
    if cfg.trials < 1 or cfg.workers < 1 or cfg.epochs < 1:
        raise TinyLSTMError(
            f"--trials {cfg.trials}, --workers {cfg.workers} and --epochs {cfg.epochs} must be >= 1"
        )
    unknown = [c for c in cfg.space.cells if c not in CELLS]
    if unknown:
        raise TinyLSTMError(f"unknown cell(s) {unknown}: choose from {', '.join(CELLS)}")
    if cfg.budget.max_latency_ms is not None and not (countable(board) and board.cpu_hz):
        clocked = ", ".join(b for b in _clocked_boards())
        raise TinyLSTMError(
            f"--max-latency-ms: {board.name} has no counted core and clock here, so its latency cannot be "
            f"measured; drop the option or search for one of {clocked}"
        )
    return board


def _clocked_boards() -> list[str]:
    from tinylstm.host.boards.registry import BOARDS

    return [b.name for b in BOARDS.values() if countable(b) and b.cpu_hz]


class Objective:
    """One trial: draw, price, prune or train + export + measure."""

    def __init__(self, cfg: SearchConfig, board: Board, worker: int) -> None:
        from tinylstm.trainer.data import load_dataset

        self.cfg, self.board, self.worker = cfg, board, worker
        self.costs = CostCache(cfg.out / "costs.json", board)
        self._datasets: dict[int | None, Any] = {}
        self._load = load_dataset

    def dataset(self, window: int | None) -> Any:
        if window not in self._datasets:
            options = dict(self.cfg.dataset_options)
            if window is not None:
                options["window"] = window
            self._datasets[window] = self._load(self.cfg.data, **options)
        return self._datasets[window]

    def __call__(self, trial: Any) -> float:
        from tinylstm.codegen.export import ModelSource, export
        from tinylstm.host.check import check
        from tinylstm.trainer.train import TrainConfig, fit

        optuna = _optuna()
        s, cfg = self.cfg.space, self.cfg
        cell = trial.suggest_categorical("cell", list(s.cells))
        hidden = trial.suggest_categorical("hidden", list(s.hidden))
        layers = trial.suggest_categorical("layers", list(s.layers))
        lr = trial.suggest_float("lr", *s.lr, log=True)
        dropout = trial.suggest_float("dropout", *s.dropout) if layers > 1 else 0.0
        qat = trial.suggest_categorical("qat", list(s.qat))
        window = trial.suggest_categorical("window", list(s.windows)) if s.windows else None
        trial.set_user_attr("worker", self.worker)
        ds = self.dataset(window)
        cost = self.costs.get(cell, layers, ds.num_channels, hidden, ds.output_size, ds.classes)
        trial.set_user_attr("estimate", cost.to_dict())
        why = cost.fits_board or cfg.budget.violation(cost.flash_bytes, cost.ram_bytes, cost.latency_ms)
        if why:
            trial.set_user_attr("pruned", why.split(". ")[0])
            raise optuna.TrialPruned(why)
        root = cfg.out / "trials" / f"{trial.number:04d}"
        config = TrainConfig(
            cell=cell, hidden=hidden, layers=layers, epochs=cfg.epochs, lr=lr, patience=cfg.patience,
            seed=cfg.seed, progress=False, dropout=dropout, qat_epochs=QAT_EPOCHS if qat else 0,
        )  # fmt: skip
        result = fit(ds, config, root / "run")
        exp = export(ModelSource(str(result.checkpoint_path)), root / "export")
        report = check(root / "export")  # held-out quality, golden == C bit-exact, the blob
        if not (report["bit_exact"]["ok"] and report["blob"]["ok"]):
            raise TinyLSTMError(
                f"trial {trial.number}: its export failed tinylstm check: {report['bit_exact']}"
            )
        quality = report["quality"]
        flash = exp.report["model_data_bytes"] + cost.code_bytes
        measured = {
            "flash_bytes": flash,
            "ram_bytes": cost.ram_bytes,
            "latency_ms": cost.latency_ms,
            "instructions": cost.instructions,
            "model_data_bytes": exp.report["model_data_bytes"],
            "export": str((root / "export").resolve()),
            "hash": exp.report["hash"],
            "float": float(quality["float"]),
            "int8": float(quality["int8"]),
            "metric": quality["metric"],
            "check_passed": bool(report["passed"]),  # also within check's float-vs-int8 thresholds
        }
        trial.set_user_attr("measured", measured)
        why = cfg.budget.violation(flash, cost.ram_bytes, cost.latency_ms)
        if why:  # the estimate is exact for the shapes; this guards the rule itself
            trial.set_user_attr("pruned", f"measured {why}")
            raise optuna.TrialPruned(why)
        return float(quality["int8"])


def _direction(cfg: SearchConfig) -> str:
    from tinylstm.trainer.data import load_dataset

    ds = load_dataset(cfg.data, **cfg.dataset_options)
    return "maximize" if ds.task == "classification" else "minimize"


def open_study(cfg: SearchConfig, direction: str, worker: int = 0) -> Any:
    optuna = _optuna()
    if cfg.storage is None:
        cfg.out.mkdir(parents=True, exist_ok=True)  # the default SQLite file lives there
    sampler = optuna.samplers.TPESampler(seed=cfg.seed + 1000 * worker, n_startup_trials=4)
    study = optuna.create_study(
        storage=_storage(cfg.storage_url()),
        study_name=cfg.study_name,
        direction=direction,
        sampler=sampler,
        load_if_exists=True,
    )
    ident = study.user_attrs.get("identity")
    if ident is None:
        study.set_user_attr("identity", cfg.identity())
    elif ident != json.loads(json.dumps(cfg.identity())):
        raise TinyLSTMError(
            f"the study {cfg.study_name!r} in {cfg.storage_url().split('@')[-1]} was started with other "
            f"settings ({_differences(ident, cfg.identity())}): pass the same ones, or another --out or "
            "--study-name"
        )
    return study


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    new = json.loads(json.dumps(new))
    return ", ".join(f"{k}: {old.get(k)!r} then, {new.get(k)!r} now" for k in new if old.get(k) != new.get(k))


def _finished(study: Any) -> int:
    optuna = _optuna()
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def run_worker(
    cfg: SearchConfig, direction: str, worker: int, on_trial: Callable[[Any, Any], None] | None = None
) -> None:
    """Run trials in this process until the study holds ``cfg.trials`` finished ones."""
    import torch

    optuna = _optuna()
    board = check_config(cfg)
    torch.set_num_threads(1)  # trials are small; parallel workers each take one core
    study = open_study(cfg, direction, worker)
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    callbacks = [optuna.study.MaxTrialsCallback(cfg.trials, states=states)]
    if on_trial is not None:
        callbacks.append(on_trial)
    if _finished(study) < cfg.trials:
        study.optimize(Objective(cfg, board, worker), callbacks=callbacks, catch=(TinyLSTMError,))


def _worker_main(cfg: SearchConfig, direction: str, worker: int) -> None:
    run_worker(cfg, direction, worker)


def search(cfg: SearchConfig) -> dict[str, Any]:
    """Run (or continue) the study, then write the results; returns search.json's document."""
    from tqdm import tqdm

    check_config(cfg)
    cfg.out.mkdir(parents=True, exist_ok=True)
    direction = _direction(cfg)
    study = open_study(cfg, direction)
    done = _finished(study)
    bar = tqdm(
        total=cfg.trials, initial=min(done, cfg.trials), unit="trial", disable=not cfg.progress, desc="search"
    )

    def on_trial(st: Any, trial: Any) -> None:
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
    rows = []
    for t in study.get_trials(deepcopy=False):
        row = {"number": t.number, "state": t.state.name.lower(), "params": t.params, "value": t.value,
               "worker": t.user_attrs.get("worker")}  # fmt: skip
        row |= {k: t.user_attrs[k] for k in ("measured", "estimate", "pruned") if k in t.user_attrs}
        rows.append(row)
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
    best = None
    if complete:
        bt = study.best_trial
        best = next(r for r in complete if r["number"] == bt.number)
        target = cfg.out / BEST_EXPORT
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(best["measured"]["export"], target)
    doc = {
        "study": cfg.study_name,
        "storage": cfg.storage_url().split("@")[-1],
        "board": cfg.board,
        "budget": asdict(cfg.budget),
        "direction": direction,
        "objective": "held-out int8 accuracy (%)" if maximize else "held-out int8 RMSE",
        "trials": rows,
        "counts": {
            s.name.lower(): sum(r["state"] == s.name.lower() for r in rows) for s in optuna.trial.TrialState
        },
        "pareto": fronts,
        "best": best,
        "best_export": str((cfg.out / BEST_EXPORT).resolve()) if best else None,
    }
    (cfg.out / "search.json").write_text(json.dumps(doc, indent=1) + "\n")
    (cfg.out / "search.md").write_text(render_md(doc))
    _plot(doc, cfg.out / "pareto.png")
    return doc


def render_md(doc: dict[str, Any]) -> str:
    metric = "int8 accuracy %" if doc["direction"] == "maximize" else "int8 RMSE"
    lines = [
        f"# Search: {doc['study']} for {doc['board']}",
        "",
        f"Objective: {doc['objective']}; budget {doc['budget']}; trials {doc['counts']}.",
        "",
        f"| trial | cell | hidden | layers | qat | {metric} | float | flash B | RAM B | latency ms | "
        "pareto |",
        "|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    fronts = doc["pareto"]
    for r in sorted((r for r in doc["trials"] if r["state"] == "complete"), key=lambda r: r["number"]):
        m, p = r["measured"], r["params"]
        tags = [k for k in ("flash", "latency") if r["number"] in fronts[k]]
        lat = "—" if m["latency_ms"] is None else f"{m['latency_ms']:.3f}"
        lines.append(
            f"| {r['number']} | {p['cell']} | {p['hidden']} | {p['layers']} | {p['qat']} | {m['int8']:.4g} | "
            f"{m['float']:.4g} | {m['flash_bytes']} | {m['ram_bytes']} | {lat} | {', '.join(tags)} |"
        )
    pruned = [r for r in doc["trials"] if r["state"] == "pruned"]
    if pruned:
        lines += ["", "Pruned before training (architecture over budget or not fitting the board):", ""]
        lines += [f"- trial {r['number']} {r['params']}: {r.get('pruned', '?')}" for r in pruned]
    if doc["best"]:
        lines += ["", f"Best: trial {doc['best']['number']}, export in `{doc['best_export']}`."]
    return "\n".join(lines) + "\n"


def _plot(doc: dict[str, Any], path: Path) -> None:
    complete = [r for r in doc["trials"] if r["state"] == "complete"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, unit in (
        (axes[0], "flash_bytes", "flash (B)"),
        (axes[1], "latency_ms", "latency per step (ms)"),
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

"""Where a float model comes from: a TinyLSTM checkpoint, or a user's own PyTorch model.

User models are an ``nn.LSTM``/``nn.GRU``/``nn.RNN`` (tanh; batch_first or not, 1+ layers, unidirectional,
no proj_size) followed by one ``nn.Linear``, saved either as a whole module (``torch.save(model)``,
loaded only with ``trust_module=True`` because unpickling runs code) or as a state_dict with a
small JSON description (see docs/user-models.md).
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from tinylstm.codegen.spec import FloatLayer, FloatModel, ModelMeta, float_forward
from tinylstm.contract.cells import CELLS, by_gates, by_torch_module
from tinylstm.errors import TinyLSTMError
from tinylstm.trainer.checkpoint import FORMAT, CheckpointMeta, checkpoint_from_dict, verify_archive
from tinylstm.trainer.sequence_set import Mode, Task

SUPPORTED = (
    f"supported models: one {' or '.join('nn.' + c.torch_name for c in CELLS.values())} (unidirectional, "
    "no proj_size, bias on; nn.RNN with its default tanh) followed by one nn.Linear head applied to the RNN "
    "outputs"
)


@dataclass
class LoadedModel:
    float_model: FloatModel
    checkpoint: CheckpointMeta | None  # set for TinyLSTM checkpoints (dataset and split known)
    path: Path


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy()


def from_rnn(
    rnn: nn.Module,
    head: nn.Linear,
    meta: ModelMeta,
    readout: str = "last",
    stack: int = 1,
    backward: nn.RNNBase | None = None,
) -> FloatModel:
    """The float model of a PyTorch RNN (nn.LSTM / nn.GRU, a cell of contract/cells.py) and its head, reading
    ``readout`` (contract/readouts.py), with ``stack`` samples per step (contract/stacking.py: the RNN's input
    is ``stack`` samples of the ``meta`` channels); ``backward``: a TinyRNN's backward stack (a bidirectional
    window model: docs/integer-contract.md)."""
    cell = by_torch_module(rnn)
    if cell is None or not isinstance(rnn, nn.RNNBase):
        raise TinyLSTMError(f"{type(rnn).__name__} is not supported; {SUPPORTED}")
    if rnn.bidirectional:
        raise TinyLSTMError(f"bidirectional RNNs cannot stream one step at a time; {SUPPORTED}")
    if getattr(rnn, "proj_size", 0):
        raise TinyLSTMError(f"LSTM with proj_size={rnn.proj_size} is not supported; {SUPPORTED}")
    if not rnn.bias:
        raise TinyLSTMError(f"an RNN built with bias=False is not supported; {SUPPORTED}")
    for attr, want in cell.torch_options:
        if getattr(rnn, attr, want) != want:
            raise TinyLSTMError(
                f"nn.{cell.torch_name} with {attr}={getattr(rnn, attr)!r} is not supported: the integer "
                f"contract's {cell.name} cell has {attr}={want!r}; retrain with it"
            )
    fm = FloatModel(
        cell.name,
        _layers(rnn),
        _np(head.weight),
        _np(head.bias) if head.bias is not None else np.zeros(head.out_features),
        meta,
        readout,
        stack,
        _layers(backward) if backward is not None else [],
    )
    fm.validate()
    return fm


def _layers(rnn: nn.RNNBase) -> list[FloatLayer]:
    return [
        FloatLayer(
            *(_np(getattr(rnn, f"{w}_l{k}")) for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        )
        for k in range(int(rnn.num_layers))
    ]


def model_meta(meta: CheckpointMeta) -> ModelMeta:
    """What the firmware needs to know of a model, from its checkpoint metadata."""
    tn = meta.target_norm
    return ModelMeta(
        task=cast(Task, meta.task),
        mode=cast(Mode, meta.mode),
        window=meta.window,
        classes=meta.classes,
        channels=meta.channels,
        input_mean=list(meta.norm["mean"]),
        input_std=list(meta.norm["std"]),
        target_mean=list(tn["mean"]) if tn else None,
        target_std=list(tn["std"]) if tn else None,
    )


def from_checkpoint(path: Path, blob: dict[str, Any]) -> LoadedModel:
    model, meta = checkpoint_from_dict(blob, str(path))
    fm = from_rnn(model.rnn, model.head, model_meta(meta), model.readout, model.stack, model.rnn_backward)
    return LoadedModel(fm, meta, path)


DESCRIPTION_KEYS = (
    "task",
    "mode",
    "window",
    "classes",
    "channels",
    "input_mean",
    "input_std",
    "target_mean",
    "target_std",
    "head",
    "cell",
)  # docs/user-models.md


def _numbers(desc: dict[str, Any], key: str, count: int, where: str, positive: bool = False) -> list[float]:
    """``desc[key]``: ``count`` finite numbers (> 0 with ``positive``), a one-line error otherwise."""
    value = desc[key]
    if (
        not isinstance(value, list)
        or len(value) != count
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise TinyLSTMError(
            f"{where}: the description's {key!r} is {value!r}; give a list of {count} numbers, one per "
            f"{'output' if key.startswith('target') else 'input channel'} (docs/user-models.md)"
        )
    numbers = [float(v) for v in value]
    bad = [v for v in numbers if not math.isfinite(v) or (positive and v <= 0)]
    if bad:
        raise TinyLSTMError(
            f"{where}: the description's {key!r} holds {bad[0]!r}; give finite numbers"
            + (" > 0 (a standard deviation)" if positive else "")
        )
    return numbers


def _names_list(desc: dict[str, Any], key: str, where: str) -> list[str] | None:
    value = desc.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
        raise TinyLSTMError(
            f'{where}: the description\'s {key!r} is {value!r}; give a list of names, e.g. ["walk", "run"]'
        )
    names = [str(v) for v in value]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise TinyLSTMError(f"{where}: the description's {key!r} names {twice} twice; give each name once")
    return names


def _meta_from_description(desc: dict[str, Any], input_size: int, output_size: int, where: str) -> ModelMeta:
    """The ModelMeta a description gives (docs/user-models.md); an unknown key (a misspelt ``input_std``
    would leave the model unnormalised) or a value of the wrong kind is refused."""
    unknown = sorted(set(desc) - set(DESCRIPTION_KEYS))
    if unknown:
        raise TinyLSTMError(
            f"{where}: the description has unknown key(s) {', '.join(map(repr, unknown))}; the keys are "
            f"{', '.join(DESCRIPTION_KEYS)} (docs/user-models.md)"
        )
    task = desc.get("task", "classification")
    mode = desc.get("mode", "window")
    if task not in ("classification", "regression") or mode not in ("window", "stream"):
        raise TinyLSTMError(
            f"{where}: the description says task {task!r}, mode {mode!r}; task is classification or "
            "regression, mode window or stream"
        )
    window = desc.get("window")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
        raise TinyLSTMError(
            f"{where}: the description's window is {window!r}; give the window length in samples, an integer "
            ">= 1 (or leave it out)"
        )
    channels = _names_list(desc, "channels", where)
    if channels is not None and len(channels) != input_size:
        raise TinyLSTMError(
            f"{where}: the description names {len(channels)} channel(s) for a model of {input_size} inputs; "
            "name every input channel once"
        )
    target: dict[str, list[float] | None] = {"target_mean": None, "target_std": None}
    for key in target:
        if key in desc:
            if task != "regression":
                raise TinyLSTMError(
                    f"{where}: the description gives {key} for a {task} model; targets are a regression's"
                )
            target[key] = _numbers(desc, key, output_size, where, positive=key == "target_std")
    return ModelMeta(
        task=task,
        mode=mode,
        window=window,
        classes=_names_list(desc, "classes", where),
        channels=channels,
        input_mean=_numbers(desc, "input_mean", input_size, where)
        if "input_mean" in desc
        else [0.0] * input_size,
        input_std=(
            _numbers(desc, "input_std", input_size, where, positive=True)
            if "input_std" in desc
            else [1.0] * input_size
        ),
        target_mean=target["target_mean"],
        target_std=target["target_std"],
    )


def _find_modules(module: nn.Module) -> tuple[nn.RNNBase, nn.Linear]:
    rnns = [m for m in module.modules() if isinstance(m, nn.RNNBase)]
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    others = [
        type(m).__name__
        for m in module.modules()
        if m is not module and not isinstance(m, (nn.RNNBase, nn.Linear, nn.Dropout, nn.Identity))
    ]
    if len(rnns) != 1 or len(linears) != 1 or others:
        found = (
            ", ".join(
                type(m).__name__
                for m in module.modules()
                if m is not module or isinstance(m, (nn.RNNBase, nn.Linear))
            )
            or "nothing"
        )
        raise TinyLSTMError(f"the model contains {found}; {SUPPORTED}")
    return rnns[0], linears[0]


def _check_forward(module: nn.Module, fm: FloatModel, batch_first: bool) -> None:
    """Refuse a module whose forward() is more than RNN -> Linear (an activation, a pooling...)."""
    x = np.random.default_rng(0).standard_normal((2, 12, fm.input_size))
    ref = float_forward(fm, x, keep=())["y"]
    xt = torch.tensor(x if batch_first else x.transpose(1, 0, 2), dtype=torch.float32)
    try:
        with torch.no_grad():  # in float32, as the weights were read: a float64 or half module runs too
            out = module.float().eval()(xt)
    except Exception as exc:  # the user's forward may fail in any way
        raise TinyLSTMError(
            f"calling the model's forward() failed ({type(exc).__name__}: {exc}); {SUPPORTED}"
        ) from exc
    y = (out[0] if isinstance(out, (tuple, list)) else out).detach().double().numpy()
    candidates = {
        (2, 12, fm.output_size): lambda a: a,
        (12, 2, fm.output_size): lambda a: a.transpose(1, 0, 2),
        (2, fm.output_size): lambda a: a[:, None, :],
    }
    if y.shape not in candidates:
        raise TinyLSTMError(
            f"forward() returned shape {list(y.shape)}; expected per-step or last-step outputs. {SUPPORTED}"
        )
    got = candidates[y.shape](y)
    want = ref if got.shape[1] == 12 else ref[:, -1:]
    if not np.allclose(got, want, atol=1e-4, rtol=1e-3):
        raise TinyLSTMError(
            f"forward() computes something other than RNN -> Linear on every step; {SUPPORTED}"
        )


def from_module(path: Path, module: nn.Module, desc: dict[str, Any]) -> LoadedModel:
    rnn, head = _find_modules(module)
    fm = from_rnn(
        rnn, head, _meta_from_description(desc, int(rnn.input_size), int(head.out_features), str(path))
    )
    _check_forward(module, fm, bool(rnn.batch_first))
    return LoadedModel(fm, None, path)


def _rnn_keys(prefix: str, layers: int) -> list[str]:
    return [
        f"{prefix}{w}_l{k}" for k in range(layers) for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    ]


def from_state_dict(path: Path, sd: dict[str, Any], desc: dict[str, Any]) -> LoadedModel:
    """An RNN + Linear model from its state_dict. Every key must be one the exported model uses: a key
    left over (a LayerNorm, a second head, an embedding) means the model is something else."""
    keys = [k for k in sd if k.endswith("weight_ih_l0")]
    if len(keys) != 1:
        raise TinyLSTMError(
            f"{path}: expected exactly one RNN (a key ending in weight_ih_l0), found {keys}; {SUPPORTED}"
        )
    prefix = keys[0][: -len("weight_ih_l0")]
    if any(k.startswith(prefix) and "_reverse" in k for k in sd):
        raise TinyLSTMError(
            f"{path}: a bidirectional RNN (keys ending in _reverse) cannot stream one step at a "
            f"time; {SUPPORTED}"
        )
    if any(k.startswith(prefix) and "weight_hr" in k for k in sd):
        raise TinyLSTMError(f"{path}: an LSTM with proj_size (weight_hr_l0) is not supported; {SUPPORTED}")
    num_layers = 1 + max(int(k.rsplit("_l", 1)[1]) for k in sd if k.startswith(prefix + "weight_ih_l"))
    if f"{prefix}weight_hh_l0" not in sd:
        raise TinyLSTMError(
            f"{path}: {prefix}weight_hh_l0 is missing: the state_dict is incomplete; {SUPPORTED}"
        )
    if f"{prefix}bias_ih_l0" not in sd or f"{prefix}bias_hh_l0" not in sd:
        raise TinyLSTMError(
            f"{path}: the RNN has no bias_ih_l0/bias_hh_l0: an RNN built with bias=False is not "
            f"supported (rebuild it with bias=True, the default); {SUPPORTED}"
        )
    w_ih, w_hh = sd[prefix + "weight_ih_l0"], sd[prefix + "weight_hh_l0"]
    hidden = int(w_hh.shape[1])
    gates = int(w_ih.shape[0]) // hidden if hidden else 0
    named = desc.get("cell")
    if named is not None and (not isinstance(named, str) or named not in CELLS):
        raise TinyLSTMError(
            f"{path}: the description's cell {named!r} is not known; use one of {', '.join(CELLS)} (or leave "
            "it out for LSTM and GRU: the gate rows tell them apart)"
        )
    cell = CELLS[named] if named else by_gates(gates)
    if cell is not None and cell.torch_options and not desc.get("cell"):
        options = ", ".join(f"{k}={v!r}" for k, v in cell.torch_options)
        raise TinyLSTMError(
            f"{path}: weight_ih_l0 has {gates} row(s) per unit: an nn.{cell.torch_name}, whose state_dict "
            f'does not show {options}; if it was built with that, add "cell": "{cell.name}" to the '
            "description"
        )
    if cell is None or cell.gates != gates:
        want = (
            f" (an nn.{cell.torch_name} has {cell.gates} per unit, as the description's cell says)"
            if cell
            else ""
        )
        raise TinyLSTMError(
            f"{path}: weight_ih_l0 has {w_ih.shape[0]} rows for hidden size {hidden}{want}; {SUPPORTED}"
        )
    heads = [
        k[: -len("weight")]
        for k in sd
        if k.endswith("weight") and not k.startswith(prefix) and getattr(sd[k], "ndim", 0) == 2
    ]
    if desc.get("head") is not None:
        named_head = desc["head"]
        if not isinstance(named_head, str) or f"{named_head.rstrip('.')}.weight" not in sd:
            found = ", ".join(h.rstrip(".") for h in heads) or "none"
            raise TinyLSTMError(
                f"{path}: the description's head {named_head!r} names no Linear in the state_dict (no "
                f"{named_head!r}.weight); the candidates are: {found}"
            )
        heads = [named_head.rstrip(".") + "."]
    if len(heads) != 1:
        found = ", ".join(h + "weight" for h in heads) or "none"
        raise TinyLSTMError(
            f"{path}: expected one Linear head weight besides the RNN, found {found}; name the head "
            'with "head" in the description (any other key makes the export fail: it would not '
            "be exported)"
        )
    head_keys = [heads[0] + "weight", *([heads[0] + "bias"] if heads[0] + "bias" in sd else [])]
    unused = [k for k in sd if k not in {*_rnn_keys(prefix, num_layers), *head_keys}]
    if unused:
        raise TinyLSTMError(
            f"{path}: the state_dict holds {', '.join(unused)}, which an RNN -> Linear model does not "
            f"use (a layer between the RNN and the head, e.g. a LayerNorm, would be silently dropped); "
            f"{SUPPORTED}"
        )
    missing = [k for k in _rnn_keys(prefix, num_layers) if k not in sd]
    if missing:
        raise TinyLSTMError(
            f"{path}: the state_dict lacks {', '.join(missing)} for {num_layers} layers; {SUPPORTED}"
        )
    not_float = [
        k for k in [*_rnn_keys(prefix, num_layers), *head_keys] if not torch.is_floating_point(sd[k])
    ]
    if not_float:
        raise TinyLSTMError(
            f"{path}: {not_float[0]} holds {sd[not_float[0]].dtype} values; a trained model's weights are "
            "floating point: save the state_dict of the float model"
        )
    rnn = cell.torch_class()(int(w_ih.shape[1]), hidden, num_layers, batch_first=True)
    head = nn.Linear(hidden, int(sd[heads[0] + "weight"].shape[0]), bias=heads[0] + "bias" in sd)
    try:
        rnn.load_state_dict({k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)})
        head.load_state_dict({k[len(heads[0]) :]: v for k, v in sd.items() if k.startswith(heads[0])})
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()[-1].strip()
        raise TinyLSTMError(
            f"{path}: the tensors do not fit an RNN + Linear of these sizes ({detail}); {SUPPORTED}"
        ) from None
    return LoadedModel(
        from_rnn(rnn, head, _meta_from_description(desc, int(w_ih.shape[1]), head.out_features, str(path))),
        None,
        path,
    )


def _unpickle_module(path: Path) -> object:
    """torch.load of a whole pickled module, with the current directory on the import path (where a
    user's model class usually lives)."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (AttributeError, ModuleNotFoundError, ImportError) as exc:
        where = (
            "it was defined in the script that saved it (__main__): move the class into a module, e.g. "
            "mymodel.py, and save again"
            if "__main__" in str(exc)
            else f"run tinylstm from the directory of the module that defines it ({cwd} is searched), or set "
            "PYTHONPATH to that directory"
        )
        raise TinyLSTMError(
            f"{path}: the model's class cannot be imported ({exc}); {where}; or save a state_dict "
            "with a description instead (docs/user-models.md)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise TinyLSTMError(
            f"{path} is not a readable PyTorch file ({type(exc).__name__}); is it corrupt or truncated?"
        ) from None
    finally:
        if added:
            sys.path.remove(cwd)


def load_model(
    path: str | Path, description: str | Path | None = None, trust_module: bool = False
) -> LoadedModel:
    """Load a float model from a checkpoint, a state_dict (+ description) or a pickled module."""
    path = Path(path)
    if not path.is_file():
        raise TinyLSTMError(f"model file {path} does not exist: give the path to a checkpoint (model.pt)")
    desc: dict[str, Any] = {}
    if description is not None:
        try:
            desc = json.loads(Path(description).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # ValueError: not JSON (JSONDecodeError), or not UTF-8 text
            raise TinyLSTMError(f"cannot read the model description {description}: {exc}") from exc
        if not isinstance(desc, dict):
            raise TinyLSTMError(
                f"{description}: the description must be a JSON object; see docs/user-models.md"
            )
    verify_archive(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many unrelated types for corrupt or foreign files
        pickled_class = "Unsupported global" in str(exc)  # a whole pickled module, not a damaged file
        if not pickled_class:
            raise TinyLSTMError(
                f"{path} is not a readable PyTorch file ({type(exc).__name__}); is it corrupt or "
                "truncated? Save it again (torch.save) or re-run tinylstm train"
            ) from None
        if not trust_module:
            raise TinyLSTMError(
                f"{path} holds a pickled nn.Module; loading it runs code from the file. If you trust it, "
                "pass --trust-module (or save model.state_dict() with a description instead)"
            ) from None
        obj = _unpickle_module(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        if description is not None:
            raise TinyLSTMError(
                f"{path} is a TinyLSTM checkpoint, which carries its own description: drop --description "
                "(it describes a state_dict or module of your own)"
            )
        return from_checkpoint(path, obj)
    if isinstance(obj, nn.Module):
        return from_module(path, obj, desc)
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        if description is None:
            raise TinyLSTMError(
                f"{path} is a bare state_dict: pass --description JSON (see docs/user-models.md)"
            )
        return from_state_dict(path, obj, desc)
    inner = [k for k, v in obj.items() if isinstance(v, dict)] if isinstance(obj, dict) else []
    hint = f" (it holds a dict under {inner[0]!r}: save that state_dict by itself)" if inner else ""
    raise TinyLSTMError(
        f"{path} is neither a TinyLSTM checkpoint, a state_dict nor an nn.Module{hint}; {SUPPORTED}"
    )

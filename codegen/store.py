"""Save and load an integer model next to its generated C files (the export directory).

``int_model.npz`` holds the arrays, ``int_model.json`` the scalars, metadata and the hash;
loading recomputes the hash so an edited or mismatched pair is refused. ``float_model.npz`` is the
float model the export was made from, pinned by its SHA-256 in ``int_model.json``: `tinylstm check`
compares against exactly that model, wherever the original file went.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from tinylstm.codegen.emit_c import Layout
from tinylstm.codegen.quantize import Calibration, IntLayer, IntModel
from tinylstm.codegen.spec import FloatLayer, FloatModel, ModelMeta
from tinylstm.contract.cells import cell_type
from tinylstm.contract.constants import (
    HIDDEN16_BITS,
    HIDDEN_BITS,
    HIDDEN_FORMATS,
    INPUT16_BITS,
    INPUT_BITS,
    MAX_STACK,
    input_bits,
)
from tinylstm.errors import TinyLSTMError
from tinylstm.trainer.outputs import sha256_file

NPZ, JSON = "int_model.npz", "int_model.json"
FLOAT_NPZ = "float_model.npz"
# int_model.json fields that are optional (older exports, user models) but of one type when there
FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "cell": str,
    "meta": dict,
    "calibration": dict,
    "hash": str,
    "readout": str,
    "name": str,
    "source": dict,
    "float_model": dict,
    "checkpoint": (dict, type(None)),
    "data_files": list,
}
JSON_TYPES = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}


def save_float_model(fm: FloatModel, out_dir: Path) -> str:
    """Write the float model's arrays to FLOAT_NPZ; returns the file's SHA-256 (to pin it)."""
    arrays = {"head_w": fm.head_w, "head_b": fm.head_b}
    for p, layers in (("l", fm.layers), ("b", fm.backward)):  # b: a bidirectional model's backward layers
        for n, L in enumerate(layers):
            arrays |= {
                f"{p}{n}_w_ih": L.w_ih,
                f"{p}{n}_w_hh": L.w_hh,
                f"{p}{n}_b_ih": L.b_ih,
                f"{p}{n}_b_hh": L.b_hh,
            }
    np.savez(out_dir / FLOAT_NPZ, **arrays)  # type: ignore[arg-type]
    return sha256_file(out_dir / FLOAT_NPZ)


def load_float_model(out_dir: Path, doc: dict[str, Any]) -> FloatModel:
    """The float model stored in the export, refused unless its SHA-256 is the one recorded at export."""
    pin = doc.get("float_model")
    if not isinstance(pin, dict) or "sha256" not in pin:
        raise TinyLSTMError(
            f"{out_dir} was exported without its float model (an older tinylstm): run `tinylstm export` again"
        )
    if not all(isinstance(pin.get(k), str) for k in ("file", "sha256", "from", "from_sha256")):
        raise TinyLSTMError(
            f"{out_dir / JSON}: the float model's record (float_model) is damaged; run `tinylstm export` "
            "again"
        )
    path = out_dir / FLOAT_NPZ
    if not path.is_file():
        raise TinyLSTMError(
            f"{path} is missing: the export's float model was moved or deleted; put it back or "
            "run `tinylstm export` again"
        )
    if sha256_file(path) != pin["sha256"]:
        raise TinyLSTMError(
            f"{path} is not the float model this export was made from (SHA-256 differs: replaced "
            "or damaged); run `tinylstm export` again"
        )
    try:
        z = np.load(path)

        def stack(p: str) -> list[FloatLayer]:
            return [
                FloatLayer(z[f"{p}{n}_w_ih"], z[f"{p}{n}_w_hh"], z[f"{p}{n}_b_ih"], z[f"{p}{n}_b_hh"])
                for n in range(int(doc["num_layers"]))
            ]

        layers = stack("l")
        return FloatModel(
            doc["cell"],
            layers,
            z["head_w"],
            z["head_b"],
            ModelMeta(**doc["meta"]),
            str(doc.get("readout", "last")),  # the integer model's readout (exports before readouts: last)
            int(doc.get("stack", 1)),  # samples per step (exports before input stacking: 1)
            stack("b") if doc.get("bidirectional") else [],
        )
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise TinyLSTMError(
            f"{path} is damaged ({type(exc).__name__}); run `tinylstm export` again"
        ) from None


def save_int_model(m: IntModel, out_dir: Path, extra: dict[str, Any] | None = None) -> None:
    arrays: dict[str, np.ndarray] = {
        "head_w": m.head_w,
        "head_b": m.head_b,
        "head_mult": m.head_mult,
        "head_shift": m.head_shift,
        "input_mean": m.input_mean,
        "input_mul": m.input_mul,
        "act_table": m.act_table,
    }
    for p, layers in (("l", m.layers), ("b", m.backward)):  # b: a bidirectional model's backward layers
        for n, L in enumerate(layers):
            arrays |= {
                f"{p}{n}_weights": L.weights,
                f"{p}{n}_bias": L.bias,
                f"{p}{n}_mult": L.mult,
                f"{p}{n}_shift": L.shift,
                f"{p}{n}_scale_exp": L.scale_exp,
            }
            if L.bias_hn is not None:
                arrays[f"{p}{n}_bias_hn"] = L.bias_hn
    np.savez(out_dir / NPZ, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
    doc = {
        "cell": m.cell,
        "num_layers": m.num_layers,
        "cell_frac": [L.cell_frac for L in m.layers],
        "hidden_bits": m.hidden_bits,
        "input_bits": m.input_bits,
        "readout": m.readout,
        "stack": m.stack,
        **(
            {"bidirectional": True, "backward_cell_frac": [L.cell_frac for L in m.backward]}
            if m.backward
            else {}
        ),
        "output_scale": m.output_scale,
        "input_scale": m.input_scale,
        "hash": f"0x{m.model_hash:08x}",
        "meta": asdict(m.meta),
        "calibration": asdict(m.calibration),
        **(extra or {}),
    }
    (out_dir / JSON).write_text(json.dumps(doc, indent=2))


def _is_int(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def check_fields(doc: object) -> None:
    """Refuse an ``int_model.json`` whose fields have the wrong type or range (an edited file) before anything
    computes with them: ValueError naming the field (``load_int_model`` reports the file damaged)."""
    if not isinstance(doc, dict):
        raise ValueError(f"{JSON} holds {type(doc).__name__}, not an object")
    layers, stack = doc.get("num_layers"), doc.get("stack", 1)
    if not _is_int(layers) or layers < 1:
        raise ValueError(f"num_layers {layers!r}")
    if not _is_int(stack) or not 1 <= stack <= MAX_STACK:
        raise ValueError(f"stack {stack!r}, not 1 to {MAX_STACK}")
    for key in ("cell_frac", "backward_cell_frac") if doc.get("bidirectional") else ("cell_frac",):
        fracs = doc.get(key)
        if not isinstance(fracs, list) or len(fracs) != layers or not all(_is_int(f) for f in fracs):
            raise ValueError(f"{key} {fracs!r}, not {layers} integers")
    for key in ("input_scale", "output_scale"):
        scale = doc.get(key)
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not 0 < scale < math.inf:
            raise ValueError(f"{key} {scale!r}, not a positive number")
    for key, kinds in FIELD_TYPES.items():
        if key in doc and not isinstance(doc[key], kinds):
            raise ValueError(f"{key} is {JSON_TYPES.get(type(doc[key]), 'a number')}")
    for pin in doc.get("data_files", []):
        if not isinstance(pin, dict) or not all(isinstance(pin.get(k), str) for k in ("path", "sha256")):
            raise ValueError(f"data_files entry {pin!r}, not a path and a sha256")
    if not isinstance(doc.get("source", {}).get("data"), (str, type(None))):
        raise ValueError("source data is not a string or null")


def load_int_model(out_dir: Path) -> tuple[IntModel, dict[str, Any]]:
    """Load the integer model of an export directory; returns it and the whole JSON document."""
    try:
        doc = json.loads((out_dir / JSON).read_text())
        check_fields(doc)
        z = np.load(out_dir / NPZ)
        gates = cell_type(doc["cell"]).gates
        hidden_bits = int(doc.get("hidden_bits", HIDDEN_BITS))  # exports made before int16 h: 8
        if hidden_bits not in HIDDEN_FORMATS:
            raise ValueError(f"hidden_bits {hidden_bits}")
        bits = doc.get("input_bits", input_bits(hidden_bits))  # exports made before int16 inputs: the h's
        if bits not in (INPUT_BITS, INPUT16_BITS) or (hidden_bits == HIDDEN16_BITS and bits != INPUT16_BITS):
            raise ValueError(f"input_bits {bits!r} with hidden_bits {hidden_bits}")

        def layer(n: int, p: str = "l", fracs: str = "cell_frac") -> IntLayer:
            w = z[f"{p}{n}_weights"]
            hidden = w.shape[0] // gates
            return IntLayer(
                int(w.shape[1] - hidden),
                int(hidden),
                w,
                z[f"{p}{n}_bias"],
                z.get(f"{p}{n}_bias_hn"),
                z[f"{p}{n}_mult"],
                z[f"{p}{n}_shift"],
                int(doc[fracs][n]),
                z[f"{p}{n}_scale_exp"],
                hidden_bits,
            )

        layers = [layer(n) for n in range(int(doc["num_layers"]))]
        backward = (
            [layer(n, "b", "backward_cell_frac") for n in range(len(layers))]
            if doc.get("bidirectional")
            else []
        )
        m = IntModel(
            cell=doc["cell"],
            layers=layers,
            head_w=z["head_w"],
            head_b=z["head_b"],
            head_mult=z["head_mult"],
            head_shift=z["head_shift"],
            output_scale=float(doc["output_scale"]),
            input_mean=z["input_mean"],
            input_mul=z["input_mul"],
            input_scale=float(doc["input_scale"]),
            act_table=z["act_table"],
            meta=ModelMeta(**doc["meta"]),
            calibration=Calibration(**doc["calibration"]),
            readout=str(doc.get("readout", "last")),  # exports made before readouts: the last h
            stack=int(doc.get("stack", 1)),  # exports made before input stacking: one sample per step
            backward=backward,
            input16=hidden_bits == HIDDEN_BITS and bits == INPUT16_BITS,
        )
    except FileNotFoundError as exc:
        raise TinyLSTMError(
            f"{out_dir} is not an export directory ({exc.filename} missing): run `tinylstm export`"
        ) from None
    except NotADirectoryError:
        raise TinyLSTMError(
            f"{out_dir} is a file, not an export directory: pass the directory `tinylstm export --out` wrote"
        ) from None
    except (KeyError, ValueError, TypeError, EOFError, OSError, zipfile.BadZipFile) as exc:
        what = type(exc).__name__ if isinstance(exc, (zipfile.BadZipFile, EOFError, OSError)) else str(exc)
        raise TinyLSTMError(
            f"{out_dir}: the exported model files ({NPZ}, {JSON}) are damaged ({what}); run "
            "`tinylstm export` again"
        ) from None
    if f"0x{m.model_hash:08x}" != doc.get("hash"):
        raise TinyLSTMError(
            f"{out_dir}: {NPZ} and {JSON} do not belong together (hash mismatch); export again"
        )
    return m, doc


def export_layout(export_dir: Path) -> Layout:
    """The weight layout an export's C files use (export-report.json; w8 for exports made before it)."""
    report = export_dir / "export-report.json"
    try:
        layout = json.loads(report.read_text()).get("layout", "w8") if report.is_file() else "w8"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise TinyLSTMError(
            f"{report} is damaged ({exc}): export the model again (tinylstm export)"
        ) from None
    return "w16" if layout == "w16" else "w8"

"""A firmware of one model links only what that model runs (codegen/emit_c.py ``model_settings``,
csrc/tl_kernels.h): its cell's steps, its hidden state's, pooling only for a pooled readout, stacking only
for a stacked model. Built with those settings the kernel stays bit-exact with golden (under the sanitizers,
every output and state word), refuses any model that needs what was left out, and links none of it. The
QEMU firmware tests (test_firmware.py, test_link.py, test_board_*.py) build every firmware this way. The app
(firmware/app) links only its model's input type: int8 (INPUT, tl_step) or int16 (INPUT_S16, tl_step_s16: an
int16-h model's, or an int16 input on the int8 h)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from firmware_fixtures import require_board_tools
from sanitized_harness import build_harness, check_sanitized_run

from tinylstm.codegen.emit_c import build_defines, build_settings, emit_c, model_settings
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.random_models import random_int_model
from tinylstm.codegen.store import save_int_model
from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards import toolchain
from tinylstm.host.boards.csources import C_FLAGS, csrc_dir
from tinylstm.host.boards.firmware import build_firmware
from tinylstm.host.boards.model_check import CHECKED_DEFINE, checked_value, run_on_host
from tinylstm.host.boards.toolchain import find_compiler, find_tool

# cell, layers, format (8: int8 h; 16: int16 h; X16: an int16 input on the int8 h), readout, stack
X16 = 108
MODELS = [
    ("lstm", 1, 8, "last", 1),
    ("gru", 2, 8, "mean", 1),
    ("lstm", 2, 16, "max", 3),
    ("gru", 1, 16, "last", 4),
    ("rnn", 2, X16, "max", 2),
    ("gru", 1, X16, "last", 1),
]


def model_of(cell: str, layers: int, bits: int, readout: str, stack: int, seed: int = 0) -> IntModel:
    rng = np.random.default_rng(seed)
    hidden, inputs = (8, 16) if bits == X16 else (bits, 0)
    shift = 30 if hidden == 8 else 26
    return random_int_model(rng, cell, layers, 3, 7, 2, shift, 40, hidden, readout, stack, input_bits=inputs)


@pytest.mark.parametrize("cell,layers,bits,readout,stack", MODELS)
def test_trimmed_kernel_is_bit_exact(
    tmp_path: Path, cell: str, layers: int, bits: int, readout: str, stack: int
) -> None:
    m = model_of(cell, layers, bits, readout, stack)
    settings = model_settings(m)
    assert settings["TL_ONLY_CELL"] == f"TL_CELL_{cell.upper()}"
    assert ("TL_NO_POOL" in settings) == (readout == "last") and ("TL_NO_STACK" in settings) == (stack == 1)
    assert ("TL_ONLY_HIDDEN16" in settings) == (bits == 16)
    assert ("TL_ONLY_INPUT16_LAYER0" in settings) == (bits == X16 and layers == 1)
    check_sanitized_run(m, tmp_path, 1_500, np.random.default_rng(1), settings=settings)


def _link(m: IntModel, gen: Path, settings: dict[str, str]) -> str | None:
    """The test harness with ``m``'s files, built with ``settings`` and linked with --gc-sections, as
    firmware is (gen/run_model); the compiler's error, None when it built."""
    emit_c(m, gen)
    flags = [*C_FLAGS, "-Os", "-ffunction-sections", "-fdata-sections"]
    flags += [*(f"-D{k}={v}" for k, v in settings.items()), "-I", str(csrc_dir()), "-I", str(gen)]
    try:
        build_harness(find_compiler(), flags, gen, ["-Wl,--gc-sections"])
    except TinyLSTMError as exc:
        return str(exc)
    return None


def test_a_trimmed_kernel_refuses_other_models(tmp_path: Path) -> None:
    """A firmware's settings (``build_settings``) with another model's files: the model file does not compile
    (an int16-h model says it needs -DTL_HIDDEN16), or tl_state_init refuses it (the harness exits 2)."""
    models = [model_of(*spec, seed=k) for k, spec in enumerate(MODELS)]
    for i, built_for in enumerate(models):
        for j, other in enumerate(models):
            gen = tmp_path / f"{i}-{j}"
            error = _link(other, gen, build_settings(built_for))
            if error is not None:  # an int16-h or int16-input model's file #errors without its define
                assert i != j and ("TL_HIDDEN16" in error or "TL_INPUT16" in error), error[-2000:]
                continue
            run = subprocess.run(
                [str(gen / "run_model")], input=bytes(3 * 8), capture_output=True, check=False
            )
            if i == j:
                assert run.returncode == 0, f"the kernel built for model {i} refused it"
            else:
                assert run.returncode == 2, f"the kernel built for model {i} accepted model {j}"


def test_the_firmware_links_only_the_models_code(tmp_path: Path) -> None:
    """With --gc-sections, an LSTM last-h int8 model's executable has no GRU step, no int16-h step, no
    pooling; a GRU int16-h stacked model's has no LSTM step and no int8-h step. Without the settings (the
    host library, the MicroPython module) every cell and readout of the input type the executable steps
    (tl_step: int8, tl_step_s16: int16) is linked."""
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm not installed: apt-get install binutils")

    def symbols(m: IntModel, gen: Path, settings: dict[str, str]) -> set[str]:
        assert _link(m, gen, settings) is None
        out = subprocess.run([nm, str(gen / "run_model")], capture_output=True, text=True, check=True).stdout
        return {line.split()[-1] for line in out.splitlines() if line.strip()}

    lstm = model_of("lstm", 1, 8, "last", 1)
    got = symbols(lstm, tmp_path / "lstm", build_settings(lstm))
    assert "tl_lstm_layer_step" in got and "tl_dense_step" in got
    assert not got & {"tl_gru_layer_step", "tl_lstm_layer_step16", "tl_pool_s8", "tl_pool_s16"}
    gru = model_of("gru", 1, 16, "mean", 4)
    got = symbols(gru, tmp_path / "gru", build_settings(gru))
    assert {"tl_gru_layer_step16", "tl_pool_s16", "tl_dense_step16"} <= got
    assert not got & {"tl_lstm_layer_step", "tl_lstm_layer_step16", "tl_gru_layer_step", "tl_dense_step"}
    every = symbols(lstm, tmp_path / "every", {f.removeprefix("-D"): "1" for f in build_defines(gru)})
    assert {"tl_lstm_layer_step", "tl_gru_layer_step", "tl_pool_s8", "tl_dense_step"} <= every
    every = symbols(gru, tmp_path / "every16", {f.removeprefix("-D"): "1" for f in build_defines(gru)})
    assert {"tl_lstm_layer_step16", "tl_gru_layer_step16", "tl_pool_s16", "tl_dense_step16"} <= every
    # an int16 input on the int8 h: layer 0's int16 step and the int8 steps above it, no int16-h code
    x16 = model_of("rnn", 2, X16, "max", 2)
    got = symbols(x16, tmp_path / "x16", build_settings(x16))
    assert {"tl_rnn_layer_step_x16", "tl_rnn_layer_step", "tl_dot_rows_s8s16", "tl_dense_step"} <= got
    assert not got & {"tl_rnn_layer_step16", "tl_dense_step16", "tl_pool_s16", "tl_lstm_layer_step_x16"}
    # one layer: layer 0's int16 step is all it runs, so the int8 layer step is left out
    one = model_of("gru", 1, X16, "last", 1)
    got = symbols(one, tmp_path / "x16-one", build_settings(one))
    assert {"tl_gru_layer_step_x16", "tl_dense_step"} <= got and "tl_gru_layer_step" not in got


def test_the_firmware_app_links_only_its_models_input_type(tmp_path: Path) -> None:
    """`tinylstm build` of an int8-input model's firmware links tl_step, tl_quantize_input and the INPUT
    parser and nothing of the int16 input's; an int16-h model's links tl_step_s16, tl_quantize_input_s16 and
    the INPUT_S16 parser and nothing of the int8 input's. Built without link-time optimisation, so every
    function that is linked keeps its symbol."""
    require_board_tools("qemu-stm32f405")
    int8 = {"tl_step", "tl_quantize_input", "tl_proto_input_parse"}
    int16 = {"tl_step_s16", "tl_quantize_input_s16", "tl_proto_input_s16_parse", "tl_proto_input_s16_sample"}
    for bits, has, lacks in ((8, int8, int16), (16, int16, int8), (X16, int16, int8)):
        m = model_of("lstm", 1, bits, "last", 1)
        export_dir = tmp_path / f"export-{bits}"
        emit_c(m, export_dir)
        save_int_model(m, export_dir)
        with mock.patch.object(toolchain, "LTO_FLAGS", ()):
            fw = build_firmware(export_dir, "qemu-stm32f405", tmp_path / f"fw-{bits}")
        nm = subprocess.run([str(find_tool("nm")), str(fw.elf)], capture_output=True, text=True, check=True)
        symbols = {line.split()[-1] for line in nm.stdout.splitlines() if line.strip()}
        assert has <= symbols and not symbols & lacks, (bits, has - symbols, symbols & lacks)


def test_the_firmware_build_checks_the_model_on_the_host(tmp_path: Path) -> None:
    """`tinylstm build` runs the kernel's tl_model_check over the firmware's model on the host, built with the
    firmware's settings (host/boards/model_check.py); the firmware then carries no check of its own
    (TL_MODEL_CHECKED_AT_BUILD). A model that fails it stops the build before anything is compiled for the
    board."""
    require_board_tools("qemu-stm32f405")
    m = model_of("lstm", 1, 8, "last", 1)
    export_dir = tmp_path / "export"
    emit_c(m, export_dir)
    save_int_model(m, export_dir)
    with mock.patch.object(toolchain, "LTO_FLAGS", ()):
        fw = build_firmware(export_dir, "qemu-stm32f405", tmp_path / "fw")
    nm = subprocess.run([str(find_tool("nm")), str(fw.elf)], capture_output=True, text=True, check=True)
    symbols = {line.split()[-1] for line in nm.stdout.splitlines() if line.strip()}
    assert "tl_state_init" in symbols and "tl_model_check" not in symbols
    m.layers[0].shift[5] = 63  # beyond TL_SHIFT_MAX (62)
    bad = tmp_path / "bad"
    emit_c(m, bad)
    save_int_model(m, bad)
    with pytest.raises(TinyLSTMError, match="fails the kernel's tl_model_check"):
        build_firmware(bad, "qemu-stm32f405", tmp_path / "fw-bad")
    assert not (tmp_path / "fw-bad" / "tinylstm.elf").exists()


CHECKED_MAIN = """#include "tinylstm.h"
#include "tl_model.h"
int main(void) { return tl_state_words(&tl_model) > 0 ? 0 : 3; }
"""


def test_a_kernel_built_for_a_checked_model_refuses_any_other(tmp_path: Path) -> None:
    """TL_MODEL_CHECKED_AT_BUILD is the hash of the model the build checked (host/boards/model_check.py): the
    kernel takes that model unchecked and refuses a model of another hash (a tl_model.c swapped in after the
    build) instead of running it unchecked; 0 checks every model at run time."""
    m = model_of("lstm", 1, 8, "last", 1)
    gen = tmp_path / "gen"
    emit_c(m, gen)
    status = {
        what: run_on_host(gen, {CHECKED_DEFINE: value}, tmp_path / f"run-{k}", CHECKED_MAIN)
        for k, (what, value) in enumerate(
            (
                ("its hash", checked_value(m.model_hash)),
                ("another hash", checked_value(m.model_hash ^ 1)),
                ("0", "0"),
            )
        )
    }
    assert status == {"its hash": 0, "another hash": 3, "0": 0}

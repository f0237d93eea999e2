"""A model too large for the target is refused with a message that says so and what to do."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinylstm.codegen.emit_c import LAYER_STRUCT_BYTES, MODEL_STRUCT_BYTES, emit_c, model_data_bytes
from tinylstm.codegen.random_models import random_int_model
from tinylstm.codegen.store import save_int_model
from tinylstm.contract.cells import CELLS
from tinylstm.contract.constants import MAX_HIDDEN, MAX_LAYERS
from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards import BOARDS, build_elf, get_board
from tinylstm.host.boards.csources import csrc_dir, kernel_sources
from tinylstm.host.cli.main import main


def test_model_too_large_for_flash(tmp_path: Path) -> None:
    # 3 x 256-unit LSTM layers on 64 inputs: about 1.4 MB of int8 weights, the F405 has 1 MB of flash.
    model = random_int_model(np.random.default_rng(0), "lstm", 3, 64, 256, 4)
    emit_c(model, tmp_path / "gen")
    main = tmp_path / "main.c"
    # the model's address escapes through a volatile, so link-time optimisation keeps all of its data
    main.write_text(
        '#include "tl_model.h"\nconst void *volatile keep;\nint main(void) { keep = &tl_model; return 0; }\n'
    )
    with pytest.raises(
        TinyLSTMError, match=r"does not fit stm32f405: FLASH overflowed by \d+ bytes.*smaller model"
    ):
        build_elf(
            [main, tmp_path / "gen" / "tl_model.c", *kernel_sources()],
            [csrc_dir(), tmp_path / "gen"],
            {},
            tmp_path / "build",
            "big",
            get_board("stm32f405"),
        )


@pytest.fixture(scope="module")
def oversized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An export of the largest model the contract allows on 64 inputs: 3 x 256-unit LSTM layers, 1.4 MB."""
    export_dir = tmp_path_factory.mktemp("oversized")
    model = random_int_model(np.random.default_rng(0), "lstm", MAX_LAYERS, 64, MAX_HIDDEN, 4)
    save_int_model(model, export_dir)
    return export_dir


@pytest.mark.parametrize("board", list(BOARDS))
def test_every_board_refuses_a_model_that_cannot_fit(
    oversized: Path, board: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["build", str(oversized), "--board", board, "--out", str(tmp_path / "fw")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err  # one line
    assert re.search(rf"does not fit {re.escape(board)}: its data takes 1,3\d\d\.\d KB of flash", err), err
    assert "Export a smaller model" in err
    assert not (tmp_path / "fw").exists()  # refused before anything is written


def test_the_flash_estimate_is_the_emitted_data(tmp_path: Path) -> None:
    """model_data_bytes, which the fit check uses, is what the compiler puts in flash for tl_model.c."""
    for cell in CELLS:
        model = random_int_model(np.random.default_rng(1), cell, 2, 6, 24, 5)
        emit_c(model, tmp_path / cell)
        obj = tmp_path / cell / "tl_model.o"
        cmd = ["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-Os", "-fdata-sections", "-c"]
        subprocess.run(
            [*cmd, f"-I{csrc_dir()}", str(tmp_path / cell / "tl_model.c"), "-o", str(obj)], check=True
        )
        out = subprocess.run(["arm-none-eabi-size", "-A", str(obj)], capture_output=True, text=True).stdout
        data = sum(int(line.split()[1]) for line in out.splitlines() if line.startswith((".rodata", ".data")))
        assert abs(model_data_bytes(model) - data) <= 16, (cell, model_data_bytes(model), data)
        nm = subprocess.run(["arm-none-eabi-nm", "-S", str(obj)], capture_output=True, text=True).stdout
        sizes = {f[3]: int(f[1], 16) for f in (line.split() for line in nm.splitlines()) if len(f) == 4}
        assert sizes["layers"] == 2 * LAYER_STRUCT_BYTES and sizes["tl_model"] == MODEL_STRUCT_BYTES, sizes

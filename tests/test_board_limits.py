"""A model too large for the target is refused with a message that says so and what to do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinylstm.codegen.emit_c import emit_c
from tinylstm.codegen.random_models import random_int_model
from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards import build_elf, get_board
from tinylstm.host.csources import csrc_dir, kernel_sources


def test_model_too_large_for_flash(tmp_path: Path) -> None:
    # 3 x 256-unit LSTM layers on 64 inputs: about 1.4 MB of int8 weights, the F405 has 1 MB of flash.
    model = random_int_model(np.random.default_rng(0), "lstm", 3, 64, 256, 4)
    emit_c(model, tmp_path / "gen")
    main = tmp_path / "main.c"
    main.write_text('#include "tl_model.h"\nint main(void) { return (int)tl_model.layers[2].weights[7]; }\n')
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

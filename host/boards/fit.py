"""Will the firmware fit the board? Checked by `tinylstm build` before anything is written.

The model's constant data is known exactly from the export (codegen/emit_c.model_data_bytes); the rest
is TinyLSTM's own code (kernel, app, port and the compiler runtime), bounded by CODE_ALLOWANCE from the
measured builds, and the framework's footprint the board record states (Arduino core, ESP-IDF). Bare-
metal builds are checked again, exactly, by the linker (host/boards/toolchain.py).
"""

from __future__ import annotations

from tinylstm.codegen.emit_c import Layout, model_data_bytes
from tinylstm.codegen.quantize import IntModel
from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards.registry import BOARDS, Board

# Kernel + app + port + libgcc of the demo firmware, measured: 7.8 KB on Cortex-M4, 12.7 KB on RV32IMC
# (soft float); benchmarks/results/firmware_size.md. Rounded up.
CODE_ALLOWANCE = 16 * 1024
# The app's static RAM besides the receive buffer and the model state (PRED history, frame decoder,
# counters: 1.3 KB measured), and the stack a step needs (under 0.5 KB measured), rounded up.
APP_RAM_ALLOWANCE = 4 * 1024


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f} KB"


def flash_needed(data_bytes: int, board: Board) -> int:
    return data_bytes + CODE_ALLOWANCE + board.framework_flash_bytes


def check_fits(
    model: IntModel, board: Board, rx_capacity: int, replay_bytes: int, layout: Layout = "w8"
) -> None:
    """Raise a TinyLSTMError with the numbers and the fix when the firmware cannot fit ``board``."""
    data = model_data_bytes(model, layout) + replay_bytes
    flash = flash_needed(data, board)
    if flash > board.flash_bytes:
        roomier = [b.name for b in BOARDS.values() if flash_needed(data, b) <= b.flash_bytes]
        pick = f", or pick a board with more flash ({', '.join(roomier)})" if roomier else ""
        if replay_bytes and flash_needed(data - replay_bytes, board) <= board.flash_bytes:
            raise TinyLSTMError(  # the model fits: the embedded held-out data is what does not
                f"the replay data does not fit {board.name}: {_kb(replay_bytes)} of embedded held-out "
                f"samples beside the model's {_kb(data - replay_bytes)} come to about {_kb(flash)} of the "
                f"board's {_kb(board.flash_bytes)} of flash. Embed fewer samples (--replay-steps){pick}"
            )
        raise TinyLSTMError(
            f"the model does not fit {board.name}: its data takes {_kb(data)} of flash; with TinyLSTM's "
            f"code (~{_kb(CODE_ALLOWANCE)}) and the framework (~{_kb(board.framework_flash_bytes)}) that "
            f"is about {_kb(flash)} of the board's {_kb(board.flash_bytes)}. Export a smaller model (fewer "
            f"hidden units or layers: an LSTM layer's weights take 4*H*(I+H) bytes){pick}"
        )
    rx = max(rx_capacity, board.rx_buffer_min)
    state = 2 * model.state_words
    ram = state + rx + APP_RAM_ALLOWANCE + board.framework_ram_bytes
    if ram > board.ram_bytes:
        window = model.window * model.input_size
        raise TinyLSTMError(
            f"the model does not fit {board.name}: it needs about {_kb(ram)} of RAM (state {state} B"
            + (f", {window} B of it the bidirectional window's inputs" if window else "")
            + f", a {rx} B receive buffer, the app and the framework) of the board's {_kb(board.ram_bytes)}. "
            + (
                "Train on shorter windows (--window) or without --bidirectional"
                if window
                else "Export a smaller model (fewer hidden units or layers)"
            )
        )

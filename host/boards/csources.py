"""Where the C sources live (package data) and the flags every TinyLSTM C build uses."""

from __future__ import annotations

from pathlib import Path

# -ffp-contract=off keeps (x - mean) * mul unfused so float input conversion is bit-exact
# everywhere; the integer kernel does not depend on any flag.
C_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off", "-fno-math-errno"]


# host/, csrc/ and firmware/ are siblings both in the source tree and in site-packages/tinylstm/; this file is
# host/boards/csources.py.
_ROOT = Path(__file__).resolve().parents[2]


def csrc_dir() -> Path:
    """Directory holding tinylstm.h and the kernel sources."""
    return _ROOT / "csrc"


def kernel_sources() -> list[Path]:
    """The portable kernel's .c files: csrc/tl_sources.txt, the one list every build reads (the host
    bridge, the firmware, PlatformIO, the MicroPython C and native modules)."""
    names = (csrc_dir() / "tl_sources.txt").read_text().split()
    return [csrc_dir() / n for n in names]


def firmware_dir() -> Path:
    return _ROOT / "firmware"

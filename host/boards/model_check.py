"""The kernel's ``tl_model_check``, run on the host over the model a bare-metal firmware links.

``tinylstm build`` compiles the kernel and the firmware's ``tl_model.c`` for the host with the firmware's
own settings, runs ``tl_model_check`` on it and stops the build if it fails. The firmware then skips the
check at boot (``TL_MODEL_CHECKED_AT_BUILD``, set to the model's hash, csrc/tl_api.c): its model is a constant
in flash, checked once by the same C function, and the check's loops over every row took 240 B of the demo
firmware's flash. A model of another hash (a tl_model.c swapped in after the build) is refused at boot.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards.csources import C_FLAGS, csrc_dir, kernel_sources
from tinylstm.host.boards.toolchain import compile_object, find_compiler, run_tool

MAIN = """#include "tinylstm.h"
#include "tl_model.h"
int main(void) { return tl_model_check(&tl_model) == TL_OK ? 0 : 3; }
"""

# the define that tells the firmware's kernel which model passed check_on_host (checked_value: its hash); the
# kernel refuses a model of another hash
CHECKED_DEFINE = "TL_MODEL_CHECKED_AT_BUILD"


def checked_value(model_hash: int) -> str:
    """CHECKED_DEFINE's value for the model of ``model_hash``. A model whose hash is 0 gets 0, which the
    kernel reads as "check every model": that one is then checked at boot, as without the define."""
    return f"0x{model_hash:08x}u"


def run_on_host(gen: Path, defines: dict[str, str], work: Path, main_source: str = MAIN) -> int:
    """Compile the kernel, ``gen/tl_model.c`` and ``main_source`` (a C ``main``; by default one calling
    ``tl_model_check``) for the host with ``defines`` (the firmware's settings) in ``work``, run it and return
    its exit status."""
    cc = find_compiler()
    work.mkdir(parents=True, exist_ok=True)
    main = work / "tl_model_check_main.c"
    main.write_text(main_source)
    flags = [
        *C_FLAGS,
        "-O0",
        "-I",
        str(csrc_dir()),
        "-I",
        str(gen),
        *(f"-D{k}={v}" for k, v in defines.items()),
    ]
    objects = []
    for src in [*kernel_sources(), gen / "tl_model.c", main]:
        obj = work / f"{src.stem}.o"
        compile_object(cc, flags, src, obj, f"compiling {src.name} for the host's model check")
        objects.append(obj)
    exe = work / "tl_model_check"
    run_tool([cc, *objects, "-o", exe], "linking the host's model check")
    return subprocess.run([str(exe)], check=False).returncode


def check_on_host(gen: Path, defines: dict[str, str], work: Path) -> None:
    """``tl_model_check`` over ``gen/tl_model.c`` on the host, built with ``defines`` in ``work``
    (``run_on_host``); TinyLSTMError unless the model passes."""
    if run_on_host(gen, defines, work) != 0:
        raise TinyLSTMError(
            f"{gen / 'tl_model.c'} fails the kernel's tl_model_check (a field out of the contract's range, "
            "or a model of a kind this build leaves out): export the model again with this tinylstm"
        )

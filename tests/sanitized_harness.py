"""The kernel under -fsanitize=address,undefined, checked word for word against the golden reference.

tests/c/run_model.c steps a generated model over samples read from stdin (int8, an int16-h model's int16)
and writes, for every step, the outputs, the hidden state (as int16) and the cell state (raw little-endian).
`check_sanitized_run` builds it for one model and layout, feeds it random samples over the whole range of
the model's input type and compares every output and state word on every step with codegen/golden.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from tinylstm.codegen import golden
from tinylstm.codegen.emit_c import Layout, build_defines, emit_c
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.random_models import random_inputs
from tinylstm.host.boards.csources import C_FLAGS, csrc_dir, kernel_sources
from tinylstm.host.boards.toolchain import compile_object, find_compiler, run_tool

HARNESS = Path(__file__).parent / "c" / "run_model.c"
SANITIZE = ("-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all")


def build_harness(cc: str, flags: list[str], gen: Path, link_flags: list[str] | tuple[str, ...]) -> Path:
    """gen/run_model: the harness, ``gen/tl_model.c`` and the kernel, each compiled with ``flags`` through
    compile_object (the kernel's sources once per flags and text, however many models) and linked with
    ``link_flags``; TinyLSTMError with the compiler's output when a source does not compile."""
    objects = []
    for src in [*kernel_sources(), HARNESS, gen / "tl_model.c"]:
        objects.append(gen / f"{src.stem}.o")
        compile_object(cc, flags, src, objects[-1], f"compiling {src.name}")
    exe = gen / "run_model"
    run_tool([cc, *link_flags, *objects, "-o", exe, "-lm"], "linking the test harness")
    return exe


def check_sanitized_run(
    model: IntModel,
    gen: Path,
    steps: int,
    rng: np.random.Generator,
    layout: Layout = "w8",
    settings: dict[str, str] | None = None,
) -> None:
    """``settings``: build settings beyond ``build_defines`` (e.g. a firmware's ``build_settings``)."""
    emit_c(model, gen, layout=layout)
    cc = find_compiler()
    flags = [
        *C_FLAGS,
        *build_defines(model, layout),
        *(f"-D{k}={v}" for k, v in (settings or {}).items()),
        *SANITIZE,
        "-I",
        str(csrc_dir()),
        "-I",
        str(gen),
    ]
    exe = build_harness(cc, flags, gen, SANITIZE)
    xq = random_inputs(rng, model, steps)
    proc = subprocess.run([str(exe)], input=xq.tobytes(), capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    cells = len(model.layers) * model.hidden_size
    rec = np.dtype([("y", "<i2", model.output_size), ("h", "<i2", cells), ("c", "<i2", cells)])
    got = np.frombuffer(proc.stdout, dtype=rec)
    y_ref, _, tr = golden.run(model, xq[None], trace=True)
    assert len(got) == steps
    assert np.array_equal(got["y"], y_ref[0])
    assert np.array_equal(got["h"], tr["h"][0].reshape(steps, -1))
    assert np.array_equal(got["c"], tr["c"][0].reshape(steps, -1))

"""Flash and static RAM of the demo firmware (qemu-stm32f405 build) for a 32-unit LSTM, 6 inputs,
7 classes, trained briefly and calibrated on the watch IMU data: as `tinylstm build` writes it by default
(host-fed, no replay data, link-time optimised), the same build without link-time optimisation beside it,
and as `make demo` builds it (`--replay-steps 256`).

Reports the split kernel (csrc) / model data (tl_model.o + tl_replay.o) / app (protocol + app) /
port / rest, the stack reservation, and the stack actually used: QEMU starts with zeroed RAM, so
after a parity run the deepest non-zero word of the stack region is its high-water mark (a zero
written at the very bottom would hide a few bytes; the margin below covers that).
Writes benchmarks/results/firmware_size.json and .md.

    python benchmarks/bench_firmware_size.py
"""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

from tinylstm.codegen import golden
from tinylstm.codegen.emit_c import model_settings
from tinylstm.codegen.export import ModelSource, export
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.store import load_int_model
from tinylstm.host.analysis.parity import run_parity
from tinylstm.host.boards import QemuBoard, toolchain
from tinylstm.host.boards.firmware import build_firmware
from tinylstm.host.boards.sizes import SizeReport
from tinylstm.host.boards.toolchain import find_tool
from tinylstm.host.link.transport import Link
from tinylstm.host.targets.unicorn_runner import Target, build_target
from tinylstm.trainer.data import load_dataset
from tinylstm.trainer.train import TrainConfig, fit

RESULTS = Path(__file__).parent / "results"
# issue 21's goal (it was 16 KB before the kernel linked only the model's paths)
GOAL_FLASH, GOAL_RAM = 12 * 1024, 4 * 1024
WARMUP, COUNTED = 8, 64  # samples stepped before the counted ones, and counted (the watch data's last window)


def _symbols(elf: Path) -> dict[str, int]:
    out = subprocess.run([str(find_tool("nm")), str(elf)], capture_output=True, text=True, check=True).stdout
    return {
        parts[2]: int(parts[0], 16)
        for parts in (line.split() for line in out.splitlines())
        if len(parts) == 3
    }


def stack_high_water(elf: Path, export_dir: Path, work: Path) -> tuple[int, int]:
    """(bytes of stack used, parity steps run) after a host-fed parity run in QEMU."""
    syms = _symbols(elf)
    lo, hi = syms["_sstack"], syms["_estack"]
    mon = work / "monitor.sock"
    dump = work / "stack.bin"
    with QemuBoard(elf, extra_args=("-monitor", f"unix:{mon},server=on,wait=off")) as board:
        with Link.open(board.url) as link:
            report = run_parity(link, export_dir, 2000)
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(mon))
            s.sendall(f'pmemsave {lo} {hi - lo} "{dump}"\n'.encode())
            for _ in range(50):
                if dump.is_file() and dump.stat().st_size == hi - lo:
                    break
                time.sleep(0.1)
    data = dump.read_bytes()
    untouched = next((i for i, b in enumerate(data) if b), len(data))
    return len(data) - untouched, report.steps


def step_instructions(model: IntModel, xq: np.ndarray, work: Path, lto: bool) -> tuple[int, int]:
    """(median Cortex-M4 instructions of one tl_step over the samples after the first WARMUP, the deepest
    stack of those steps), counted in unicorn on the kernel built at the firmware's -Os, link-time optimised
    or every file alone."""
    target = Target(build_target(model, work, opt="-Os", max_steps=1, lto=lto), model)
    counted = [target.measure_step(x) for x in xq]
    return int(np.median([n for n, _ in counted[WARMUP:]])), max(st for _, st in counted[WARMUP:])


def _side_by_side(lto: SizeReport, plain: SizeReport) -> str:
    lines = [
        "| group | flash (B) | static RAM (B) | flash without LTO (B) | static RAM without LTO (B) |",
        "|---|---:|---:|---:|---:|",
    ]
    before = {g.name: g for g in plain.groups}
    lines += [
        f"| {g.name} | {g.flash} | {g.ram} | {before[g.name].flash} | {before[g.name].ram} |"
        for g in lto.groups
    ]
    lines.append(f"| **total** | **{lto.flash}** | **{lto.ram}** | **{plain.flash}** | **{plain.ram}** |")
    return "\n".join(lines)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result = fit(load_dataset("watch"), TrainConfig(hidden=32, epochs=2, progress=False), work / "run")
        export(ModelSource(str(result.checkpoint_path)), work / "export")
        model, _ = load_int_model(work / "export")
        linked = ", ".join(f"{k}={v}" for k, v in model_settings(model).items())
        fw = build_firmware(work / "export", "qemu-stm32f405", work / "fw")
        demo = build_firmware(work / "export", "qemu-stm32f405", work / "fw-demo", replay=256)
        with mock.patch.object(toolchain, "LTO_FLAGS", ()):  # the baseline: every file compiled alone
            plain = build_firmware(work / "export", "qemu-stm32f405", work / "fw-plain")
        assert fw.elf is not None and None not in (fw.sizes, demo.sizes, plain.sizes)
        stack_used, steps = stack_high_water(fw.elf, work / "export", work)
        window = load_dataset("watch").sequences[-1][: WARMUP + COUNTED]  # the recording's last window
        xq = golden.quantize_input(model, window.astype(np.float32))
        per_step = {lto: step_instructions(model, xq, work / f"unicorn-{lto}", lto) for lto in (True, False)}
    s, d, p = fw.sizes, demo.sizes, plain.sizes
    doc = {
        "model": "LSTM 6 -> 32 -> 7 classes, 1 layer, watch-calibrated",
        "board": "qemu-stm32f405 (arm-none-eabi-gcc -Os -flto, Cortex-M4F, --gc-sections)",
        "flash": s.flash,
        "static_ram": s.ram,
        "groups": {g.name: {"flash": g.flash, "ram": g.ram} for g in s.groups},
        "without_lto": {
            "flash": p.flash,
            "static_ram": p.ram,
            "groups": {g.name: {"flash": g.flash, "ram": g.ram} for g in p.groups},
        },
        "demo_with_replay": {"replay_steps": 256, "flash": d.flash, "static_ram": d.ram},
        "step_instructions_m4": {"lto": per_step[True][0], "without_lto": per_step[False][0]},
        "step_stack_m4": {"lto": per_step[True][1], "without_lto": per_step[False][1]},
        "stack_reserved": s.stack,
        "stack_used_high_water": stack_used,
        "stack_measured_over_steps": steps,
        "goal": {"flash": GOAL_FLASH, "static_ram": GOAL_RAM},
        "meets_goal": s.flash <= GOAL_FLASH and s.ram <= GOAL_RAM,
        "demo_meets_goal": d.flash <= GOAL_FLASH and d.ram <= GOAL_RAM,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "firmware_size.json").write_text(json.dumps(doc, indent=2) + "\n")
    suggested = -(-2 * stack_used // 256) * 256  # twice the high-water mark, rounded up to 256 B
    verdict = "met" if doc["meets_goal"] else "NOT met"
    demo_verdict = "met" if doc["demo_meets_goal"] else "NOT met"
    md = [
        "# Firmware size: demo firmware, 32-unit LSTM (6 inputs, 7 classes)",
        "",
        f"Board build: {doc['board']}. Model: {doc['model']}, readout {model.readout}. The kernel is built "
        f"with the model's settings ({linked}: codegen/emit_c.py build_settings), so it links only the "
        "paths this model runs. The table is the firmware `tinylstm build` writes by default (host-fed: "
        "no replay data), link-time optimised (host/boards/toolchain.py, LTO_FLAGS: calls across files "
        "inline, the model's constants reach the kernel), beside the same build with every file compiled "
        "alone (no -flto), built in the same run. With link-time optimisation the split follows the debug "
        "information's line tables (host/boards/sizes.py): inlined code counts for the file it was written "
        "in; the string literals and constant pools it merges across files are `literals` (without it they "
        "count for their files).",
        "",
        _side_by_side(s, p),
        "",
        f"Stack reservation: {s.stack} B (RAM incl. stack: {s.ram + s.stack} B).",
        "",
        f"One tl_step of this model, Cortex-M4 instructions (unicorn, the kernel at -Os, median of {COUNTED} "
        f"samples of the watch data's last window after {WARMUP}): {per_step[True][0]} link-time optimised, "
        f"{per_step[False][0]} with every file compiled alone (the counts the kernel benchmark and "
        f"`tinylstm search` use); the step's stack {per_step[True][1]} B and {per_step[False][1]} B.",
        "",
        f"With the 256 held-out samples `make demo` embeds for its replay source (`--replay-steps 256`): "
        f"{d.flash} B of flash, {d.ram} B of static RAM.",
        "",
        f"Goal: flash <= {GOAL_FLASH} B, static RAM (.data + .bss) <= {GOAL_RAM} B: {verdict} by the default "
        f"firmware ({s.flash} B), {demo_verdict} by the demo's ({d.flash} B).",
        (
            f"Static RAM does not count the stack. The linker script reserves {s.stack} B of stack by "
            "default; "
            f"the stack actually used (high-water mark in QEMU over {steps} host-fed steps plus HELLO/STATS) "
            "was "
            f"{stack_used} B. Twice that, `-Wl,--defsym=__stack_size={suggested}`, would bring static RAM "
            "plus "
            f"stack to {s.ram + suggested} B (build_elf takes no linker flags yet, so the default is "
            "measured)."
        ),
        "",
        "Regenerate: `python benchmarks/bench_firmware_size.py`.",
    ]
    (RESULTS / "firmware_size.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()

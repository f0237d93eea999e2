"""Flash and static RAM of the demo firmware (qemu-stm32f405 build) for a 32-unit LSTM, 6 inputs,
7 classes, trained briefly and calibrated on the watch IMU data: as `tinylstm build` writes it by default
(host-fed, no replay data) and as `make demo` builds it (`--replay-steps 256`).

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

from tinylstm.codegen.emit_c import model_settings
from tinylstm.codegen.export import ModelSource, export
from tinylstm.codegen.store import load_int_model
from tinylstm.host.analysis.parity import run_parity
from tinylstm.host.boards import QemuBoard
from tinylstm.host.boards.firmware import build_firmware
from tinylstm.host.boards.toolchain import find_tool
from tinylstm.host.link.transport import Link
from tinylstm.trainer.data import load_dataset
from tinylstm.trainer.train import TrainConfig, fit

RESULTS = Path(__file__).parent / "results"
# issue 21's goal (it was 16 KB before the kernel linked only the model's paths)
GOAL_FLASH, GOAL_RAM = 12 * 1024, 4 * 1024


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


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result = fit(load_dataset("watch"), TrainConfig(hidden=32, epochs=2, progress=False), work / "run")
        export(ModelSource(str(result.checkpoint_path)), work / "export")
        model, _ = load_int_model(work / "export")
        linked = ", ".join(f"{k}={v}" for k, v in model_settings(model).items())
        fw = build_firmware(work / "export", "qemu-stm32f405", work / "fw")
        demo = build_firmware(work / "export", "qemu-stm32f405", work / "fw-demo", replay=256)
        assert fw.sizes is not None and fw.elf is not None and demo.sizes is not None
        stack_used, steps = stack_high_water(fw.elf, work / "export", work)
    s, d = fw.sizes, demo.sizes
    doc = {
        "model": "LSTM 6 -> 32 -> 7 classes, 1 layer, watch-calibrated",
        "board": "qemu-stm32f405 (arm-none-eabi-gcc -Os, Cortex-M4F, --gc-sections)",
        "flash": s.flash,
        "static_ram": s.ram,
        "groups": {g.name: {"flash": g.flash, "ram": g.ram} for g in s.groups},
        "demo_with_replay": {"replay_steps": 256, "flash": d.flash, "static_ram": d.ram},
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
        "no replay data).",
        "",
        s.render(),
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

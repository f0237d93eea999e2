"""Regenerate every benchmark result in benchmarks/results/ (`make bench`).

- bench_kernel.py: Cortex-M4 instruction counts, code size, model data, state RAM, stack (unicorn)
- bench_host.py: CModel.step / CModel.run vs PyTorch eager
- bench_firmware_size.py, bench_micropython.py: run if present (owned by the firmware/MicroPython work)
- bench_link.py: parity throughput over the serial link in QEMU, idle and with CPU hogs
- bench_train.py: training a small model with 1 and 2 PyTorch threads, idle and busy
- bench_accuracy.py: float / int8 PTQ / int8 QAT accuracy beside flash, RAM and instructions (needs aeon's
  data files: pip install --no-deps aeon)

    python benchmarks/run_all.py [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OPTIONAL = ("bench_firmware_size.py", "bench_micropython.py", "bench_link.py", "bench_train.py")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer sizes and repeats (a smoke run)")
    args = ap.parse_args()
    runs = [
        ["bench_kernel.py", *(["--quick"] if args.quick else [])],
        ["bench_host.py", *(["--repeats", "3", "--steps", "5000", "--seq", "50000"] if args.quick else [])],
        ["bench_accuracy.py", *(["--quick"] if args.quick else [])],
        *([name] for name in OPTIONAL if (HERE / name).is_file()),
    ]
    failed = []
    for cmd in runs:
        t0 = time.time()
        print(f"== {' '.join(cmd)}", flush=True)
        rc = subprocess.run([sys.executable, str(HERE / cmd[0]), *cmd[1:]], check=False).returncode
        print(f"== {cmd[0]}: {'ok' if rc == 0 else f'FAILED ({rc})'} in {time.time() - t0:.0f} s", flush=True)
        if rc:
            failed.append(cmd[0])
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

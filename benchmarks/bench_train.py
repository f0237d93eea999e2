"""Training time of a small model with 1 and 2 PyTorch intra-op threads, idle and on a busy machine.

`tinylstm train --data watch --epochs 3 --hidden 32` as a whole process, each configuration run
several times; wall and CPU seconds (user + system of the process), medians with min..max. "busy" runs
2 CPU hogs beside it (a 2-core machine fully loaded). A run still going after LIMIT seconds is stopped
and counted as LIMIT (a lower bound). Writes benchmarks/results/train.{md,json}.
The default (`--threads` omitted) is 1 thread up to hidden 64 (trainer.train.SMALL_HIDDEN).

    python benchmarks/bench_train.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tinylstm.host.link.linklab import cpu_hogs

RESULTS = Path(__file__).parent / "results"
COMMAND = ["train", "--data", "watch", "--epochs", "3", "--hidden", "32", "--quiet"]
LIMIT = 120.0


def one_run(threads: int, out: Path) -> tuple[float, float, bool]:
    """(wall seconds, CPU seconds, stopped at LIMIT) of one training process."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tinylstm.host.cli.main",
            *COMMAND,
            "--threads",
            str(threads),
            "--out",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
    )
    stopped = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - start > LIMIT:
            proc.kill()
            stopped = True
        time.sleep(0.05)
    wall = min(time.perf_counter() - start, LIMIT) if stopped else time.perf_counter() - start
    if not stopped and os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"training failed with --threads {threads}")
    return wall, usage.ru_utime + usage.ru_stime, stopped


def scenario(threads: int, hogs: int, repeats: int, work: Path) -> dict[str, Any]:
    walls, cpus, stopped = [], [], 0
    with cpu_hogs(hogs):
        for k in range(repeats):
            wall, cpu, limit = one_run(threads, work / f"t{threads}-h{hogs}-{k}")
            walls.append(wall)
            cpus.append(cpu)
            stopped += limit
    row = {
        "threads": threads,
        "hogs": hogs,
        "runs": repeats,
        "wall_median": statistics.median(walls),
        "wall_min": min(walls),
        "wall_max": max(walls),
        "cpu_median": statistics.median(cpus),
        "stopped_at_limit": stopped,
    }
    print(
        f"threads {threads}, {hogs} hogs: wall {row['wall_median']:.1f} s ({row['wall_min']:.1f}.."
        f"{row['wall_max']:.1f}), cpu {row['cpu_median']:.1f} s",
        flush=True,
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [scenario(t, h, args.repeats, Path(tmp)) for h in (0, 2) for t in (1, 2)]
    doc = {"command": "tinylstm " + " ".join(COMMAND), "machine": "2 cores", "rows": rows}
    by = {(r["threads"], r["hogs"]): r for r in rows}
    for hogs in (0, 2):
        doc[f"ratio_2_over_1_threads_wall_{'busy' if hogs else 'idle'}"] = (
            by[(2, hogs)]["wall_median"] / by[(1, hogs)]["wall_median"]
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train.json").write_text(json.dumps(doc, indent=2) + "\n")
    md = [
        "# Training a small model: intra-op threads",
        "",
        f"`{doc['command']}` as a whole process on a {doc['machine']} machine, {args.repeats} runs each; "
        f"busy = 2 CPU hogs running beside it. Medians (min..max); runs stopped at {LIMIT:.0f} s count as "
        f"{LIMIT:.0f} s.",
        "",
        "| threads | machine | wall s | CPU s | runs stopped at the limit |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        md.append(
            f"| {r['threads']} | {'busy' if r['hogs'] else 'idle'} | {r['wall_median']:.1f} "
            f"({r['wall_min']:.1f}..{r['wall_max']:.1f}) | {r['cpu_median']:.1f} | {r['stopped_at_limit']} |"
        )
    worst = by[(2, 2)]["wall_max"] / by[(1, 2)]["wall_max"]
    doc["ratio_2_over_1_threads_wall_busy_worst"] = worst
    md += [
        "",
        f"2 threads / 1 thread, wall: idle {doc['ratio_2_over_1_threads_wall_idle']:.2f}x, busy "
        f"{doc['ratio_2_over_1_threads_wall_busy']:.2f}x (median) and {worst:.2f}x (slowest runs). A second "
        "thread saves a little on an idle machine and can cost several times over on a busy one (its "
        "threads wait for each other). Hence the default of one thread up to hidden 64 (`--threads` for the "
        "rest).",
        "",
        "Regenerate: `python benchmarks/bench_train.py`.",
    ]
    (RESULTS / "train.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()

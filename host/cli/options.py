"""Options several commands share, worded once."""

from __future__ import annotations

import argparse


def add_moved_data(p: argparse.ArgumentParser, used: str = "") -> None:
    """``--data`` and ``--test-data``: the files a model was trained with, at their new paths (checked
    against the SHA-256 the checkpoint recorded). ``used``: what the command reads them for, when not
    always (e.g. "with --feed held-out")."""
    when = f" ({used})" if used else ""
    p.add_argument(
        "--data",
        help=f"the training data at another path (it moved): the recorded split is rebuilt from it{when} "
        "(default: the recorded file)",
    )
    p.add_argument(
        "--test-data",
        help=f"the held-out file the model was trained with (train --test-data), if it moved{when} (default: "
        "the recorded path)",
    )

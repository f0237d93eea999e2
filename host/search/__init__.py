"""The architecture search (docs/search.md): ``study`` (the Optuna study under a board's budget, trained
with the default recipe) and ``cost`` (flash, RAM and latency of an architecture on a board).

Imports everything below it (link, boards, targets, analysis), never cli.
"""

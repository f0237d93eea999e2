"""Verdicts over an exported model: ``check`` (held-out quality, golden == C bit-exact, the blob),
``parity`` (a board or QEMU over the link against the host kernel, sample by sample), ``explain`` (what
the integer model does per step and gate).

Imports link and targets (and what lies below them), never search or cli.
"""

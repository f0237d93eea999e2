"""The integer contract's shared vocabulary (docs/integer-contract.md): the constants and model limits, the
cell and readout registries, input stacking and the integer arithmetic they are defined in.

The trainer, codegen and host all read it; it imports nothing of theirs (only ``tinylstm.errors``), so
PyTorch training never depends on the quantizer or the board tools (.importlinter checks the direction).
"""

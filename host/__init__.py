"""The host side: everything that runs on the developer's machine after export.

The packages follow the data, lowest first; each may import the ones before it (and contract/, trainer/,
codegen/), never one after it (.importlinter, checked by scripts/import_contract.py in ``make test``):

- ``link``: the serial link to a board: frames (protocol), the transport, feeding with flow control and
  recovery, the prediction stream and its drift monitor, the fault-injecting lab;
- ``boards``: the board registry, toolchains, firmware build and packaging, flashing, QEMU boards, fit and
  sizes;
- ``targets``: the kernel off the board: the host C kernel through cffi, unicorn (Cortex-M4, RISC-V),
  Xtensa, MicroPython;
- ``analysis``: verdicts over a model: check, parity over the link, explain;
- ``search``: the architecture study and its cost model;
- ``cli``: the command line, mostly a thin layer over ``tinylstm.api``; the only layer that may import every
  other.
"""

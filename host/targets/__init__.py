"""The C kernel off the board, for bit-exact checks: ``bridge`` (the host C kernel through cffi),
``unicorn_runner`` (Cortex-M4 and RISC-V cores in unicorn, with instruction counts), ``xtensa`` (the ESP32
core in its simulator), ``mpy_runner`` (the MicroPython fallback and the micropython executable).

Imports boards (toolchains, C sources, firmware images), never analysis or search.
"""

#!/usr/bin/env bash
# One-time set-up on a fresh Debian/Ubuntu machine: the cross toolchains and QEMU (apt: ARM, RISC-V,
# Xtensa through LLVM 22 and the lx106 gcc), the CPU build of PyTorch, then TinyLSTM itself in
# editable mode with its dev and dataset extras.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

need_apt=()
command -v arm-none-eabi-gcc >/dev/null || need_apt+=(gcc-arm-none-eabi libnewlib-arm-none-eabi)
command -v qemu-system-arm >/dev/null || need_apt+=(qemu-system-arm)
command -v riscv64-unknown-elf-gcc >/dev/null || need_apt+=(gcc-riscv64-unknown-elf)
command -v qemu-system-riscv32 >/dev/null || need_apt+=(qemu-system-misc)  # also qemu-system-xtensa
command -v clang-22 >/dev/null || need_apt+=(clang-22)
command -v llc-22 >/dev/null || need_apt+=(llvm-22)
command -v xtensa-lx106-elf-gcc >/dev/null || need_apt+=(gcc-xtensa-lx106)
command -v cc >/dev/null || need_apt+=(gcc)
command -v cmake >/dev/null || need_apt+=(cmake)  # evaluates the ESP-IDF component's CMake (tests/test_packaging.py)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "setup: installing ${need_apt[*]} with apt-get"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# The CPU wheel first, from PyTorch's CPU index: PyPI's Linux x86_64 torch is the multi-GB CUDA build, and a
# bare `torch` requirement would pull it.
if ! $PY -c "import torch" 2>/dev/null; then
  if ! $PY -m pip install -q "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu; then
    echo "setup: PyTorch's CPU index is out of reach: installing torch 2.13.0 from the default index" \
      "(on Linux x86_64, the CUDA build)"
    $PY -m pip install -q "torch==2.13.0"
  fi
fi
$PY -m pip install -q -e ".[dev,datasets]"
echo "setup: done"

#!/usr/bin/env bash
# The main job end to end on the embedded default: train an LSTM on the shipped smartwatch IMU
# data, quantize it, check float vs int8 and golden vs C on the held-out split, then build the
# firmware for the emulated STM32F405, prove it bit-exact in QEMU on held-out data, and stream
# predictions of the held-out recording embedded in its flash (replay source).
set -euo pipefail
RUN=${1:-runs/demo}
tinylstm train --data watch --out "$RUN"
tinylstm export "$RUN/model.pt" --out "$RUN/export"
tinylstm check "$RUN/export"
# --replay-steps: 256 held-out samples in flash for the replay source below (a plain build carries none)
tinylstm build "$RUN/export" --board qemu-stm32f405 --replay-steps 256 --out "$RUN/firmware"
# Boots QEMU itself, feeds 10,000 held-out samples as INPUT frames, compares every PRED with the host C.
tinylstm parity "$RUN/export" --qemu "$RUN/firmware/tinylstm.elf" --steps 10000 --report "$RUN/parity-report.json"
# QEMU in the background (it waits for the first client), then 150 replayed predictions (50 Hz).
tinylstm flash "$RUN/firmware" --board qemu-stm32f405 > "$RUN/qemu.log" &
QEMU_PID=$!
trap 'kill $QEMU_PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q '^socket://' "$RUN/qemu.log" 2>/dev/null && break; sleep 0.1; done
URL=$(head -n 1 "$RUN/qemu.log")
tinylstm stream --port "$URL" --export "$RUN/export" --source replay --count 150 --log "$RUN/replay.csv" | tail -n 5
echo "replayed predictions: $RUN/replay.csv; parity report: $RUN/parity-report.json"

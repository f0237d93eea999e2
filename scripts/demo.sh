#!/usr/bin/env bash
# The main job end to end on the embedded default: train an LSTM on the shipped smartwatch IMU
# data, quantize it, check float vs int8 and golden vs C on the held-out split.
set -euo pipefail
RUN=${1:-runs/demo}
tinylstm train --data watch --out "$RUN"
tinylstm export "$RUN/model.pt" --out "$RUN/export"
tinylstm check "$RUN/export"

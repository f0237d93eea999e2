"""Fuzz the C blob reader: thousands of mutated and truncated real blobs through tl_blob_parse
under ASan/UBSan; accepted ones are stepped, so a blob the parser lets through must be safe to run."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
from test_blob import build_harness

from tinylstm.codegen import blob
from tinylstm.codegen.random_models import random_int_model

MUTANTS_PER_BLOB = 1500


def _fix_crc(data: bytearray) -> None:
    if len(data) >= blob.HEADER.size:
        total = min(struct.unpack_from("<I", data, 12)[0], len(data))
        struct.pack_into(
            "<I", data, 8, zlib.crc32(data[blob.CRC_START : max(total, blob.CRC_START)]) & 0xFFFFFFFF
        )


def mutate(rng: np.random.Generator, data: bytes) -> bytes:
    """One mutant: byte flips, interesting values in the header/section table, truncation or
    extension; most get a correct CRC so the checks behind it are reached."""
    out = bytearray(data)
    table_end = blob.HEADER.size + 8 * struct.unpack_from("<H", data, 22)[0]
    for _ in range(int(rng.integers(1, 4))):
        kind = int(rng.integers(0, 5))
        if kind == 0 and out:  # any byte
            out[int(rng.integers(0, len(out)))] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1 and len(out) >= table_end:  # a header or section table word gets an edge value
            pos = int(rng.integers(0, table_end // 2)) * 2
            value = int(
                rng.choice([0, 1, 2, 3, 4, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, len(data)])
            )
            struct.pack_into(
                "<I" if pos % 4 == 0 and pos + 4 <= len(out) else "<H",
                out,
                pos,
                value & (0xFFFFFFFF if pos % 4 == 0 else 0xFFFF),
            )
        elif kind == 2 and len(out) >= table_end + 4:  # a data word (weights, biases, shifts, table, floats)
            pos = int(rng.integers(table_end // 4, len(out) // 4)) * 4
            struct.pack_into("<I", out, pos, int(rng.integers(0, 1 << 32)))
        elif kind == 3 and out:
            del out[int(rng.integers(0, len(out))) :]
        elif kind == 4:
            out += bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8))
    if rng.random() < 0.75:
        _fix_crc(out)
    return bytes(out)


def test_fuzz_c_blob_reader(tmp_path: Path) -> None:
    exe = build_harness(tmp_path)
    rng = np.random.default_rng(2024)
    bases = [
        blob.to_blob(random_int_model(rng, cell, layers, inp, hid, 3))
        for cell, layers, inp, hid in [("lstm", 1, 4, 8), ("gru", 2, 5, 6), ("lstm", 3, 2, 5)]
    ]
    # a bidirectional one (9 + 12L sections), whose 3-sample window ends in the 4 steps an accepted blob runs
    bases.append(blob.to_blob(random_int_model(rng, "gru", 2, 3, 5, 3, readout="mean", window=3)))
    records, mutants = bytearray(), 0
    for base in bases:
        records += struct.pack("<I", len(base)) + base
        for _ in range(MUTANTS_PER_BLOB):
            m = mutate(rng, base)
            records += struct.pack("<I", len(m)) + m
            mutants += 1
    proc = subprocess.run([str(exe), "fuzz"], input=bytes(records), capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    statuses = [int(s) for s in proc.stdout.split()]
    assert len(statuses) == mutants + len(bases)
    assert set(statuses) <= {0, -2, -5}, set(statuses)
    assert statuses.count(0) > 100, "too few mutants were accepted: the fuzzer does not reach the kernel"
    assert statuses.count(-5) > mutants // 3

"""Serial frame protocol: Python (tinylstm.host.link.protocol) and C (firmware/app/tl_proto.c) against the
shared vectors, against each other, and under random corruption."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinylstm.host.analysis.parity import ParityReport
from tinylstm.host.link import protocol as p
from tinylstm.host.link.feed import Feeder, FeedError, wait_hello
from tinylstm.host.link.stream import BoardStream, StreamCounters
from tinylstm.host.link.transport import Link, LinkError, LinkLost

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "firmware" / "app"
CSRC = ROOT / "csrc"  # tl_crc32.c: the one C CRC-32, shared with the blob reader
VECTORS = json.loads((ROOT / "tests" / "vectors" / "protocol_vectors.json").read_text())
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
ARM_GCC = shutil.which("arm-none-eabi-gcc")

# Line-oriented driver around the C API: one request line in, one response line out.
HARNESS_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tl_crc32.h"
#include "tl_proto.h"

static char line[1 << 18];
static char *tok[1024];
static uint8_t bin[1 << 16];
static uint8_t out[1 << 16];

static size_t unhex(const char *s, uint8_t *dst)
{
    size_t n = 0;
    unsigned v;
    if (strcmp(s, "-") == 0) return 0;
    while (s[0] != '\0' && s[1] != '\0' && sscanf(s, "%2x", &v) == 1) { dst[n++] = (uint8_t)v; s += 2; }
    return n;
}

static void puthex(const uint8_t *b, size_t n)
{
    size_t i;
    if (n == 0) fputs("-", stdout);
    for (i = 0; i < n; i++) printf("%02x", b[i]);
}

static unsigned long num(int i) { return strtoul(tok[i], NULL, 0); }

int main(void)
{
    while (fgets(line, sizeof line, stdin) != NULL) {
        int nt = 0;
        char *t = strtok(line, " \n");
        while (t != NULL && nt < 1024) { tok[nt++] = t; t = strtok(NULL, " \n"); }
        if (nt == 0) continue;
        switch (tok[0][0]) {
        case 'E': { /* E type seq payload [cap] */
            size_t len = unhex(tok[3], bin);
            size_t cap = nt > 4 ? (size_t)num(4) : sizeof out;
            size_t n = tl_proto_encode((uint8_t)num(1), (uint16_t)num(2), len ? bin : NULL, len, out, cap);
            if (n == 0) fputs("0", stdout); else puthex(out, n);
            break;
        }
        case 'D': { /* D stream -> "=" then F,type,seq,payload / X,code events */
            tl_proto_decoder_t d;
            tl_proto_frame_t f;
            size_t i, len = unhex(tok[1], bin);
            tl_proto_decoder_init(&d);
            fputs("=", stdout);
            for (i = 0; i < len; i++) {
                int rc = tl_proto_decoder_push(&d, bin[i], &f);
                if (rc == 1) { printf(" F,%u,%u,", f.type, f.seq); puthex(f.payload, f.len); }
                else if (rc < 0) printf(" X,%d", rc);
            }
            break;
        }
        case 'C': { size_t len = unhex(tok[1], bin);
                    printf("%08lx", (unsigned long)tl_crc32(0, bin, len)); break; }
        case 'H': { /* H hash kver cell layers in hid out bits mode window source hist cap next freed name */
            tl_proto_hello_t h;
            char name[300];
            size_t nl = unhex(tok[16], (uint8_t *)name);
            name[nl] = '\0';
            h.model_hash = (uint32_t)num(1); h.kernel_version = (uint16_t)num(2);
            h.cell = (uint8_t)num(3);
            h.layers = (uint8_t)num(4); h.input_size = (uint16_t)num(5); h.hidden_size = (uint16_t)num(6);
            h.output_size = (uint16_t)num(7); h.hidden_bits = (uint8_t)num(8); h.mode = (uint8_t)num(9);
            h.window = (uint16_t)num(10); h.source = (uint8_t)num(11); h.history = (uint8_t)num(12);
            h.rx_capacity = (uint16_t)num(13); h.next_step = (uint32_t)num(14);
            h.rx_freed = (uint32_t)num(15);
            h.board_name = name;
            puthex(out, tl_proto_hello_payload(out, sizeof out, &h));
            break;
        }
        case 'P': { /* P step freed v0 v1 ... */
            int16_t y[1024];
            int i;
            for (i = 3; i < nt; i++) y[i - 3] = (int16_t)strtol(tok[i], NULL, 0);
            puthex(out, tl_proto_pred_payload(out, sizeof out, (uint32_t)num(1), (uint32_t)num(2), y,
                                              (uint16_t)(nt - 3)));
            break;
        }
        case 'S': { /* S steps cycles dropped bad refused txto next freed */
            tl_proto_stats_t st;
            st.steps = (uint32_t)num(1); st.cycles = (uint64_t)strtoull(tok[2], NULL, 0);
            st.dropped_rx = (uint32_t)num(3); st.frames_bad = (uint32_t)num(4);
            st.inputs_refused = (uint32_t)num(5); st.tx_timeouts = (uint32_t)num(6);
            st.next_step = (uint32_t)num(7); st.rx_freed = (uint32_t)num(8);
            puthex(out, tl_proto_stats_payload(out, sizeof out, &st));
            break;
        }
        case 'R': /* R code freed frame_type exception pc */
            puthex(out, tl_proto_error_payload(out, sizeof out, (uint16_t)num(1), (uint32_t)num(2),
                                               (uint8_t)num(3), (uint32_t)num(4), (uint32_t)num(5)));
            break;
        case 'A': puthex(out, tl_proto_ack_payload(out, sizeof out, (uint8_t)num(1), (uint16_t)num(2),
                                                   (uint32_t)num(3), (uint32_t)num(4)));
                  break;
        case 'N': puthex(out, tl_proto_nak_payload(out, sizeof out, (uint8_t)num(1), (uint16_t)num(2),
                                                   (uint32_t)num(3), (uint32_t)num(4), (uint32_t)num(5)));
                  break;
        case 'I': { /* I payload input_size -> rc step n v... */
            const int8_t *x = NULL;
            uint32_t step = 0;
            uint8_t n = 0;
            size_t i, len = unhex(tok[1], bin);
            int rc = tl_proto_input_parse(len ? bin : NULL, len, (uint16_t)num(2), &step, &n, &x);
            printf("%d %lu %u", rc, (unsigned long)step, n);
            for (i = 0; rc == 0 && i < (size_t)n * num(2); i++) printf(" %d", x[i]);
            break;
        }
        case 'J': { /* J payload input_size -> rc step n v... (INPUT_S16) */
            int16_t x[1024];
            uint32_t step = 0;
            uint8_t n = 0, k;
            uint16_t i, size = (uint16_t)num(2);
            size_t len = unhex(tok[1], bin);
            int rc = tl_proto_input_s16_parse(len ? bin : NULL, len, size, &step, &n);
            printf("%d %lu %u", rc, (unsigned long)step, n);
            for (k = 0; rc == 0 && k < n; k++) {
                tl_proto_input_s16_sample(bin, k, size, x);
                for (i = 0; i < size; i++) printf(" %d", x[i]);
            }
            break;
        }
        case 'K': /* K -> the frame types and input limits of tl_proto.h */
            printf("%d %d %d %d %u %u %u", TL_PROTO_MSG_INPUT, TL_PROTO_MSG_INPUT_S16, TL_PROTO_MSG_INPUT_F32,
                   TL_PROTO_MSG_PRED_REQ, TL_PROTO_MAX_INPUT_SIZE, TL_PROTO_MAX_INPUT_SIZE_S16,
                   TL_PROTO_MAX_INPUT_SIZE_F32);
            break;
        case 'G': /* G -> the ERROR codes of tl_proto.h */
            printf("%d %d %d %d %d %d %d %d %d %d", TL_PROTO_ERROR_BAD_FRAME, TL_PROTO_ERROR_UNKNOWN_TYPE,
                   TL_PROTO_ERROR_BAD_PAYLOAD, TL_PROTO_ERROR_INPUT_SIZE, TL_PROTO_ERROR_UNSUPPORTED,
                   TL_PROTO_ERROR_OVERRUN, TL_PROTO_ERROR_INTERNAL, TL_PROTO_ERROR_FAULT,
                   TL_PROTO_ERROR_WATCHDOG, TL_PROTO_ERROR_NOT_FINITE);
            break;
        case 'F': { /* F payload input_size -> rc step n bits... */
            float x[1024];
            uint32_t step = 0;
            uint8_t n = 0, k;
            uint16_t i, size = (uint16_t)num(2);
            size_t len = unhex(tok[1], bin);
            int rc = tl_proto_input_f32_parse(len ? bin : NULL, len, size, &step, &n);
            printf("%d %lu %u", rc, (unsigned long)step, n);
            for (k = 0; rc == 0 && k < n; k++) {
                tl_proto_input_f32_sample(bin, k, size, x);
                for (i = 0; i < size; i++) {
                    uint32_t u; memcpy(&u, &x[i], 4); printf(" %08lx", (unsigned long)u);
                }
            }
            break;
        }
        case 'T': { uint32_t step = 0; size_t len = unhex(tok[1], bin);
                    int rc = tl_proto_step_parse(len ? bin : NULL, len, &step);
                    printf("%d %lu", rc, (unsigned long)step); break; }
        case 'O': { uint8_t src = 0xEE; size_t len = unhex(tok[1], bin);
                    int rc = tl_proto_set_source_parse(len ? bin : NULL, len, &src);
                    printf("%d %u", rc, src); break; }
        default: fputs("?", stdout);
        }
        fputs("\n", stdout);
        fflush(stdout);
    }
    return 0;
}
"""


class CProto:
    """The C implementation, built with ASan/UBSan, behind a pipe."""

    def __init__(self, exe: Path) -> None:
        env = dict(
            os.environ,
            ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
            UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1",
        )
        self.proc = subprocess.Popen(
            [str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def call(self, *args: object) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(" ".join(map(str, args)) + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        assert reply, f"C harness died (rc={self.proc.poll()}): sanitizer report on stderr"
        return reply.rstrip("\n")

    def encode(self, ftype: int, seq: int, payload: bytes, cap: int | None = None) -> bytes:
        reply = self.call("E", ftype, seq, _hex(payload), *([] if cap is None else [cap]))
        return b"" if reply == "0" else bytes.fromhex(reply)

    def decode(self, stream: bytes) -> list[tuple[Any, ...]]:
        reply = self.call("D", _hex(stream))
        assert reply.startswith("=")
        events: list[tuple[Any, ...]] = []
        for ev in reply[1:].split():
            kind, *rest = ev.split(",")
            if kind == "F":
                events.append(("frame", int(rest[0]), int(rest[1]), _unhex(rest[2])))
            else:
                events.append(("error", p.DecodeError(int(rest[0])).name))
        return events

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=10) == 0


def _hex(b: bytes) -> str:
    return b.hex() or "-"


def _unhex(s: str) -> bytes:
    return b"" if s == "-" else bytes.fromhex(s)


@pytest.fixture(scope="session")
def cproto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CProto]:
    if shutil.which("gcc") is None:
        pytest.skip("host gcc not found")
    build = tmp_path_factory.mktemp("tl_proto")
    (build / "harness.c").write_text(HARNESS_C)
    exe = build / "harness"
    subprocess.run(
        [
            "gcc",
            *CFLAGS,
            "-g",
            "-O1",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer",
            f"-I{APP}",
            f"-I{CSRC}",
            str(build / "harness.c"),
            str(APP / "tl_proto.c"),
            str(CSRC / "tl_crc32.c"),
            "-o",
            str(exe),
        ],
        check=True,
    )
    c = CProto(exe)
    yield c
    c.close()


def py_decode(stream: bytes, chunk: int = 0) -> tuple[list[tuple[Any, ...]], p.FrameDecoder]:
    """Python decoder events in the C harness's shape.

    chunk == 0: fed one delimited piece at a time, so frames and errors interleave exactly.
    chunk > 0: fed in pieces of that size; frames come back in order, errors in order, but
    errors of one feed() call are listed before its frames.
    """
    events: list[tuple[Any, ...]] = []
    dec = p.FrameDecoder(on_error=lambda code, _raw: events.append(("error", code.name)))
    if chunk <= 0:
        cuts = [i + 1 for i, b in enumerate(stream) if b == 0]
        pieces = [stream[i:j] for i, j in itertools.pairwise([0, *cuts, len(stream)])]
    else:
        pieces = [stream[i : i + chunk] for i in range(0, len(stream), chunk)]
    for piece in pieces:
        events.extend(("frame", f.type, f.seq, f.payload) for f in dec.feed(piece))
    return events, dec


def split_events(events: list[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    return [e for e in events if e[0] == "frame"], [e for e in events if e[0] == "error"]


def vector_events(s: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        ("error", e["error"])
        if "error" in e
        else ("frame", e["frame"]["type"], e["frame"]["seq"], bytes.fromhex(e["frame"]["payload_hex"]))
        for e in s["events"]
    ]


# ---- the vectors file ---------------------------------------------------------------------------


def test_vectors_are_up_to_date() -> None:
    gen_path = ROOT / "tests" / "gen_protocol_vectors.py"
    spec = importlib.util.spec_from_file_location("gen_protocol_vectors", gen_path)
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert json.loads(gen.render()) == VECTORS, "run python tests/gen_protocol_vectors.py"


def test_crc_check_value(cproto: CProto) -> None:
    check = VECTORS["crc_check"]
    assert check["crc"] == 0xCBF43926 == p.crc32(b"123456789")
    assert int(cproto.call("C", check["data_hex"]), 16) == check["crc"]


# ---- Python against the vectors -----------------------------------------------------------------


@pytest.mark.parametrize("v", VECTORS["frames"], ids=lambda v: v["name"])
def test_python_frames(v: dict[str, Any]) -> None:
    payload, encoded = bytes.fromhex(v["payload_hex"]), bytes.fromhex(v["encoded_hex"])
    assert p.encode_frame(v["type"], v["seq"], payload) == encoded
    assert encoded.index(0) == len(encoded) - 1
    assert len(encoded) <= len(payload) + 10 + (len(payload) + 10) // 254 + 2
    events, dec = py_decode(encoded, chunk=1)
    assert events == [("frame", v["type"], v["seq"], payload)]
    assert (dec.frames_ok, dec.frames_bad) == (1, 0)


@pytest.mark.parametrize("v", VECTORS["messages"], ids=lambda v: v["name"])
def test_python_messages(v: dict[str, Any]) -> None:
    frame = p.Frame(v["type"], 0, bytes.fromhex(v["payload_hex"]))
    msg = p.parse_message(frame)
    assert msg.pack() == frame.payload
    (back,) = p.FrameDecoder().feed(p.encode_message(msg, 5))
    assert (back.type, back.seq, p.parse_message(back)) == (v["type"], 5, msg)


@pytest.mark.parametrize("s", VECTORS["streams"], ids=lambda s: s["name"])
@pytest.mark.parametrize("chunk", [0, 1, 5, 1000])
def test_python_streams(s: dict[str, Any], chunk: int) -> None:
    events, dec = py_decode(bytes.fromhex(s["stream_hex"]), chunk)
    if chunk == 0:
        assert events == vector_events(s)
    assert split_events(events) == split_events(vector_events(s))
    assert (dec.frames_ok, dec.frames_bad, dec.bytes_discarded, dec.frames_dropped, dec.seq_restarts) == (
        s["frames_ok"],
        s["frames_bad"],
        s["bytes_discarded"],
        s["frames_dropped"],
        s["seq_restarts"],
    )
    assert sum(dec.errors.values()) == dec.frames_bad


def test_python_decoder_memory_is_bounded() -> None:
    dec = p.FrameDecoder()
    for _ in range(1000):
        assert dec.feed(b"P,1,2,3\r\n" * 10) == []  # a text-mode board never sends 0x00
    assert dec.pending_bytes == 90_000 and len(dec._buf) <= 1024 + 90
    good = p.encode_frame(2, 0, b"ok")
    assert dec.feed(b"\x00" + good) == [p.Frame(2, 0, b"ok")]
    assert (dec.frames_bad, dec.bytes_discarded, dec.errors) == (1, 90_000, {p.DecodeError.TOO_LONG: 1})
    assert dec.pending_bytes == 0


def test_python_rejects_bad_payloads() -> None:
    bad = [
        (p.FrameType.PRED, bytes(8) + b"\x02\x00\x01\x00"),  # count 2, one value
        (p.FrameType.STATS, bytes(35)),
        (p.FrameType.INPUT, b"\x01"),
        (p.FrameType.INPUT, bytes(4) + b"\x00"),  # zero samples
        (p.FrameType.INPUT, bytes(4) + b"\x02\x01\x02\x03"),  # 3 bytes for 2 samples
        (p.FrameType.INPUT_S16, bytes(4) + b"\x01\x00\x00\x80"),  # 3 bytes of int16
        (p.FrameType.INPUT_S16, bytes(4) + b"\x00"),  # zero samples
        (p.FrameType.INPUT_F32, bytes(4) + b"\x01\x00\x00\x80"),
        (p.FrameType.SET_SOURCE, b"\x07"),
        (p.FrameType.RESET, b"\x00"),
        (p.FrameType.PRED_REQ, bytes(5)),
        (p.FrameType.NAK, b"\x09" + bytes(14)),  # reason 9
        (p.FrameType.HELLO, bytes(30) + b"\x05ab"),  # name length 5, two bytes
        (p.FrameType.HELLO, bytes(6) + b"\x09" + bytes(24)),  # cell 9
        (p.FrameType.ERROR, b"\x01"),
        (p.FrameType.ERROR, bytes(7) + b"\x00m"),  # wire version 2's message: not an ERROR of version 3
        (0x42, b""),
    ]
    for ftype, payload in bad:
        with pytest.raises(p.PayloadError):
            p.parse_message(p.Frame(ftype, 0, payload))
    with pytest.raises(ValueError):
        p.encode_frame(p.FrameType.INPUT, 0, bytes(p.MAX_PAYLOAD + 1))
    with pytest.raises(ValueError):
        p.Input(0, ((1, 2), (3,))).pack()  # samples of different sizes
    with pytest.raises(ValueError):
        p.Input(0, ()).pack()


# ---- C against the vectors ----------------------------------------------------------------------


def test_c_frames(cproto: CProto) -> None:
    for v in VECTORS["frames"]:
        payload, encoded = bytes.fromhex(v["payload_hex"]), bytes.fromhex(v["encoded_hex"])
        assert cproto.encode(v["type"], v["seq"], payload) == encoded, v["name"]
        assert cproto.decode(encoded) == [("frame", v["type"], v["seq"], payload)], v["name"]


def test_c_encode_capacity(cproto: CProto) -> None:
    for v in VECTORS["frames"]:
        payload, n = bytes.fromhex(v["payload_hex"]), len(v["encoded_hex"]) // 2
        assert len(cproto.encode(v["type"], v["seq"], payload, cap=n)) == n, v["name"]
        assert cproto.encode(v["type"], v["seq"], payload, cap=n - 1) == b"", v["name"]
    assert cproto.encode(1, 0, bytes(p.MAX_PAYLOAD + 1)) == b""
    assert cproto.encode(1, 0, b"", cap=0) == b""


@pytest.mark.parametrize("s", VECTORS["streams"], ids=lambda s: s["name"])
def test_c_streams(cproto: CProto, s: dict[str, Any]) -> None:
    assert cproto.decode(bytes.fromhex(s["stream_hex"])) == vector_events(s)


def _c_payload(cproto: CProto, msg: p.Message) -> bytes:
    if isinstance(msg, p.Hello):
        args: list[object] = [
            "H",
            msg.model_hash,
            msg.kernel_version,
            int(msg.cell),
            msg.layers,
            msg.input_size,
            msg.hidden_size,
            msg.output_size,
            msg.hidden_bits,
            int(msg.mode),
            msg.window,
            int(msg.source),
            msg.history,
            msg.rx_capacity,
            msg.next_step,
            msg.rx_freed,
            _hex(msg.board_name.encode()),
        ]
    elif isinstance(msg, p.Pred):
        args = ["P", msg.step, msg.rx_freed, *msg.outputs]
    elif isinstance(msg, p.Stats):
        args = [
            "S",
            msg.steps,
            msg.cycles,
            msg.dropped_rx,
            msg.frames_bad,
            msg.inputs_refused,
            msg.tx_timeouts,
            msg.next_step,
            msg.rx_freed,
        ]
    elif isinstance(msg, p.Error):
        args = ["R", msg.code, msg.rx_freed, msg.frame_type, msg.exception, msg.pc]
    elif isinstance(msg, p.Ack):
        args = ["A", msg.acked_type, msg.acked_seq, msg.next_step, msg.rx_freed]
    elif isinstance(msg, p.Nak):
        args = ["N", int(msg.reason), msg.seq, msg.step, msg.next_step, msg.rx_freed]
    else:
        raise TypeError(msg)
    return _unhex(cproto.call(*args))


def _c_parse(cproto: CProto, msg: p.Message) -> p.Message:
    payload = msg.pack()
    if isinstance(msg, p.SetSource):
        status, src = map(int, cproto.call("O", _hex(payload)).split())
        assert status == 0
        return p.SetSource(p.Source(src))
    if isinstance(msg, p.Reset | p.PredReq):
        status, step = map(int, cproto.call("T", _hex(payload)).split())
        assert status == 0
        return type(msg)(step)
    assert isinstance(msg, p.Input | p.InputS16 | p.InputF32)
    size = len(msg.samples[0])
    cmd = {p.Input: "I", p.InputS16: "J", p.InputF32: "F"}[type(msg)]
    rc, step, n, *vals = cproto.call(cmd, _hex(payload), size).split()
    assert int(rc) == 0 and int(n) * size == len(vals)
    rows = [vals[k * size : (k + 1) * size] for k in range(int(n))]
    if isinstance(msg, p.Input | p.InputS16):
        return type(msg)(int(step), tuple(tuple(map(int, r)) for r in rows))
    return p.InputF32(
        int(step), tuple(tuple(struct.unpack("<f", bytes.fromhex(x)[::-1])[0] for x in r) for r in rows)
    )


@pytest.mark.parametrize("v", VECTORS["messages"], ids=lambda v: v["name"])
def test_c_payloads(cproto: CProto, v: dict[str, Any]) -> None:
    payload = bytes.fromhex(v["payload_hex"])
    msg = p.parse_message(p.Frame(v["type"], 0, payload))
    if v["type"] < 0x80:  # board -> host: C builds it
        assert _c_payload(cproto, msg) == payload
    elif payload:  # host -> board with a payload: C parses it
        assert _c_parse(cproto, msg).pack() == payload


def test_c_parsers_reject(cproto: CProto) -> None:
    assert cproto.call("I", "0100000002ff", 1).split()[0] == "-12"  # two samples announced, one byte
    assert cproto.call("I", "01000000010102", 1).split()[0] == "-12"  # one sample of 2 values, model has 1
    assert cproto.call("I", "0100000000", 1).split()[0] == "-10"  # zero samples
    assert cproto.call("I", "01000000", 1).split()[0] == "-10"  # no count
    assert cproto.call("I", "-", 2).split()[0] == "-10"
    assert cproto.call("I", "0100000001aa", 0).split()[0] == "-12"  # a model input size of 0 never matches
    assert cproto.call("J", "01000000010100", 2).split()[0] == "-12"  # one int16 for a sample of 2
    assert cproto.call("J", "0100000002010002", 1).split()[0] == "-12"  # two samples announced, 3 bytes
    assert cproto.call("J", "0100000000", 1).split()[0] == "-10"  # zero samples
    assert cproto.call("F", "0000000001000080", 1).split()[0] == "-12"  # 3 bytes of a float
    assert cproto.call("F", "00000000010000803f0000803f", 1).split()[0] == "-12"  # 2 floats, size 1
    assert cproto.call("T", "000000").split()[0] == "-10"
    assert cproto.call("T", "0000000000").split()[0] == "-10"
    assert cproto.call("O", "03").split()[0] == "-10"
    assert cproto.call("O", "0100").split()[0] == "-10"


def test_c_frame_types_and_input_limits_are_the_hosts(cproto: CProto) -> None:
    """tl_proto.h's input frame types and their widest model input, against the host's: INPUT_S16 carries half
    the int16 values an INPUT frame carries int8 ones, and the host picks it for an int16-h model."""
    types = p.FrameType.INPUT, p.FrameType.INPUT_S16, p.FrameType.INPUT_F32, p.FrameType.PRED_REQ
    limits = p.MAX_INPUT_SIZE, p.MAX_INPUT_SIZE_S16, p.MAX_INPUT_SIZE_F32
    assert (
        tuple(map(int, cproto.call("K").split()))
        == (*types, *limits)
        == (0x82, 0x88, 0x83, 0x87, 507, 253, 126)
    )
    assert (p.Input.MAX_INPUT_SIZE, p.InputS16.MAX_INPUT_SIZE, p.InputF32.MAX_INPUT_SIZE) == limits
    assert (p.input_frame(8), p.input_frame(16)) == (p.Input, p.InputS16)
    assert [f.sample_bytes(6) for f in (p.Input, p.InputS16, p.InputF32)] == [6, 12, 24]


def test_error_words_are_the_hosts(cproto: CProto) -> None:
    """The board sends an ERROR's numbers only; every code the C side has gets its words on the host."""
    assert [int(v) for v in cproto.call("G").split()] == [int(c) for c in p.ErrorCode]
    assert all(p.error_text(code) and not p.error_text(code).startswith("code") for code in p.ErrorCode)
    fault = p.Error.unpack(_unhex(cproto.call("R", p.ErrorCode.FAULT, 9, 0, 3, 0x080001F5)))
    assert fault.describe() == "FAULT: exception 0x00000003 at pc 0x080001f5"
    words = {
        (p.ErrorCode.BAD_PAYLOAD, p.FrameType.RESET): "RESET takes a u32 step",
        (p.ErrorCode.BAD_PAYLOAD, p.FrameType.INPUT_F32): "INPUT_F32 payload malformed for its type",
        (p.ErrorCode.UNSUPPORTED, p.FrameType.SET_SOURCE): "no replay data in this build",
        (p.ErrorCode.UNKNOWN_TYPE, 0x99): "unknown frame type 0x99",
        (p.ErrorCode.NOT_FINITE, 0): "sensor sample is NaN or infinite",
        (42, p.FrameType.RESET): "about RESET",  # a code of a newer firmware: its number and the frame
        (42, 0): "",
    }
    assert {key: p.Error(key[0], 0, key[1]).message for key in words} == words
    assert (p.Error(42, 0, 0).describe(), p.Error(42, 0, p.FrameType.RESET).describe()) == (
        "code 42",
        "code 42: about RESET",
    )


def test_c_builders_truncate_and_limit(cproto: CProto) -> None:
    long_name = "n" * (p.NAME_MAX + 10)
    hello = _unhex(cproto.call("H", 1, 2, 0, 1, 3, 4, 5, 8, 1, 6, 0, 16, 256, 0, 0, _hex(long_name.encode())))
    assert p.Hello.unpack(hello).board_name == "n" * p.NAME_MAX
    assert cproto.call("P", 0, 0, *range(p.MAX_OUTPUT_SIZE)) != "-"
    assert cproto.call("P", 0, 0, *range(p.MAX_OUTPUT_SIZE + 1)) == "-"  # 10 + 2*252 > MAX_PAYLOAD


# ---- properties ---------------------------------------------------------------------------------

PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
frame_args = st.tuples(st.integers(0, 255), st.integers(0, 0xFFFF), st.binary(max_size=p.MAX_PAYLOAD))


@PROPS
@given(frame_args, st.integers(1, 64))
def test_roundtrip_random(cproto: CProto, args: tuple[int, int, bytes], chunk: int) -> None:
    ftype, seq, payload = args
    wire = p.encode_frame(ftype, seq, payload)
    assert cproto.encode(ftype, seq, payload) == wire
    expected = [("frame", ftype, seq, payload)]
    assert py_decode(wire, chunk)[0] == expected
    assert cproto.decode(wire) == expected


@st.composite
def corrupted(draw: st.DrawFn) -> tuple[bytes, bytes, bytes]:
    """(good frame A, A damaged, good frame B)."""
    ftype, seq, payload = draw(frame_args)
    a = p.encode_frame(ftype, seq, payload)
    body = bytearray(a[:-1])
    kind = draw(st.sampled_from(["substitute", "delete", "insert"]))
    if kind == "substitute":
        i = draw(st.integers(0, len(body) - 1))
        body[i] = draw(st.integers(0, 255).filter(lambda x: x != body[i]))
    elif kind == "delete":
        i = draw(st.integers(0, len(body) - 1))
        del body[i : i + draw(st.integers(1, len(body) - i))]
    else:
        i = draw(st.integers(0, len(body)))
        body[i:i] = draw(st.binary(min_size=1, max_size=40))
    b = p.encode_frame(draw(st.integers(0, 255)), draw(st.integers(0, 0xFFFF)), draw(st.binary(max_size=64)))
    return a, bytes(body) + b"\x00", b


@PROPS
@given(corrupted(), st.integers(1, 64))
def test_corruption_never_accepted(cproto: CProto, case: tuple[bytes, bytes, bytes], chunk: int) -> None:
    a, damaged, b = case
    good = {tuple(py_decode(x)[0][0]) for x in (a, b)}
    events, dec = py_decode(damaged + b)
    frames = [e for e in events if e[0] == "frame"]
    chunked, _ = py_decode(damaged + b, chunk)
    assert split_events(chunked) == split_events(events)
    assert all(f in good for f in frames), "a damaged frame was accepted"
    assert frames and frames[-1] == py_decode(b)[0][0], "no resync on the next good frame"
    assert dec.frames_bad == len(events) - len(frames)
    if len(frames) == 1 and damaged != b"\x00":  # A was not deleted outright: its remains were seen
        assert dec.frames_bad >= 1, "damage went unnoticed"
    assert cproto.decode(damaged + b) == events


@PROPS
@given(frame_args, st.integers(1, 100))
def test_lost_delimiter_resyncs(cproto: CProto, args: tuple[int, int, bytes], cut: int) -> None:
    """A frame whose tail (and delimiter) is lost swallows the next frame; the one after is received."""
    a = p.encode_frame(*args)
    b = p.encode_frame(2, 1, b"\x01\x02")
    c = p.encode_frame(2, 2, b"\x03")
    stream = a[: max(0, len(a) - cut)] + b + c
    events, _ = py_decode(stream)
    assert events[-1] == ("frame", 2, 2, b"\x03")
    assert all(e[0] == "error" or e[1:] == (2, 1, b"\x01\x02") for e in events[:-1])
    assert cproto.decode(stream) == events


@PROPS
@given(st.binary(max_size=2000))
def test_garbage_agrees(cproto: CProto, garbage: bytes) -> None:
    """Arbitrary bytes: C and Python give the same verdicts, and the next good frame gets through."""
    good = p.encode_frame(1, 7, b"hello")
    stream = garbage + b"\x00" + good
    events, _ = py_decode(stream)
    assert events[-1] == ("frame", 1, 7, b"hello")
    assert split_events(py_decode(stream, chunk=97)[0]) == split_events(events)
    assert cproto.decode(stream) == events


@given(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=50))
def test_seq_tracking(seqs: list[int]) -> None:
    dec = p.FrameDecoder()
    for s in seqs:
        dec.feed(p.encode_frame(p.FrameType.PRED, s, b""))
    expected_dropped = expected_restarts = 0
    for prev, s in itertools.pairwise(seqs):
        gap = (s - prev - 1) & 0xFFFF
        if gap >= 0x8000:
            expected_restarts += 1
        else:
            expected_dropped += gap
    assert (dec.frames_ok, dec.frames_dropped, dec.seq_restarts) == (
        len(seqs),
        expected_dropped,
        expected_restarts,
    )


# ---- transport ----------------------------------------------------------------------------------


def test_link_loopback_numbers_and_queues() -> None:
    with Link.open("loop://") as link:
        assert [link.send(m) for m in (p.HelloReq(), p.Input(0, ((1, -2),)), p.Reset())] == [0, 1, 2]
        reset = link.expect(p.FrameType.RESET, timeout=1.0)
        assert (reset.seq, reset.payload) == (2, bytes(4))
        queued = link.read()
        assert [(f.type, f.seq) for f in queued] == [(p.FrameType.HELLO_REQ, 0), (p.FrameType.INPUT, 1)]
        assert p.parse_message(queued[1]) == p.Input(0, ((1, -2),))
        link.port.write(p.encode_message(p.Error(p.ErrorCode.UNSUPPORTED, 0, p.FrameType.SET_SOURCE), 0))
        with pytest.raises(LinkError, match="no replay data"):
            link.expect(p.FrameType.ACK, timeout=1.0)
        link.port.write(b"P,1,2,3\r\n")
        with pytest.raises(LinkError, match=r"no HELLO frame within 0.1 s .* 9 bytes without a delimiter"):
            link.expect(p.FrameType.HELLO, timeout=0.1)


def test_a_socket_port_reads_what_has_arrived_in_one_call() -> None:
    """socket:// (QEMU's UART): frames that arrived together are read with one port read, not one byte per
    read (pyserial's in_waiting of a socket is 0 or 1), and a peer that closes is a lost port."""
    preds = [p.Pred(step, 0, (step, -step, 3)) for step in range(20)]
    wire = b"".join(p.encode_message(m, n) for n, m in enumerate(preds))
    with socket.create_server(("127.0.0.1", 0)) as server:
        with Link.open(f"socket://127.0.0.1:{server.getsockname()[1]}") as link:
            board, _ = server.accept()
            with board:
                board.sendall(wire)
                time.sleep(0.2)  # all of it in the host's receive queue
                reads: list[int] = []
                port_read = link.port.read
                link.port.read = lambda size=1: reads.append(size) or port_read(size)  # type: ignore[method-assign]
                assert [p.parse_message(f) for f in link.read(1.0)] == preds
                assert reads == [len(wire)]
            with pytest.raises(LinkLost, match="lost socket://"):
                link.read(1.0)


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (
            np.zeros((20, 5), dtype=np.int8),
            r"samples are shaped \[20, 5\], but the board's model takes 3 values",
        ),
        (np.zeros(60, dtype=np.int8), r"samples are shaped \[60\], but the board's model takes 3 values"),
        (
            [np.zeros(3, dtype=np.int8), np.zeros(4, dtype=np.int8)],
            r"sample 1 is shaped \[4\], but the board's model takes 3",
        ),
    ],
)
def test_samples_of_the_wrong_shape_are_refused_before_sending(samples: object, message: str) -> None:
    """Samples the board's model cannot take are the caller's mistake, said before a frame goes out; the board
    would refuse them as INPUT_SIZE, which reads as a board built for another export."""
    hello = p.Hello(7, 1, p.Cell.LSTM, 1, 3, 8, 2, 8, p.Mode.STREAM, 0, p.Source.HOST, 32, 256, 0, 0, "b")
    with Link.open("loop://") as link:
        with pytest.raises(FeedError, match=message):
            Feeder(link, hello, samples)  # type: ignore[arg-type]
        assert link.tx_bytes == 0


def test_a_failed_reconnect_counts_the_lost_link_once() -> None:
    """Reconnecting fails until the timeout: the lost link's bytes are counted once, not as both the current
    and a retired link (the parity report's bytes per step doubled)."""
    hello = p.Hello(7, 1, p.Cell.LSTM, 1, 3, 8, 2, 8, p.Mode.STREAM, 0, p.Source.HOST, 32, 256, 0, 0, "b")
    link = Link.open("loop://")
    link.send(p.Reset())

    def reopen() -> Link:
        raise LinkError("nothing there")

    feeder = Feeder(link, hello, np.zeros((4, 3), dtype=np.int8), reopen=reopen, reconnect_timeout=0.0)
    with pytest.raises(FeedError, match="could not reopen it within 0 s"):
        feeder._reconnect(LinkLost("lost loop://"))
    assert feeder.link_counters()["bytes_to_board"] == link.tx_bytes > 0


def test_the_frames_behind_a_hello_stay_queued() -> None:
    """A replaying board streams PREDs right behind its boot HELLO; a host that reads late gets them in the
    same read as the HELLO, and wait_hello must leave them for the stream, not drop them unnoticed."""
    hello = p.Hello(7, 1, p.Cell.LSTM, 1, 3, 8, 2, 8, p.Mode.WINDOW, 16, p.Source.REPLAY, 32, 0, 0, 0, "b")
    preds = [p.Pred(step, 0, (step, -step)) for step in range(5)]
    with Link.open("loop://") as link:
        link.port.write(b"".join(p.encode_message(m, n) for n, m in enumerate([hello, *preds])))
        assert wait_hello(link) == hello
        assert [p.parse_message(f) for f in link.read(1.0)] == preds


@pytest.mark.parametrize("second_seq", [0, 3])
def test_only_a_seq_0_hello_is_a_board_reset(monkeypatch: pytest.MonkeyPatch, second_seq: int) -> None:
    """A second HELLO with seq 0 is a reboot: a reset counted and a new session. With any other seq it
    answers a HELLO_REQ (wait_hello's, when the boot HELLO was slow): the session goes on, nothing counted."""
    hello = p.Hello(7, 1, p.Cell.LSTM, 1, 3, 8, 2, 8, p.Mode.STREAM, 0, p.Source.REPLAY, 32, 0, 0, 0, "b")
    boot = [hello, p.Pred(0, 0, (1, 2)), p.Pred(1, 0, (3, 4))]
    first = [p.encode_message(m, n) for n, m in enumerate(boot)]
    step = 0 if second_seq == 0 else 2  # a rebooted board counts its steps from 0 again
    second = [
        p.encode_message(m, second_seq + n)
        for n, m in enumerate([hello, p.Pred(step, 0, (5, 6)), p.Pred(step + 1, 0, (7, 8))])
    ]
    opened = Link.open

    def preloaded(url: str, baudrate: int = 115200) -> Link:
        link = opened(url, baudrate)
        link.port.write(b"".join(first + second))
        return link

    monkeypatch.setattr(Link, "open", preloaded)
    with BoardStream("loop://") as s:
        steps = [pred.step for pred in s.predictions(count=4)]
    reboot = second_seq == 0
    assert steps == ([0, 1, 0, 1] if reboot else [0, 1, 2, 3])
    assert (s.counters.board_resets, len(s.counters.sessions)) == ((1, 2) if reboot else (0, 1))
    assert s.counters.steps_missing == 0 and s.counters.frames_dropped == 0


def test_link_open_errors() -> None:
    with pytest.raises(LinkError, match="not found"):
        Link.open("/dev/ttyTINYLSTM_MISSING")
    controller, device = os.openpty()
    try:
        with Link.open(os.ttyname(device)), pytest.raises(LinkError, match="busy"):
            Link.open(os.ttyname(device))
    finally:
        os.close(controller)
        os.close(device)


# ---- firmware build -----------------------------------------------------------------------------


@pytest.mark.skipif(
    ARM_GCC is None, reason="arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi)"
)
def test_arm_cortex_m4_build(tmp_path: Path) -> None:
    assert ARM_GCC is not None
    obj = tmp_path / "tl_proto.o"
    subprocess.run(
        [
            ARM_GCC,
            *CFLAGS,
            "-mcpu=cortex-m4",
            "-mthumb",
            "-Os",
            "-ffreestanding",
            f"-I{APP}",
            f"-I{CSRC}",
            "-c",
            str(APP / "tl_proto.c"),
            "-o",
            str(obj),
        ],
        check=True,
    )
    # No libc or libgcc calls: the protocol links into -nostdlib firmware with the kernel's CRC-32 only.
    nm = subprocess.run(
        [ARM_GCC.replace("gcc", "nm"), "--undefined-only", str(obj)],
        check=True,
        capture_output=True,
        text=True,
    )
    assert nm.stdout.split() == ["U", "tl_crc32"]


def test_parity_counts_the_boards_losses_of_this_run_only() -> None:
    from tinylstm.host.analysis.parity import session_stats
    from tinylstm.host.link.protocol import Stats

    before = Stats(
        steps=500,
        cycles=9000,
        dropped_rx=177,
        frames_bad=4,
        inputs_refused=2,
        tx_timeouts=1,
        next_step=500,
        rx_freed=100,
    )
    after = Stats(
        steps=1500,
        cycles=27000,
        dropped_rx=177,
        frames_bad=5,
        inputs_refused=2,
        tx_timeouts=1,
        next_step=1500,
        rx_freed=900,
    )
    run = session_stats(after, before)  # an earlier session's 177 lost bytes are not this run's
    assert run == {
        "steps": 1000,
        "cycles": 18000,
        "dropped_rx": 0,
        "frames_bad": 1,
        "inputs_refused": 0,
        "tx_timeouts": 0,
    }
    rebooted = Stats(
        steps=300,
        cycles=5400,
        dropped_rx=0,
        frames_bad=0,
        inputs_refused=0,
        tx_timeouts=0,
        next_step=300,
        rx_freed=50,
    )
    assert session_stats(rebooted, before)["steps"] == 300  # counters went back: the board restarted
    assert session_stats(after, None)["dropped_rx"] == 177  # no baseline: all the board counted


def test_the_parity_verdict_names_the_rule_that_decided_it() -> None:
    report = ParityReport("b", "0x00000001", 0, 100, 256, 8, 4, steps=100, passed=True, clean=True)
    assert report.verdict() == "BIT-EXACT: all 100 steps equal the host kernel's outputs"
    report.clean, report.recovery = False, {"retries": 3}
    assert report.verdict().endswith("outputs (recovered: 3 retries)")
    short = ParityReport("b", "0x00000001", 0, 100, 256, 8, 4, steps=40, mismatches=2, failure="lost x")
    assert short.verdict() == "FAIL: 40 of 100 steps compared; 2 differing from the host kernel"
    stopped = ParityReport("b", "0x00000001", 0, 100, 256, 8, 4, steps=100, failure="no STATS")
    assert stopped.verdict() == "FAIL: stopped: no STATS"
    assert short.to_dict()["verdict"] == short.verdict()


def test_counters_without_their_duration_print_no_rate() -> None:
    """The reconnect and idle give-up messages have no duration to divide by: no made-up 0.0/s."""
    c = StreamCounters(predictions=278)
    assert c.summary().startswith("278 predictions, ") and "/s" not in c.summary()
    assert c.summary(10.0).startswith("278 predictions (27.8/s), ")

"""The integer contract's constants and the model limits: their one home (docs/integer-contract.md).

Python imports them from here. C and MicroPython read generated copies, ``csrc/tl_contract.h`` and
``firmware/micropython/tinylstm_contract.py``, written by ``python -m tinylstm.codegen.emit_contract``;
``tests/test_contract.py`` fails when either copy is stale, and checks the C values through cffi.
The cells (their codes, gates, cell state and split bias) come from the registry in
``contract/cells.py`` and are generated the same way.
"""

from __future__ import annotations

KERNEL_VERSION = 2  # bumped when the integer arithmetic changes: generated files refuse other kernels
MAX_LAYERS = 3
MAX_HIDDEN = 256
MAX_INPUT = 1024
# input stacking: k consecutive samples enter layer 0 as one step of k * C values (docs/integer-contract.md,
# "Input stacking"); k * C <= MAX_INPUT, and k is a byte in the blob header
MAX_STACK = 255
Q12 = 12  # gate pre-activations: int16 Q3.12
Q15 = 15  # activations (sigmoid, tanh): int16 Q0.15
HIDDEN_FRAC = 7  # the default hidden state: int8 Q0.7
HIDDEN_BITS = 8
HIDDEN16_FRAC = 15  # the wide hidden state (export --hidden-bits 16): int16 Q0.15
HIDDEN16_BITS = 16
HIDDEN_FORMATS = {HIDDEN_BITS: HIDDEN_FRAC, HIDDEN16_BITS: HIDDEN16_FRAC}  # bits -> fractional bits
# an int8-h model may take an int16 input instead of the int8 one (export --input-bits 16,
# docs/integer-contract.md, "int16 input"): its layer 0 sums like an int16-h layer (the int64 row sum,
# MULT16_BITS multipliers, at most MAX_INPUT16 inputs per step) and writes the int8 h the layers above read
INPUT_BITS = 8
INPUT16_BITS = 16
# int16-h models are int16 end to end (int16x8: int8 weights, int16 input and h): the model input is int16
# like h, and layer 0 reads at most MAX_INPUT16 values per step, so its int32 input sum stays exact in any
# order (128 * 32768 * 256 = 2^30, as for h: csrc/tl_dot_s16.c). The gate rows' requantization multipliers
# have MULT16_BITS bits (in [2^(MULT16_BITS-1), 2^MULT16_BITS)), so the int64 accumulator (|acc| < 2^35)
# times M stays below 2^62 (docs/integer-contract.md, "int16 hidden state")
MAX_INPUT16 = 256
MULT16_BITS = 25
MULT_BITS = 31  # every other multiplier: [2^30, 2^31)
TABLE_SIZE = 257  # tanh table: 256 segments over [-8, 8], 1/16 apart
TABLE_SEGMENT_BITS = 8  # a segment spans 2^8 Q3.12 input steps
# The table's saturated ends (entries 0..33 are -32768, 214..256 are 32767): the C kernel clamps the index to
# TABLE_LO..TABLE_HI and stores entries TABLE_LO..TABLE_HI + 1 only (the last one is read with weight 0), the
# same values for every input with 74 entries (148 B) less (qmath.stored_table; tests/test_contract.py derives
# both)
TABLE_LO = 33
TABLE_HI = 214
BIAS_LIMIT = 1 << 30  # |bias| bound that keeps every int32 accumulator free of overflow
SHIFT_MIN, SHIFT_MAX = 1, 62  # requantization shifts
MAX_SCALE_EXP = 4  # |scale_exp| bound: the x and h parts of a row are at most 2^4 apart
CELL_FRAC_MAX = 14  # fractional bits of an int16 cell state: 0..14
BLOB_MAGIC = b"TLM1"
BLOB_FORMAT_VERSION = 1
BLOB_HEADER_SIZE = 40
# blob header byte 30 holds the hidden state's bits (8 or 16), with this bit set for an int8-h model with an
# int16 input (INPUT16_BITS; docs/model-blob.md): readers that predate it refuse such a blob as an unknown
# hidden state
BLOB_INPUT16_FLAG = 0x80

# int16 words of state for `layers` layers of `hidden` units: cell state and hidden state of every layer
# plus one layer's next hidden state (int8: packed two per word; int16 h: one per word). The C macros must
# equal state_words().
STATE_WORDS_C = "((size_t)(layers) * (hidden) + ((size_t)(layers) * (hidden) + (hidden) + 1) / 2)"
STATE_WORDS_H16_C = "(2 * (size_t)(layers) * (hidden) + (hidden))"
# a pooled readout (contract/readouts.py) keeps one int32 per unit after the recurrent state
POOL_WORDS_C = "(2 * (size_t)(hidden))"
# a stacked model (stack k > 1) buffers the k * C inputs of one step after that: ``bytes`` = k * C int8 inputs
# packed two per word, or 2 * k * C bytes of int16 inputs (an int16-h model's), one per word
STACK_WORDS_C = "(((size_t)(bytes) + 1) / 2)"
# a bidirectional window model (docs/integer-contract.md, "Bidirectional window models") keeps after that
# the backward stack's cell state (int16) and, as bytes packed two per word, its int8 hidden state, the head's
# input [v_f ; v_b] (2H) and the window's W * C int8 inputs; a pooled readout adds TL_POOL_WORDS for the
# backward pool (TL_BIDIR_WORDS(L, H, W, C): layers, hidden units, window samples, input channels)
BIDIR_WORDS_C = "((size_t)(L) * (H) + ((size_t)(L) * (H) + 2u * (H) + (size_t)(W) * (C) + 1) / 2)"
# the longest window a bidirectional model buffers (tl_model_t.window is a u16)
MAX_WINDOW = 65535


def input_bits(hidden_bits: int, input16: bool = False) -> int:
    """The model input's word: int8 for an int8-h model, int16 for an int16-h one (int16x8) or an int8-h one
    with an int16 input (``input16``)."""
    return INPUT16_BITS if hidden_bits == HIDDEN16_BITS or input16 else INPUT_BITS


def input_qmax(bits: int) -> int:
    """The largest model input word of ``bits`` (8: 127, 16: 32767); the smallest is -(input_qmax + 1)."""
    return (1 << (bits - 1)) - 1


def stack_bytes(stack: int, inputs: int, bits: int) -> int:
    """Bytes of the input-stacking buffer: k * C input words of ``bits`` (int8, or int16) for a stacked model
    (k > 1), else none."""
    return stack * inputs * bits // 8 if stack > 1 else 0


def bidir_words(layers: int, hidden: int, window_bytes: int, pooled: bool) -> int:
    """int16 words a bidirectional model's backward stack and window take (BIDIR_WORDS_C, plus the backward
    pool of a pooled readout); ``window_bytes`` = W * C."""
    return (
        layers * hidden
        + (layers * hidden + 2 * hidden + window_bytes + 1) // 2
        + (2 * hidden if pooled else 0)
    )


def state_words(
    layers: int,
    hidden: int,
    hidden_bits: int = HIDDEN_BITS,
    pooled: bool = False,
    stacked: int = 0,
    window_bytes: int = 0,
) -> int:
    """int16 words of state: the layers', a pooled readout's, ``stacked`` bytes of input-stacking buffer
    (``stack_bytes``) and, for a bidirectional model (``window_bytes`` = W * C > 0), ``bidir_words``."""
    extra = (2 * hidden if pooled else 0) + (stacked + 1) // 2
    if window_bytes:
        extra += bidir_words(layers, hidden, window_bytes, pooled)
    if hidden_bits == HIDDEN16_BITS:
        return 2 * layers * hidden + hidden + extra
    return layers * hidden + (layers * hidden + hidden + 1) // 2 + extra


# the integer constants C and MicroPython receive (codegen/emit_contract.py writes them)
INTS = {
    "KERNEL_VERSION": KERNEL_VERSION,
    "MAX_LAYERS": MAX_LAYERS,
    "MAX_HIDDEN": MAX_HIDDEN,
    "MAX_INPUT": MAX_INPUT,
    "MAX_STACK": MAX_STACK,
    "MAX_WINDOW": MAX_WINDOW,
    "Q12": Q12,
    "Q15": Q15,
    "HIDDEN_FRAC": HIDDEN_FRAC,
    "HIDDEN_BITS": HIDDEN_BITS,
    "HIDDEN16_FRAC": HIDDEN16_FRAC,
    "HIDDEN16_BITS": HIDDEN16_BITS,
    "MAX_INPUT16": MAX_INPUT16,
    "MULT16_BITS": MULT16_BITS,
    "MULT_BITS": MULT_BITS,
    "TABLE_SIZE": TABLE_SIZE,
    "TABLE_SEGMENT_BITS": TABLE_SEGMENT_BITS,
    "TABLE_LO": TABLE_LO,
    "TABLE_HI": TABLE_HI,
    "BIAS_LIMIT": BIAS_LIMIT,
    "SHIFT_MIN": SHIFT_MIN,
    "SHIFT_MAX": SHIFT_MAX,
    "MAX_SCALE_EXP": MAX_SCALE_EXP,
    "CELL_FRAC_MAX": CELL_FRAC_MAX,
    "BLOB_FORMAT_VERSION": BLOB_FORMAT_VERSION,
    "BLOB_HEADER_SIZE": BLOB_HEADER_SIZE,
    "BLOB_INPUT16_FLAG": BLOB_INPUT16_FLAG,
    "INPUT_BITS": INPUT_BITS,
    "INPUT16_BITS": INPUT16_BITS,
}

"""cffi bridge: the C kernel and the generated model files, compiled for the host.

Built from exactly the files a firmware build uses, in two parts cached by the content hash of every input:
the kernel (csrc/, the blob reader included) is one cffi extension, built once for every model; a generated
model's ``tl_<name>.c`` (constant data only: the model struct, its weights and tables) is compiled on its own
into a small shared object, and the kernel runs the ``tl_<name>`` it holds. A new model so costs the compile
of its data (0.04 s for an LSTM of 32 units), not of a Python extension (0.75 s). ``CModel`` exposes reset /
step / run on numpy arrays.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from tinylstm.codegen.emit_c import Layout, emit_c, render_header, render_source, verify_emitted
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.store import export_layout, load_int_model
from tinylstm.contract.constants import INPUT16_BITS, input_bits
from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards.csources import C_FLAGS, csrc_dir, kernel_sources
from tinylstm.host.boards.toolchain import compile_object, find_compiler, run_tool

CDEF = """
typedef int tl_status_t;
typedef struct { uint32_t hash; uint8_t cell; uint8_t num_layers; uint8_t stack; uint16_t input_size;
                 uint16_t hidden_size; uint16_t output_size; uint16_t window; const float *input_mean;
                 const float *input_mul; uint8_t input_bits; ...; } tl_model_t;
typedef struct { int16_t *c; int8_t *h; uint32_t steps; int16_t *h16; int16_t *pool; int8_t *stack;
                 int16_t *stack16; uint32_t phase; int16_t *cb; int16_t *pool_b; int8_t *hb; int8_t *head2;
                 int8_t *window; uint32_t wpos; ...; } tl_state_t;
size_t tl_state_words(const tl_model_t *model);
tl_status_t tl_state_init(tl_state_t *state, const tl_model_t *model, int16_t *buffer, size_t words);
void tl_reset(tl_state_t *state);
tl_status_t tl_step(tl_state_t *state, const int8_t *x, int16_t *y);
tl_status_t tl_run(tl_state_t *state, const int8_t *xs, size_t steps, int16_t *ys);
tl_status_t tl_step_s16(tl_state_t *state, const int16_t *x, int16_t *y);
tl_status_t tl_run_s16(tl_state_t *state, const int16_t *xs, size_t steps, int16_t *ys);
tl_status_t tl_quantize_input(const tl_model_t *model, const float *x, int8_t *q);
tl_status_t tl_quantize_input_s16(const tl_model_t *model, const float *x, int16_t *q);
tl_status_t tl_bridge_step(tl_state_t *state, const char *x, int16_t *y);
tl_status_t tl_bridge_run(tl_state_t *state, const char *xs, size_t steps, int16_t *ys);
tl_status_t tl_bridge_trace(tl_state_t *state, const char *xs, size_t steps, int16_t *ys, int16_t *hs,
                            int16_t *cs);
typedef struct { ...; } tl_layer_t;
tl_status_t tl_blob_parse(const uint8_t *blob, size_t len, tl_model_t *model, tl_layer_t *layers);
"""
# Host speed: the kernel is built at -O3 (gcc vectorises the dot products with the baseline SIMD of
# the target, SSE2 on x86-64, NEON on arm64) and never with -march=native, so a cached build runs on
# any machine of the same architecture. The *_bridge_* wrappers take `const char *`, which cffi fills
# straight from a bytes object: no ffi.from_buffer/ffi.cast per call.
HOST_OPT = ["-O3"]
# the host bridge runs models of either weight layout (codegen.emit_c layout "w8" or "w16") and either hidden
# state (int8, int16)
HOST_DEFINES = ["-DTL_LAYOUT_W16", "-DTL_HIDDEN16"]
BRIDGE = """#include "tl_blob.h"
/* The model's input: int8, or int16 (tl_input_bits: tl_step_s16). The bytes come from a CPython bytes object,
 * whose data is aligned for int16. */
static tl_status_t tl_bridge_step(tl_state_t *s, const char *x, int16_t *y)
{
    return tl_input_bits(s->model) == 16 ? tl_step_s16(s, (const int16_t *)(const void *)x, y)
                                         : tl_step(s, (const int8_t *)x, y);
}
static tl_status_t tl_bridge_run(tl_state_t *s, const char *xs, size_t steps, int16_t *ys)
{
    return tl_input_bits(s->model) == 16 ? tl_run_s16(s, (const int16_t *)(const void *)xs, steps, ys)
                                         : tl_run(s, (const int8_t *)xs, steps, ys);
}
/* Every step's outputs and state words (h as int16; a bidirectional model's backward layers after the forward
 * ones), for bit-exact checks of long streams in one call. */
static tl_status_t tl_bridge_trace(tl_state_t *s, const char *xs, size_t steps, int16_t *ys, int16_t *hs,
                                   int16_t *cs)
{
    size_t t, k, in = s->model->input_size * (tl_input_bits(s->model) / 8u), out = s->model->output_size;
    size_t cells = (size_t)s->model->num_layers * s->model->hidden_size, all = s->hb ? 2 * cells : cells;
    for (t = 0; t < steps; t++) {
        tl_status_t st = tl_bridge_step(s, xs + t * in, ys + t * out);
        if (st != TL_OK) return st;
        for (k = 0; k < cells; k++) {
            hs[t * all + k] = s->h16 ? s->h16[k] : s->h[k];
            cs[t * all + k] = s->c[k];
        }
        for (k = 0; s->hb && k < cells; k++) {
            hs[t * all + cells + k] = s->hb[k];
            cs[t * all + cells + k] = s->cb[k];
        }
    }
    return TL_OK;
}
"""
BLOB_STATUS = {
    -1: "TL_ERR_ARG",
    -2: "TL_ERR_MODEL: the model inside fails tl_model_check",
    -5: "TL_BLOB_ERR: malformed, truncated or corrupted",
}


def default_cache_dir() -> Path:
    return Path(os.environ.get("TINYLSTM_CACHE", Path.home() / ".cache" / "tinylstm"))


def _digest(paths: list[Path], extra: str) -> str:
    h = hashlib.sha256(extra.encode())
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _compile_kernel(build_dir: Path, module: str, cc: str) -> Path:
    """Compile the kernel's sources strictly, then wrap them in the cffi extension ``module``."""
    import cffi  # imported here so `tinylstm --help` works without it

    objs = []
    flags = [*C_FLAGS, *HOST_DEFINES, "-fPIC", *HOST_OPT, "-I", str(csrc_dir())]
    for src in kernel_sources():
        obj = build_dir / (src.stem + ".o")
        compile_object(cc, flags, src, obj, f"compiling {src.name}")
        objs.append(str(obj))
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    ffi.set_source(module, BRIDGE, include_dirs=[str(csrc_dir())], extra_objects=objs)
    try:
        return Path(ffi.compile(tmpdir=str(build_dir), verbose=False))
    except Exception as exc:  # cffi raises distutils/setuptools errors of several kinds
        raise TinyLSTMError(f"building the cffi bridge failed: {exc}") from exc


def _scratch(final: Path) -> Path:
    """An empty directory beside ``final`` for this process to build in, then ``_publish``."""
    tmp = final.with_name(f"{final.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def _publish(tmp: Path, final: Path, complete: Callable[[Path], bool]) -> None:
    """Move the finished directory ``tmp`` to ``final`` in one rename, so processes sharing the cache (pytest
    workers, parallel builds) see a whole directory or none. When another process got there first its copy
    is kept and ``tmp`` dropped; a ``final`` that is not ``complete`` (an interrupted older build) is
    replaced."""
    try:
        tmp.rename(final)
        return
    except OSError:
        if complete(final):
            shutil.rmtree(tmp, ignore_errors=True)
            return
    shutil.rmtree(final, ignore_errors=True)
    try:
        tmp.rename(final)
    except OSError:  # a third process published meanwhile
        shutil.rmtree(tmp, ignore_errors=True)


def load_kernel_library(cache_dir: Path | None = None) -> ModuleType:
    """The C kernel with the blob reader as a cffi extension (built, or reused from the cache keyed by the
    content of every source): it runs any model, a generated one (``load_model_data``) or a blob
    (``CModel.from_blob``)."""
    cc = find_compiler()
    key = _digest(
        kernel_sources() + sorted(csrc_dir().glob("*.h")),
        " ".join([cc, *C_FLAGS, *HOST_DEFINES, *HOST_OPT, BRIDGE, CDEF, sys.version]),
    )
    build_dir = (cache_dir or default_cache_dir()) / f"kernel-{key}"
    module = f"_tl_kernel_{key}"
    if module in sys.modules:
        return sys.modules[module]
    libs = list(build_dir.glob(f"{module}*.so")) if build_dir.is_dir() else []
    if not libs:
        tmp = _scratch(build_dir)
        built = _compile_kernel(tmp, module, cc)
        _publish(tmp, build_dir, lambda d: any(d.glob(f"{module}*.so")))
        libs = [build_dir / built.name]
    spec = importlib.util.spec_from_file_location(module, libs[0])
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.modules[module] = mod
    return mod


@dataclass(frozen=True)
class ModelData:
    """A generated model's ``tl_<name>`` struct, in a shared object compiled from ``tl_<name>.c`` alone: the
    file is constant data, and the kernel that runs it is ``load_kernel_library``'s."""

    handle: ctypes.CDLL  # keeps the shared object loaded
    address: int  # of the ``const tl_model_t tl_<name>``


def load_model_data(gen_dir: Path, name: str = "model", cache_dir: Path | None = None) -> ModelData:
    """Compile (or reuse from the cache, keyed by the content of the model's files and of the kernel's
    headers, which lay out its struct) the generated ``tl_<name>.c`` in ``gen_dir`` and load it."""
    gen_dir = Path(gen_dir).resolve()
    sources = [gen_dir / f"tl_{name}.c", gen_dir / f"tl_{name}.h"]
    missing = [str(p) for p in sources if not p.is_file()]
    if missing:
        raise TinyLSTMError(
            f"generated model files not found: {', '.join(missing)}; run `tinylstm export` first"
        )
    cc = find_compiler()
    flags = [*C_FLAGS, *HOST_DEFINES, "-fPIC", "-shared"]
    key = _digest(sources + sorted(csrc_dir().glob("*.h")), " ".join([cc, *flags]))
    build_dir = (cache_dir or default_cache_dir()) / f"model-{key}"
    library = build_dir / f"libtl_{name}.so"
    if not library.is_file():
        tmp = _scratch(build_dir)
        include: list[str | Path] = ["-I", csrc_dir(), "-I", gen_dir]
        run_tool([cc, *flags, *include, sources[0], "-o", tmp / library.name], f"compiling {sources[0].name}")
        _publish(tmp, build_dir, lambda d: (d / library.name).is_file())
    handle = ctypes.CDLL(str(library))
    try:
        address = ctypes.addressof(ctypes.c_char.in_dll(handle, f"tl_{name}"))
    except ValueError:
        raise TinyLSTMError(
            f"{sources[0].name} defines no model tl_{name}: run `tinylstm export` again"
        ) from None
    return ModelData(handle, address)


class CModel:
    """One stream of the C kernel: ``reset``, ``step``, ``run`` and a view of the state words."""

    def __init__(self, lib: ModuleType, model: Any, keepalive: tuple[Any, ...] = ()):
        """``lib``: ``load_kernel_library()``; ``model``: a ``tl_model_t *`` of its ffi; ``keepalive``: what
        the model points into (a parsed blob's words and layer table, a generated model's shared object)."""
        self._ffi, self._lib = lib.ffi, lib.lib
        self.model = model
        self._keepalive = keepalive
        words = self._lib.tl_state_words(self.model)
        if words == 0:
            raise TinyLSTMError("the generated model failed the kernel's tl_model_check: regenerate it")
        self.state_words = int(words)
        self._buf = self._ffi.new("int16_t[]", words)
        self._state = self._ffi.new("tl_state_t *")
        self._check(self._lib.tl_state_init(self._state, self.model, self._buf, words), "tl_state_init")
        self.input_size = int(self.model.input_size)
        self.output_size = int(self.model.output_size)
        self.hidden_size = int(self.model.hidden_size)
        self.num_layers = int(self.model.num_layers)
        self.hash = int(self.model.hash)
        self._y = np.zeros(self.output_size, dtype=np.int16)
        self._y_ptr = self._ffi.cast("int16_t *", self._ffi.from_buffer(self._y))
        cells = self.num_layers * self.hidden_size
        wide = self._state.h16 != self._ffi.NULL
        self.hidden_bits = 16 if wide else 8
        # the model's input: int8, or int16 (an int16-h model's, or an int16 input: tl_step_s16)
        self.input_bits = input_bits(self.hidden_bits, self.model.input_bits == INPUT16_BITS)
        self.input_dtype = np.dtype(f"int{self.input_bits}")
        # shadows the method below with the same behaviour, ~0.3 µs faster per call
        self.step = self._fast_step()  # type: ignore[method-assign,assignment]
        self._h = (
            np.frombuffer(self._ffi.buffer(self._state.h16, 2 * cells), dtype=np.int16)
            if wide
            else np.frombuffer(self._ffi.buffer(self._state.h, cells), dtype=np.int8)
        )
        self._c = np.frombuffer(self._ffi.buffer(self._state.c, 2 * cells), dtype=np.int16)
        # a pooled readout's int32 per unit (tl_pool.c), little-endian on the hosts we build for
        self._pool = (
            np.frombuffer(self._ffi.buffer(self._state.pool, 4 * self.hidden_size), dtype="<i4")
            if self._state.pool != self._ffi.NULL
            else np.zeros(0, dtype=np.int32)
        )
        self.bidirectional = self._state.hb != self._ffi.NULL
        # a stacked model's buffered inputs (the step being filled)
        self.stack = max(int(self.model.stack), 1)
        buffered = self._state.stack16 if self.input_bits == 16 else self._state.stack
        self._stack = (
            np.frombuffer(
                self._ffi.buffer(buffered, self.stack * self.input_size * self.input_dtype.itemsize),
                dtype=self.input_dtype,
            )
            if buffered != self._ffi.NULL
            else np.zeros(0, dtype=self.input_dtype)
        )

    @classmethod
    def from_int_model(cls, model: IntModel, cache_dir: Path | None = None, layout: Layout = "w8") -> CModel:
        """Emit ``model`` as C (weight layout ``layout``, see codegen.emit_c) into the cache and build it."""
        # keyed by the C itself: what an older tinylstm emitted for the same model (another layout of
        # tl_layer_t or of the tanh table) is never reused
        rendered = render_header(model, "model") + render_source(model, "model", layout)
        gen = (cache_dir or default_cache_dir()) / (
            f"gen-{model.model_hash:08x}-{hashlib.sha256(rendered.encode()).hexdigest()[:12]}-{layout}"
        )
        if not (gen / "tl_model.c").is_file():
            tmp = _scratch(gen)
            emit_c(model, tmp, layout=layout)
            _publish(tmp, gen, lambda d: (d / "tl_model.c").is_file())
        return cls.from_generated(gen, "model", cache_dir)

    @classmethod
    def from_generated(
        cls, gen_dir: Path | str, name: str = "model", cache_dir: Path | None = None
    ) -> CModel:
        """The generated ``tl_<name>.c/.h`` in ``gen_dir`` (an export directory, or emit_c's output), as they
        are (``from_export`` also proves them to be the export's integer model)."""
        lib = load_kernel_library(cache_dir)
        data = load_model_data(Path(gen_dir), name, cache_dir)
        return cls(lib, lib.ffi.cast("const tl_model_t *", data.address), (data,))

    @classmethod
    def from_export(cls, export_dir: Path | str, cache_dir: Path | None = None) -> CModel:
        """The generated C files of an export directory (tl_<name>.c/.h), compiled for the host; refused
        unless they are exactly what the export's integer model renders to (edited or truncated C)."""
        if not isinstance(export_dir, (str, os.PathLike)):
            raise TinyLSTMError(
                f"CModel.from_export takes an export directory's path, not {type(export_dir).__name__}"
            )
        d = Path(export_dir)
        m, doc = load_int_model(d)
        name = str(doc.get("name", "model"))
        verify_emitted(m, d, name, export_layout(d))
        return cls.from_generated(d, name, cache_dir)

    @classmethod
    def from_blob(cls, data: bytes, cache_dir: Path | None = None) -> CModel:
        """Parse a .tlm blob with the C reader (csrc/tl_blob.c), as a board or MicroPython would, and run
        it."""
        if not isinstance(data, (bytes, bytearray)):
            raise TinyLSTMError(
                f"CModel.from_blob takes the blob's bytes (Path('model.tlm').read_bytes()), not "
                f"{type(data).__name__}"
            )
        lib = load_kernel_library(cache_dir)
        ffi = lib.ffi
        words = ffi.new("uint32_t[]", max(1, (len(data) + 3) // 4))  # the reader wants 4-byte alignment
        ffi.memmove(words, data, len(data))
        model, layers = ffi.new("tl_model_t *"), ffi.new("tl_layer_t[6]")
        status = lib.lib.tl_blob_parse(ffi.cast("uint8_t *", words), len(data), model, layers)
        if status != 0:
            raise TinyLSTMError(
                f"the C blob reader refused it: {BLOB_STATUS.get(status, f'status {status}')}"
            )
        return cls(lib, model, (words, layers))

    def trace(self, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like ``run``, plus the hidden and cell state words after every step: (ys [T, O],
        hs [T, layers, hidden], cs [T, layers, hidden]; a bidirectional model's [T, 2 * layers, hidden], its
        backward layers after the forward ones), in one C call."""
        xi = self._model_input(xs, steps=True)
        layers = self.num_layers * (2 if self.bidirectional else 1)
        T, cells = xi.shape[0], layers * self.hidden_size
        ys = np.empty((T, self.output_size), dtype=np.int16)
        hs = np.empty((T, cells), dtype=np.int16)
        cs = np.empty((T, cells), dtype=np.int16)
        ptr = self._ffi.from_buffer
        status = self._lib.tl_bridge_trace(
            self._state,
            ptr(xi),
            T,
            self._ffi.cast("int16_t *", ptr(ys)),
            self._ffi.cast("int16_t *", ptr(hs)),
            self._ffi.cast("int16_t *", ptr(cs)),
        )
        self._check(status, "tl_step")
        shape = (T, layers, self.hidden_size)
        return ys, hs.reshape(shape).astype(self._h.dtype), cs.reshape(shape)

    @staticmethod
    def _check(status: int, what: str) -> None:
        if status != 0:
            raise TinyLSTMError(f"{what} returned error {status}")

    def reset(self) -> None:
        self._lib.tl_reset(self._state)

    def _model_input(self, x: np.ndarray, steps: bool) -> np.ndarray:
        x = np.asarray(x)
        want = (x.shape[0], self.input_size) if steps else (self.input_size,)
        if x.ndim != len(want) or x.shape[-1] != self.input_size:
            raise TinyLSTMError(
                f"input shape {list(x.shape)} does not fit the model: expected {list(want)} "
                f"(input size {self.input_size})"
            )
        if x.dtype != self.input_dtype:
            raise TinyLSTMError(
                f"the model takes {self.input_dtype} input, got {x.dtype}: use quantize_input() for floats"
            )
        return np.ascontiguousarray(x)

    def step(self, x: np.ndarray) -> np.ndarray:
        """One sample [input_size] (int8, or int16 for an int16-h model) -> int16 outputs [output_size] (a
        fresh array)."""
        x = self._model_input(x, steps=False)
        self._lib.tl_bridge_step(self._state, x.tobytes(), self._y_ptr)
        return self._y.copy()

    def _fast_step(self) -> Callable[[np.ndarray], np.ndarray]:
        """``step`` as a closure over pre-bound locals: no attribute lookups and no ffi.cast per call.
        An array of the model's input type and shape goes straight through; anything else takes the checked
        path."""
        bridge_step, state, y_ptr, y, shape, dtype = (
            self._lib.tl_bridge_step,
            self._state,
            self._y_ptr,
            self._y,
            (self.input_size,),
            self.input_dtype,
        )
        check = self._model_input
        ndarray = np.ndarray

        def step(x: np.ndarray) -> np.ndarray:
            if type(x) is not ndarray or x.dtype is not dtype or x.shape != shape:
                x = check(x, steps=False)  # raises on a wrong shape or dtype
            # tobytes() copies the input bytes (any strides); cffi passes bytes as char* without a copy.
            bridge_step(state, x.tobytes(), y_ptr)
            return y.copy()

        step.__doc__ = CModel.step.__doc__
        return step

    def run(self, xs: np.ndarray) -> np.ndarray:
        """Sequence [T, input_size] (the model's input type) -> int16 outputs [T, output_size], continuing the
        state."""
        xi = self._model_input(xs, steps=True)
        ys = np.empty((xi.shape[0], self.output_size), dtype=np.int16)
        status = self._lib.tl_bridge_run(
            self._state,
            self._ffi.from_buffer(xi),
            xi.shape[0],
            self._ffi.cast("int16_t *", self._ffi.from_buffer(ys)),
        )
        self._check(status, "tl_run")
        return ys

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """float samples [..., input_size] -> the model's input (int8, int16 for int16-h) through the C
        conversion."""
        raw = np.asarray(x)
        if raw.dtype.kind not in "biuf":
            raise TinyLSTMError(f"samples hold {raw.dtype} values: pass real numbers (float32 samples)")
        with np.errstate(over="ignore"):  # a value beyond float32's range becomes inf, refused below
            xf = np.ascontiguousarray(raw, dtype=np.float32)
        if xf.shape[-1] != self.input_size:
            raise TinyLSTMError(f"input has {xf.shape[-1]} channels, the model expects {self.input_size}")
        flat = xf.reshape(-1, self.input_size)
        out = np.zeros(flat.shape, dtype=self.input_dtype)
        wide = self.input_dtype == np.int16
        convert = self._lib.tl_quantize_input_s16 if wide else self._lib.tl_quantize_input
        for k in range(flat.shape[0]):
            status = convert(
                self.model,
                self._ffi.cast("float *", self._ffi.from_buffer(flat[k])),
                self._ffi.cast("int16_t *" if wide else "int8_t *", self._ffi.from_buffer(out[k])),
            )
            if status != 0:
                if np.isfinite(raw.reshape(-1, self.input_size)[k]).all():
                    raise TinyLSTMError(
                        f"sample {k} holds a value beyond float32's range (|x| > 3.4e38): samples are float32"
                    )
                raise TinyLSTMError(f"sample {k} contains NaN or infinite values: clean the input first")
        return out.reshape(xf.shape)

    @property
    def h(self) -> np.ndarray:
        """Hidden state words [num_layers, hidden_size] (a copy)."""
        return self._h.reshape(self.num_layers, self.hidden_size).copy()

    @property
    def c(self) -> np.ndarray:
        """Cell state words [num_layers, hidden_size] (a copy; zeros for GRU)."""
        return self._c.reshape(self.num_layers, self.hidden_size).copy()

    @property
    def pool(self) -> np.ndarray:
        """A pooled readout's state words [hidden_size] as int32 (its mean's sums or the maxima; empty for the
        last-h readout; a copy)."""
        return self._pool.astype(np.int32)

    @property
    def stack_buffer(self) -> np.ndarray:
        """A stacked model's buffered inputs [stack * input_size] of the input type (empty without stacking; a
        copy)."""
        return self._stack.copy()

    @property
    def phase(self) -> int:
        """A stacked model's samples in the step being filled (0 without stacking)."""
        return int(self._state.phase)

    @property
    def steps(self) -> int:
        """Recurrent steps since the reset (a stacked model's: one per ``stack`` samples)."""
        return int(self._state.steps)

    def backward_state(self) -> dict[str, np.ndarray]:
        """A bidirectional model's state words beside the forward ones (copies; golden.GoldenState's names):
        the backward layers' ``hb`` and ``cb`` [num_layers, hidden_size], the backward pool ``pool_b`` (int32,
        empty for the last-h readout), what the head reads ``head2`` [2 * hidden_size], the window's inputs
        ``window`` [window * input_size] and the samples in it, ``wpos``."""
        st, ffi, L, H = self._state, self._ffi, self.num_layers, self.hidden_size
        if st.hb == ffi.NULL:
            raise TinyLSTMError("backward_state: the model is not bidirectional")
        W = int(self.model.window) * self.input_size

        def view(ptr: Any, n: int, dtype: Any) -> np.ndarray:
            return np.frombuffer(ffi.buffer(ptr, n * np.dtype(dtype).itemsize), dtype=dtype).copy()

        return {
            "hb": view(st.hb, L * H, np.int8).reshape(L, H),
            "cb": view(st.cb, L * H, np.int16).reshape(L, H),
            "pool_b": view(st.pool_b, H, "<i4") if st.pool_b != ffi.NULL else np.zeros(0, np.int32),
            "head2": view(st.head2, 2 * H, np.int8),
            "window": view(st.window, W, np.int8),
            "wpos": np.array([int(st.wpos)]),
        }

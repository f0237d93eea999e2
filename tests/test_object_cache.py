"""host/boards/toolchain.py compile_object: a source is compiled once per compiler, code-generation flags and
preprocessed text, and compiled again whenever any of them differs; source_key.py lets it skip the
preprocessor for a source, includes and macros it has seen."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards import toolchain
from tinylstm.host.boards.csources import csrc_dir
from tinylstm.host.boards.source_key import source_key
from tinylstm.host.boards.toolchain import find_compiler

SOURCE = '#include "k.h"\nint f(int x) { return x * SCALE + OFFSET; }\n'


def _compile(tmp: Path, name: str, flags: list[str]) -> bytes:
    obj = tmp / f"{name}.o"
    toolchain.compile_object(find_compiler(), [*flags, "-I", str(tmp)], tmp / "k.c", obj, "compiling k.c")
    return obj.read_bytes()


def test_objects_are_reused_only_for_the_same_text_and_code_generation_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(toolchain, "_OBJECTS", {})
    monkeypatch.setattr(toolchain, "_shipped", lambda src: True)  # as if k.c were one of the package's
    runs: list[list[str]] = []
    real_run = toolchain.run_tool

    def counting_run(cmd: list[str | Path], what: str) -> str:
        runs.append([str(c) for c in cmd])
        return real_run(cmd, what)

    monkeypatch.setattr(toolchain, "run_tool", counting_run)
    (tmp_path / "k.c").write_text(SOURCE)
    (tmp_path / "k.h").write_text("#define OFFSET 7\n")
    first = _compile(tmp_path, "a", ["-O2", "-DSCALE=3"])
    assert _compile(tmp_path, "b", ["-O2", "-D", "SCALE=3"]) == first and len(runs) == 1  # the same text
    _compile(tmp_path, "c", ["-O2", "-DSCALE=5"])  # a define that changes the text
    _compile(tmp_path, "d", ["-O0", "-DSCALE=3"])  # a code-generation flag
    (tmp_path / "k.h").write_text("#define OFFSET 8\n")  # an included header
    _compile(tmp_path, "e", ["-O2", "-DSCALE=3"])
    assert len(runs) == 4


def test_a_compile_error_is_the_compilers(tmp_path: Path) -> None:
    (tmp_path / "k.c").write_text("int f(void) { return missing; }\n")
    (tmp_path / "k.h").write_text("")
    with pytest.raises(TinyLSTMError, match="compiling k.c failed:(.|\n)*missing"):
        _compile(tmp_path, "x", ["-O2"])


def test_only_the_packages_own_sources_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A generated file (a model, new in every build) is compiled as given and not kept in the process."""
    objects: dict[str, tuple[bytes, str]] = {}
    monkeypatch.setattr(toolchain, "_OBJECTS", objects)
    (tmp_path / "k.c").write_text(SOURCE)
    (tmp_path / "k.h").write_text("#define OFFSET 7\n")
    _compile(tmp_path, "a", ["-O2", "-DSCALE=3"])
    assert not objects
    kernel = csrc_dir() / "tl_crc32.c"
    toolchain.compile_object(
        find_compiler(), ["-O2", "-I", str(csrc_dir())], kernel, tmp_path / "crc.o", "crc"
    )
    assert len(objects) == 1


def test_the_preprocessor_runs_once_per_source_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build with settings the source's text never names (an app macro) reuses the text's key without
    running gcc -E again, and the object without compiling."""
    monkeypatch.setattr(toolchain, "_OBJECTS", {})
    monkeypatch.setattr(toolchain, "_TEXT_KEYS", {})
    monkeypatch.setattr(toolchain, "_shipped", lambda src: True)
    calls: list[str] = []
    real = toolchain.subprocess.run

    def counting(cmd: list[str], **kw: object) -> object:
        calls.append("-E" if "-E" in cmd else "other")
        return real(cmd, **kw)  # type: ignore[call-overload]

    monkeypatch.setattr(toolchain.subprocess, "run", counting)
    (tmp_path / "k.c").write_text(SOURCE)
    (tmp_path / "k.h").write_text("#define OFFSET 7\n")
    first = _compile(tmp_path, "a", ["-O2", "-DSCALE=3", "-DTL_APP_HAS_REPLAY=0"])
    assert _compile(tmp_path, "b", ["-O2", "-DSCALE=3", "-DTL_APP_HAS_REPLAY=1"]) == first
    assert calls == ["-E", "other"]  # one preprocessor run, one compile


def _key(tmp: Path, flags: list[str]) -> str | None:
    return source_key("cc", flags, tmp / "k.c")


def test_source_key_follows_includes_and_the_macros_they_name(tmp_path: Path) -> None:
    inc, other = tmp_path / "inc", tmp_path / "other"
    inc.mkdir()
    other.mkdir()
    (tmp_path / "k.c").write_text(
        '#include <cfg.h>\n#if 0\n#include "maybe.h"\n#endif\nint f(void) { return A; }\n'
    )
    (inc / "cfg.h").write_text("#define LIMIT 3\n")
    (other / "cfg.h").write_text("#define LIMIT 4\n")
    base = _key(tmp_path, ["-O2", f"-I{inc}", "-DA=B", "-DB=1"])
    assert base is not None
    assert _key(tmp_path, ["-O2", "-I", str(inc), "-DA=B", "-DB=1", "-DUNUSED=9"]) == base  # not named
    assert _key(tmp_path, ["-O2", f"-I{inc}", "-DA=B", "-DB=2"]) != base  # B through A's value
    assert _key(tmp_path, ["-O2", f"-I{other}", "-DA=B", "-DB=1"]) != base  # <cfg.h> found elsewhere
    assert _key(tmp_path, ["-O2", f"-I{other}", f"-I{inc}", "-DA=B", "-DB=1"]) != base  # -I order
    (tmp_path / "maybe.h").write_text("")  # an include in any #if branch counts once it exists
    assert _key(tmp_path, ["-O2", f"-I{inc}", "-DA=B", "-DB=1"]) != base
    (inc / "cfg.h").write_text("#define LIMIT 5\n")
    assert _key(tmp_path, ["-O2", f"-I{inc}", "-DA=B", "-DB=1"]) not in (base, None)
    assert _key(tmp_path, ["-O2", "-include", "x.h"]) is None  # preprocessing this module does not follow
    assert _key(tmp_path, ["-O2", "-UA"]) is None

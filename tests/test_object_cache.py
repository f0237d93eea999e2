"""host/boards/toolchain.py compile_object: a source is compiled once per compiler, code-generation flags and
preprocessed text, and compiled again whenever any of them differs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards import toolchain
from tinylstm.host.boards.csources import csrc_dir
from tinylstm.host.targets.bridge import find_compiler

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
    real_run = toolchain._run

    def counting_run(cmd: list[str | Path], what: str) -> str:
        runs.append([str(c) for c in cmd])
        return real_run(cmd, what)

    monkeypatch.setattr(toolchain, "_run", counting_run)
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

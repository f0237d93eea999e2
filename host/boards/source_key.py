"""What decides the object a C source compiles to, without running the preprocessor: the key under which
toolchain.compile_object keeps objects.

The preprocessed text of a source depends on the source, every header it includes and the macros defined
on the command line. This module finds the headers as the preprocessor would, for every ``#include`` in any
``#if`` branch (so a superset): ``"x.h"`` in the including file's folder, then the ``-I`` folders in order;
``<x.h>`` in the ``-I`` folders (not found there: the compiler's own header, which the compiler's identity in
the key stands for). It keeps the ``-D`` macros whose names occur in those files' text: a macro no file
mentions cannot change the text, so a firmware's app settings do not make every kernel source compile again.
``-I`` folders count through the files found in them, not their paths (every build has its own). Flags
that change the preprocessing in ways this does not follow (-U, -include, -isystem, ...) give no key.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

_INCLUDE = re.compile(rb'^[ \t]*#[ \t]*include[ \t]*([<"])([^>"\n]+)[>"]', re.MULTILINE)
_IDENTIFIER = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
_NOT_FOLLOWED = ("-U", "-include", "-imacros", "-isystem", "-iquote", "-idirafter", "-iprefix", "-nostdinc")


def split_flags(flags: list[str]) -> tuple[list[str], list[Path], dict[str, str]]:
    """(code-generation flags, -I folders in order, -D macros name -> value); ``-I x`` and ``-Ix`` alike."""
    codegen: list[str] = []
    dirs: list[Path] = []
    macros: dict[str, str] = {}
    pending = ""
    for f in flags:
        if pending:
            f, pending = pending + f, ""
        if f in ("-I", "-D"):
            pending = f
        elif f.startswith("-I"):
            dirs.append(Path(f[2:]))
        elif f.startswith("-D"):
            name, sep, value = f[2:].partition("=")
            macros[name] = value if sep else "1"
        else:
            codegen.append(f)
    return codegen, dirs, macros


def included_files(src: Path, dirs: list[Path]) -> list[tuple[Path, bytes]]:
    """``src`` and every file it may include, directly or not, found as the preprocessor would find them,
    each with its text (read once)."""
    found: list[tuple[Path, bytes]] = []
    seen: set[Path] = set()
    todo = [src]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        text = path.read_bytes()
        found.append((path, text))
        for quote, name in _INCLUDE.findall(text):
            where = ([path.parent] if quote == b'"' else []) + dirs
            hit = next((d / name.decode() for d in where if (d / name.decode()).is_file()), None)
            if hit is not None:
                todo.append(hit.resolve())
    return found


def source_key(compiler: str, flags: list[str], src: Path) -> str | None:
    """A digest that changes whenever the preprocessed text or the code-generation flags may change; None when
    the flags preprocess in a way this module does not follow or a file cannot be read (compile uncached)."""
    if any(f.startswith(_NOT_FOLLOWED) for f in flags):
        return None
    codegen, dirs, macros = split_flags(flags)
    try:
        files = included_files(src.resolve(), dirs)
    except (OSError, UnicodeDecodeError):  # an include name that is not UTF-8: let the preprocessor decide
        return None
    names = {m.decode() for _, text in files for m in _IDENTIFIER.findall(text)}
    while True:  # a macro's value can name other macros: -DA=B -DB=3 with A in the text keeps B
        more = {m.decode() for k, v in macros.items() if k in names for m in _IDENTIFIER.findall(v.encode())}
        if more <= names:
            break
        names |= more
    h = hashlib.sha256(compiler.encode())
    h.update("\0".join(codegen).encode())
    h.update("\0".join(f"{k}={v}" for k, v in sorted(macros.items()) if k in names).encode())
    for f, text in files:
        h.update(f"\0{f.name}\0{len(text)}\0".encode())
        h.update(text)
    return h.hexdigest()

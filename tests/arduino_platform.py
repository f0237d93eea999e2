"""A sketch built the way arduino-cli builds it, from an Arduino core's own platform.txt and boards.txt: for
the opt-in tests that compile and link the Arduino outputs of `tinylstm build` against a real core
(tests/test_arduino_stm32.py).

What arduino-cli does and this repeats: the board's properties (boards.txt: the board's keys, its menus at
their first option unless chosen) over the platform's (platform.txt), ``.linux`` keys over the plain ones,
``{name}`` references expanded; the core's prebuild hook's two files (an empty build.opt with its
-fmacro-prefix-map line, and requiredLibraries.cpp, which includes the libraries the core forces); the
sketch's .ino turned into C++ (``#include <Arduino.h>`` first); libraries found by the headers the sketch's
and the libraries' own sources include (``#include <X.h>`` with ``libraries/*/src/X.h``), each library's
src/ compiled recursively; the core's sources archived into core.a; the link by ``recipe.c.combine.pattern``.
What it does not: function prototypes for the .ino (a sketch that calls a function before defining it
needs arduino-cli), the tool downloads (the compiler on the PATH stands in for the core's toolchain, the
CMSIS checkout given for its CMSIS tool), precompiled libraries and the size recipe.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tinylstm.host.boards.toolchain import run_tool

SOURCES = (".c", ".cpp", ".S")
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)
REFERENCE = re.compile(r"\{([^{}]+)\}")


def read_properties(path: Path) -> dict[str, str]:
    """An Arduino properties file (key=value lines, # comments), the ``.linux`` keys over the plain ones."""
    props: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            props[key.strip()] = value.strip()
    for key in [k for k in props if k.endswith(".linux")]:
        props[key.removesuffix(".linux")] = props[key]
    return props


def board_properties(boards: dict[str, str], board: str, menus: dict[str, str]) -> dict[str, str]:
    """The board's properties: its own keys, then each menu's chosen option (``menus``) or its first."""
    prefix = f"{board}."
    own = {k[len(prefix) :]: v for k, v in boards.items() if k.startswith(prefix)}
    props = {k: v for k, v in own.items() if not k.startswith("menu.")}
    firsts: dict[str, str] = {}
    for key in own:
        if key.startswith("menu.") and key.count(".") == 2:
            _, menu, option = key.split(".")
            firsts.setdefault(menu, option)
    unknown = set(menus) - set(firsts)
    if unknown:
        raise ValueError(f"{board} has no menu {', '.join(sorted(unknown))}")
    for menu, first in firsts.items():
        chosen = menus.get(menu, first)
        if f"menu.{menu}.{chosen}" not in own:
            raise ValueError(f"{board}: menu {menu} has no option {chosen}")
        lead = f"menu.{menu}.{chosen}."
        props.update({k[len(lead) :]: v for k, v in own.items() if k.startswith(lead)})
    return props


def split_command(line: str) -> list[str]:
    """A recipe's command line split as arduino-cli splits it: at spaces, a word that starts with a quote
    running to the word that ends with it (those two quotes removed); quotes elsewhere stay in the word, so
    ``-DBOARD_NAME="X"`` reaches the compiler as a string literal."""
    words: list[str] = []
    quoted: list[str] | None = None
    quote = ""
    for word in line.split(" "):
        if quoted is None:
            if not word:
                continue
            if word[0] not in "\"'":
                words.append(word)
                continue
            quote, word, quoted = word[0], word[1:], []
        if word.endswith(quote):
            joined = " ".join([*quoted, word[: -len(quote)]])
            if joined:  # arduino-cli drops an empty quoted argument
                words.append(joined)
            quoted = None
        else:
            quoted.append(word)
    if quoted is not None:
        raise ValueError(f"unclosed {quote} in {line}")
    return words


def expand(value: str, props: dict[str, str], depth: int = 0) -> str:
    """``value`` with its ``{name}`` references replaced (unknown names by nothing, as an unset tool path)."""
    if depth > 20:
        raise ValueError(f"properties refer to each other in a loop: {value}")
    out = REFERENCE.sub(lambda m: props.get(m.group(1), ""), value)
    return expand(out, props, depth + 1) if REFERENCE.search(out) and out != value else out


@dataclass
class Platform:
    core: Path  # the platform's folder: platform.txt, boards.txt, cores/, variants/, libraries/
    props: dict[str, str]

    @classmethod
    def load(
        cls,
        core: Path,
        arch: str,
        board: str,
        menus: dict[str, str],
        tools: dict[str, Path],
        sketch: Path,
        build: Path,
    ) -> Platform:
        """``core``'s platform (``arch``: the architecture folder's name, e.g. ``stm32``) for ``board`` (the
        boards.txt id and its menu choices, e.g. ``pnum``), its ``runtime.tools.<name>.path`` from ``tools``
        (the rest unset), building the sketch in folder ``sketch`` into ``build``."""
        props = read_properties(core / "platform.txt")
        props.update(board_properties(read_properties(core / "boards.txt"), board, menus))
        props.update({f"runtime.tools.{name}.path": str(path) for name, path in tools.items()})
        props.update(
            {
                "runtime.platform.path": str(core),
                "runtime.ide.version": "10607",
                "runtime.os": "linux",
                "build.arch": arch.upper(),
                "build.core.path": str(core / "cores" / props["build.core"]),
                "build.system.path": str(core / "system"),
                "build.path": str(build),
                "build.source.path": str(sketch),
                "build.project_name": "sketch.ino",
                "compiler.path": "",  # the cross compiler on the PATH
            }
        )
        props["build.variant.path"] = str(core / "variants" / expand(props["build.variant"], props))
        return cls(core, props)

    def command(self, recipe: str, **values: str) -> list[str]:
        """A recipe (e.g. ``recipe.cpp.o.pattern``) expanded with ``values`` as an argument list."""
        props = dict(self.props, **values)
        return split_command(expand(props[recipe], props))

    def library_dirs(self) -> dict[str, Path]:
        """Each bundled library's src/ by the headers directly in it."""
        found: dict[str, Path] = {}
        for src in sorted((self.core / "libraries").glob("*/src")):
            for header in src.glob("*.h"):
                found.setdefault(header.name, src)
        return found


def _sources(root: Path) -> list[Path]:
    """The sources under ``root``, but not in its examples/ or hidden folders (as arduino-cli skips them)."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix in SOURCES
        and not any(part == "examples" or part.startswith(".") for part in p.relative_to(root).parts[:-1])
    )


def libraries_used(sources: Iterable[Path], available: dict[str, Path]) -> list[Path]:
    """The library folders the sources include, and those their own sources include, in discovery order."""
    used: list[Path] = []
    todo = list(sources)
    while todo:
        text = todo.pop(0).read_text(encoding="utf-8", errors="replace")
        for name in INCLUDE.findall(text):
            src = available.get(name)
            if src is not None and src not in used:
                used.append(src)
                todo += _sources(src) + sorted(src.rglob("*.h"))
    return used


@dataclass
class SketchBuild:
    elf: Path
    objects: dict[Path, Path]  # source -> object: sketch, libraries and variant (the core's are in core.a)


def build_sketch(
    platform: Platform,
    sketch: list[Path],
    libraries: dict[str, Path],
    extra_flags: list[str],
    own_flags: list[str],
    own: set[Path],
) -> SketchBuild:
    """Compile ``sketch`` (.ino, .c, .cpp files), the libraries it uses (``libraries``: header -> src/ of the
    user's libraries, beside the platform's own) and the core with the platform's recipes, ``extra_flags``
    on every compile (PlatformIO's build_flags), ``own_flags`` also on the files in ``own``; link. A failed
    compile or link raises TinyLSTMError with the command and the compiler's message (``run_tool``)."""
    build, own = Path(platform.props["build.path"]), set(own)
    (build / "sketch").mkdir(parents=True, exist_ok=True)
    (build / "sketch" / "build.opt").write_text(f'\n-fmacro-prefix-map="{platform.core}"=.')
    forced = build / "sketch" / "requiredLibraries.cpp"
    forced.write_text("#include <SrcWrapper.h>\n")
    units: list[Path] = [forced]
    for path in sketch:
        if path.suffix == ".ino":
            cpp = build / "sketch" / f"{path.name}.cpp"
            cpp.write_text(f'#include <Arduino.h>\n#line 1 "{path}"\n{path.read_text(encoding="utf-8")}')
            own.add(cpp)
            units.append(cpp)
        else:
            units.append(path)
    available = {**platform.library_dirs(), **libraries}
    headers = sorted({h for folder in {s.parent for s in sketch} for h in folder.glob("*.h")})
    used = libraries_used(units + headers, available)
    core_dir, variant = Path(platform.props["build.core.path"]), Path(platform.props["build.variant.path"])
    # the core and the variant see their own folders only; the sketch and the libraries the libraries' too
    core_includes = f'"-I{core_dir}" "-I{variant}"'
    includes = " ".join([core_includes, *(f'"-I{d}"' for d in used)])
    core, variant_sources = _sources(core_dir), _sources(variant)
    jobs = units + [s for lib in used for s in _sources(lib)] + variant_sources + core
    in_core = set(core) | set(variant_sources)
    objects = build / "objects"
    objects.mkdir(exist_ok=True)

    def compile_one(number: int) -> Path:
        src = jobs[number]
        obj = objects / f"{number:04d}-{src.name}.o"
        recipe = {".c": "recipe.c.o.pattern", ".cpp": "recipe.cpp.o.pattern", ".S": "recipe.S.o.pattern"}
        cmd = platform.command(
            recipe[src.suffix],
            includes=core_includes if src in in_core else includes,
            source_file=str(src),
            object_file=str(obj),
        )
        cmd[1:1] = extra_flags + (own_flags if src in own else [])
        if src in own:  # the core's default warning level (-w) would hide our warnings
            cmd = [c for c in cmd if c != "-w"]
        run_tool([*cmd], f"compiling {src.name}")
        return obj

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        built = dict(zip(jobs, pool.map(compile_one, range(len(jobs))), strict=True))
    archive = build / "core.a"  # the core's objects only: the variant's are linked as they are
    archive.unlink(missing_ok=True)
    for src in core:
        add = platform.command(
            "recipe.ar.pattern", archive_file_path=str(archive), object_file=str(built[src])
        )
        run_tool([*add], "archiving the core")
    archived = set(core)
    mine = {s: o for s, o in built.items() if s not in archived}
    link = platform.command(
        "recipe.c.combine.pattern",
        object_files=" ".join(f'"{o}"' for o in mine.values()),
        archive_file_path=str(archive),
    )
    run_tool([*link], "linking the sketch")
    return SketchBuild(build / "sketch.ino.elf", mine)

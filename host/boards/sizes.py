"""Flash and static RAM of a linked firmware, in total and split into caller-defined groups.

Totals come from `<toolchain>size -A` on the ELF. The split walks the linker map that
build_elf() writes: with -ffunction-sections/-fdata-sections every function and object is
its own input section, so each one is attributed to its object file and symbol name. An input
section of a link-time optimised program (``*.ltrans.o``: every file's code and data compiled as one)
is split by the ELF's debug information instead (dwarf_owners.py): each byte goes to the object its
source file compiles to, ``<folder>/<stem>.o`` (a header's inlined code: ``csrc/tl_qmath.o``), and to
the function or object holding it. Its string literals and constant pools, merged across files and
without debug information, are the "literals" group.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from tinylstm.host.boards.dwarf_owners import Owners
from tinylstm.host.boards.registry import ARM_GCC, Toolchain
from tinylstm.host.boards.toolchain import find_tool

# Output sections of the port linker scripts and where they live.
FLASH_SECTIONS = (".isr_vector", ".text", ".rodata", ".ARM.exidx", ".data")  # .data: its init image
RAM_SECTIONS = (".data", ".bss")
STACK_SECTION = ".stack"
REST = "rest"
LITERALS = "literals"
_LTO_PARTITION = re.compile(r"\.ltrans\d*\.o$")

_INPUT_FULL = re.compile(
    r"^ (?P<sec>\.\S+|COMMON)\s+0x(?P<addr>[0-9a-f]+)\s+0x(?P<size>[0-9a-f]+)\s+(?P<obj>\S.*)$"
)
_INPUT_NAME = re.compile(r"^ (?P<sec>\.\S+|COMMON)$")
_INPUT_TAIL = re.compile(r"^\s+0x(?P<addr>[0-9a-f]+)\s+0x(?P<size>[0-9a-f]+)\s+(?P<obj>\S.*)$")
_OUTPUT = re.compile(r"^(?P<sec>\.\S+|/DISCARD/)")
_NAMED = re.compile(r"^\.(?:text(?:\.startup|\.unlikely|\.hot)?|rodata|data|bss)\.(?P<sym>.+)$")
_ANONYMOUS = re.compile(r"(^|\.)(str|cst)\d")


@dataclass(frozen=True)
class GroupSize:
    name: str
    flash: int
    ram: int


@dataclass(frozen=True)
class SizeReport:
    flash: int  # bytes programmed into flash: vectors, code, constants, .data init image
    ram: int  # static RAM: .data + .bss
    stack: int  # RAM reserved for the stack, on top of `ram`
    sections: dict[str, int]
    groups: tuple[GroupSize, ...]  # caller's groups in their order, "literals", "rest"; sums equal the totals

    def render(self) -> str:
        """Markdown table, readable as plain text."""
        lines = ["| group | flash (B) | static RAM (B) |", "|---|---:|---:|"]
        lines += [f"| {g.name} | {g.flash} | {g.ram} |" for g in self.groups]
        lines.append(f"| **total** | **{self.flash}** | **{self.ram}** |")
        lines.append(f"\nStack reservation: {self.stack} B (RAM incl. stack: {self.ram + self.stack} B).")
        return "\n".join(lines)


def _section_sizes(elf: Path, toolchain: Toolchain) -> dict[str, int]:
    size = find_tool("size", toolchain)
    out = subprocess.run([str(size), "-A", str(elf)], capture_output=True, text=True, check=True)
    sizes: dict[str, int] = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes


def input_sections(map_file: Path) -> list[tuple[str, str, str, int, int]]:
    """(output section, input section, object file, address, size) for every input section of a GNU ld map's
    memory map (the sections --gc-sections dropped are listed before it, and are not in it)."""
    text = map_file.read_text()
    lines = text[text.index("Linker script and memory map") :].splitlines()
    found: list[tuple[str, str, str, int, int]] = []
    output = ""
    pending = ""  # input section whose address/size/object wrapped onto the next line
    for line in lines:
        if m := _OUTPUT.match(line):
            output = m["sec"]
        elif m := _INPUT_FULL.match(line):
            found.append((output, m["sec"], m["obj"], int(m["addr"], 16), int(m["size"], 16)))
        elif m := _INPUT_NAME.match(line):
            pending = m["sec"]
            continue
        elif pending and (m := _INPUT_TAIL.match(line)):
            found.append((output, pending, m["obj"], int(m["addr"], 16), int(m["size"], 16)))
        pending = ""
    return found


def _symbol(input_section: str) -> str:
    """`.text.tl_hal_init` -> `tl_hal_init`, `.text.startup.main` -> `main`; anonymous
    sections (plain `.text`, string literals `.rodata.main.str1.1`, pools `.rodata.cst8`) -> ``."""
    m = _NAMED.match(input_section)
    return "" if m is None or _ANONYMOUS.search(m["sym"]) else m["sym"]


def _group_of(obj: str, symbol: str, groups: Mapping[str, Sequence[str]]) -> str:
    for name, patterns in groups.items():
        if any(fnmatch(obj, p) or (symbol and fnmatch(symbol, p)) for p in patterns):
            return name
    return REST


def size_report(
    elf: Path,
    map_file: Path,
    groups: Mapping[str, Sequence[str]] | None = None,
    toolchain: Toolchain = ARM_GCC,
) -> SizeReport:
    """Size of `elf`, split by `groups`: name -> fnmatch patterns, each tried against the
    object file path (e.g. ``*/csrc/*.o``) and the symbol name (e.g. ``tl_model_*``).
    The first matching group wins; then "literals" (a link-time optimised program's string literals and
    constant pools); everything unmatched (libgcc, padding, ...) is "rest".
    """
    groups = groups or {}
    sections = _section_sizes(elf, toolchain)
    flash = sum(sections.get(s, 0) for s in FLASH_SECTIONS)
    ram = sum(sections.get(s, 0) for s in RAM_SECTIONS)
    per_group = {name: [0, 0] for name in (*groups, LITERALS)}
    owners: Owners | None = None
    for output, sec, obj, addr, size in input_sections(map_file):
        if _LTO_PARTITION.search(obj):
            owners = owners or Owners(elf)
            parts = _lto_parts(owners, sec, addr, size, groups)
        else:
            parts = [(_group_of(obj, _symbol(sec), groups), size)]
        for name, n in parts:
            if name != REST:
                per_group[name][0] += n if output in FLASH_SECTIONS else 0
                per_group[name][1] += n if output in RAM_SECTIONS else 0
    rest = GroupSize(
        REST, flash - sum(f for f, _ in per_group.values()), ram - sum(r for _, r in per_group.values())
    )
    return SizeReport(
        flash=flash,
        ram=ram,
        stack=sections.get(STACK_SECTION, 0),
        sections=sections,
        groups=(*(GroupSize(n, f, r) for n, (f, r) in per_group.items()), rest),
    )


def _object_of(source: str) -> str:
    """The object build_elf compiles ``source`` to: ``.../csrc/tl_api.c`` -> ``.../csrc/tl_api.o``."""
    return str(Path(source).with_suffix(".o"))


def _lto_parts(
    owners: Owners, sec: str, addr: int, size: int, groups: Mapping[str, Sequence[str]]
) -> list[tuple[str, int]]:
    """(group, bytes) of one input section of a link-time optimised program. Code whose file is in no group
    (a compiler header's intrinsics) goes with the function that holds it, by that function's own file."""
    parts: list[tuple[str, int]] = []
    for span in owners.spans_in(addr, addr + size):
        name = _group_of(_object_of(span.source), span.symbol, groups)
        if name == REST and span.symbol:
            home = owners.spans_in(*owners.symbol_range(span.symbol))[:1]
            if home:
                name = _group_of(_object_of(home[0].source), span.symbol, groups)
        parts.append((name, span.end - span.start))
    unowned = size - sum(n for _, n in parts)
    parts.append((LITERALS if sec.startswith(".rodata") else REST, unowned))
    return parts

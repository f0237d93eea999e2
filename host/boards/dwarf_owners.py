"""Which source file each byte of a linked ELF came from, read from its DWARF debug information.

After link-time optimisation the linker map names one compiler-made object (``*.ltrans0.ltrans.o``) for
the whole program, so sizes.py cannot attribute bytes by object file. The debug information still can:
- code: the line tables give every instruction's file, the file an inlined function was written in
  (tl_app_poll's bytes inlined into Reset_Handler are tl_app.c's);
- data: every variable with a static address names the file that declares it, and the ELF symbol at that
  address gives its size.
String literals and constant pools have no debug information: they are left unowned.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elftools.dwarf.compileunit import CompileUnit
from elftools.dwarf.die import DIE
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

_DW_OP_ADDR = 0x03


@dataclass(frozen=True)
class Span:
    """Bytes [start, end) written by ``source`` (a path as the compiler saw it), inside ELF symbol ``symbol``
    (a function or object; "" if none)."""

    start: int
    end: int
    source: str
    symbol: str


class Owners:
    """The spans of one ELF, sorted by address and not overlapping: ``spans_in(a, b)`` walks a range."""

    def __init__(self, elf: Path) -> None:
        with elf.open("rb") as f:
            e = ELFFile(f)
            thumb = e["e_machine"] == "EM_ARM"
            self._symbols = _symbols(e, thumb)
            spans = _variables(e, self._symbols) + _code(e) if e.has_dwarf_info() else []
        spans = [s if s.symbol else Span(s.start, s.end, s.source, self.symbol_at(s.start)) for s in spans]
        spans = sorted((s for s in spans if s.end > s.start), key=lambda s: (s.start, s.end))
        kept: list[Span] = []
        for s in spans:  # a variable's bytes are never code bytes; a later row starts where the last ends
            if kept and s.start < kept[-1].end:
                if s.end <= kept[-1].end:
                    continue
                s = Span(kept[-1].end, s.end, s.source, s.symbol)
            kept.append(s)
        self.spans = kept
        self._starts = [s.start for s in kept]

    def symbol_at(self, addr: int) -> str:
        i = bisect_right(self._symbols, (addr, float("inf"))) - 1
        if i >= 0:
            start, end, name = self._symbols[i]
            if start <= addr < end:
                return name
        return ""

    def symbol_range(self, name: str) -> tuple[int, int]:
        """[start, end) of the function or object ``name`` (the first of that name), (0, 0) if none."""
        return next(((start, end) for start, end, sym in self._symbols if sym == name), (0, 0))

    def spans_in(self, start: int, end: int) -> list[Span]:
        """The owned parts of [start, end), clipped to it."""
        i = max(bisect_right(self._starts, start) - 1, 0)
        found: list[Span] = []
        for s in self.spans[i:]:
            if s.start >= end:
                break
            lo, hi = max(s.start, start), min(s.end, end)
            if lo < hi:
                found.append(Span(lo, hi, s.source, s.symbol))
        return found


def _symbols(e: ELFFile, thumb: bool) -> list[tuple[int, int, str]]:
    """(start, end, name) of every sized function and object (a Thumb function's address without bit 0)."""
    table = e.get_section_by_name(".symtab")
    if not isinstance(table, SymbolTableSection):
        return []
    found = []
    for sym in table.iter_symbols():
        kind, size = sym["st_info"]["type"], sym["st_size"]
        if kind in ("STT_FUNC", "STT_OBJECT") and size > 0:
            addr = sym["st_value"] & ~1 if thumb and kind == "STT_FUNC" else sym["st_value"]
            found.append((addr, addr + size, sym.name))
    return sorted(found)


def _file_name(cu_lines: Any, index: int) -> str:
    """Path of file ``index`` of a line program (DWARF 5 counts from 0, earlier versions from 1)."""
    base = 0 if cu_lines.header["version"] >= 5 else 1
    entry = cu_lines["file_entry"][index - base]
    name = entry.name.decode()
    if name.startswith("/") or (base == 1 and entry.dir_index == 0):
        return name
    return f"{cu_lines['include_directory'][entry.dir_index - base].decode()}/{name}"


def _code(e: ELFFile) -> list[Span]:
    dwarf = e.get_dwarf_info()
    spans: list[Span] = []
    for cu in dwarf.iter_CUs():
        lines = dwarf.line_program_for_CU(cu)
        if lines is None:
            continue
        previous: tuple[int, str] | None = None
        for entry in lines.get_entries():
            state = entry.state
            if state is None:
                continue
            if previous is not None:
                spans.append(Span(previous[0], state.address, previous[1], ""))
            previous = None if state.end_sequence else (state.address, _file_name(lines, state.file))
    return spans


def _declared_in(die: DIE) -> str:
    """The file a variable DIE (or the declaration it completes) names, "" if none."""
    for _ in range(4):  # DW_AT_abstract_origin / DW_AT_specification: at most a short chain
        if "DW_AT_decl_file" in die.attributes:
            if not isinstance(die.cu, CompileUnit):  # a type unit declares no variables
                return ""
            lines = die.dwarfinfo.line_program_for_CU(die.cu)
            return "" if lines is None else _file_name(lines, die.attributes["DW_AT_decl_file"].value)
        links = ("DW_AT_abstract_origin", "DW_AT_specification")
        link = next((a for a in links if a in die.attributes), None)
        if link is None:
            break
        die = die.get_DIE_from_attribute(link)
    return ""


def _variables(e: ELFFile, symbols: list[tuple[int, int, str]]) -> list[Span]:
    sized = {start: (end, name) for start, end, name in symbols}
    spans: list[Span] = []
    for cu in e.get_dwarf_info().iter_CUs():
        width = cu["address_size"]
        for die in cu.iter_DIEs():
            loc = die.attributes.get("DW_AT_location") if die.tag == "DW_TAG_variable" else None
            if loc is None or loc.form != "DW_FORM_exprloc" or list(loc.value[:1]) != [_DW_OP_ADDR]:
                continue
            if len(loc.value) != 1 + width:  # an address and nothing else: the variable lives there
                continue
            addr = int.from_bytes(bytes(loc.value[1:]), "little")
            if addr in sized:
                end, name = sized[addr]
                spans.append(Span(addr, end, _declared_in(die), name))
    return spans

"""Just enough ELF to tell a statically linked executable from a dynamic one,
without `file` or binutils: a dynamic executable names its loader in a
PT_INTERP program header; a static one (static-pie included) has none.

The VM tier needs this for busybox: its initramfs has no libc and no
loader, so a dynamic busybox as /init makes the kernel panic with "Failed to
execute /init" on every boot.
"""

from __future__ import annotations

import os
import struct

PT_INTERP = 3
ET_EXEC, ET_DYN = 2, 3


def program_header_types(path: str | os.PathLike[str]) -> list[int]:
    """The p_type of every program header of the ELF executable at path.
    ValueError when it is not one (not ELF, truncated, not an executable)."""
    with open(path, "rb") as f:
        ident = f.read(16)
        if len(ident) < 16 or ident[:4] != b"\x7fELF":
            raise ValueError(f"{path}: not an ELF file")
        cls, data = ident[4], ident[5]
        if cls not in (1, 2) or data not in (1, 2):
            raise ValueError(f"{path}: unknown ELF class {cls} or byte order {data}")
        end = "<" if data == 1 else ">"
        # After e_ident: e_type, e_machine, e_version, e_entry, e_phoff, e_shoff,
        # e_flags, e_ehsize, e_phentsize, e_phnum, ... (addresses 4 or 8 bytes).
        layout = end + ("HHIQQQIHHH" if cls == 2 else "HHIIIIIHHH")
        rest = f.read(struct.calcsize(layout))
        if len(rest) < struct.calcsize(layout):
            raise ValueError(f"{path}: truncated ELF header")
        e_type, _, _, _, phoff, _, _, _, phentsize, phnum = struct.unpack(layout, rest)
        if e_type not in (ET_EXEC, ET_DYN):
            raise ValueError(f"{path}: not an ELF executable (e_type {e_type})")
        if phnum == 0xFFFF or (phnum and phentsize < 4):
            raise ValueError(f"{path}: unsupported program header table")
        f.seek(phoff)
        table = f.read(phentsize * phnum)
        if len(table) < phentsize * phnum:
            raise ValueError(f"{path}: truncated program header table")
    return [struct.unpack_from(end + "I", table, i * phentsize)[0] for i in range(phnum)]


def is_static(path: str | os.PathLike[str]) -> bool:
    """True for an ELF executable that needs no dynamic loader."""
    return PT_INTERP not in program_header_types(path)


if __name__ == "__main__":
    import sys
    for p in sys.argv[1:]:
        print(p, "static" if is_static(p) else "dynamic")

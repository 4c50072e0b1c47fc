"""The VM tier's busybox check: a pure-Python ELF reader tells static from
dynamic executables (PT_INTERP), and the initramfs only takes a static
busybox, with a clear reason otherwise."""

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from .harness import elf, vm
from .harness.machine import Unavailable

PT_LOAD, PT_DYNAMIC = 1, 2


def fake_elf(path: Path, types, bits=64, little=True, e_type=2) -> Path:
    """An ELF header and a program header table with these p_types."""
    end = "<" if little else ">"
    ident = b"\x7fELF" + bytes([2 if bits == 64 else 1, 1 if little else 2, 1]) + bytes(9)
    if bits == 64:
        ehsize, phentsize = 64, 56
        head = struct.pack(end + "HHIQQQIHHHHHH", e_type, 62, 1, 0, ehsize, 0, 0, ehsize,
                           phentsize, len(types), 0, 0, 0)
        table = b"".join(struct.pack(end + "IIQQQQQQ", t, 0, 0, 0, 0, 0, 0, 0) for t in types)
    else:
        ehsize, phentsize = 52, 32
        head = struct.pack(end + "HHIIIIIHHHHHH", e_type, 3, 1, 0, ehsize, 0, 0, ehsize,
                           phentsize, len(types), 0, 0, 0)
        table = b"".join(struct.pack(end + "IIIIIIII", t, 0, 0, 0, 0, 0, 0, 0) for t in types)
    path.write_bytes(ident + head + table)
    return path


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("little", [True, False])
def test_pt_interp_makes_it_dynamic(tmp_path, bits, little):
    static = fake_elf(tmp_path / "s", [PT_LOAD, PT_DYNAMIC], bits, little)  # static-pie
    dynamic = fake_elf(tmp_path / "d", [6, elf.PT_INTERP, PT_LOAD, PT_DYNAMIC], bits, little)
    assert elf.program_header_types(dynamic) == [6, elf.PT_INTERP, PT_LOAD, PT_DYNAMIC]
    assert elf.is_static(static)
    assert not elf.is_static(dynamic)


def test_what_is_not_an_elf_executable_is_refused(tmp_path):
    (tmp_path / "script").write_text("#!/bin/sh\necho hi\n")
    (tmp_path / "short").write_bytes(b"\x7fELF\x02\x01")
    cut = fake_elf(tmp_path / "cut", [PT_LOAD, elf.PT_INTERP])
    cut.write_bytes(cut.read_bytes()[:-10])
    fake_elf(tmp_path / "obj", [], e_type=1)  # a relocatable .o
    for name in ("script", "short", "cut", "obj"):
        with pytest.raises(ValueError):
            elf.is_static(tmp_path / name)


def test_a_dynamic_binary_of_this_host():
    assert not elf.is_static("/usr/bin/env")


def test_busybox_of_this_host_agrees_with_file():
    path = Path("/bin/busybox")
    if not path.exists():
        pytest.skip("no /bin/busybox here")
    if shutil.which("file") is None:
        assert elf.is_static(path)  # busybox-static, as tests/setup-host installs
        return
    out = subprocess.run(["file", "-L", str(path)], check=True, text=True,
                         stdout=subprocess.PIPE).stdout
    assert elf.is_static(path) == ("dynamically linked" not in out), out


def test_the_initramfs_takes_the_first_static_busybox(tmp_path):
    dyn = fake_elf(tmp_path / "dyn", [elf.PT_INTERP, PT_LOAD])
    static = fake_elf(tmp_path / "static", [PT_LOAD])
    assert vm.busybox((str(tmp_path / "none"), str(dyn), str(static))) == static


def test_only_a_dynamic_busybox_is_a_clear_reason_not_a_kernel_panic(tmp_path):
    dyn = fake_elf(tmp_path / "dyn", [elf.PT_INTERP, PT_LOAD])
    with pytest.raises(Unavailable, match="busybox is dynamically linked: install busybox-static"):
        vm.busybox((str(dyn), "/usr/bin/env"))
    with pytest.raises(Unavailable, match="busybox is missing"):
        vm.busybox((str(tmp_path / "none"),))


def test_the_initramfs_cache_key_follows_the_busybox_binary(tmp_path):
    """A cache built with one busybox is not reused with another."""
    bb = fake_elf(tmp_path / "busybox", [PT_LOAD])
    first = vm.initrd_key(bb)
    assert vm.initrd_key(bb) == first
    fake_elf(bb, [PT_LOAD, PT_LOAD])
    assert vm.initrd_key(bb) != first

"""A `micropython` command for the host, taken from the root without chroot.

The unix port is an ordinary dynamically linked program, so the root's own
dynamic loader can run it with the root's libraries on the host: no root
rights, the caller's working directory and files stay as they are.
"""

import shlex
import struct
from pathlib import Path

from machikit.testbed.layout import Layout
from machikit.testbed.system import TestbedError

BINARY = "usr/bin/micropython"


def elf_interpreter(binary: Path) -> str:
    """The PT_INTERP path (e.g. /lib64/ld-linux-x86-64.so.2, /lib/ld-linux-aarch64.so.1):
    the loader the binary was built for, whatever the host architecture is."""
    data = binary.read_bytes()
    if data[:4] != b"\x7fELF":
        raise TestbedError(f"not an ELF file: {binary}")
    wide = data[4] == 2  # ELFCLASS64
    order = "<" if data[5] == 1 else ">"
    word = order + ("Q" if wide else "I")
    phoff = struct.unpack_from(word, data, 0x20 if wide else 0x1C)[0]
    entsize, count = struct.unpack_from(order + "HH", data, 0x36 if wide else 0x2A)
    for index in range(count):
        header = phoff + index * entsize
        if struct.unpack_from(order + "I", data, header)[0] == 3:  # PT_INTERP
            offset = struct.unpack_from(word, data, header + (8 if wide else 4))[0]
            size = struct.unpack_from(word, data, header + (32 if wide else 16))[0]
            return data[offset:offset + size].rstrip(b"\0").decode()
    raise TestbedError(f"no program interpreter in {binary}")


def library_dirs(root: Path) -> list[Path]:
    # The multiarch directory (x86_64-linux-gnu, aarch64-linux-gnu, …) is where libc is.
    found = sorted({libc.parent for libc in root.glob("usr/lib/*/libc.so.6")})
    if not found:
        raise TestbedError(f"no libc.so.6 under {root}/usr/lib")
    return found


def wrapper_text(root: Path) -> str:
    loader = root / elf_interpreter(root / BINARY).lstrip("/")
    paths = ":".join(str(d) for d in library_dirs(root))
    # --inhibit-cache: never fall back to the host's /etc/ld.so.cache (host libraries
    # mixed with the root's libc would crash in odd ways).
    command = [str(loader), "--inhibit-cache", "--library-path", paths, str(root / BINARY)]
    return (
        "#!/bin/sh\n"
        "# machikit test bed: MicroPython (unix port) from the Debian root, run through\n"
        "# the root's own loader. Written by `machikit dev services up`.\n"
        "unset LD_PRELOAD\n"
        f"exec {shlex.join(command)} \"$@\"\n"
    )


def install(layout: Layout) -> Path:
    path = layout.micropython
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o755)
    path.write_text(wrapper_text(layout.root), encoding="utf-8", newline="\n")
    path.chmod(0o755)
    return path

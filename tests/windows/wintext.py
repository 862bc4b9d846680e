"""Run a module with a Japanese Windows laptop's defaults for text files, on Linux.

    python -m tests.windows.wintext MODULE [ARGS...]     # e.g. machikit device list

On Windows, a file opened in text mode without encoding= uses the ANSI code page (cp932 on
a Japanese laptop), and one written without newline= gets "\\r\\n" for every "\\n". CPython's C
io has both facts compiled in, so this swaps in the pure-Python io (_pyio, the same
TextIOWrapper logic, which reads os.linesep and the locale at run time) for open(),
io.open() (pathlib and os.fdopen go through it) and sets them as Windows has them. A file a
command writes without naming its encoding and newline then comes out as on Windows:
cp932 bytes and "\\r\\n" ends. Not emulated: subprocess pipes, the console, paths (see
test_console.py and test_paths.py)."""

import _pyio
import builtins
import io
import locale
import os
import runpy
import sys

WINDOWS_CODE_PAGE = "cp932"


def emulate() -> None:
    os.linesep = "\r\n"
    locale.getencoding = lambda: WINDOWS_CODE_PAGE  # what _pyio asks for "locale"
    locale.getpreferredencoding = lambda do_setlocale=True: WINDOWS_CODE_PAGE
    io.open = builtins.open = _pyio.open


if __name__ == "__main__":
    emulate()
    module, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)

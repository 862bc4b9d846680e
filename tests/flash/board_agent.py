# The "board" side of the simulator (board_sim.py): runs on the REAL MicroPython unix port,
# with the current folder standing in for the board's flash. It plays the part of a board's
# raw REPL executor: each piece of code arrives on stdin as "<length>\n<bytes>", runs in ONE
# globals dict kept between pieces (mpremote's `fs cp` opens a file in one exec and writes
# to it in the next ones), and its output goes out exactly as a board frames it:
#   <stdout of the code> \x04 <traceback, if any> \x04
# followed by IDLE, which the simulator swallows (it then prints the raw REPL's ">").
# print() and sys.stdout.write() go straight to fd 1 on the unix port, so they need no capture.
#
# argv[1]: the MicroPython version this board claims (a board with old firmware).
# argv[2]: the board's unique id in hex (machine.unique_id(): a Pico's flash id, an ESP32's MAC).
# machine.reset() ends this process: the simulator starts a fresh one, as a board reboots.
import sys

IDLE = "\x00mk-idle\x00"

# Like a board: the flash's root and /lib are the import path, not this script's folder.
sys.path.clear()
sys.path.append("")
sys.path.append("lib")


class _Proxy:
    """A stand-in module: the given names, the rest from the real module."""

    def __init__(self, real, **names):
        self._real = real
        for key in names:
            setattr(self, key, names[key])

    def __getattr__(self, name):
        return getattr(self._real, name)


def _reset():
    raise SystemExit(3)


def _claimed_version():
    if len(sys.argv) < 2:
        return
    parts = [int(p) for p in sys.argv[1].split(".")]
    impl = _Proxy(sys.implementation, version=(parts[0], parts[1], parts[2], ""))
    sys.modules["sys"] = _Proxy(sys, implementation=impl)


def _install_machine():
    try:
        import machine as real
    except ImportError:
        real = None
    import binascii

    uid = binascii.unhexlify(sys.argv[2]) if len(sys.argv) > 2 else b"\xe6\x61\x38\x00"
    sys.modules["machine"] = _Proxy(real, reset=_reset, soft_reset=_reset,
                                    unique_id=lambda: uid)


def _read_exact(n):
    data = b""
    while len(data) < n:
        chunk = sys.stdin.buffer.read(n - len(data))
        if not chunk:
            raise SystemExit(0)  # the simulator closed our stdin: the board is switched off
        data += chunk
    return data


def _read_code():
    header = b""
    while not header.endswith(b"\n"):
        header += _read_exact(1)
    return _read_exact(int(header))


def _run(code, scope):
    err = None
    try:
        exec(code, scope)
    except (Exception, KeyboardInterrupt) as e:  # SystemExit goes on: a reset
        err = e
    sys.stdout.write("\x04")
    if err is not None:
        sys.print_exception(err, sys.stdout)
    sys.stdout.write("\x04" + IDLE)


def main():
    _claimed_version()
    _install_machine()
    scope = {"__name__": "__main__"}
    while True:
        try:
            code = _read_code()
        except KeyboardInterrupt:
            continue  # a Ctrl-C that came while nothing ran
        try:
            _run(code, scope)
        except KeyboardInterrupt:
            sys.stdout.write("\x04\x04" + IDLE)  # Ctrl-C just as the code ended


main()

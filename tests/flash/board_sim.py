"""A MicroPython board on a pseudo-terminal, for testing `machikit flash` without hardware.

The pty speaks the REPL protocol mpremote uses (its transport_serial.py): Ctrl-C, Ctrl-B
(friendly REPL banner), Ctrl-A (raw REPL), Ctrl-D (run the code / soft reset) and the raw
paste request Ctrl-E A Ctrl-A, answered "R\\x00" (not supported) so mpremote falls back to
plain raw REPL, which it supports on every board. The code is run by the REAL MicroPython
unix port (board_agent.py), ONE process per board life, with cwd = a folder standing in for
the board's flash. machine.reset() ends that process and the board "reboots".

Not emulated: running main.py at boot (the tests boot the flash folder themselves), the
friendly REPL's line editing and execution, raw paste mode, USB disconnecting on reset, the
board's \\r\\n newlines, flash size, heap size of a 32-bit board, baud rate and flow control.

    python -m tests.flash.board_sim FLASH_DIR   # prints the pty path; mpremote connect PATH
"""

import contextlib
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path

AGENT = Path(__file__).with_name("board_agent.py")
IDLE = b"\x00mk-idle\x00"
RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n>"


def banner(version: str) -> bytes:
    return (f"MicroPython v{version} on 2025-04-15; linux [GCC] with x86_64\r\n"
            "Type \"help()\" for more information.\r\n>>> ").encode()


class BoardSim:
    def __init__(self, micropython: str, flash: Path, version: str = "1.25.0",
                 heap: str = "512k", uid: str | None = None) -> None:
        self.micropython, self.flash, self.version, self.heap = micropython, flash, version, heap
        self.uid = uid or os.urandom(8).hex()  # machine.unique_id(), different per board
        self.resets = 0  # machine.reset() calls seen, for the tests
        self.soft_resets = 0
        self._raw = False  # in the raw REPL (else the friendly one)
        self._busy = False  # the agent is running code
        self._code = bytearray()
        self._paste = b""  # the start of a raw paste request, Ctrl-E A Ctrl-A
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._agent: subprocess.Popen[bytes] | None = None
        self.master, self._slave = pty.openpty()
        tty.setraw(self._slave)  # no echo, no newline translation: a USB serial port
        self.path = os.ttyname(self._slave)  # the simulator keeps the slave open: no hang-up
        self._threads = [threading.Thread(target=self._serve, daemon=True)]

    def __enter__(self) -> "BoardSim":
        self.flash.mkdir(parents=True, exist_ok=True)
        self._start_agent()
        self._threads[0].start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_resets(self, count: int, timeout: float = 5) -> bool:
        """machine.reset() runs a moment after mpremote has let go (exec --no-follow)."""
        deadline = time.monotonic() + timeout
        while self.resets < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.resets >= count

    def close(self) -> None:
        self._stop.set()
        self._kill_agent()
        for thread in self._threads:
            thread.join(5)
        os.close(self.master)
        os.close(self._slave)

    # --- the agent: one MicroPython process per "power-on" ---

    def _start_agent(self) -> None:
        self._agent = subprocess.Popen(
            [self.micropython, "-X", f"heapsize={self.heap}", str(AGENT), self.version,
             self.uid],
            cwd=self.flash, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env={**os.environ, "MICROPYPATH": ""},
        )
        reader = threading.Thread(target=self._forward, args=(self._agent,), daemon=True)
        self._threads.append(reader)
        reader.start()

    def _kill_agent(self) -> None:
        agent, self._agent = self._agent, None
        if agent and agent.poll() is None:
            agent.kill()
        if agent:
            agent.wait(10)

    def _restart_agent(self) -> None:
        self._kill_agent()
        self._busy = False
        self._start_agent()

    def _forward(self, agent: "subprocess.Popen[bytes]") -> None:
        """The agent's output to the pty; IDLE becomes the raw REPL prompt."""
        assert agent.stdout is not None
        pending = b""
        while chunk := os.read(agent.stdout.fileno(), 4096):
            pending += chunk
            while IDLE in pending:
                before, pending = pending.split(IDLE, 1)
                self._busy = False  # before the prompt: mpremote sends the next code at once
                self._write(before + b">")
            keep = len(IDLE) - 1  # a marker may be cut between two reads
            if len(pending) > keep:
                self._write(pending[:-keep])
                pending = pending[-keep:]
        self._write(pending)
        if agent is self._agent and not self._stop.is_set():
            self._rebooted()

    def _rebooted(self) -> None:
        """The code ended the process (machine.reset()): a board comes back in its REPL."""
        self.resets += 1
        self._raw = False
        self._restart_agent()
        self._write(banner(self.version))

    def _write(self, data: bytes) -> None:
        with self._lock:
            if data and not self._stop.is_set():
                os.write(self.master, data)

    # --- the serial line: bytes from mpremote ---

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                for byte in os.read(self.master, 4096):
                    self._byte(bytes([byte]))

    def _byte(self, b: bytes) -> None:
        if self._busy:
            if b == b"\x03" and self._agent:  # Ctrl-C: KeyboardInterrupt in the running code
                self._agent.send_signal(signal.SIGINT)
            return  # a real board would hand other bytes to the code's stdin
        if self._raw and (self._paste or (b == b"\x05" and not self._code)):
            self._raw_paste_request(b)
        elif b == b"\x01":
            self._raw, self._code = True, bytearray()
            self._write(b"\r\n" + RAW_PROMPT)
        elif b == b"\x02":
            self._raw = False
            self._write(b"\r\n" + banner(self.version))
        elif b == b"\x03":
            self._code = bytearray()
            if not self._raw:
                self._write(b"\r\n>>> ")
        elif not self._raw:
            self._friendly(b)
        else:
            self._raw_byte(b)

    def _friendly(self, b: bytes) -> None:
        if b == b"\x04":
            self._soft_reset()
            self._write(banner(self.version))
        else:
            self._write(b"\r\n>>> " if b == b"\r" else b)  # echo only: no line execution

    def _raw_paste_request(self, b: bytes) -> None:
        self._paste += b
        if self._paste == b"\x05A\x01":
            self._paste = b""
            self._write(b"R\x00")  # raw paste not supported: mpremote uses plain raw REPL
        elif not b"\x05A\x01".startswith(self._paste):
            self._paste = b""  # not a request after all

    def _raw_byte(self, b: bytes) -> None:
        if b != b"\x04":
            self._code += b
        elif not self._code:
            self._soft_reset()
            self._write(RAW_PROMPT)
        else:
            self._run(bytes(self._code))

    def _run(self, code: bytes) -> None:
        self._code = bytearray()
        self._busy = True
        self._write(b"OK")
        agent = self._agent
        assert agent is not None and agent.stdin is not None
        try:
            agent.stdin.write(b"%d\n" % len(code) + code)
            agent.stdin.flush()
        except BrokenPipeError:
            pass  # it is rebooting: _forward starts the next one

    def _soft_reset(self) -> None:
        """Ctrl-D at an empty prompt: fresh interpreter state, as after `MPY: soft reboot`."""
        self.soft_resets += 1
        self._write(b"MPY: soft reboot\r\n")
        old, self._agent = self._agent, None
        if old:
            old.kill()
            old.wait(10)
        self._start_agent()


def main() -> None:
    micropython = os.environ.get("MACHIKIT_MICROPYTHON", "micropython")
    with BoardSim(micropython, Path(sys.argv[1])) as board:
        print(board.path, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()

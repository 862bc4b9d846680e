"""The firmware's flash store (firmware/lib/mk_store.py) on the real MicroPython unix port.

Every run of store_runner.py is one "boot" of a device: a restart is the next run, and a
power cut is simulated by damaging the files from here between two runs.

Heap budget: runs from source get `-X heapsize=64k` (HEAP); most of it goes to the compiler
turning mk_store.py and this runner into bytecode, which a board never does (it gets .mpy
files). The .mpy test gives 32 KB (SMALL_HEAP) to a 200-message workload (16 KB buffer,
~230-byte messages, peek/drop 10 at a time). Measured with MicroPython 1.25 unix: that
workload passes at 24 KB and fails at 20 KB; importing mk_store.mpy keeps ~8 KB, a
RingBuffer ~0.3 KB, peek(n) about n x message size. A Pico W has about 150-200 KB free.
The littlefs test needs 256 KB only for its simulated 32 KB flash chip and images.
"""

import random
import zlib
from collections import deque
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.firmware.process import mpy_cross, run_runner

pytestmark = pytest.mark.services

LIB = REPO / "firmware" / "lib"
RUNNER = Path(__file__).with_name("store_runner.py")
HEAP = "64k"  # see the module docstring
SMALL_HEAP = "32k"


def run(micropython: str, *args: object, lib: Path = LIB, heap: str = HEAP) -> list[dict]:
    return run_runner(micropython, RUNNER, lib, args, heap)


def ring(micropython: str, folder: Path, *ops: str, max_bytes: int = 4096,
         segment_bytes: int = 1024) -> list[dict]:
    return run(micropython, "ring", folder, max_bytes, segment_bytes, *ops)


def checked_text(text: str) -> bytes:
    """A small state file as mk_store.write_atomic writes it (its CRC-32 is zlib's)."""
    return f"{text} {zlib.crc32(text.encode()):08x}\n".encode()


def segments(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.log"))


# --- sequence number and boot counter ---------------------------------------------------

def test_crc_fallback_matches_binascii(micropython: str) -> None:
    (line,) = run(micropython, "crc")
    assert line["c"] is True and all(line["same"])


def test_sequence_survives_restarts_and_never_repeats(micropython: str, tmp_path: Path) -> None:
    path = tmp_path / "seq"
    seen: list[int] = []
    takes = [5, 150, 0, 1, 99, 100, 1]
    for boot, take in enumerate(takes, start=1):
        (line,) = run(micropython, "seq", path, 100, take)
        assert line["boot"] == boot
        assert len(line["seqs"]) == take
        # Flash wear: one write at start, then one per block of 100 numbers.
        assert line["writes"] == 1 + max(take - 1, 0) // 100
        seen += line["seqs"]
    assert seen == sorted(set(seen)), "numbers repeated or went backwards"
    assert seen[:5] == [0, 1, 2, 3, 4] and seen[5] == 100  # a restart skips, never repeats


def test_sequence_survives_a_power_cut_while_saving(micropython: str, tmp_path: Path) -> None:
    path = tmp_path / "seq"
    (first,) = run(micropython, "seq", path, 10, 25)
    # Cut while writing seq.new: a torn .new next to the good file.
    path.with_name("seq.new").write_bytes(path.read_bytes()[:3])
    (second,) = run(micropython, "seq", path, 10, 3)
    assert second["seqs"][0] > first["seqs"][-1] and second["boot"] == 2
    # Cut after seq.new was written, before the rename; and the old file is damaged too.
    path.with_name("seq.new").write_bytes(path.read_bytes())
    path.write_bytes(b"garbage")
    (third,) = run(micropython, "seq", path, 10, 3)
    assert third["seqs"][0] > second["seqs"][-1] and third["boot"] == 3
    assert not path.with_name("seq.new").exists()


# --- the offline buffer -------------------------------------------------------------------

def test_buffer_keeps_order_across_peeks_drops_and_restarts(
    micropython: str, tmp_path: Path
) -> None:
    rnd = random.Random(7)
    folder = tmp_path / "buf"
    model: deque[int] = deque()
    next_seq = 0
    for _restart in range(8):
        ops = ["pad:20"]
        for _ in range(15):
            kind = rnd.choice("aapd")
            if kind == "a":
                count = rnd.randint(1, 12)
                ops.append(f"a:{next_seq}:{count}")
                next_seq += count
            else:
                ops.append(f"{kind}:{rnd.randint(0, 10)}")
        lines = ring(micropython, folder, *ops, max_bytes=65536, segment_bytes=512)
        assert lines[0]["count"] == len(model)  # the restart found everything unsent
        for op, line in zip(ops[1:], lines[1:], strict=True):
            kind, *args = op.split(":")
            if kind == "a":
                model.extend(range(int(args[0]), int(args[0]) + int(args[1])))
            elif kind == "p":
                assert line["seqs"] == list(model)[: int(args[0])], op
            else:
                did = min(int(args[0]), len(model))
                assert line["did"] == did
                for _ in range(did):
                    model.popleft()
            assert line["count"] == line["n"] == len(model)
            assert line["dropped"] == 0
    assert next_seq > 200 and len(segments(folder)) > 3
    # Everything sent: the used-up segments are deleted.
    lines = ring(micropython, folder, f"d:{len(model)}", "p:10", max_bytes=65536,
                 segment_bytes=512)
    assert lines[-1]["seqs"] == [] and lines[-1]["count"] == 0
    assert len(segments(folder)) <= 1


def test_when_full_the_oldest_are_dropped_and_counted(micropython: str, tmp_path: Path) -> None:
    folder = tmp_path / "buf"
    lines = ring(micropython, folder, "pad:40", "a:0:20", "d:5", "a:20:180", "p:1000",
                 max_bytes=2048, segment_bytes=512)
    end = lines[-1]
    assert 0 < end["dropped"] < 200 and end["bytes"] <= 2048
    assert end["count"] + end["dropped"] + 5 == 200  # sent + lost + waiting = appended
    assert end["seqs"] == list(range(200 - end["count"], 200))  # the newest are kept
    assert sum(p.stat().st_size for p in segments(folder)) == end["bytes"]
    # The loss count survives a restart, and keeps counting.
    lines = ring(micropython, folder, "pad:40", "a:200:100", "p:1000",
                 max_bytes=2048, segment_bytes=512)
    assert lines[0]["dropped"] == end["dropped"] and lines[0]["count"] == end["count"]
    last = lines[-1]
    assert last["count"] + last["dropped"] + 5 == 300
    assert last["seqs"] == list(range(300 - last["count"], 300))
    assert sum(p.stat().st_size for p in segments(folder)) <= 2048


TORN = [1, 4, 5, 13, 14, 15, 20, -2, -1]  # bytes of the last line left after the cut


@pytest.mark.parametrize("kept", TORN)
def test_power_cut_mid_write_loses_only_the_torn_line(
    micropython: str, tmp_path: Path, kept: int
) -> None:
    folder = tmp_path / "buf"
    ring(micropython, folder, "pad:10", "a:0:6", "d:2")
    (last,) = segments(folder)
    data = last.read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1  # where the line of message 5 starts
    line_len = len(data) - start
    last.write_bytes(data[: start + (kept if kept > 0 else line_len + kept)])
    # Only the newline lost (-1): the message itself is whole and its CRC proves it, so the
    # restart ends the line and keeps it. Any shorter piece is skipped.
    kept_msgs = [2, 3, 4, 5] if kept == -1 else [2, 3, 4]
    lines = ring(micropython, folder, "p:100", "pad:10", "a:6:2", "p:100")
    assert lines[0]["count"] == len(kept_msgs)
    assert lines[1]["seqs"] == kept_msgs
    assert lines[-1]["seqs"] == [*kept_msgs, 6, 7]  # appending after the cut works
    lines = ring(micropython, folder, "p:100", "d:4", "p:100")  # and after another restart
    assert lines[0]["count"] == len(kept_msgs) + 2 and lines[1]["seqs"] == [*kept_msgs, 6, 7]
    assert lines[-1]["seqs"] == [*kept_msgs, 6, 7][4:]


@pytest.mark.parametrize("junk", [b"\x00" * 40, b"\xff" * 300, b"0005 zz\n\n\n", b"ffff 12"])
def test_junk_after_a_power_cut_is_skipped(micropython: str, tmp_path: Path, junk: bytes) -> None:
    """FAT (or a flash write cut short) can leave zeros, erased bytes or nonsense at the end."""
    folder = tmp_path / "buf"
    ring(micropython, folder, "a:0:3")
    (last,) = segments(folder)
    last.write_bytes(last.read_bytes() + junk)
    lines = ring(micropython, folder, "p:100", "a:3:1", "p:100")
    assert lines[1]["seqs"] == [0, 1, 2]
    assert lines[-1]["seqs"] == [0, 1, 2, 3]


def test_a_damaged_message_in_the_middle_is_skipped(micropython: str, tmp_path: Path) -> None:
    folder = tmp_path / "buf"
    ring(micropython, folder, "a:0:5")
    (last,) = segments(folder)
    data = bytearray(last.read_bytes())
    third = data.index(b'{"seq": 2}')
    data[third + 2] ^= 0x01  # one flipped bit in the message of seq 2
    last.write_bytes(bytes(data))
    lines = ring(micropython, folder, "p:100")
    assert lines[0]["count"] == 4 and lines[1]["seqs"] == [0, 1, 3, 4]


@pytest.mark.parametrize("pad", [0, 40])  # 40: the messages fill several segments
@pytest.mark.parametrize("damage", ["garbage", "torn", "missing", "beyond_end"])
def test_a_bad_cursor_resends_but_never_loses(
    micropython: str, tmp_path: Path, damage: str, pad: int
) -> None:
    folder = tmp_path / "buf"
    ops = (f"pad:{pad}", "a:0:20", "d:9")
    ring(micropython, folder, *ops, max_bytes=8192, segment_bytes=256)
    cursor = folder / "cursor"
    first = int(cursor.read_text().split()[0])
    if damage == "garbage":
        cursor.write_bytes(b"\x00\x13 hello")
    elif damage == "torn":
        cursor.write_bytes(cursor.read_bytes()[:4])
    elif damage == "missing":
        cursor.unlink()
    else:  # a valid-looking cursor past the end of its segment
        cursor.write_bytes(checked_text(f"{first} 99999 0"))
    lines = ring(micropython, folder, "p:100")
    got = lines[1]["seqs"]
    assert got == list(range(got[0], 20)) and got[0] <= 9  # duplicates at most, no loss
    assert lines[0]["count"] == len(got)


def test_cursor_new_left_by_a_power_cut_is_used(micropython: str, tmp_path: Path) -> None:
    folder = tmp_path / "buf"
    ring(micropython, folder, "a:0:10", "d:4")
    cursor = folder / "cursor"
    cursor.with_name("cursor.new").write_bytes(cursor.read_bytes())
    cursor.write_bytes(b"half a cur")
    lines = ring(micropython, folder, "p:100", "d:1", "p:100")
    assert lines[1]["seqs"] == list(range(4, 10))  # exactly the unsent ones
    assert lines[-1]["seqs"] == list(range(5, 10))
    assert not cursor.with_name("cursor.new").exists()


def test_power_cut_after_any_flash_write_on_littlefs(micropython: str, tmp_path: Path) -> None:
    """A power cut after each block write or erase, on MicroPython's own littlefs.

    The runner simulates the flash chip in RAM and keeps an image after every write while a
    device loop takes seqs, buffers messages, acknowledges some and overflows. Each image is
    then mounted as after a restart. Cuts INSIDE a block write (half-programmed pages) and
    real flash timing are not simulated: only a real board can show those.
    """
    images = tmp_path / "images"
    images.mkdir()
    record = run(micropython, "lfs-record", images, heap="256k")
    checks = run(micropython, "lfs-check", images, heap="256k")
    assert len(record) == len(checks) > 100
    for was, now in zip(record, checks, strict=True):
        done = was["done"]
        assert now["mounted"], was
        seqs = now["seqs"]
        first = seqs[0] if seqs else done["appended"]  # an empty buffer: nothing unsent
        assert seqs == list(range(first, first + len(seqs))), now  # in order, no gaps
        assert now["count"] == len(seqs)
        # Every message is sent, counted as dropped, or still here; at most the one being
        # written when the power went off is missing, at most the ones being acked are extra.
        assert done["appended"] <= first + len(seqs) <= done["appended"] + done["appending"]
        sent = first - now["dropped"]
        if seqs:
            assert done["acked"] <= sent <= done["acked"] + done["acking"], (was, now)
        assert now["next_seq"] >= done["taken"]  # never a repeated seq
    assert checks[-1]["dropped"] > 0 and checks[-1]["count"] > 0


# --- what a board gets ------------------------------------------------------------------

def test_mpy_cross_compiles_and_runs_in_a_small_heap(micropython: str, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    for source in (LIB / "mk_store.py", RUNNER):  # the runner too: compiling it costs heap
        mpy_cross(source, lib / (source.stem + ".mpy"))
    assert (lib / "mk_store.mpy").stat().st_size > 1000
    (crc,) = run(micropython, "crc", lib=lib, heap=SMALL_HEAP)
    assert all(crc["same"])
    ops = ["pad:200", "a:0:200", *(["p:10", "d:10"] * 30)]
    lines = run(micropython, "ring", tmp_path / "buf", 16384, 4096, *ops, lib=lib, heap=SMALL_HEAP)
    end = lines[-1]
    assert end["count"] == 0 and end["dropped"] + lines[1]["count"] == 200
    assert end["bytes"] <= 16384

# mk_store — what a machikit device keeps in flash between restarts.
#
#   SeqStore    the message sequence number (`seq`) and the boot counter (`boot`)
#   RingBuffer  the offline buffer: messages waiting while Wi-Fi or the broker is down
#
# Why this file is careful:
# - The power can go off at ANY moment (a bus engine stops, a snow-gauge battery runs flat).
#   Nothing here may be left half-written in a way that crashes the device or sends a
#   damaged message after the next start.
# - Flash memory wears out after many writes, so we write as little as we can.
# - A Pico W has only about 150-200 KB of free memory, so we never read a whole file at once.
#
# Everything works on plain files, so the same code runs on a board (littlefs, the default
# file system of the Pico W and ESP32 ports) and on the MicroPython unix port used by the tests.
# Note: littlefs survives power cuts; FAT does not. Keep the board on littlefs.
#
# MicroPython-safe on purpose: only `os` (and `binascii` when present), plain classes,
# %-formatting, no typing, no pathlib, no f-strings.

import os

try:
    from binascii import crc32 as _c_crc32  # fast, written in C (Pico W, ESP32, unix port)
except ImportError:
    _c_crc32 = None  # type: ignore[assignment]


def _py_crc32(data):
    # The same CRC-32 as binascii/zlib, in Python, for ports built without binascii.crc32.
    # It must give identical numbers: files written by one build are read by another.
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            if crc & 1:
                crc = (crc >> 1) ^ 0xEDB88320
            else:
                crc >>= 1
    return crc ^ 0xFFFFFFFF


def crc32(data):
    """CRC-32 of bytes: a fingerprint that changes when any byte is damaged or missing."""
    if _c_crc32 is not None:
        return _c_crc32(data) & 0xFFFFFFFF
    return _py_crc32(data)


# --- small files that are replaced as a whole ---------------------------------------------
#
# A small state file (the sequence reservation, the buffer's read position) is never
# overwritten in place: a power cut in the middle would leave half a number. Instead we
# write a new file next to it, `<path>.new`, and then rename it over the old one. On littlefs
# a rename is atomic: after a power cut there is either the old file or the new one.
# Each file ends with its own CRC, so a reader can also tell a damaged copy and use the other.

def write_atomic(path, text):
    """Replace the file `path` with `text` (one line, no newline) plus its CRC."""
    data = text.encode()
    tmp = path + ".new"
    f = open(tmp, "wb")
    try:
        f.write(data + (" %08x\n" % crc32(data)).encode())
    finally:
        f.close()  # on littlefs, close() is the moment the data is committed
    os.rename(tmp, path)  # replaces the old file (atomic on littlefs)


def read_checked(path, limit=128):
    """The text stored by write_atomic, or None if the file is missing or damaged.
    At most `limit` bytes are read (our state files are tiny); a longer file fails its check."""
    try:
        f = open(path, "rb")
        try:
            raw = f.read(limit)
        finally:
            f.close()
    except OSError:
        return None
    raw = raw.strip()
    space = raw.rfind(b" ")
    if space < 0:
        return None
    data = raw[:space]
    try:
        if int(raw[space + 1:], 16) != crc32(data):
            return None
        return data.decode()
    except (ValueError, UnicodeError):
        return None


def _numbers(text, how_many):
    # "12 34 5" -> [12, 34, 5], or None if the text is not exactly that many integers >= 0.
    if text is None:
        return None
    parts = text.split()
    if len(parts) != how_many:
        return None
    try:
        out = [int(p) for p in parts]
    except ValueError:
        return None
    for n in out:
        if n < 0:
            return None
    return out


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


# --- the sequence number ------------------------------------------------------------------

class SeqStore:
    """The per-device sequence number (`seq`) that never repeats, and the boot counter.

    Why: the collector recognises a message by (device, seq, time). If `seq` went back to 0
    after every restart, a replayed message could look like an old one.

    Saving the number after every message would wear the flash out, so we RESERVE a block:
    the file says "numbers below N may have been used". We hand out numbers from memory and
    write a new N only when the block is used up. After a restart we start at N. So numbers
    never repeat; after a restart some are skipped (a gap is fine, a repeat is not).

    One write per start (the boot counter and a fresh block) and one per `block` messages.

        seqs = SeqStore("/state/seq")
        seq = seqs.next()      # 0, 1, 2, ... ; after a restart: 100, 101, ...
        seqs.boot              # 1 on the first start, then 2, 3, ...

    If the flash was erased (both copies lost or damaged), numbering starts again at 0.
    """

    def __init__(self, path, block=100):
        if block < 1:
            raise ValueError("block must be at least 1")
        self.path = path
        self.block = block
        reserved = 0
        boot = 0
        # The file, and `.new` in case the power went off between writing it and the rename.
        # Taking the larger value of each is always safe: it can only skip numbers.
        for name in (path, path + ".new"):
            nums = _numbers(read_checked(name), 2)
            if nums is not None:
                reserved = max(reserved, nums[0])
                boot = max(boot, nums[1])
        self.boot = boot + 1
        self._next = reserved  # nothing at or above the saved reservation was ever used
        self._reserved = reserved + block
        self._save()

    def _save(self):
        write_atomic(self.path, "%d %d" % (self._reserved, self.boot))

    def next(self):
        """The next sequence number. Reserves (writes) a new block when needed."""
        seq = self._next
        if seq >= self._reserved:
            # Save BEFORE handing the number out: if the write fails we raise,
            # rather than risk giving out a number that a restart would give again.
            self._reserved = seq + self.block
            self._save()
        self._next = seq + 1
        return seq

    def reserved(self):
        """The number the file holds: after a restart, numbering continues from here."""
        return self._reserved


# --- the offline buffer -------------------------------------------------------------------
#
# Files in the buffer's folder:
#   00000001.log, 00000002.log, ...   segments: messages, oldest segment first
#   cursor                            where the oldest unsent message starts (plus `dropped`)
#
# A line in a segment:  "LLLL CCCCCCCC <message>\n"
#   LLLL      the message length in bytes, 4 hex digits
#   CCCCCCCC  the CRC-32 of the message, 8 hex digits
# A power cut while writing leaves a torn last line. Its length or CRC does not match, so the
# reader skips it: it never crashes and never returns a damaged message. (If only the final
# newline is missing, the CRC proves the message whole and it is kept.) At the next start the
# torn line is ended with a newline, so new messages begin on a fresh line.
#
# Flash wear: the buffer writes only while the device is offline (one append per message,
# one small cursor write per drop() call, so acknowledge in batches).

_HEADER = 14  # "LLLL CCCCCCCC " before the message
_SUFFIX = ".log"


def frame(msg):
    """One line for a segment file: length, CRC, message, newline."""
    return ("%04x %08x " % (len(msg), crc32(msg))).encode() + msg + b"\n"


def _message_size(head, largest):
    # The length in a line's 14-byte header, or None if the header is damaged or
    # announces more than a segment can hold (reading that much could exhaust the memory).
    if len(head) != _HEADER or head[4] != 32 or head[13] != 32:
        return None
    try:
        size = int(head[:4], 16)
        int(head[5:13], 16)
    except ValueError:
        return None
    if size > largest:
        return None
    return size


def _checked(head, body):
    # The message if `body` (message + newline) matches the CRC in `head`, else None.
    if len(body) < 1 or body[-1] != 10:
        return None
    msg = body[:-1]
    if crc32(msg) != int(head[5:13], 16):
        return None
    return msg


def _skip_line(f, pos):
    # Read small pieces up to and including the next newline; return the position after it.
    while True:
        piece = f.readline(64)
        if not piece:
            return pos
        pos += len(piece)
        if piece[-1] == 10:
            return pos


class RingBuffer:
    """A bounded buffer in flash for messages that could not be sent yet.

        buf = RingBuffer("/buffer", max_bytes=65536, segment_bytes=8192)
        buf.append(contract.encode(msg))     # while offline
        items = buf.peek(50)                 # oldest first, as bytes
        ... publish them; after the broker confirmed (PUBACK):
        buf.drop(len(items))

    Messages are bytes or str without a newline (contract.encode gives such bytes).
    They are appended to segment files; each append opens, writes and closes the file,
    so what was appended is on flash when append() returns. The folder must exist or be
    creatable with one os.mkdir.

    WHEN FULL, THE OLDEST SEGMENT IS DELETED to make room. Why the oldest: a live map
    needs the newest positions and readings most; old ones matter less. The number of
    messages lost this way is kept in `dropped` (saved across restarts) so the device can
    report it in its status message: a loss is never silent.

    After a restart the buffer continues where it was. If the read position (the `cursor`
    file) is lost or damaged, it starts again at the oldest message still on flash: some
    messages may be sent twice, which is harmless (the collector stores each seq once),
    but none is lost.

    Memory: messages are read line by line, never a whole segment; peek(n) holds n messages.
    """

    def __init__(self, dirpath, max_bytes=65536, segment_bytes=8192):
        if segment_bytes < 64 or max_bytes < 2 * segment_bytes:
            # Two segments at least: one being written while an older one is deleted.
            raise ValueError("need segment_bytes >= 64 and max_bytes >= 2 * segment_bytes")
        self.dir = dirpath
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.dropped = 0  # messages deleted unsent because the buffer was full
        # One entry per segment file, oldest first: [number, size in bytes, unsent messages].
        self._segs = []
        self._off = 0  # where the oldest unsent message starts, in the first segment
        self._count = 0  # unsent messages in all segments
        self._bytes = 0  # size of all segment files
        self._next_num = 1  # the number of the next new segment
        if not _exists(dirpath):
            os.mkdir(dirpath)
        self._load()

    # -- public ---------------------------------------------------------------------------

    def __len__(self):
        return self._count

    def count(self):
        """Messages waiting to be sent (the `buffered` of the status message)."""
        return self._count

    def bytes_used(self):
        """Bytes the segment files take on flash (at most max_bytes)."""
        return self._bytes

    def append(self, msg):
        """Store one message (bytes or str, no newline) at the end of the buffer."""
        if isinstance(msg, str):
            msg = msg.encode()
        if b"\n" in msg:
            raise ValueError("a message must not contain a newline")
        line = frame(msg)
        if len(line) > self.segment_bytes or len(msg) > 0xFFFF:
            raise ValueError("message too long for a segment")
        if not self._segs or self._segs[-1][1] + len(line) > self.segment_bytes:
            self._start_segment()
        # Make room by deleting the oldest segments (never the one being written).
        while self._bytes + len(line) > self.max_bytes and len(self._segs) > 1:
            self._drop_oldest()
        seg = self._segs[-1]
        f = open(self._name(seg[0]), "ab")
        try:
            f.write(line)
        finally:
            f.close()
        seg[1] += len(line)
        seg[2] += 1
        self._bytes += len(line)
        self._count += 1

    def peek(self, n):
        """Up to n of the oldest unsent messages, oldest first, as bytes. Changes nothing."""
        out = []  # type: list
        for i in range(len(self._segs)):
            if len(out) >= n:
                break
            seg = self._segs[i]
            if seg[2]:
                self._walk(seg[0], self._off if i == 0 else 0, n - len(out), out)
        return out

    def drop(self, n):
        """Forget the n oldest messages: they were delivered. Returns how many were dropped.

        Saves the new read position (one small write) and deletes used-up segments.
        """
        n = min(n, self._count)
        if n <= 0:
            return 0
        left = n
        done = []  # fully sent segments, deleted after the cursor is saved
        while left > 0:
            seg = self._segs[0]
            if len(self._segs) > 1 and left >= seg[2]:
                left -= seg[2]
                done.append(self._segs.pop(0))
                self._off = 0
            elif left >= seg[2]:
                # The segment being written, now fully sent: the position is its end.
                seg[2] = 0
                left = 0
                self._off = seg[1]
            else:
                self._off = self._walk(seg[0], self._off, left, None)[1]
                seg[2] -= left
                left = 0
        self._count -= n
        # Cursor first, then delete: if the power goes off in between, the cursor already
        # points past the deleted segments, and a restart deletes them.
        self._save_cursor()
        for seg in done:
            self._remove(seg)
        return n

    # -- inside ---------------------------------------------------------------------------

    def _name(self, num):
        return "%s/%08d%s" % (self.dir, num, _SUFFIX)

    def _cursor_path(self):
        return self.dir + "/cursor"

    def _save_cursor(self):
        num = self._segs[0][0] if self._segs else self._next_num - 1
        write_atomic(self._cursor_path(), "%d %d %d" % (num, self._off, self.dropped))

    def _remove(self, seg):
        self._bytes -= seg[1]
        try:
            os.remove(self._name(seg[0]))
        except OSError:
            pass  # already gone: fine

    def _start_segment(self):
        # A segment being written that has been sent completely can go right away.
        if len(self._segs) == 1 and self._segs[0][2] == 0:
            self._remove(self._segs.pop(0))
            self._off = 0
        self._segs.append([self._next_num, 0, 0])
        self._next_num += 1

    def _drop_oldest(self):
        seg = self._segs.pop(0)
        self.dropped += seg[2]
        self._count -= seg[2]
        self._off = 0
        self._save_cursor()  # remembers `dropped`, and that this segment is gone
        self._remove(seg)

    def _walk(self, num, start, limit, out):
        # Read segment `num` message by message from byte `start`. Count the good messages
        # (adding them to `out` if it is a list) until `limit` (None: to the end). Torn or
        # damaged lines are skipped. Returns (good messages, byte position after the last).
        #
        # Memory: we read the 14-byte header first and then exactly the announced length,
        # so each message needs one buffer of its own size. (readline(limit) would reserve
        # `limit` bytes for every line, and chop the heap of a small board into pieces.)
        largest = self.segment_bytes - _HEADER - 1
        count = 0
        pos = start
        f = open(self._name(num), "rb")
        try:
            f.seek(start)
            while limit is None or count < limit:
                head = f.read(_HEADER)
                if not head:
                    break  # end of the file
                msg = None
                size = _message_size(head, largest)
                if size is not None:
                    msg = _checked(head, f.read(size + 1))
                if msg is None:
                    # Torn or damaged: go back and skip to the end of this line.
                    f.seek(pos)
                    pos = _skip_line(f, pos)
                    continue
                pos += _HEADER + size + 1
                count += 1
                if out is not None:
                    out.append(msg)
        finally:
            f.close()
        return count, pos

    def _load(self):
        nums = []
        for name in os.listdir(self.dir):
            if len(name) == 8 + len(_SUFFIX) and name.endswith(_SUFFIX):
                try:
                    nums.append(int(name[:8]))
                except ValueError:
                    pass
        nums.sort()
        # The cursor, or its `.new` copy if the power went off before the rename
        # (the `.new` one is then the newer). If both are damaged: start at the oldest
        # message on flash. Some may be sent again; none is lost.
        cursor = _numbers(read_checked(self._cursor_path() + ".new"), 3)
        if cursor is None:
            cursor = _numbers(read_checked(self._cursor_path()), 3)
        first, off = 0, 0
        if cursor is not None:
            first, off, self.dropped = cursor
        for num in nums:
            size = os.stat(self._name(num))[6]
            if num < first:
                # Sent already; deleting it was interrupted by a power cut.
                try:
                    os.remove(self._name(num))
                except OSError:
                    pass
                continue
            self._segs.append([num, size, 0])
            self._bytes += size
        self._next_num = max([first] + nums) + 1
        if self._segs and self._segs[0][0] == first and off <= self._segs[0][1]:
            self._off = off
        else:
            self._off = 0  # that segment is gone (dropped or sent), or the cursor is odd
        if self._segs:
            self._close_torn_line(self._segs[-1])
        for i in range(len(self._segs)):
            seg = self._segs[i]
            seg[2] = self._walk(seg[0], self._off if i == 0 else 0, None, None)[0]
            self._count += seg[2]

    def _close_torn_line(self, seg):
        # If the last write was cut off, the file does not end with a newline. Without a fix,
        # the next message would be glued to the torn piece and both would be lost. Ending
        # the torn piece with a newline makes it one bad line that the reader skips.
        if seg[1] == 0:
            return
        f = open(self._name(seg[0]), "rb")
        try:
            f.seek(seg[1] - 1)
            last = f.read(1)
        finally:
            f.close()
        if last != b"\n":
            f = open(self._name(seg[0]), "ab")
            try:
                f.write(b"\n")
            finally:
                f.close()
            seg[1] += 1
            self._bytes += 1

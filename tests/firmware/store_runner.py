# Drives firmware/lib/mk_store.py on the real MicroPython unix port for test_store.py.
# One run of this script = one "boot" of the device: a restart is simply the next run.
#
#   micropython -X heapsize=... store_runner.py seq PATH BLOCK TAKE
#   micropython -X heapsize=... store_runner.py ring DIR MAX_BYTES SEGMENT_BYTES OP...
#
# OPs for `ring`, each printing one JSON line:
#   a:START:COUNT   append messages {"seq":START} ... {"seq":START+COUNT-1}
#   p:N             peek N  -> "seqs" of the messages returned
#   d:N             drop N
#   pad:N           later messages carry N bytes of padding
#
#   micropython -X heapsize=256k store_runner.py lfs-record SNAPDIR
#   micropython -X heapsize=256k store_runner.py lfs-check SNAPDIR
# Power cuts on real littlefs (MicroPython's own C littlefs, as on a Pico W), on a flash chip
# simulated in RAM: `lfs-record` saves an image of the chip after EVERY block write or erase
# while a device loop takes seqs, buffers messages and acknowledges some; `lfs-check` mounts
# each image (= the power went off right after that write) and reopens the stores.
# The last line is {"op": "end", "alloc": ...}: heap bytes still in use after a collection.
import gc
import json
import os
import sys

import mk_store


def state(buf, op):
    return {"op": op, "count": len(buf), "n": buf.count(), "bytes": buf.bytes_used(),
            "dropped": buf.dropped}


def run_seq(path, block, take):
    writes = [0]
    original = mk_store.write_atomic

    def counting(name, text):
        writes[0] += 1
        original(name, text)

    mk_store.write_atomic = counting
    store = mk_store.SeqStore(path, block)
    seqs = [store.next() for _ in range(take)]
    print(json.dumps({"op": "seq", "boot": store.boot, "seqs": seqs, "writes": writes[0],
                      "reserved": store.reserved()}))


def run_ring(folder, max_bytes, segment_bytes, ops):
    buf = mk_store.RingBuffer(folder, max_bytes, segment_bytes)
    print(json.dumps(state(buf, "open")))
    pad = ""
    for op in ops:
        parts = op.split(":")
        if parts[0] == "pad":
            pad = "x" * int(parts[1])
            continue
        if parts[0] == "a":
            start = int(parts[1])
            for seq in range(start, start + int(parts[2])):
                msg = {"seq": seq}
                if pad:
                    msg["pad"] = pad
                buf.append(json.dumps(msg))
            line = state(buf, op)
        elif parts[0] == "p":
            line = state(buf, op)
            line["seqs"] = [json.loads(m)["seq"] for m in buf.peek(int(parts[1]))]
        elif parts[0] == "d":
            dropped = buf.drop(int(parts[1]))
            line = state(buf, op)
            line["did"] = dropped
        else:
            raise ValueError(op)
        print(json.dumps(line))


def run_crc():
    # The Python fallback must agree with binascii.crc32 byte for byte.
    samples = [b"", b"a", b"hello", bytes(range(256)), "用紙が残っています".encode()]
    same = [mk_store._py_crc32(s) == mk_store.crc32(s) for s in samples]
    print(json.dumps({"op": "crc", "same": same, "c": mk_store._c_crc32 is not None}))


class FlashChip:
    # A block device as os.VfsLfs2 wants it (the "extended" interface of MicroPython).
    def __init__(self, block_size, blocks, on_write=None):
        self.block_size = block_size
        self.data = bytearray(b"\xff" * (block_size * blocks))
        self.on_write = on_write

    def readblocks(self, block, buf, offset=0):
        start = block * self.block_size + offset
        buf[:] = self.data[start:start + len(buf)]

    def writeblocks(self, block, buf, offset=0):
        start = block * self.block_size + offset
        self.data[start:start + len(buf)] = buf
        if self.on_write:
            self.on_write()

    def ioctl(self, op, arg):
        if op == 4:  # number of blocks
            return len(self.data) // self.block_size
        if op == 5:  # block size
            return self.block_size
        if op == 6:  # erase a block: flash erases to 0xff
            start = arg * self.block_size
            self.data[start:start + self.block_size] = b"\xff" * self.block_size
            if self.on_write:
                self.on_write()
            return 0
        return None


def lfs_record(snapdir):
    # What the device had completed when each image was taken, one JSON line per image.
    done = {"taken": 0, "appended": 0, "acked": 0, "acking": 0, "appending": 0}
    images = [0]

    def snapshot():
        with open(snapdir + "/" + str(images[0]) + ".img", "wb") as f:
            f.write(chip.data)
        print(json.dumps({"op": "image", "n": images[0], "done": done}))
        images[0] += 1

    chip = FlashChip(512, 64)
    os.VfsLfs2.mkfs(chip)
    os.mount(os.VfsLfs2(chip), "/flash")
    chip.on_write = snapshot
    seqs = mk_store.SeqStore("/flash/seq", 8)
    buf = mk_store.RingBuffer("/flash/buf", 2048, 512)  # small: it overflows too
    for i in range(60):
        seq = seqs.next()
        done["taken"] = seq + 1
        done["appending"] = 1
        buf.append(json.dumps({"seq": seq, "pad": "x" * 30}))
        done["appended"] += 1
        done["appending"] = 0
        if i % 9 == 8:
            n = len(buf.peek(3))
            done["acking"] = n
            buf.drop(n)
            done["acked"] += n
            done["acking"] = 0
    chip.on_write = None
    os.umount("/flash")


def lfs_check(snapdir):
    chip = FlashChip(512, 64)
    names = [name for name in os.listdir(snapdir) if name.endswith(".img")]
    for n in range(len(names)):
        with open(snapdir + "/" + str(n) + ".img", "rb") as f:
            f.readinto(chip.data)
        line = {"op": "check", "n": n}
        try:
            os.mount(os.VfsLfs2(chip), "/flash")
        except OSError:
            line["mounted"] = False  # before mkfs finished: a blank chip
            print(json.dumps(line))
            continue
        line["mounted"] = True
        line["next_seq"] = mk_store.SeqStore("/flash/seq", 8).next()
        buf = mk_store.RingBuffer("/flash/buf", 2048, 512)
        line["count"] = len(buf)
        line["dropped"] = buf.dropped
        line["seqs"] = [json.loads(m)["seq"] for m in buf.peek(100)]
        os.umount("/flash")
        print(json.dumps(line))


def main(args):
    if args[0] == "seq":
        run_seq(args[1], int(args[2]), int(args[3]))
    elif args[0] == "ring":
        run_ring(args[1], int(args[2]), int(args[3]), args[4:])
    elif args[0] == "lfs-record":
        lfs_record(args[1])
    elif args[0] == "lfs-check":
        lfs_check(args[1])
    elif args[0] == "crc":
        run_crc()
    gc.collect()
    print(json.dumps({"op": "end", "alloc": gc.mem_alloc()}))


main(sys.argv[1:])

"""Fetch micropython-lib's umqtt.simple into firmware/lib/umqtt/, reproducibly.

Workshops often have no internet, so the MQTT client ships inside the repository. This
script is how the copy got there and how anyone can check it: it downloads the PyPI sdist,
refuses it unless its sha256 matches the pinned one, and copies `umqtt/simple.py` byte for
byte (no edits: see firmware/lib/umqtt/VENDOR.md for what machikit does around it).

    python tools/vendor_umqtt.py            # download, verify, copy
    python tools/vendor_umqtt.py --check    # verify the vendored copy matches the sdist
"""

import argparse
import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

VERSION = "1.3.4"
URL = (
    "https://files.pythonhosted.org/packages/bd/cf/"
    "697e3418b2f44222b3e848078b1e33ee76aedca9b6c2430ca1b1aec1ce1d/"
    "micropython-umqtt.simple-1.3.4.tar.gz"
)
SHA256 = "b6a2520239e3992c63a7de9370ee9b3d9d27819a90359c521f1c0f7ccab8d12f"
MEMBER = f"micropython-umqtt.simple-{VERSION}/umqtt/simple.py"
TARGET = Path(__file__).resolve().parent.parent / "firmware" / "lib" / "umqtt" / "simple.py"


def fetch(url: str = URL) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        data: bytes = response.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"sha256 mismatch: got {digest}, expected {SHA256}")
    return data


def simple_py(sdist: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(sdist), mode="r:gz") as tar:
        member = tar.extractfile(MEMBER)
        if member is None:
            raise SystemExit(f"{MEMBER} not in the sdist")
        return member.read()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only compare the vendored file with the sdist")
    args = parser.parse_args(argv)
    source = simple_py(fetch())
    if args.check:
        same = TARGET.exists() and TARGET.read_bytes() == source
        print(f"{TARGET}: {'matches' if same else 'DIFFERS FROM'} umqtt.simple {VERSION}")
        return 0 if same else 1
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_bytes(source)
    init = TARGET.with_name("__init__.py")
    if not init.exists():
        init.write_bytes(b"")  # the sdist has none; MicroPython needs none, CPython tools do
    print(f"wrote {TARGET} ({len(source)} bytes, umqtt.simple {VERSION}, sha256 verified)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

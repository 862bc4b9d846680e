"""The CA certificate a board checks its broker against, made ready for the board.

A town gives the file its CA (or, for a broker with a public certificate such as Let's
Encrypt, the root that issued it: MicroPython has no system store of CAs). Usually that
file is PEM (text between BEGIN/END CERTIFICATE lines), sometimes DER (binary). The board
gets DER, every certificate one after the other, in ca.der next to config.json: MicroPython's
tls module reads one DER certificate per call, and DER needs no text decoding on the board.
Several certificates are allowed on purpose: while a town changes its CA, boards trust both.
"""

import re
import ssl
from pathlib import Path

BOARD_FILE = "ca.der"  # its name on the board; config.json's broker.ca says it
MAX_BYTES = 8192  # the firmware refuses a larger file (firmware/lib/mk_config.py MAX_CA)

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


class CertificateError(Exception):
    """The file is not what a board can use; the message says why, in English."""


def board_ca(path: Path) -> bytes:
    """The DER bytes for the board from a PEM or DER file of one or more certificates."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CertificateError(f"{path}: {err.strerror or err}") from err
    blocks = _PEM.findall(data)
    if blocks:
        der = b"".join(ssl.PEM_cert_to_DER_cert(block.decode("ascii")) for block in blocks)
    elif data[:1] == b"\x30":
        der = data
    else:
        raise CertificateError(f"{path}: no certificate (expected PEM or DER)")
    _check(der, path)
    return der


def _check(der: bytes, path: Path) -> None:
    # Read the certificates the way a client would (a torn copy, a key file picked by mistake
    # or the server's own certificate is found here, not on a board that never connects).
    if len(der) > MAX_BYTES:
        raise CertificateError(f"{path}: {len(der)} bytes, a board takes {MAX_BYTES}")
    try:
        stats = ssl.create_default_context(cadata=der).cert_store_stats()
    except (ssl.SSLError, ValueError) as err:
        raise CertificateError(f"{path}: not a certificate ({err})") from err
    if stats["x509_ca"] != stats["x509"]:
        raise CertificateError(f"{path}: not a CA certificate (the server's own?)")

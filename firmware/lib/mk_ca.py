# mk_ca — the CA certificate(s) a board checks its broker's certificate against.
#
#   certs, why = mk_ca.read_ca("ca.der")   # mk_config.load does this for broker.ca
#   link = mk_mqtt.Link(..., tls=True, cadata=certs)
#
# The file is written by `machikit flash --ca` (machikit/flash/certs.py): DER certificates,
# one after the other. Why DER and a list: MicroPython's tls module takes one certificate
# per load_verify_locations() call, and DER needs no text decoding on the board. More than
# one is how a town changes its CA: its boards trust the old and the new one for a while.
#
# Kept out of mk_config.py: only boards that check their broker load it.
# MicroPython-safe: plain functions, %-formatting, no f-strings.

import os

MAX_CA = 8192  # bytes of the file (a few certificates; ISRG Root X1 alone is 1391)


def der_certificates(data):
    """The certificates of `data` as a list of bytes. ValueError unless whole DER."""
    certs = []
    i = 0
    while i < len(data):
        # Each certificate is an ASN.1 SEQUENCE: 0x30, then its length (short or long form).
        if data[i] != 0x30 or i + 2 > len(data):
            raise ValueError("not DER")
        size, head = data[i + 1], 2
        if size & 0x80:
            count = size & 0x7F
            if not 1 <= count <= 3 or i + 2 + count > len(data):
                raise ValueError("bad DER length")
            size = 0
            for b in data[i + 2:i + 2 + count]:
                size = (size << 8) | b
            head += count
        end = i + head + size
        if end > len(data):
            raise ValueError("DER cut short")
        certs.append(data[i:end])
        i = end
    if not certs:
        raise ValueError("empty")
    return certs


def read_ca(path):
    """(list of DER certificates, None), or (None, (japanese, english)): why not.
    Never raises: a board with a bad file runs "not configured" and says so."""
    try:
        size = os.stat(path)[6]
    except OSError:
        return None, ("設定 broker.ca の証明書ファイル %s がありません" % path,
                      "broker.ca: file %s is missing" % path)
    if size > MAX_CA:
        return None, ("証明書ファイル %s が大きすぎます（%d バイトまで）" % (path, MAX_CA),
                      "file %s is larger than %d bytes" % (path, MAX_CA))
    try:
        f = open(path, "rb")
        try:
            return der_certificates(f.read(size)), None
        finally:
            f.close()
    except (OSError, ValueError):
        return None, ("証明書ファイル %s が読めません（DER の証明書ではありません）" % path,
                      "file %s is not DER certificates" % path)

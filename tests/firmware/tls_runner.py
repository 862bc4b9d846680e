# Drives firmware/lib/mk_mqtt.py over TLS on the real MicroPython unix port for
# test_mqtt_tls.py, against a TLS Mosquitto (tests/collector/tls_broker.py).
#
#   micropython tls_runner.py SERVER PORT USER PASSWORD TOWN DEVICE CA T0
#       CA: the board's CA file (DER, read with mk_ca.read_ca as mk_config does), or "-"
#       for none. Connects once, sends one reading if connected, says goodbye.
import json
import sys

import contract
import mk_ca
import mk_config
import mk_mqtt


def out(line):
    print(json.dumps(line))


def main(server, port, user, password, town, device, ca, t0):
    cadata = None
    if ca != "-":
        cadata, why = mk_ca.read_ca(ca)
        problem = mk_config.problem(*why) if why else None  # the line the board would log
        out({"op": "ca", "count": None if cadata is None else len(cadata), "problem": problem})
    link = mk_mqtt.Link(town, device, server, port, user, password, tls=True, cadata=cadata,
                        timeout_s=5)
    ok = link.connect()
    out({"op": "connect", "ok": ok, "error": link.last_error, "attempts": link.attempts})
    if ok:
        msg = contract.reading(0, t0, "snow_depth", 12.5, "cm")
        out({"op": "sent", "ok": link.send(contract.READING, msg), "error": link.last_error})
        link.close()


args = sys.argv[1:]
main(args[0], int(args[1]), args[2], args[3], args[4], args[5], args[6], int(args[7]))
out({"op": "end"})

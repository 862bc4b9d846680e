# A fake `onewire` for the unix port: OneWire(pin) only remembers its pin.
class OneWireError(Exception):
    pass


class OneWire:
    def __init__(self, pin):
        self.pin = pin

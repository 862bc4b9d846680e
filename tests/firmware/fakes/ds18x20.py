# A fake `ds18x20` for the unix port. The temperature comes from machine.scenario.air_c;
# scenario.ds_present = False makes scan() find nothing (a cut wire).
import machine

ROM = b"\x28\x01\x02\x03\x04\x05\x06\x07"


class DS18X20:
    def __init__(self, onewire):
        self.ow = onewire
        self.converted = False
        self.conversions = 0

    def scan(self):
        if not machine.scenario.ds_present:
            return []
        return [ROM]

    def convert_temp(self):
        self.converted = True
        self.conversions += 1

    def read_temp(self, rom):
        if not self.converted:
            return 85.0  # the real chip's power-on value: nothing converted yet
        self.converted = False
        return round(machine.scenario.air_c * 16) / 16  # 12 bits: 1/16 °C steps

"""machikit on a Raspberry Pi: jobs that run as systemd services.

GPS trackers for buses and garbage trucks (pyserial + pynmea2, store-and-forward over LTE), and
the printer buzzer and snow gauge with gpiozero — the same logic as the boards'
(machikit/printer_logic.py, machikit/snow_logic.py) and the same contract v1 messages.
"""

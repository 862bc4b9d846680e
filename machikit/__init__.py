"""machikit (まちキット): an IoT starter kit for town-hall staff."""

__version__ = "0.1.0"

# A fake `ntptime` for the unix port: the host's clock is already right, so settime() only
# says it was asked. MK_FAKE_NTP=down makes it time out like an unreachable server.
import os

host = "pool.ntp.org"


def settime():
    if os.getenv("MK_FAKE_NTP") == "down":
        raise OSError(110)  # ETIMEDOUT

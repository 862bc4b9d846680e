"""Will the laptop's firewall let boards and phones in? Said before the workshop starts.

A firewall that drops the boards' connections looks exactly like wrong Wi-Fi settings
on the board: nothing arrives. So `workshop serve` asks the firewall the OS has
(Windows Defender Firewall, ufw, firewalld, the macOS application firewall) and prints
the exact command that opens the two ports, or nothing when they are open already.
"""

import platform
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from machikit.texts import say

RULE_NAME = "machikit workshop"
UFW_CONFIG = Path("/etc/ufw/ufw.conf")
Run = Callable[[list[str]], tuple[int, str]]


def run_command(argv: list[str]) -> tuple[int, str]:
    """(exit code, output); a missing or hanging program counts as a failure."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=15,
                              encoding="utf-8", errors="replace")
    except (OSError, subprocess.TimeoutExpired) as err:
        return 127, str(err)
    return done.returncode, done.stdout + done.stderr


def advice(ports: list[int], system: str | None = None, run: Run = run_command,
           which: Callable[[str], str | None] = shutil.which) -> list[str]:
    """Lines to print: empty when nothing seems to block the ports."""
    system = system or platform.system()
    if system == "Windows":
        return _windows(ports, run)
    if system == "Darwin":
        return _macos(run)
    if which("ufw"):
        return _ufw(ports, run)
    if which("firewall-cmd"):
        return _firewalld(ports, run)
    return []


# --- Windows Defender Firewall -------------------------------------------------------

WINDOWS_CHECK = (
    "$on = @(Get-NetFirewallProfile -PolicyStore ActiveStore | Where-Object Enabled).Count; "
    f"$rule = @(Get-NetFirewallRule -DisplayName '{RULE_NAME}' "
    "-ErrorAction SilentlyContinue).Count; "
    "Write-Output \"enabled=$on rule=$rule\""
)


def _windows(ports: list[int], run: Run) -> list[str]:
    code, output = run(["powershell", "-NoProfile", "-NonInteractive", "-Command",
                        WINDOWS_CHECK])
    found = re.search(r"enabled=(\d+) rule=(\d+)", output)
    if code == 0 and found and (found[1] == "0" or found[2] != "0"):
        return []  # firewall off, or our rule is there already
    listed = ",".join(str(port) for port in ports)
    return [say("firewall_windows"),
            f"  New-NetFirewallRule -DisplayName '{RULE_NAME}' -Direction Inbound "
            f"-Protocol TCP -LocalPort {listed} -Action Allow -Profile Private",
            "  Get-NetConnectionProfile | Set-NetConnectionProfile -NetworkCategory Private",
            say("firewall_windows_after", rule=RULE_NAME)]


# --- macOS application firewall ------------------------------------------------------

MACOS_TOOL = "/usr/libexec/ApplicationFirewall/socketfilterfw"


def _macos(run: Run) -> list[str]:
    code, output = run([MACOS_TOOL, "--getglobalstate"])
    if code == 0 and "disabled" in output.lower():
        return []
    return [say("firewall_macos")]


# --- ufw (Ubuntu, Debian) ------------------------------------------------------------


def _ufw(ports: list[int], run: Run) -> list[str]:
    code, output = run(["ufw", "status"])
    if code == 0:
        if "Status: active" not in output:
            return []
        closed = [port for port in ports if not _ufw_allows(output, port)]
    elif _ufw_enabled_in_config():  # `ufw status` needs root: its config says enough
        closed = ports
    else:
        return []
    if not closed:
        return []
    return [say("firewall_ufw"), *(f"  sudo ufw allow {port}/tcp" for port in closed)]


def _ufw_allows(status: str, port: int) -> bool:
    """A rule line like '1883/tcp   ALLOW   Anywhere' (or '1883' for tcp and udp)."""
    pattern = re.compile(rf"^{port}(/tcp)?\s+ALLOW(\s+IN)?\s+Anywhere\b", re.MULTILINE)
    return bool(pattern.search(status))


def _ufw_enabled_in_config() -> bool:
    try:
        return "ENABLED=yes" in UFW_CONFIG.read_text(encoding="utf-8")
    except OSError:
        return False


# --- firewalld (Fedora, RHEL) --------------------------------------------------------


def _firewalld(ports: list[int], run: Run) -> list[str]:
    code, output = run(["firewall-cmd", "--state"])
    if code != 0 or "running" not in output:
        return []
    _code, listed = run(["firewall-cmd", "--list-ports"])
    closed = [port for port in ports if f"{port}/tcp" not in listed.split()]
    if not closed:
        return []
    opening = " ".join(f"--add-port={port}/tcp" for port in closed)
    return [say("firewall_firewalld"), f"  sudo firewall-cmd {opening}"]

"""The firewall advice on the systems this machine cannot run (Windows, macOS, firewalld),
from what their tools print. ufw runs for real in tests/workshop/test_lan.py."""

from collections.abc import Callable

import pytest

from machikit.workshop import firewall

PORTS = [1883, 8080]


def answers(table: dict[str, tuple[int, str]]) -> Callable[[list[str]], tuple[int, str]]:
    """A stand-in for running a program: the first word of the command picks the answer."""
    def run(argv: list[str]) -> tuple[int, str]:
        for start, answer in table.items():
            if " ".join(argv).startswith(start):
                return answer
        return 127, f"{argv[0]}: not found"
    return run


def test_windows_firewall_on_and_no_rule_gives_the_two_powershell_lines() -> None:
    lines = firewall.advice(PORTS, "Windows", answers({"powershell": (0, "enabled=3 rule=0\r\n")}))
    assert "New-NetFirewallRule -DisplayName 'machikit workshop' -Direction Inbound " \
           "-Protocol TCP -LocalPort 1883,8080 -Action Allow -Profile Private" in lines[1]
    assert "Set-NetConnectionProfile -NetworkCategory Private" in lines[2]
    assert "Remove-NetFirewallRule -DisplayName 'machikit workshop'" in lines[3]
    assert lines[0].startswith("Windows のファイアウォール")


@pytest.mark.parametrize("output", ["enabled=0 rule=0", "enabled=3 rule=1"])
def test_windows_firewall_off_or_rule_present_says_nothing(output: str) -> None:
    assert firewall.advice(PORTS, "Windows", answers({"powershell": (0, output)})) == []


def test_windows_without_an_answer_warns_anyway() -> None:
    """PowerShell missing or blocked by policy: better one warning too many than silence."""
    assert firewall.advice(PORTS, "Windows", answers({}))[0].startswith("Windows")


def test_macos_application_firewall() -> None:
    on = answers({firewall.MACOS_TOOL: (0, "Firewall is enabled. (State = 1)")})
    off = answers({firewall.MACOS_TOOL: (0, "Firewall is disabled. (State = 0)")})
    assert "Python" in firewall.advice(PORTS, "Darwin", on)[0]
    assert firewall.advice(PORTS, "Darwin", off) == []


def which(*present: str) -> Callable[[str], str | None]:
    return lambda name: f"/usr/sbin/{name}" if name in present else None


def test_firewalld_names_only_the_closed_port() -> None:
    run = answers({"firewall-cmd --state": (0, "running\n"),
                   "firewall-cmd --list-ports": (0, "8080/tcp 22/tcp\n")})
    lines = firewall.advice(PORTS, "Linux", run, which("firewall-cmd"))
    assert lines[1].strip() == "sudo firewall-cmd --add-port=1883/tcp"
    stopped = answers({"firewall-cmd --state": (252, "not running\n")})
    assert firewall.advice(PORTS, "Linux", stopped, which("firewall-cmd")) == []


UFW_ACTIVE = """Status: active

To                         Action      From
--                         ------      ----
22/tcp                     ALLOW       Anywhere
1883                       ALLOW       Anywhere
22/tcp (v6)                ALLOW       Anywhere (v6)
"""


def test_ufw_rules_are_read_from_its_status() -> None:
    lines = firewall.advice(PORTS, "Linux", answers({"ufw status": (0, UFW_ACTIVE)}),
                            which("ufw"))
    assert [line.strip() for line in lines[1:]] == ["sudo ufw allow 8080/tcp"]
    inactive = answers({"ufw status": (0, "Status: inactive\n")})
    assert firewall.advice(PORTS, "Linux", inactive, which("ufw")) == []


def test_ufw_without_root_falls_back_to_its_config(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    conf = tmp_path / "ufw.conf"
    conf.write_text("ENABLED=yes\nLOGLEVEL=low\n", encoding="utf-8")
    monkeypatch.setattr(firewall, "UFW_CONFIG", conf)
    not_root = answers({"ufw status": (1, "ERROR: You need to be root to run this script")})
    lines = firewall.advice(PORTS, "Linux", not_root, which("ufw"))
    assert [line.strip() for line in lines[1:]] == ["sudo ufw allow 1883/tcp",
                                                    "sudo ufw allow 8080/tcp"]
    conf.write_text("ENABLED=no\n", encoding="utf-8")
    assert firewall.advice(PORTS, "Linux", not_root, which("ufw")) == []


def test_no_firewall_tool_no_advice() -> None:
    assert firewall.advice(PORTS, "Linux", answers({}), which()) == []


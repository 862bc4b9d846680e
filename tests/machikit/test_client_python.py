"""The client-side tests (CLI, flashing, workshop, Pi jobs, contract, Windows code paths) pass
under Python 3.13 from the test bed's Debian 13 root (machikit/testbed/client_python.py), not
only under the venv's 3.11: staff laptops run 3.11, 3.12 or 3.13.

Needs root and the test bed. CI runs as root; elsewhere it is skipped without them."""

import re

import pytest

from machikit import testbed
from machikit.testbed.client_python import VERSION_LINE, run_client_tests
from tests.conftest import IN_CI

pytestmark = pytest.mark.services

# A cold run (creating the venv inside the root) takes a few minutes on 2 CPUs.
TIMEOUT = 1800
TAIL = 80  # lines of the run's output shown on failure


def tail(output: str) -> str:
    return "\n".join(output.splitlines()[-TAIL:])


@pytest.mark.slow
def test_client_tests_pass_on_python_313() -> None:
    if not IN_CI and not testbed.is_controllable():
        pytest.skip("needs root and the test bed (machikit dev services up)")
    result = run_client_tests(capture=True, timeout=TIMEOUT)
    version = re.search(rf"^{re.escape(VERSION_LINE)} (\d+\.\d+)\.", result.stdout, re.M)
    assert version is not None, tail(result.stdout)
    assert version[1] == "3.13", tail(result.stdout)
    assert result.returncode == 0, tail(result.stdout)

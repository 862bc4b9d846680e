"""Shared test set-up: where the real services are, and the CI rule.

The services come from the project's test bed (`machikit dev services up`) or
from the user's own, named by environment variables:
MACHIKIT_TEST_DATABASE_URL, MACHIKIT_TEST_MQTT_URL, MACHIKIT_MICROPYTHON,
MACHIKIT_CHROMIUM (Debian's chromium, driven by Playwright).
Outside CI a test whose service is missing is skipped; with CI=true a skip is
a failure, so CI can never pass by not testing.
"""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _service_env() -> dict[str, str]:
    found: dict[str, str] = {}
    try:
        from machikit import testbed

        found.update(testbed.load_env() or {})
    except ImportError:
        pass
    found.update({k: v for k, v in os.environ.items() if k.startswith("MACHIKIT_")})
    return found


SERVICES = _service_env()


def need(variable: str) -> str:
    """The value of a service variable, or skip (a failure in CI)."""
    value = SERVICES.get(variable)
    if not value:
        pytest.skip(f"{variable} is not set: run `machikit dev services up` or set it")
    return value


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (CI=true forbids skips): {report.longrepr}"


@pytest.fixture(scope="session")
def micropython() -> str:
    return need("MACHIKIT_MICROPYTHON")


@pytest.fixture(scope="session")
def database_url() -> str:
    return need("MACHIKIT_TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def mqtt_url() -> str:
    return need("MACHIKIT_TEST_MQTT_URL")


@pytest.fixture(scope="session")
def chromium() -> str:
    return need("MACHIKIT_CHROMIUM")

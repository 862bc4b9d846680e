"""The read-only machikit_grafana role (migration 0005) on the real TimescaleDB."""

import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from collector.storage import open_storage
from tests.collector.helpers import fresh_database
from tests.conftest import need


@pytest.fixture
def admin_url() -> str:
    return need("MACHIKIT_TEST_ADMIN_DATABASE_URL")


def _as_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


@pytest.fixture
def grafana_login(admin_url: str, database_url: str) -> Iterator[str]:
    """A fresh migrated database and a login IN ROLE machikit_grafana, as a town makes it."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        # The test collector user has no CREATEROLE: the administrator's step from the README.
        admin.execute("DO $$ BEGIN CREATE ROLE machikit_grafana NOLOGIN; "
                      "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$")
        user, password = "grafana_t" + secrets.token_hex(4), secrets.token_hex(12)
        admin.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}' IN ROLE machikit_grafana")
        try:
            with fresh_database(database_url) as url:
                storage = open_storage(url)
                storage.migrate()
                bus = storage.add_device("muroran", "bus-01", "bus")
                storage.close()
                with psycopg.connect(url) as owner:
                    owner.execute("INSERT INTO positions VALUES (now(), %s, 1, now(), true,"
                                  " 42.3, 140.9, null, null, null, null, null)", (bus.id,))
                yield _as_user(url, user, password)
        finally:
            admin.execute(f"DROP ROLE IF EXISTS {user}")


@pytest.mark.services
def test_grafana_login_reads_but_cannot_write(grafana_login: str) -> None:
    with psycopg.connect(grafana_login, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM positions").fetchone() == (1,)
        assert conn.execute("SELECT DISTINCT town FROM devices").fetchall() == [("muroran",)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO positions VALUES (now(), 1, 2, now(), true,"
                         " 42.3, 140.9, null, null, null, null, null)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT password_hash FROM devices")

"""Versioned schema migrations: numbered SQL files per engine.

collector/migrations/<engine>/0001_init.sql, 0002_….sql … run once each, in
order, recorded in schema_migrations. A new version is a new file; never edit
one that has shipped. (Small enough not to need a migration framework; both
engines apply a file inside one transaction.)
"""

from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations(engine: str) -> list[Migration]:
    folder = resources.files("collector") / "migrations" / engine
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            sql = entry.read_text("utf-8")
            found.append(Migration(int(number), rest.removesuffix(".sql"), sql))
    return sorted(found, key=lambda m: m.version)


def pending(engine: str, applied: set[int]) -> list[Migration]:
    return [m for m in migrations(engine) if m.version not in applied]

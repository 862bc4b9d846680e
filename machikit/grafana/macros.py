"""Grafana's SQL macros and template variables, expanded as Grafana does for PostgreSQL.

No Grafana server can be installed here, so the tests run every panel's SQL on the
real TimescaleDB after this expansion. It follows Grafana's own code and docs:
the frontend replaces template variables first (SqlDatasource.interpolateVariable),
then the backend replaces $__interval, $__interval_ms, $__unixEpochFrom/To() (sqleng
Interpolate) and finally the $__macro(args) calls (grafana-postgresql-datasource
macros.go). Only what the machikit dashboards can use is implemented; an unknown
macro raises, so a new one cannot slip through untested.
"""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^)]*)\)")
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass
class Context:
    """What Grafana knows when it runs one query: time range, interval, variables."""

    start: datetime
    end: datetime
    interval: timedelta = timedelta(minutes=1)
    # name -> one value (single-value variable) or a list (multi-value / All)
    variables: dict[str, str | list[str]] = field(default_factory=dict)
    timescaledb: bool = True  # jsonData.timescaledb of the data source


def parse_interval(text: str) -> timedelta:
    """'5m', '1h', '1d', '500ms' (gtime.ParseInterval, without months/years)."""
    found = re.fullmatch(r"(\d+)(ms|s|m|h|d|w)", text.strip().strip("'"))
    if not found:
        raise ValueError(f"cannot parse interval {text!r}")
    return timedelta(seconds=int(found.group(1)) * _UNITS[found.group(2)])


def format_interval(interval: timedelta) -> str:
    """gtime.FormatInterval: the largest whole unit, e.g. 1h, 5m, 20s, 500ms."""
    ms = round(interval.total_seconds() * 1000)
    for unit in ("w", "d", "h", "m", "s"):
        size = int(_UNITS[unit] * 1000)
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _go_number(seconds: float) -> str:
    """Go's %v of a float64: 60 -> '60', 0.5 -> '0.5'."""
    return str(int(seconds)) if seconds == int(seconds) else repr(seconds)


def _rfc3339(moment: datetime) -> str:
    """Go's time.RFC3339Nano in UTC: no trailing zeros in the fraction, 'Z'."""
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def expand_variables(sql: str, variables: dict[str, str | list[str]]) -> str:
    """$town, ${town}: single values escaped but NOT quoted (write '$town' in SQL);
    multi-value or All: each value quoted, comma-joined (write IN ($device))."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name.startswith("__") or name not in variables:
            return match.group(0)  # Grafana's own $__… names, or not a variable
        value = variables[name]
        if isinstance(value, list):
            return ",".join(_quote(v) for v in value)
        return value.replace("'", "''")

    return _VARIABLE.sub(replace, sql)


def _time_group(args: list[str], ctx: Context) -> str:
    if len(args) < 2:
        raise ValueError("$__timeGroup needs a column and an interval")
    seconds = parse_interval(args[1]).total_seconds()
    if ctx.timescaledb:
        return f"time_bucket('{seconds:.3f}s',{args[0]})"
    n = _go_number(seconds)
    return f"floor(extract(epoch from {args[0]})/{n})*{n}"


def _macro(name: str, args: list[str], ctx: Context) -> str:
    start, end = _rfc3339(ctx.start), _rfc3339(ctx.end)
    if name == "__time":
        return f'{args[0]} AS "time"'
    if name == "__timeEpoch":
        return f'extract(epoch from {args[0]}) as "time"'
    if name == "__timeFilter":
        return f"{args[0]} BETWEEN '{start}' AND '{end}'"
    if name == "__timeFrom":
        return f"'{start}'"
    if name == "__timeTo":
        return f"'{end}'"
    if name == "__timeGroup":
        return _time_group(args, ctx)
    if name == "__timeGroupAlias":
        return _time_group(args, ctx) + ' AS "time"'
    if name == "__unixEpochFilter":
        low, high = int(ctx.start.timestamp()), int(ctx.end.timestamp())
        return f"{args[0]} >= {low} AND {args[0]} <= {high}"
    raise ValueError(f"unknown macro ${name}")


def expand_macros(sql: str, ctx: Context) -> str:
    """The backend's part: $__interval first, then every $__macro(args)."""
    sql = sql.replace("$__interval_ms", str(round(ctx.interval.total_seconds() * 1000)))
    sql = sql.replace("$__interval", format_interval(ctx.interval))
    sql = sql.replace("$__unixEpochFrom()", str(int(ctx.start.timestamp())))
    sql = sql.replace("$__unixEpochTo()", str(int(ctx.end.timestamp())))

    def replace(match: re.Match[str]) -> str:
        name, args = match.group(1), [a.strip() for a in match.group(2).split(",")]
        # Grafana: "$__timeGroup(…)," is the pre-5.3 form that still gets AS "time".
        if name == "__timeGroup" and sql[match.end():match.end() + 1] == ",":
            name = "__timeGroupAlias"
        return _macro(name, args, ctx)

    return _MACRO.sub(replace, sql)


def expand(sql: str, ctx: Context) -> str:
    """The SQL that reaches PostgreSQL for one panel query."""
    return expand_macros(expand_variables(sql, ctx.variables), ctx)

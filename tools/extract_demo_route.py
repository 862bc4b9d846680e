"""Cut the demo's bus route and garbage-truck street out of a real GTFS-JP feed.

    python tools/extract_demo_route.py path/to/muroran-donan-bus-gtfs-jp-feed

writes collector/demo_data/muroran-route.json (the bus) and muroran-truck.json
(the garbage truck). Standard library only; the same feed always gives
byte-identical files, so a re-run shows up in `git diff` only if the data changed.

Another town: point it at your own feed and change the constants below.
"""

import argparse
import csv
import itertools
import json
import math
import re
import statistics
from collections import Counter, defaultdict
from pathlib import Path

from machikit.geo import metres  # the simulator's formula, so distances agree exactly

OUT_DIR = Path(__file__).resolve().parent.parent / "collector" / "demo_data"
MIN_ROUTE_M = 3000  # the bus route must be a real ride, not a shuttle

# The garbage truck drives a residential street of another route: from the stop
# TRUCK_FROM (its depot is there) to the terminus TRUCK_TO, and back.
TRUCK_FROM, TRUCK_TO = "母恋駅前", "地球岬団地"
TRUCK_COLLECT_EVERY_M = 300  # a collection point (ごみステーション) every this many metres

SOURCE = {
    "source": "道南バス 室蘭市内線 GTFS-JP feed (2020), aruneko/DonanbusGTFS by Code for Muroran,"
              " transcribed from Muroran City open data (むろらんオープンデータライブラリ)"
              " and OpenStreetMap",
    "source_url": "https://github.com/aruneko/DonanbusGTFS",
    "licence": "CC BY-SA 3.0",
    "licence_url": "https://creativecommons.org/licenses/by-sa/3.0/",
    "attribution": "© Code for Muroran (DonanbusGTFS), 室蘭市オープンデータ,"
                   " © OpenStreetMap contributors. Derived: cut and re-projected by"
                   " tools/extract_demo_route.py; shared under the same licence.",
}


def read(feed: Path, name: str) -> list[dict[str, str]]:
    with open(feed / name, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def load_shapes(feed: Path) -> dict[str, list[tuple[float, float]]]:
    rows: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    for r in read(feed, "shapes.txt"):
        rows[r["shape_id"]].append(
            (int(r["shape_pt_sequence"]), float(r["shape_pt_lat"]), float(r["shape_pt_lon"])))
    shapes = {}
    for shape_id, pts in rows.items():
        line: list[tuple[float, float]] = []
        for _, lat, lon in sorted(pts):
            p = (round(lat, 6), round(lon, 6))  # 6 decimals ≈ 0.1 m
            if not line or metres(line[-1], p) > 0.05:  # drop repeated points
                line.append(p)
        shapes[shape_id] = line
    return shapes


def cumulative(line: list[tuple[float, float]]) -> list[float]:
    out = [0.0]
    for a, b in itertools.pairwise(line):
        out.append(out[-1] + metres(a, b))
    return out


def project(p: tuple[float, float], a: tuple[float, float],
            b: tuple[float, float]) -> tuple[float, float]:
    """(fraction along a→b of the nearest point, its distance from p in metres)."""
    kx = math.cos(math.radians(a[0]))  # local flat x/y in degrees of latitude
    bx, by = (b[1] - a[1]) * kx, b[0] - a[0]
    px, py = (p[1] - a[1]) * kx, p[0] - a[0]
    f = 0.0 if bx == by == 0 else min(1.0, max(0.0, (px * bx + py * by) / (bx * bx + by * by)))
    return f, metres(p, (a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1])))


def place_stops(line: list[tuple[float, float]],
                stops: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(distance along the line, offset) of each stop, in order along the line.

    A route can pass the same street twice (a loop through a housing estate), so
    "the nearest point" is not enough: choose, for all stops together, the
    positions in travel order with the smallest sum of squared offsets.
    """
    cum = cumulative(line)
    segments = list(itertools.pairwise(line))
    # For each stop and each segment: (distance along the line, offset) of its projection.
    options = []
    for stop in stops:
        row = []
        for j, (a, b) in enumerate(segments):
            f, off = project(stop, a, b)
            row.append((cum[j] + f * (cum[j + 1] - cum[j]), off))
        options.append(row)
    # Dynamic programming: cost[j] = the smallest sum for the stops so far with the
    # latest one on segment j; came_from[i][j] = the segment of the stop before it.
    cost = [off * off for _, off in options[0]]
    came_from = []
    for before, row in itertools.pairwise(options):
        new_cost, links = [], []
        cheapest = (math.inf, -1)  # the best segment before j for the stop before
        for j, (along, off) in enumerate(row):
            choice = cheapest
            if before[j][0] <= along:  # both stops on segment j, in travel order
                choice = min(choice, (cost[j], j))
            new_cost.append(choice[0] + off * off)
            links.append(choice[1])
            cheapest = min(cheapest, (cost[j], j))
        cost = new_cost
        came_from.append(links)
    j = min(range(len(segments)), key=lambda k: (cost[k], k))
    chosen = [j]
    for links in reversed(came_from):
        j = links[j]
        chosen.append(j)
    return [row[j] for row, j in zip(options, reversed(chosen), strict=True)]


def cut(line: list[tuple[float, float]], from_m: float,
        to_m: float) -> list[tuple[float, float]]:
    """The part of a line between two distances along it."""
    cum = cumulative(line)

    def at(d: float) -> tuple[float, float]:
        j = max(k for k in range(len(line) - 1) if cum[k] <= d)
        f = (d - cum[j]) / (cum[j + 1] - cum[j])
        a, b = line[j], line[j + 1]
        return round(a[0] + f * (b[0] - a[0]), 6), round(a[1] + f * (b[1] - a[1]), 6)

    inner = [p for p, d in zip(line, cum, strict=True) if from_m < d < to_m]
    return [at(from_m), *inner, at(to_m)]


def trip_patterns(feed: Path) -> Counter[tuple[str, str, tuple[str, ...]]]:
    """How many trips run each (route, shape, stop list)."""
    stop_times: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for r in read(feed, "stop_times.txt"):
        stop_times[r["trip_id"]].append((int(r["stop_sequence"]), r["stop_id"]))
    return Counter(
        (t["route_id"], t["shape_id"], tuple(s for _, s in sorted(stop_times[t["trip_id"]])))
        for t in read(feed, "trips.txt") if t["shape_id"])


def minutes_per_trip(feed: Path, route_id: str, shape_id: str) -> float:
    """The timetable's median time from first to last stop."""
    trips = {t["trip_id"] for t in read(feed, "trips.txt")
             if (t["route_id"], t["shape_id"]) == (route_id, shape_id)}
    times: dict[str, list[int]] = defaultdict(list)
    for r in read(feed, "stop_times.txt"):
        if r["trip_id"] in trips:
            h, m, s = (int(x) for x in r["departure_time"].split(":"))
            times[r["trip_id"]].append(h * 3600 + m * 60 + s)
    return statistics.median((max(t) - min(t)) / 60 for t in times.values())


def bus_route(feed: Path, shapes: dict, stops: dict, routes: dict) -> dict:
    patterns = trip_patterns(feed)
    usable = [(n, key) for key, n in patterns.items()
              if key[1] in shapes and cumulative(shapes[key[1]])[-1] >= MIN_ROUTE_M]
    trips, (route_id, shape_id, stop_ids) = min(usable, key=lambda nk: (-nk[0], nk[1]))
    line = shapes[shape_id]
    placed = place_stops(line, [stops[s]["pos"] for s in stop_ids])
    return {
        **SOURCE,
        "chosen_because": f"the trip pattern with the most trips in the feed ({trips} of"
                          f" {sum(patterns.values())}), with a shape of at least {MIN_ROUTE_M} m",
        "route_id": route_id,
        "route_name": routes[route_id]["route_long_name"],  # with its direction (往/復)
        "line_name": routes[route_id]["jp_parent_route_id"] or routes[route_id]["route_long_name"],
        "shape_id": shape_id,
        "trips": trips,
        "timetable_minutes": minutes_per_trip(feed, route_id, shape_id),
        "length_m": round(cumulative(line)[-1], 1),
        "stops": [{"id": s, "name": stops[s]["name"], "lat": stops[s]["pos"][0],
                   "lon": stops[s]["pos"][1], "distance_m": round(d, 1),
                   "offset_m": round(o, 1)} for s, (d, o) in zip(stop_ids, placed, strict=True)],
        "shape": line,
    }


def truck_path(feed: Path, shapes: dict, stops: dict, bus_route_id: str) -> dict:
    patterns = trip_patterns(feed)
    ending = [(n, key) for key, n in patterns.items() if key[0] != bus_route_id
              and key[1] in shapes and stops[key[2][-1]]["name"] == TRUCK_TO]
    _, (route_id, shape_id, stop_ids) = min(ending, key=lambda nk: (-nk[0], nk[1]))
    line = shapes[shape_id]
    start = [s for s in stop_ids if stops[s]["name"] == TRUCK_FROM][-1]
    (from_m, _), (to_m, _) = place_stops(line, [stops[start]["pos"], stops[stop_ids[-1]]["pos"]])
    path = cut(line, from_m, to_m)
    length = cumulative(path)[-1]
    collect = [float(d) for d in range(TRUCK_COLLECT_EVERY_M, int(length), TRUCK_COLLECT_EVERY_M)
               if length - d > TRUCK_COLLECT_EVERY_M / 2]
    return {
        **SOURCE,
        "chosen_because": f"the street from {TRUCK_FROM} to the terminus {TRUCK_TO}"
                          f" of route {route_id} (shape {shape_id}), a residential area;"
                          " the depot at its start is invented for the demo",
        "route_id": route_id,
        "shape_id": shape_id,
        "depot": {"name": f"デモ用車庫（{TRUCK_FROM}付近・架空） / demo depot (invented)",
                  "lat": path[0][0], "lon": path[0][1]},
        "length_m": round(length, 1),
        "collection_points_m": [*collect, round(length, 1)],  # the last one at the turning point
        "path": path,
    }


def to_json(data: dict) -> str:
    """Indented JSON with each point and each stop on one line (small diffs, easy to read)."""
    text = json.dumps(data, ensure_ascii=False, indent=1)
    flat = re.sub(r"[{\[][^{}\[\]]*[}\]]", lambda m: re.sub(r"\s*\n\s*", " ", m[0]), text)
    return flat.replace("{ ", "{").replace(" }", "}").replace("[ ", "[").replace(" ]", "]") + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("feed", type=Path, help="folder of the unzipped GTFS-JP feed")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    shapes = load_shapes(args.feed)
    stops = {s["stop_id"]: {"name": s["stop_name"],
                            "pos": (float(s["stop_lat"]), float(s["stop_lon"]))}
             for s in read(args.feed, "stops.txt")}
    routes = {r["route_id"]: r for r in read(args.feed, "routes.txt")}
    bus = bus_route(args.feed, shapes, stops, routes)
    truck = truck_path(args.feed, shapes, stops, bus["route_id"])
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in (("muroran-route.json", bus), ("muroran-truck.json", truck)):
        (args.out / name).write_text(to_json(data), encoding="utf-8", newline="\n")
        print(f"{args.out / name}: {data['chosen_because']}; {data['length_m']:.0f} m")
    worst = max(bus["stops"], key=lambda s: s["offset_m"])
    print(f"bus: route {bus['route_id']} {bus['route_name']}, shape {bus['shape_id']},"
          f" {len(bus['shape'])} points, {len(bus['stops'])} stops"
          f" (farthest from the line: {worst['name']} {worst['offset_m']} m),"
          f" timetable {bus['timetable_minutes']:.0f} min")


if __name__ == "__main__":
    main()

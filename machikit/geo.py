"""Distances and directions on the ground, good enough inside one town.

The equirectangular approximation is off by well under 0.1 % over tens of
kilometres, far below GPS noise; shared by the simulator, the publish policy
and the Pi's GPS filters so they always agree.
"""

import math

EARTH_RADIUS_M = 6_371_000
LatLon = tuple[float, float]


def metres(a: LatLon, b: LatLon) -> float:
    """Distance between two (lat, lon) points in metres."""
    x = math.radians(b[1] - a[1]) * math.cos(math.radians((a[0] + b[0]) / 2))
    y = math.radians(b[0] - a[0])
    return EARTH_RADIUS_M * math.hypot(x, y)


def bearing(a: LatLon, b: LatLon) -> float:
    """Direction from a to b in degrees from north (0–360)."""
    east = (b[1] - a[1]) * math.cos(math.radians(a[0]))
    return math.degrees(math.atan2(east, b[0] - a[0])) % 360


def inside_polygon(lat: float, lon: float, polygon: tuple[LatLon, ...]) -> bool:
    """Ray casting; fine for depot-sized polygons (no poles, no date line)."""
    inside = False
    for (lat1, lon1), (lat2, lon2) in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        if (lat1 > lat) != (lat2 > lat):
            crossing = lon1 + (lat - lat1) * (lon2 - lon1) / (lat2 - lat1)
            if lon < crossing:
                inside = not inside
    return inside

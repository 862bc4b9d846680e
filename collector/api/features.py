"""GeoJSON features for the public API, built only from what the policy allows."""

from collections.abc import Iterable

from collector.policy import DevicePolicy, local_time_text


def vehicle_feature(policy: DevicePolicy, fix: dict | None, now_ms: int) -> dict | None:
    """The vehicle's newest fix as a Point feature, or None when it must not be shown."""
    if fix is None or not policy.shows_fix(fix["t"], fix["lat"], fix["lon"], now_ms):
        return None
    device = policy.device
    return {
        "type": "Feature",
        "id": device.name,
        "geometry": {"type": "Point", "coordinates": [fix["lon"], fix["lat"]]},
        "properties": {
            "id": device.name, "label": device.label or device.name, "kind": device.kind,
            "t": fix["t"], "time": local_time_text(fix["t"], policy.zone),
            "stale": policy.is_stale(fix["t"], now_ms),
            "speed": fix["speed"], "heading": fix["heading"],
        },
    }


def sensor_feature(policy: DevicePolicy, readings: list[dict] | None,
                   now_ms: int) -> dict | None:
    """A sensor with its newest reading per sensor; None when nothing recent enough."""
    shown = [r for r in readings or () if policy.shows_reading(r["t"], now_ms)]
    if not shown:
        return None
    device, newest = policy.device, max(r["t"] for r in shown)
    location = policy.location
    return {
        "type": "Feature",
        "id": device.name,
        "geometry": ({"type": "Point", "coordinates": [location[1], location[0]]}
                     if location else None),
        "properties": {
            "id": device.name, "label": device.label or device.name, "kind": device.kind,
            "t": newest, "stale": policy.is_stale(newest, now_ms),
            "readings": [{**r, "time": local_time_text(r["t"], policy.zone)} for r in shown],
        },
    }


def collection(features: Iterable[dict]) -> dict:
    return {"type": "FeatureCollection", "features": list(features)}


def track_feature(policy: DevicePolicy, fixes: list[dict]) -> dict:
    """The recent path as a LineString, keeping only fixes that were public themselves."""
    shown = [f for f in fixes if policy.shows_track_point(f["t"], f["lat"], f["lon"])]
    return {
        "type": "Feature",
        "id": policy.device.name,
        "geometry": {"type": "LineString", "coordinates": [[f["lon"], f["lat"]] for f in shown]},
        "properties": {"id": policy.device.name, "kind": policy.device.kind,
                       "times": [f["t"] for f in shown]},
    }

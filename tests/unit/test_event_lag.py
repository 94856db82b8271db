"""metrics.EventLag exposes what prometheus_client's Histogram with the same buckets
exposes for the same observations (negative lags counted as 0): it replaced that
Histogram for pbxbridge_ami_event_lag_seconds, and dashboards must not see a change."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pbxbridge.metrics import LAG_BUCKETS, EventLag

NAME = "pbxbridge_ami_event_lag_seconds"
Sample = tuple[str, tuple[tuple[str, str], ...], float]


def exposed(registry: CollectorRegistry) -> list[Sample]:
    """The histogram's samples as a scrape reads them, in order, without ``_created``."""
    text = generate_latest(registry).decode()
    # The text parser reads the Histogram's _created line as a gauge family of its own.
    families = [f for f in text_string_to_metric_families(text) if not f.name.endswith("_created")]
    assert [(f.name, f.type) for f in families] == [(NAME, "histogram")]
    return [(s.name, tuple(sorted(s.labels.items())), s.value) for s in families[0].samples]


def ours(observations: Iterable[float], buckets: Sequence[float]) -> list[Sample]:
    registry = CollectorRegistry()
    lag = EventLag(buckets)
    registry.register(lag)
    for seconds in observations:
        lag.observe(seconds)
    return exposed(registry)


def reference(observations: Iterable[float], buckets: Sequence[float]) -> list[Sample]:
    """prometheus_client's Histogram, told a negative lag as 0."""
    registry = CollectorRegistry()
    histogram = Histogram(NAME, "reference", buckets=buckets, registry=registry)
    for seconds in observations:
        histogram.observe(max(0.0, seconds))
    return exposed(registry)


def test_known_observations_land_in_these_buckets() -> None:
    """A negative lag counts as 0 (first bucket, adds 0 to the sum), a lag equal to a
    bound is in that bound's bucket (le is inclusive), one above the last bound only in
    +Inf; the exposed text says so, and says what the Histogram says."""
    observations = [-3.0, 0.0, 0.001, 0.0011, 1.0, 10.0, 10.5]
    got = ours(observations, LAG_BUCKETS)
    assert got == reference(observations, LAG_BUCKETS)
    buckets = {dict(labels)["le"]: v for name, labels, v in got if name == f"{NAME}_bucket"}
    assert buckets["0.001"] == 3  # -3 (as 0), 0, 0.001
    assert buckets["0.0025"] == 4
    assert buckets["1.0"] == 5
    assert buckets["10.0"] == 6
    assert buckets["+Inf"] == 7
    assert list(buckets) == [*(repr(float(b)) for b in LAG_BUCKETS), "+Inf"]
    totals = {name: v for name, _, v in got if name != f"{NAME}_bucket"}
    assert totals == {f"{NAME}_count": 7, f"{NAME}_sum": sum(observations[1:])}


def test_nothing_observed() -> None:
    """Before the first event every bucket, the count and the sum are 0, as a fresh
    Histogram's."""
    got = ours([], LAG_BUCKETS)
    assert got == reference([], LAG_BUCKETS)
    assert len(got) == len(LAG_BUCKETS) + 3
    assert {v for _, _, v in got} == {0.0}


def near(bounds: Sequence[float]) -> st.SearchStrategy[float]:
    """Values on, just below and just above the bounds, and their negatives."""
    at = st.sampled_from(bounds)
    return st.one_of(
        at,
        at.map(lambda b: math.nextafter(b, math.inf)),
        at.map(lambda b: math.nextafter(b, -math.inf)),
        at.map(lambda b: -b),
    )


lags = st.floats(allow_nan=False) | st.floats(-1.0, 20.0) | near(LAG_BUCKETS)


@settings(max_examples=300, deadline=None)
@given(st.lists(lags, max_size=40))
def test_any_lags_expose_what_the_histogram_exposes(observations: list[float]) -> None:
    """For any lags (negative, on a bound, between bounds, past the last one, huge or
    infinite), EventLag's buckets, count and sum equal the Histogram's."""
    assert ours(observations, LAG_BUCKETS) == reference(observations, LAG_BUCKETS)


bucket_sets = st.lists(
    st.floats(min_value=1e-6, max_value=1e6), min_size=1, max_size=8, unique=True
).map(sorted)


@settings(max_examples=200, deadline=None)
@given(bucket_sets.flatmap(lambda b: st.tuples(st.just(b), st.lists(near(b) | lags, max_size=20))))
def test_other_bucket_sets_expose_what_the_histogram_exposes(
    case: tuple[list[float], list[float]],
) -> None:
    """Any finite sorted bounds (their le labels included) and lags around them give
    the Histogram's exposition, whichever order the bounds are passed in."""
    buckets, observations = case
    assert ours(observations, buckets) == reference(observations, buckets)
    assert ours(observations, buckets[::-1]) == reference(observations, buckets)


def test_an_infinite_last_bound_is_exposed_once() -> None:
    """Bounds ending in +Inf (allowed by Histogram, which then adds none of its own):
    the +Inf bucket must appear once. Latent production bug: EventLag always appends
    its own +Inf bucket, so it exposes two le="+Inf" samples: a duplicate series in
    one scrape. LAG_BUCKETS is finite, so pbxbridge does not hit it today."""
    buckets = (1.0, math.inf)
    got = ours([0.5, 2.0], buckets)
    assert [dict(labels)["le"] for name, labels, _ in got if name.endswith("_bucket")] == [
        "1.0",
        "+Inf",
    ]
    assert got == reference([0.5, 2.0], buckets)


def test_a_nan_lag_counts_as_no_lag() -> None:
    """A NaN lag (never from Asterisk: translation rejects a non-finite Timestamp) lands
    in the first bucket and adds nothing to the sum instead of poisoning it."""
    got = ours([math.nan, 0.5], LAG_BUCKETS)
    assert got == reference([0.0, 0.5], LAG_BUCKETS)

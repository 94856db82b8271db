"""The one retry schedule, shared by the AMI reconnect and incident delivery."""

from __future__ import annotations

import random

from pbxbridge.backoff import full_jitter


def test_backoff_grows_is_jittered_and_capped() -> None:
    """uniform(0, min(cap, base*2**attempt)): bounded, varied, growing, capped, no overflow."""
    rng = random.Random(1234).random
    samples = {
        a: [full_jitter(a, base=0.5, cap=30.0, rng=rng) for _ in range(200)] for a in range(12)
    }
    for attempt, delays in samples.items():
        bound = min(30.0, 0.5 * 2**attempt)
        assert all(0.0 <= d <= bound for d in delays)
        assert len(set(delays)) == len(delays)  # jittered: no two retries line up
    assert max(samples[1]) < max(samples[4]) < max(samples[8])  # grows
    assert max(samples[11]) > 25.0  # reaches the cap region but never passes it
    assert full_jitter(100_000, base=0.5, cap=30.0, rng=lambda: 1.0) == 30.0  # days of outage
    assert full_jitter(0, base=0.5, cap=30.0, rng=lambda: 1.0) == 0.5  # first retry: base
    assert full_jitter(-1, base=0.5, cap=30.0, rng=lambda: 1.0) == 0.5  # never below base

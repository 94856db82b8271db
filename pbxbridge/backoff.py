"""The one retry schedule: exponential backoff with full jitter (AWS's "full jitter").

Used by the AMI reconnect and by incident delivery alike, so both back off the same way.
"""

from __future__ import annotations

from collections.abc import Callable


def full_jitter(attempt: int, *, base: float, cap: float, rng: Callable[[], float]) -> float:
    """Seconds to wait before retry ``attempt`` (0 for the first retry): uniform in
    ``[0, min(cap, base * 2**attempt)]``; ``rng`` returns a float in [0, 1)."""
    # The exponent is clamped: after days of outage 2.0**n would overflow a float.
    return rng() * min(cap, base * 2.0 ** min(max(0, attempt), 62))

"""How many call takers a half hour needs: Erlang C (M/M/N, callers wait as long as it
takes). Pure.

The report compares these with the call takers actually logged in. Erlang C ignores
abandonment, so it over-states what a center with impatient callers needs: the
report says so beside the numbers. The functions are the standard ones (Erlang B by
its recursion, which stays exact in floating point where factorials overflow), checked
in tests/unit/test_staffing.py against published values and an exact rational oracle.
"""

from __future__ import annotations

import math

MAX_AGENTS = 2000


def traffic(arrivals_per_second: float, handle_seconds: float) -> float:
    """Offered load in Erlangs: arrival rate times mean handle time."""
    return arrivals_per_second * handle_seconds


def erlang_b(agents: int, load: float) -> float:
    """Blocking probability of M/M/N/N: B(0) = 1, B(n) = A·B(n-1) / (n + A·B(n-1))."""
    if agents < 0 or load < 0:
        raise ValueError("agents and load must not be negative")
    b = 1.0
    for n in range(1, agents + 1):
        b = load * b / (n + load * b)
    return b


def erlang_c(agents: int, load: float) -> float:
    """The probability that a caller waits at all (1 when the load is not below N)."""
    if load <= 0:
        return 0.0
    if agents <= load:
        return 1.0
    b = erlang_b(agents, load)
    return agents * b / (agents - load * (1 - b))


def service_level(agents: int, load: float, handle_seconds: float, within: float) -> float:
    """The share of callers answered within ``within`` seconds of joining the queue."""
    if load <= 0:
        return 1.0
    if agents <= load:
        return 0.0
    wait = erlang_c(agents, load)
    return 1.0 - wait * math.exp(-(agents - load) * within / handle_seconds)


def mean_wait(agents: int, load: float, handle_seconds: float) -> float:
    """The average speed of answer, seconds (inf when the queue grows without end)."""
    if load <= 0:
        return 0.0
    if agents <= load:
        return math.inf
    return erlang_c(agents, load) * handle_seconds / (agents - load)


def agents_needed(load: float, handle_seconds: float, within: float, level: float) -> int:
    """The fewest call takers whose service level reaches ``level`` (0 without load)."""
    if not 0 < level < 1:
        raise ValueError("level is a share between 0 and 1")
    if load <= 0:
        return 0
    agents = max(1, math.floor(load) + 1)
    while service_level(agents, load, handle_seconds, within) < level:
        agents += 1
        if agents > MAX_AGENTS:
            raise ValueError(f"more than {MAX_AGENTS} call takers: check the load")
    return agents

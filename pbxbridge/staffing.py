"""How many call takers a half hour needs. Pure.

Erlang C (M/M/N: callers wait as long as it takes) is the textbook answer; it
ignores abandonment. Erlang A (M/M/N+M: each caller gives up after an exponential
patience, whose rate a period's own calls estimate) is used where the data allows.
The report compares either with the call takers actually logged in and names the
model it used. Erlang B is computed by its recursion, which stays exact in floating
point where factorials overflow. tests/unit/test_staffing.py checks Erlang C against
published values and an exact rational oracle, Erlang A against a seeded simulation
and against Erlang C as patience grows without end.
"""

from __future__ import annotations

import math

import numpy as np

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


# -- Erlang A: M/M/N+M, callers who give up -------------------------------------------


def patience_rate(abandons: int, waited_seconds: float) -> float | None:
    """The rate θ of exponential patience from a period's calls: abandons divided by the
    time all callers spent waiting, answered ones included (their patience was still
    running: censored observations). None when nobody waited."""
    if waited_seconds <= 0:
        return None
    return abandons / waited_seconds


def _stationary(agents: int, arrivals: float, service: float, patience: float) -> list[float]:
    """P(n callers in the system) of M/M/N+M, truncated where the tail is negligible."""
    weights, w, n = [1.0], 1.0, 0
    while True:
        n += 1
        w *= arrivals / (min(n, agents) * service + max(0, n - agents) * patience)
        weights.append(w)
        if n > agents and (w < 1e-16 * sum(weights) or n > agents + 100_000):
            break
    total = sum(weights)
    return [x / total for x in weights]


def _reached_within(rates: np.ndarray, within: float) -> np.ndarray:
    """For every start j (1-based), P(a pure-death chain through ``rates[j-1]``, ...,
    ``rates[0]`` ends by ``within``), by uniformisation: stable where the closed form of
    a hypoexponential is not. One pass serves every start: the chain from position j is
    the chain from j-1 with one more phase in front (bench_report: 30x over one pass per
    start, which made a month's staffing take ten seconds)."""
    top = float(rates.max())
    mean = top * within
    # Poisson(mean) terms far enough into the tail, in logs: exp(-mean) alone underflows.
    steps = int(mean + 12 * math.sqrt(mean) + 30)
    s = np.arange(steps + 1)
    log_factorial = np.concatenate(([0.0], np.cumsum(np.log(s[1:]))))
    poisson = np.exp(-mean + s * math.log(mean) - log_factorial) if mean > 0 else s == 0
    move = rates / top
    at = np.zeros(len(rates) + 1)  # at[j]: P(done within the steps so far | start at j)
    at[0] = 1.0
    done = np.zeros(len(rates))
    for step in range(1, steps + 1):
        at[1:] = move * at[:-1] + (1 - move) * at[1:]
        done += poisson[step] * at[1:]
    return np.minimum(done, 1.0)


def erlang_a_service_level(
    agents: int, arrivals: float, handle_seconds: float, patience: float, within: float
) -> float:
    """The share of callers answered within ``within`` seconds of joining the queue
    when each gives up after an exponential patience of rate ``patience`` (per s)."""
    if agents <= 0:
        return 0.0
    service = 1.0 / handle_seconds
    pi = _stationary(agents, arrivals, service, patience)
    level = sum(pi[:agents])  # answered at once
    waiting = np.asarray(pi[agents:])  # k callers ahead, k = 0, 1, ...
    # With k ahead a caller is at position k+1 and leaves each position m by a service
    # start or an abandonment ahead (rate m-1 of them, plus ours: ours only if we
    # outwait our own patience).
    rates = agents * service + np.arange(1, len(waiting) + 1) * patience
    stays = np.cumprod((rates - patience) / rates)
    return float(level + np.sum(waiting * stays * _reached_within(rates, within)))


def agents_needed_a(
    arrivals: float, handle_seconds: float, patience: float, within: float, level: float
) -> int:
    """The fewest call takers whose Erlang A service level reaches ``level``, searched
    from Erlang C's answer. Either way is possible: giving up shortens the queue for
    those who stay, but a caller who gives up before ``within`` is a call not answered
    in time (NENA counts it against the center)."""
    if arrivals <= 0:
        return 0
    agents = agents_needed(traffic(arrivals, handle_seconds), handle_seconds, within, level)

    def reaches(n: int) -> bool:
        return erlang_a_service_level(n, arrivals, handle_seconds, patience, within) >= level

    while not reaches(agents):
        agents += 1
        if agents > MAX_AGENTS:
            raise ValueError(f"more than {MAX_AGENTS} call takers: check the load")
    while agents > 1 and reaches(agents - 1):
        agents -= 1
    return agents

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


def _reached_within(rates: list[float], within: float) -> float:
    """P(a pure-death chain through ``rates`` (first to last) ends by ``within``), by
    uniformisation: stable where the closed form of a hypoexponential is not."""
    top = max(rates)
    mean = top * within
    # Poisson(mean) terms, far enough into the tail.
    steps = int(mean + 12 * math.sqrt(mean) + 30)
    at = [1.0] + [0.0] * len(rates)  # at[i]: i phases done
    poisson, done = math.exp(-mean), 0.0
    for step in range(steps + 1):
        if step:
            poisson *= mean / step
            nxt = [0.0] * (len(rates) + 1)
            for i, p in enumerate(at):
                if i == len(rates):
                    nxt[i] += p
                else:
                    move = rates[i] / top
                    nxt[i + 1] += p * move
                    nxt[i] += p * (1 - move)
            at = nxt
        done += poisson * at[-1]
    return min(1.0, done)


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
    for k, p in enumerate(pi[agents:]):
        if p < 1e-15:
            continue
        # k callers ahead: positions k+1 .. 1, each left by a service start or an
        # abandonment ahead (ours only if we outwait our own patience).
        rates = [agents * service + m * patience for m in range(k + 1, 0, -1)]
        stays = math.prod((r - patience) / r for r in rates)
        level += p * stays * _reached_within(rates, within)
    return level


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

"""The metric names pbxbridge really exports: a fully wired Metrics, scraped once."""

from __future__ import annotations

from pbxbridge import tracker as tr
from pbxbridge.ami import AmiState
from pbxbridge.ami_translate import TranslationStats
from pbxbridge.delivery import DeliveryStats
from pbxbridge.metrics import Metrics
from pbxbridge.pipeline import PipelineStats
from pbxbridge.store_policy import StoreHealth
from tests.support import settings


def exported_names() -> set[str]:
    """Every sample name (``..._total``, ``..._bucket``, gauges) of a scrape."""
    m = Metrics(service="112", queues=("calltakers",), categories=("prank",), agencies=("fire",))
    m.watch_calls(tr.Tracker(settings.tracker()))
    m.watch_members(dict)
    m.watch_ami(lambda: AmiState(False, False, None, 0, 0, 0, 0, 0, 0, None, None))
    m.watch_pipeline(PipelineStats(), TranslationStats(), lambda: 0)
    m.watch_callbacks(list)
    m.watch_delivery(lambda: DeliveryStats({}, {}, 0, 0, 0.0, 0))
    m.watch_stores([("outbox", lambda: StoreHealth(True, None, 0, 0))])
    # Families without samples yet (labels first seen at run time) count too.
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    names = set()
    for line in m.render().decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split()
            family = family.removesuffix("_total")
            names |= {family + s for s in suffixes.get(kind, ("",))}
        elif line and not line.startswith("#"):
            names.add(line.split("{", 1)[0].split(" ", 1)[0])
    return names

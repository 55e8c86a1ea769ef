"""Python's cyclic garbage collector, set for a process that holds thousands of connections.

Measured in connect storms (bench/README.md, "The garbage collector"): with the defaults the
collector took ~8 % of the server's CPU. Its full passes walk every tracked object, and most of
them are not the connections' but what the process imported and built before it served
anything (Django, the URL and model registries: ~140,000 objects here), which lives as long as
the process. Frozen, those are never walked again. The young generation's threshold is raised
from 700 to 20,000 allocations: a connect allocates a few hundred tracked objects, most of them
freed before the next pass either way, and the older passes are counted in young ones, so they
become as much rarer. The garbage this leaves waiting for a pass is bounded by the threshold
(a few MB at most).
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000


def tune() -> None:
    """Freeze what exists now (call once the application is loaded) and raise the young
    threshold; the older generations' thresholds are kept."""
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)

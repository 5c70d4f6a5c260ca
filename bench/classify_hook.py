"""A probe's view of the finder's decisions: pixeltext._classify wrapped so that a callback sees
every candidate it classifies, with the outer-band ring ratio computed for it (None where the
ring rule did not run). Shared by bench/textfree_probe.py and bench/grainband_probe.py."""
from __future__ import annotations

from vindr_cli.deid import pixeltext as P


def hook_classify(record) -> None:
    """From now on (for the process), each ``pixeltext._classify`` call also calls
    ``record(classify, ratio, result, image, box, bright, hints, inner, stacked, textured, central)``,
    ``classify`` being the original function (to classify the candidate again otherwise)."""
    orig, ring = P._classify, P._ring_ratio
    last: dict = {}

    def ring_ratio(maps, cands, c, bright):
        last["ratio"] = r = ring(maps, cands, c, bright)
        return r

    def classify(image, box, bright, hints, inner, stacked=False, textured=False, central=True):
        ratio = last.pop("ratio", None)
        res = orig(image, box, bright, hints, inner, stacked, textured, central)
        record(orig, ratio, res, image, box, bright, hints, inner, stacked, textured, central)
        return res

    P._classify, P._ring_ratio = classify, ring_ratio

"""Where to cut a long programme: candidate cuts in its pauses, chosen by dynamic programming.

Pure functions of a :class:`handoff.analysis.dsp.SoundMap` (1 ms bins of the levelled
programme) and the options: no file is read or written. Positions are 48 kHz master
samples.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

import numpy as np

from handoff.analysis import dsp, narration
from handoff.analysis.dsp import SoundMap
from handoff.errors import UnsupportedError
from handoff.prep.options import RATE, CutKind, PrepOptions
from handoff.prep.results import Cut

__all__ = [
    "BIN",
    "LEAD_IN",
    "REAL_PAUSE_BINS",
    "SHORT_PAUSE_BINS",
    "TAIL",
    "Node",
    "search_cuts",
    "tail_samples",
]

BIN = dsp.bin_samples(RATE)  # samples per 1 ms analysis bin (SoundMap's)
REAL_PAUSE_BINS = 300
SHORT_PAUSE_BINS = 150
_QUIETEST_BLOCK_BINS = 1000  # one last-resort candidate per second of programme
LEAD_IN = RATE * 5 // 1000  # kept before the first sound (faded in)
TAIL = RATE * 40 // 1000  # kept after the last sound


def tail_samples(options: PrepOptions) -> int:
    """What each segment keeps after its last sound: :data:`TAIL`, or the ``--fade-tails``
    fade when longer (the fade then lies wholly after the last sound)."""
    return max(TAIL, RATE * int(options.fade_tails_ms) // 1000)


_DURATION_SAFETY = RATE // 100  # segments end at least 10 ms under max_seconds

# Dynamic-programming costs: a forced (non-pause) cut outweighs any range miss a real-pause
# solution has; a second outside the range costs 1.
_COST_SHORT_PAUSE = 30.0
_COST_QUIETEST = 300.0
_COST_PER_SECOND_OUT_OF_RANGE = 1.0


@dataclass(frozen=True, slots=True)
class Node:
    cut: Cut
    start: int  # where a segment after this cut starts (master sample)
    end: int  # where a segment before this cut ends (master sample)
    cost: float


def _node(
    sound: SoundMap, cut_bin: int, kind: CutKind, pause_bins: int | None, total: int, tail: int
) -> Node | None:
    position = cut_bin * BIN + BIN // 2
    onset = sound.onset_after(cut_bin)
    end = sound.end_before(cut_bin)
    if onset is None or end is None:
        return None
    start = max(position, onset * BIN - LEAD_IN)
    stop = min(position, end * BIN + tail, total)
    pause_s = None if pause_bins is None else pause_bins / 1000.0
    if kind == "pause":
        assert pause_s is not None
        cost = 0.5 / min(pause_s, 2.5)
    elif kind == "short-pause":
        cost = _COST_SHORT_PAUSE
    else:
        level_db = 10.0 * math.log10(max(float(sound.centred[cut_bin]), 1e-30))
        cost = _COST_QUIETEST + max(0.0, level_db - sound.threshold_db)
    return Node(Cut(position, kind, pause_s), start, stop, cost)


def search_cuts(
    sound: SoundMap, total: int, head: int, options: PrepOptions
) -> tuple[list[tuple[Node, Node]], list[str]]:
    """The segments as (cut before, cut after) pairs, and warnings about the cuts.

    ``total`` is the programme's length and ``head`` what each segment file holds before
    its audio (click and pre-roll), in samples. The first and last sound are kept with
    a 5 ms lead-in and a 40 ms tail (longer with ``--fade-tails``); a programme that
    fits ``max_seconds`` is one segment. Otherwise every pause of at least 0.15 s offers a
    cut at its quietest point (``SoundMap.quietest``), and the quietest 20 ms of each
    second not in a pause a last-resort one; the chain of cuts is the cheapest under the
    costs above with no segment file reaching ``max_seconds``. With
    ``--cut-at-pace-change`` every gap where the pace changes
    (:func:`handoff.analysis.narration.pace_cuts`) is a cut whatever the lengths, a
    programme that fits one segment included.
    """
    warnings: list[str] = []
    tail = tail_samples(options)
    first = sound.onset_after(0)
    last = sound.end_before(sound.bins.shape[0])
    assert first is not None and last is not None
    begin = Node(Cut(0, "start"), max(0, first * BIN - LEAD_IN), 0, 0.0)
    finish = Node(Cut(total, "end"), total, min(total, last * BIN + tail), 0.0)
    hard = round(options.max_seconds * RATE) - _DURATION_SAFETY
    paces = narration.pace_cuts(sound) if options.cut_at_pace_change else []
    if head + finish.end - begin.start <= hard and not paces:
        return [(begin, finish)], warnings

    nodes: dict[int, Node] = {}
    covered = np.zeros(sound.bins.shape[0], dtype=bool)
    for a, b in sound.pauses(first, last, SHORT_PAUSE_BINS):
        kind: CutKind = "pause" if b - a >= REAL_PAUSE_BINS else "short-pause"
        cut = sound.quietest(a, b)
        node = _node(sound, cut, kind, b - a, total, tail)
        if node is not None:
            nodes[cut] = node
            covered[a:b] = True
    for a in range(first, last, _QUIETEST_BLOCK_BINS):
        b = min(last, a + _QUIETEST_BLOCK_BINS)
        cut = sound.quietest(a, b)
        if not covered[cut] and cut not in nodes:
            node = _node(sound, cut, "quietest", None, total, tail)
            if node is not None:
                nodes[cut] = node
    # --cut-at-pace-change: a cut where the pace changes is worth more than what splitting
    # a segment there can add to the range misses (under 2 x max_seconds): each is taken.
    bonus = 2.0 * options.max_seconds * _COST_PER_SECOND_OUT_OF_RANGE + 1.0
    pace_at: dict[int, narration.PaceChange] = {}
    for change in paces:
        a, b = change.at // BIN, -(-change.end // BIN)
        cut = sound.quietest(a, b)
        node = _node(sound, cut, "pace-change", b - a, total, tail)
        if node is not None:
            nodes[cut] = replace(node, cost=-bonus)
            pace_at[node.cut.position] = change
    chain = [begin, *(nodes[k] for k in sorted(nodes)), finish]
    starts = np.array([n.start for n in chain], dtype=np.int64)
    ends = np.array([n.end for n in chain], dtype=np.int64)
    positions = np.array([n.cut.position for n in chain], dtype=np.int64)
    costs = np.array([n.cost for n in chain])
    lo_s, hi_s = options.segment_min, options.segment_max
    best = np.full(len(chain), np.inf)
    back = np.full(len(chain), -1, dtype=np.int64)
    best[0] = 0.0
    for k in range(1, len(chain)):
        j0 = int(np.searchsorted(positions, positions[k] - 2 * hard))
        js = np.arange(j0, k)
        length = head + ends[k] - starts[js]
        ok = (length <= hard) & (ends[k] > starts[js]) & np.isfinite(best[js])
        if not ok.any():
            continue
        seconds = length / RATE
        out_of_range = np.maximum(lo_s - seconds, 0.0) + np.maximum(seconds - hi_s, 0.0)
        total_cost = np.where(ok, best[js] + _COST_PER_SECOND_OUT_OF_RANGE * out_of_range, np.inf)
        i = int(np.argmin(total_cost))
        best[k] = total_cost[i] + costs[k]
        back[k] = js[i]
    if not math.isfinite(best[-1]):
        raise UnsupportedError(
            f"cannot cut the programme into segments under {options.max_seconds:g} s"
        )
    path = [len(chain) - 1]
    while path[-1] != 0:
        path.append(int(back[path[-1]]))
    path.reverse()
    pairs = [(chain[a], chain[b]) for a, b in itertools.pairwise(path)]
    for index, (_, after) in enumerate(pairs[:-1], start=1):
        at = after.cut.position / RATE
        if after.cut.kind == "pace-change":
            change = pace_at[after.cut.position]
            warnings.append(
                f"segment {index} ends at {at:.2f} s, where the pace changes by "
                f"{change.change:+.0%} ({change.before:.2f} -> {change.after:.2f} syllables/s)"
            )
        elif after.cut.kind == "short-pause":
            warnings.append(
                f"segment {index} ends at {at:.2f} s in a short pause "
                f"({after.cut.pause_s:.2f} s): no longer pause fits the segment limits"
            )
        elif after.cut.kind == "quietest":
            warnings.append(
                f"segment {index} ends at {at:.2f} s at the quietest point, not in a pause: "
                "no pause fits the segment limits"
            )
    return pairs, warnings

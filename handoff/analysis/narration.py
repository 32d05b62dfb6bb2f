"""What a narration does between its words: the silences inside it and the noise floor
in them, from the 1 ms bins of :mod:`handoff.analysis.dsp` (numpy only).

LTX-2 follows the transients of its conditioning audio. The people who condition it on
narration report that long silences inside a segment invite drift, and that a floor
which "dances" -- a gate or heavy noise reduction switching between digital silence and
room tone -- blurs the onsets the model locks onto. These are measured here, once, for
the validator (``ltx2-audio``) and for prep-audio.

The rules
    *Silences* are :meth:`handoff.analysis.dsp.SoundMap.pause_list` pauses: runs where the
    centred 20 ms level is at or under the programme's one threshold, inside the
    programme (after its first sound, before its last), their edges set by the onset
    rule. Positions are exact sample counts of the analysed signal.

    *Floor.* A pause's floor is the median power of its 1 ms bins, leaving out
    :data:`EDGE_S` at either end (the tail of the word before, the breath of the one
    after), in dB re full-scale mean square, never under :data:`DIGITAL_SILENCE_DB`
    (digital silence and dither both read as that). Only pauses of at least
    :data:`FLOOR_PAUSE_S` have a floor. The floor's *range* is the highest pause floor
    minus the lowest: a steady floor (room tone throughout, or digital silence
    throughout) keeps it within a few dB; a gate opening and closing puts digital silence
    in some pauses and room tone in others, tens of dB apart.

    *Switches.* Along the silent 1 ms bins inside the programme (short gaps between
    syllables included), each bin is digital silence (at or under :data:`TONE_DB`) or
    tone; runs of at least :data:`SWITCH_RUN_BINS` in one state count, and a switch is a
    counted run in the other state than the one before. A gate with any hold time
    switches: it stays open through the short gaps (tone) and closes in the long pauses
    (digital silence); so does a stretch of digital silence pasted into a recording. A
    gate with a fast release leaves no tone between words at all: it shows as sound that
    stops dead, falling from :data:`CLIFF_DB` over the threshold into digital silence
    (a run of at least :data:`SWITCH_RUN_BINS`) within :data:`CLIFF_BINS` ms, which no
    voice or room decays so fast (FFmpeg's ``agate`` with a 50 ms release over read
    speech does it 60 times in 30 s; syllables fading to digital silence, never); each
    such stop counts as a switch.

    *Clock.* The model takes its clock from the first sharp onset -- a consonant's burst,
    a click. A sharp onset is the first 1 ms bin where the 5 ms level rises at least
    :data:`RISE_DB` over the 5 ms level 10 ms before and reaches within :data:`REACH_DB` of
    the programme's level. A word that starts the programme has one at its first sound;
    1.2 s of breath before the first word puts it 1.2 s later; a vowel swelling over 100 ms
    has none until its next consonant. The clock is counted from the first thing heard:
    the first bin :data:`HEARD_UNDER_DB` under the silence threshold or louder, so that a
    breath swelling in slowly (under the threshold for its first quarter second) counts
    from its start.

    *Pacing.* Speech rate is counted in syllable nuclei: peaks of the 25 ms level that
    stand :data:`NUCLEUS_PROMINENCE_DB` over the lowest level within 150 ms on both
    sides, reach :data:`NUCLEUS_OVER_DB` over the threshold, are at least
    :data:`NUCLEUS_GAP_BINS` ms apart and dip :data:`NUCLEUS_DIP_DB` between one and the
    next (the syllable-nucleus counting of de Jong &
    Wempe, "Praat script to detect syllable nuclei and measure speech rate
    automatically", Behavior Research Methods 41(2), 2009, on intensity instead of
    intensity and voicing). The rate is nuclei per second of sound (silences left out,
    so a longer breath does not read as slower speech). At every gap between words (at
    least :data:`PACE_GAP_S`) the rate over :data:`PACE_WINDOW_S` before it is compared
    with the rate over as long after it; the pace change is the largest such
    difference, as a fraction of the rate before. Measured: synthetic narrations with
    random syllable lengths (80-300 ms) and gaps read evenly change by at most 18 %
    (eight of 60 s), and by +29 % or more where their second half is played a third
    faster; 30 s of real read speech (silero-vad's test recording) by 19 %, and by +36 %
    at the join when followed by itself a third faster (FFmpeg's ``atempo``, which keeps
    the pitch). Windows of 20 s read up to 27 % on the even speech. The count depends on
    the level's shape: soft syllables under the count's floor are not counted, so the
    same recording levelled and compressed can read a larger change than as it came.

    *End.* A segment should end in silence: reverb or room sound still decaying when the
    file stops is cut off mid-tail. The end's level is the mean power of the last 20 ms
    over the programme's threshold, in dB: under 0 the file ends in silence; a tail cut
    50 ms after a dry word's end with a 0.6 s reverb still reads about 30 dB over it.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from handoff.analysis.dsp import BIN_S, LEVEL_MARGIN_DB, SoundMap, centred_level
from handoff.media.arrays import FloatArray

__all__ = [
    "CLICK_BINS",
    "CLIFF_BINS",
    "CLIFF_DB",
    "CLOCK_WINDOW_BINS",
    "DIGITAL_SILENCE_DB",
    "EDGE_S",
    "END_BINS",
    "FLOOR_PAUSE_S",
    "HEARD_UNDER_DB",
    "MIN_SILENCE_S",
    "NUCLEUS_DIP_DB",
    "NUCLEUS_GAP_BINS",
    "NUCLEUS_OVER_DB",
    "NUCLEUS_PROMINENCE_DB",
    "NUCLEUS_REACH_BINS",
    "NUCLEUS_SMOOTH_BINS",
    "PACE_CHANGE",
    "PACE_MIN_SPEECH_S",
    "PACE_WINDOW_S",
    "REACH_DB",
    "RISE_BINS",
    "RISE_DB",
    "SWITCH_RUN_BINS",
    "TONE_DB",
    "NarrationFacts",
    "PaceChange",
    "Silence",
    "heard_bins",
    "narration_facts",
    "pace_around",
    "pace_changes",
    "pace_cuts",
    "syllable_nuclei",
]

MIN_SILENCE_S = 0.3
"""The shortest pause counted as a silence (prep's real pause: :mod:`handoff.prep`)."""
FLOOR_PAUSE_S = 0.3
"""The shortest pause whose floor is read."""
EDGE_S = 0.05
"""Left out of a pause's floor at either end."""
TONE_DB = -100.0
"""Silent bins above this carry room tone (or noise); at or under it, digital silence."""
SWITCH_RUN_BINS = 20
"""The shortest run of silent bins in one state that counts (20 ms: a word's decaying
tail passes through the tone band faster)."""
END_BINS = 20
"""The end's level is the mean of the last 20 ms."""
CLOCK_WINDOW_BINS = 5
"""The clock's level is the mean of 5 ms."""
RISE_BINS = 10
"""A sharp onset's rise is measured against the level 10 ms before."""
RISE_DB = 20.0
"""... and is at least 20 dB."""
REACH_DB = 20.0
"""... to within 20 dB of the programme's level (its gated 20 ms level:
:func:`~handoff.analysis.dsp.silence_threshold_db` + :data:`LEVEL_MARGIN_DB`)."""
NUCLEUS_SMOOTH_BINS = 25
"""Syllable nuclei are peaks of the 25 ms moving mean of the bins' power."""
NUCLEUS_PROMINENCE_DB = 6.0
"""... standing at least 6 dB over the lowest level within :data:`NUCLEUS_REACH_BINS`
on both sides ..."""
NUCLEUS_REACH_BINS = 150
NUCLEUS_OVER_DB = 10.0
"""... reaching 10 dB over the silence threshold ..."""
NUCLEUS_GAP_BINS = 80
"""... 80 ms apart at least (the louder of two closer peaks is kept) ..."""
NUCLEUS_DIP_DB = 3.0
"""... and with a dip of 3 dB at least between one and the next (de Jong and Wempe's
"minimum dip between peaks", there 2 dB on intensity): without it a loud syllable whose
top a limiter flattened reads as two, and a narration levelled with 6 dB of limiting
read its change of pace at 18 % instead of its source's 27 %."""
PACE_GAP_S = 0.1
"""The rate can change at any gap between words at least this long."""
PACE_WINDOW_S = 30.0
"""The rate before and after a gap is read over this many seconds of programme."""
PACE_CHANGE = 0.25
"""A change of speech rate larger than this (either way, as a fraction of the rate
before) is a change of pace: ``ltx2-audio``'s ``pacing`` rule warns over 25 %, and
``prep-audio --cut-at-pace-change`` cuts there."""
PACE_MIN_SPEECH_S = 6.0
"""... holding at least this much sound, on both sides, for a silence to be compared."""
CLICK_BINS = 30
"""A sound this short (ms) at the programme's head, then silence, is a sync click."""
HEARD_UNDER_DB = 10.0
"""A bin this far under the silence threshold is heard (the clock counts from it)."""
CLIFF_BINS = 3
"""Sound that falls into digital silence within 3 ms ..."""
CLIFF_DB = 10.0
"""... from at least 10 dB over the silence threshold stopped dead (a gate closing)."""
DIGITAL_SILENCE_DB = -120.0
"""The floor of digital silence (and of anything under it: 16-bit dither is about -101 dB
re full-scale mean square, 24-bit about -149)."""


@dataclass(frozen=True, slots=True)
class Silence:
    """A pause inside the programme, in samples of the analysed signal, and its floor."""

    start: int
    """First silent sample."""
    end: int
    """One past the last (the onset of the sound after)."""
    floor_db: float | None
    """The pause's floor (module docstring); None for a pause shorter than
    :data:`FLOOR_PAUSE_S` plus its edges."""

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class PaceChange:
    """The speech rate either side of a gap between words (module docstring: *Pacing*)."""

    at: int
    """The gap's first sample."""
    end: int
    """One past its last."""
    before: float
    """Syllable nuclei per second of sound over the window before it."""
    after: float
    """... and after it."""

    @property
    def change(self) -> float:
        """``after / before - 1``: +0.33 where the reading speeds up by a third."""
        return self.after / self.before - 1.0

    @property
    def size(self) -> float:
        """``|log(after / before)|``: how large the change is, faster or slower alike."""
        return abs(math.log(self.after / self.before))


@dataclass(frozen=True, slots=True)
class NarrationFacts:
    """The silences of a programme and the floor in them."""

    sample_rate: int
    silences: tuple[Silence, ...]
    """Every pause of at least :data:`MIN_SILENCE_S`, in order."""

    floor_switches: int = 0
    """How often the floor between words changes between digital silence and room tone
    (module docstring: *Switches*); 0 for a steady floor."""
    first_switch: int | None = None
    """Sample where the floor first changes; None without a switch."""
    first_sound: int | None = None
    """Sample of the programme's first sound (the onset rule); None when silent."""
    clock: int | None = None
    """Sample of the first sharp onset (module docstring: *Clock*); None without one."""
    end_level_db: float | None = None
    """The level of the last :data:`END_BINS` ms over the programme's threshold, dB
    (module docstring: *End*); None for a signal shorter than that."""
    speech_rate: float | None = None
    """Syllable nuclei per second of sound over the whole programme; None without sound."""
    pace: PaceChange | None = None
    """The gap where the rate changes most (module docstring: *Pacing*); None when no
    gap has enough speech on both sides."""
    first_heard: int | None = None
    """Sample where anything is first heard: the first 1 ms bin :data:`HEARD_UNDER_DB`
    under the silence threshold or louder (a breath swelling in is heard before it
    counts as sound), or the first sound if that is earlier; None when silent."""

    @property
    def clock_after_s(self) -> float | None:
        """Seconds from the first thing heard to the first sharp onset; None without one."""
        if self.clock is None or self.first_heard is None:
            return None
        return (self.clock - self.first_heard) / self.sample_rate

    @property
    def longest(self) -> Silence | None:
        """The longest silence (the first of equals); None without one."""
        return max(self.silences, key=lambda s: s.length, default=None)

    def seconds(self, samples: int) -> float:
        return samples / self.sample_rate

    @property
    def floors(self) -> tuple[Silence, ...]:
        """The silences whose floor was read."""
        return tuple(s for s in self.silences if s.floor_db is not None)

    @property
    def floor_range_db(self) -> float | None:
        """Highest pause floor minus the lowest; None with fewer than two floors."""
        values = [s.floor_db for s in self.floors if s.floor_db is not None]
        if len(values) < 2:
            return None
        return max(values) - min(values)


def _db(power: FloatArray) -> FloatArray:
    """Bin powers in dB re full-scale mean square, never under DIGITAL_SILENCE_DB."""
    floor = 10.0 ** (DIGITAL_SILENCE_DB / 10.0)
    return np.asarray(10.0 * np.log10(np.maximum(power, floor)), dtype=np.float64)


def narration_facts(
    bins: FloatArray, samples: int, sample_rate: int, *, threshold_db: float | None = None
) -> NarrationFacts:
    """The silences and floors of a signal of ``samples`` samples whose
    :func:`~handoff.analysis.dsp.bin_power` bins are ``bins`` (from
    :class:`~handoff.analysis.dsp.BinPowers` of a streamed programme, say)."""
    sound = SoundMap.from_bins(bins, samples, sample_rate, threshold_db=threshold_db)
    size = sound.size
    edge = round(EDGE_S * sample_rate)
    least = round(FLOOR_PAUSE_S * sample_rate)
    silences = []
    for pause in sound.pause_list(MIN_SILENCE_S):
        floor: float | None = None
        if pause.length >= least + 2 * edge:
            # Bins wholly inside the pause, its edges left out.
            lo = -(-(pause.start + edge) // size)
            hi = (pause.end - edge) // size
            if hi > lo:
                floor = float(np.median(_db(sound.bins[lo:hi])))
        silences.append(Silence(pause.start, pause.end, floor))
    switches, first = _floor_switches(sound)
    span = sound.programme()
    start = None if span is None else span[0] * size
    clock = None if span is None else _first_sharp_rise(sound, span[0], span[1])
    nuclei = syllable_nuclei(sound)
    heard = int(np.count_nonzero(~sound.silent))
    rate = None if heard == 0 else nuclei.shape[0] * 1000.0 / heard
    changes = pace_changes(sound, nuclei)
    pace = max(changes, key=lambda c: c.size, default=None)
    heard_at = None
    if start is not None:
        loud = np.flatnonzero(sound.bins >= 10.0 ** ((sound.threshold_db - HEARD_UNDER_DB) / 10.0))
        heard_at = min(start, int(loud[0]) * sound.size) if loud.shape[0] else start
    return NarrationFacts(
        sample_rate,
        tuple(silences),
        switches,
        first,
        start,
        clock,
        _end_level(sound),
        rate,
        pace,
        heard_at,
    )


def syllable_nuclei(sound: SoundMap) -> npt.NDArray[np.int64]:
    """The bins of the programme's syllable nuclei (module docstring: *Pacing*), in order."""
    if sound.bins.shape[0] < 3:
        return np.zeros(0, dtype=np.int64)
    env = _db(centred_level(sound.bins, NUCLEUS_SMOOTH_BINS))
    peaks = np.flatnonzero((env[1:-1] > env[:-2]) & (env[1:-1] >= env[2:])) + 1
    peaks = peaks[env[peaks] >= sound.threshold_db + NUCLEUS_OVER_DB]
    if not peaks.shape[0]:
        return np.zeros(0, dtype=np.int64)
    reach = NUCLEUS_REACH_BINS
    padded = np.concatenate((np.full(reach, np.inf), env, np.full(reach, np.inf)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, reach + 1)
    left = windows[peaks].min(axis=1)  # env[p - reach .. p]
    right = windows[peaks + reach].min(axis=1)  # env[p .. p + reach]
    prominent = peaks[env[peaks] - np.maximum(left, right) >= NUCLEUS_PROMINENCE_DB]
    kept: list[int] = []
    for p in prominent.tolist():
        if kept:
            q = kept[-1]
            # Two peaks without a dip of NUCLEUS_DIP_DB between them (a loud syllable whose
            # top a limiter flattened into ripples), or closer than NUCLEUS_GAP_BINS, are
            # one syllable: its louder peak.
            dip = min(float(env[q]), float(env[p])) - float(env[q:p].min())
            if p - q < NUCLEUS_GAP_BINS or dip < NUCLEUS_DIP_DB:
                if env[p] > env[q]:
                    kept[-1] = p
                continue
        kept.append(p)
    return np.asarray(kept, dtype=np.int64)


def pace_changes(sound: SoundMap, nuclei: npt.NDArray[np.int64]) -> list[PaceChange]:
    """The speech rate before and after each gap between words (at least
    :data:`PACE_GAP_S`) that has :data:`PACE_MIN_SPEECH_S` of sound within
    :data:`PACE_WINDOW_S` on both sides."""
    heard = heard_bins(sound)
    found = (
        pace_around(sound, nuclei, heard, g.start, g.end) for g in sound.pause_list(PACE_GAP_S)
    )
    return [c for c in found if c is not None]


def pace_cuts(sound: SoundMap) -> list[PaceChange]:
    """Where to cut so that each piece holds one pace, in order.

    Binary segmentation (the change-point search of Scott and Knott, Biometrics 30(3),
    1974): the gap with the largest change of rate over :data:`PACE_CHANGE` is a cut;
    then every gap is measured again with its windows stopping at the cuts made so far
    (the rate before a gap is the rate since the last cut, at most
    :data:`PACE_WINDOW_S`), and the largest change left is the next cut, until none is
    over :data:`PACE_CHANGE` with :data:`PACE_MIN_SPEECH_S` of sound on both sides.
    """
    nuclei = syllable_nuclei(sound)
    heard = heard_bins(sound)
    gaps = sound.pause_list(PACE_GAP_S)
    cuts: list[PaceChange] = []
    while True:
        bounds = sorted(c.at for c in cuts)
        best: PaceChange | None = None
        for gap in gaps:
            if any(c.at == gap.start for c in cuts):
                continue
            k = bisect.bisect_left(bounds, gap.start)
            lo = bounds[k - 1] if k > 0 else 0
            hi = bounds[k] if k < len(bounds) else None
            change = pace_around(sound, nuclei, heard, gap.start, gap.end, lo, hi)
            if change is None or abs(change.change) <= PACE_CHANGE:
                continue
            if best is None or change.size > best.size:
                best = change
        if best is None:
            return sorted(cuts, key=lambda c: c.at)
        cuts.append(best)


def heard_bins(sound: SoundMap) -> npt.NDArray[np.int64]:
    """How many of the first ``k`` bins hold sound, for every ``k`` (for :func:`pace_around`)."""
    return np.concatenate(([0], np.cumsum(~sound.silent, dtype=np.int64)))


def pace_around(
    sound: SoundMap,
    nuclei: npt.NDArray[np.int64],
    heard: npt.NDArray[np.int64],
    start: int,
    end: int,
    since: int = 0,
    until: int | None = None,
) -> PaceChange | None:
    """The speech rate before and after the gap ``[start, end)`` (samples), the windows
    kept within ``[since, until)``; None without :data:`PACE_MIN_SPEECH_S` of sound on
    either side."""
    size = sound.size
    per_s = round(1.0 / BIN_S)  # bins per second
    window = round(PACE_WINDOW_S * per_s)
    n = sound.bins.shape[0]
    a, b = start // size, min(n, -(-end // size))
    first, last = since // size, n if until is None else min(n, -(-until // size))
    lo, hi = max(first, a - window), min(last, b + window)
    speech_before = int(heard[a] - heard[lo])
    speech_after = int(heard[hi] - heard[b])
    if min(speech_before, speech_after) < PACE_MIN_SPEECH_S * per_s:
        return None
    at = np.searchsorted(nuclei, (lo, a, b, hi))
    count_before, count_after = int(at[1] - at[0]), int(at[3] - at[2])
    if count_before == 0 or count_after == 0:
        return None
    return PaceChange(
        start, end, count_before * per_s / speech_before, count_after * per_s / speech_after
    )


def _end_level(sound: SoundMap) -> float | None:
    bins = sound.bins
    if bins.shape[0] < END_BINS:
        return None
    power = float(np.mean(bins[-END_BINS:]))
    level = 10.0 * math.log10(power) if power > 0.0 else DIGITAL_SILENCE_DB
    return max(level, DIGITAL_SILENCE_DB) - sound.threshold_db


def _first_sharp_rise(sound: SoundMap, lo: int, hi: int) -> int | None:
    """The first bin in ``[lo, hi)`` where the level rises by :data:`RISE_DB` within
    :data:`RISE_BINS` and reaches within :data:`REACH_DB` of the programme's level, as a
    sample position; None without one."""
    bins = sound.bins
    level = sound.threshold_db + LEVEL_MARGIN_DB
    w = CLOCK_WINDOW_BINS
    floor = 10.0 ** (DIGITAL_SILENCE_DB / 10.0)
    # Before the file starts there is silence (a click in its first 10 ms rises from it):
    # RISE_BINS bins of it lead the sums, so bin j is at j + RISE_BINS.
    lead = np.full(RISE_BINS, floor)
    csum = np.concatenate(([0.0], np.cumsum(np.concatenate((lead, bins)), dtype=np.float64)))
    k = np.arange(lo, max(lo, hi - w))
    at = k + RISE_BINS
    after = (csum[at + w] - csum[at]) / w  # mean power of bins k .. k + w - 1
    before = (csum[at - RISE_BINS + w] - csum[at - RISE_BINS]) / w  # ... 10 bins earlier
    rises = (after >= np.maximum(before, floor) * 10.0 ** (RISE_DB / 10.0)) & (
        after >= 10.0 ** ((level - REACH_DB) / 10.0)
    )
    found = np.flatnonzero(rises)
    if not found.shape[0]:
        return None
    # The window that rises starts up to w - 1 bins early: the onset is its first bin
    # that rises on its own (the window's mean rose, so one of them did).
    i = int(found[0])
    start = int(k[i])
    risen = bins[start : start + w] >= max(float(before[i]), floor) * 10.0 ** (RISE_DB / 10.0)
    return (start + int(np.argmax(risen))) * sound.size


def _after_click(sound: SoundMap, lo: int, hi: int) -> tuple[int, int]:
    """``[lo, hi)`` from the sound after a sync click, when the programme starts with one
    (a sound of at most :data:`CLICK_BINS` followed by silence): the click and the
    pre-roll after it are not the floor between words."""
    silent = sound.silent[lo:hi]
    quiet = int(np.argmax(silent))
    if not silent[quiet] or quiet > CLICK_BINS:
        return lo, hi
    again = np.flatnonzero(~silent[quiet:])
    return (lo + quiet + int(again[0]), hi) if again.shape[0] else (lo, hi)


def _floor_switches(sound: SoundMap) -> tuple[int, int | None]:
    span = sound.programme()
    if span is None:
        return 0, None
    lo, hi = _after_click(sound, *span)
    silent = sound.silent[lo:hi]
    digital = sound.bins[lo:hi] <= 10.0 ** (TONE_DB / 10.0)
    # Runs of silent bins in one state (digital or tone), sound breaking them too.
    state = np.where(silent, np.where(digital, 0, 1), -1)
    edges = np.flatnonzero(np.diff(state)) + 1
    starts = np.concatenate(([0], edges))
    ends = np.concatenate((edges, [state.shape[0]]))
    kept = [(int(a), int(state[a])) for a, b in zip(starts, ends, strict=True)
            if state[a] >= 0 and b - a >= SWITCH_RUN_BINS]  # fmt: skip
    switches, first, last = 0, None, None
    for start, st in kept:
        if last is not None and st != last:
            switches += 1
            if first is None:
                first = lo + start
        last = st
    # Sound that stops dead: a digital-silence run entered from a level over the
    # threshold within CLIFF_BINS (a gate with a fast release; no voice decays so fast).
    levels = _db(sound.bins[lo:hi])
    dead = np.concatenate(([0], digital.astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(dead))
    for a, b in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
        if b - a < SWITCH_RUN_BINS or a == 0:
            continue
        if float(levels[max(0, a - CLIFF_BINS) : a].max()) >= sound.threshold_db + CLIFF_DB:
            switches += 1
            first = lo + a if first is None else min(first, lo + a)
    return switches, None if first is None else first * sound.size

"""Condition narration for LTX-2's audio-to-video pipeline: level, trim, pre-roll, segment.

``prep_audio(source, out_dir, PrepOptions(...))`` takes any file with an audio stream (WAV,
FLAC, MP3, AAC/M4A, or the first audio stream of a video) and writes, into ``out_dir``:

* ``001_<name>.wav``, ``002_<name>.wav``, ... -- the conditioning segments, in order;
* ``<name>_master.wav`` -- the whole programme at the same gain through the same limiter,
  untrimmed, for the editor's locked audio track (its timeline is the source's: master
  sample ``i`` is source time ``i / 48000``);
* ``manifest.json`` -- what was written and measured (schema below).

Every file is 48 kHz PCM WAV (24-bit, or 16), written atomically; the manifest is written
last, so its presence means the set is complete.

How the level is reached
    ONE linear gain plus an oversampled look-ahead true-peak limiter
    (:mod:`handoff.analysis.limiter`: 4x peak detection with the meter's own interpolation
    kernel, 1.5 ms look-ahead ramp, 200 dB/s release) where the gain would push a peak over
    the ceiling -- never dynamic loudness normalisation. The limiter aims 0.3 dB under the
    true-peak target. Limiting lowers the loudness, so the gain is iterated: secant steps on
    a cheap *estimate* (each 100 ms BS.1770 step's K-weighted energy scaled by the share of
    its plain energy the limiter removes), then a real BS.1770 measurement of the limited
    programme, whose difference from the estimate corrects the next solve -- usually one
    real measurement, at most three; it stops within 0.05 LU of the target. The gain may
    rise at most 20 dB past the unlimited one (a warning says when the target is missed).
    The true peak is then measured (the limiter's envelope is the meter's where the curve is
    1; where the limiter acted the candidate blocks are interpolated again from the output);
    if it is not 0.1 dB under the target, the ceiling goes down by the excess and everything
    runs again. Voice is mono content: loudness is measured on the mono signal even when it
    is written as dual-mono (two identical channels), the convention of the ``ltx2-audio``
    spec (a stereo meter reads such a file about 3 LU louder). A stereo source's mono
    content is (L+R)/2; ``source.measured_as`` says which signal the source loudness is of.
    When L and R carry different sound (:func:`~handoff.prep.content.compare_channels`:
    correlation under 0.5 over the speech, or the louder side swinging by more than 10 dB --
    two voices on two microphones) mixing them is warned; ``--channels stereo`` keeps them
    apart. Music keeps its stereo and is measured as stereo. Segments are cut from the
    levelled master and keep its gain, so a segment's own loudness can differ a little from
    the master's (warned beyond 0.5 LU). The reported true peak of a segment is the master's
    over the segment's span (its fades only lower it) or the click's, whichever is higher.
    Heavy limiting -- more than 6 dB off a peak, or more than 5 % of the programme (first to
    last sound) limited by over 1 dB -- is warned, naming the loudest passage: the limited
    stretches around the deepest reduction, joined across gaps under 0.3 s.

Silence, pauses and cuts
    All decisions use one threshold relative to the conditioned programme's own level
    (:func:`handoff.analysis.dsp.silence_threshold_db`: 35 dB under its gated level, on
    1 ms mean-square bins, loudest channel), through :class:`handoff.analysis.dsp.SoundMap`.
    The first sound after a point is found as :func:`handoff.analysis.loudness.leading_silence_s`
    finds it (first 20 ms window above the threshold, then its first 1 ms bin above it),
    so the leading silence the validator measures on a segment is the pre-roll (+ the
    5 ms lead-in kept before the onset).
    A *pause* is a run of 1 ms positions whose centred 20 ms level is under the
    threshold: >= 0.3 s is a real pause; 0.15-0.3 s a short pause (a cut there carries a
    warning); where no pause fits, the quietest 20 ms in each second of programme is a
    last-resort cut (with a warning). Each cut is at the quietest point of its pause
    (ties: its middle). The cuts are chosen by dynamic programming over all candidates:
    no segment file may reach ``max_seconds`` (pre-roll and click included); then real
    pauses are preferred to anything else; then every second outside the segment range
    costs; then longer pauses are preferred.

Segment file layout
    ``[click][pre-roll silence][audio]``: the optional click (a 4 ms Hann-windowed 2 kHz
    burst, peak 3 dB under the true-peak target) occupies ``click_start .. click_end``;
    digital silence follows up to ``preroll_end``; the audio from ``preroll_end`` on is
    master samples ``source_in .. source_out`` (a 5 ms raised-cosine fade-in over the
    lead-in before the first sound and a 10 ms fade-out at the end, 40 ms after the last
    sound). Mute ``click_start .. click_end`` to remove the click.

Manifest schema (``"schema": "handoff.prep-audio/1"``; file names are relative to the
manifest's folder; sample positions are at 48 kHz)::

    schema      "handoff.prep-audio/1"
    source      {file (absolute path), sha256, sample_rate, channels, samples, duration_s,
                 integrated_lufs, true_peak_dbtp (of the content -- after the channel
                 choice, at 48 kHz -- before gain), measured_as,
                 left_right (null, or {verdict same/one-sided/different, correlation,
                 level_difference_db, level_swing_db}: two-channel sources)}
    settings    {name, kind, channels, target_lufs, true_peak_dbtp, preroll_ms, click,
                 max_seconds, segment_min_s, segment_max_s, bit_depth, sample_rate,
                 limiter {ceiling_dbtp, attack_ms, hold_ms, release_db_per_s, oversample},
                 silence {threshold_dbfs, real_pause_s, short_pause_s, lead_in_s, tail_s}}
    master      {file, samples, duration_s, channels, gain_db, integrated_lufs,
                 true_peak_dbtp, measured_as, limiter_max_reduction_db, limited_s,
                 limited_share, heavy_limiting, loudest_passage (null, or {start, end,
                 start_s, end_s, max_reduction_db, limited_s})}
    segments    [{index, file, samples, duration_s, channels,
                  source_in, source_out (master samples), source_in_s, source_out_s,
                  click_start, click_end (null without --click), preroll_start, preroll_end,
                  integrated_lufs, true_peak_dbtp, measured_as,
                  cut_in {position, position_s, kind, pause_s},
                  cut_out {position, position_s, kind, pause_s}}]
    warnings    [str, ...]

``cut_*.kind`` is ``start``/``end`` (the programme's edges), ``pause``, ``short-pause`` or
``quietest``. The timeline places a generated clip so that segment sample ``preroll_end``
meets master sample ``source_in``.

How the package is laid out (as export is: facts, a pure plan, an executor)
    :mod:`~handoff.prep.options` the options, their checks and the output names;
    :mod:`~handoff.prep.analyse` the analysis pass -- decode, compare L/R, mix to 48 kHz
    content (:mod:`~handoff.prep.content`), level (:mod:`~handoff.prep.level`) and map
    the sound -- into :class:`PrepFacts`; :mod:`~handoff.prep.cuts` the cut search and
    :mod:`~handoff.prep.plan` the pure :func:`plan_prep` into a frozen :class:`PrepPlan`
    (``prep-audio --dry-run`` prints it); :mod:`~handoff.prep.execute` writes it and
    returns a :class:`PrepResult` (:mod:`~handoff.prep.results`). The manifest's schema,
    writer and reader are :mod:`handoff.files.manifest`.

Nothing is printed; progress goes to the ``handoff.prep`` logger.
"""

from __future__ import annotations

from handoff.errors import OutputExistsError
from handoff.files.manifest import SCHEMA as MANIFEST_SCHEMA
from handoff.media.audio import read_pcm_wav as _read_pcm_wav
from handoff.prep.analyse import PrepFacts, analyse
from handoff.prep.cuts import search_cuts
from handoff.prep.execute import (
    execute_prep,
    made_before,
    prep_audio,
    prepare,
    segment_audio,
    self_check_spec,
)
from handoff.prep.level import level, loudest_passage, true_peaks
from handoff.prep.options import (
    MANIFEST_NAME,
    PrepOptions,
    master_file_name,
    parse_ratio,
    parse_segment_range,
    segment_file_name,
)
from handoff.prep.plan import PlannedSegment, PrepPlan, plan_prep
from handoff.prep.results import (
    Cut,
    LeftRight,
    MasterInfo,
    Passage,
    PrepResult,
    SegmentInfo,
    SourceInfo,
)

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "Cut",
    "LeftRight",
    "MasterInfo",
    "OutputExistsError",
    "Passage",
    "PlannedSegment",
    "PrepFacts",
    "PrepOptions",
    "PrepPlan",
    "PrepResult",
    "SegmentInfo",
    "SourceInfo",
    "_read_pcm_wav",
    "analyse",
    "execute_prep",
    "level",
    "loudest_passage",
    "made_before",
    "master_file_name",
    "parse_ratio",
    "parse_segment_range",
    "plan_prep",
    "prep_audio",
    "prepare",
    "search_cuts",
    "segment_audio",
    "segment_file_name",
    "self_check_spec",
    "true_peaks",
]

"""Shared: audio analysis on arrays, used by prep, validate, probe and sync.

:mod:`~handoff.analysis.dsp` holds the kernels (K-weighting, gated blocks, the true-peak
oversampling kernel, band power, envelopes, onsets and pauses);
:mod:`~handoff.analysis.loudness` measures a programme (ITU-R BS.1770 / EBU R 128) block
by block; :mod:`~handoff.analysis.limiter` is the true-peak limiter prep levels with.
"""

"""Shared: reading and writing media, below the stages.

Container boxes (:mod:`~handoff.media.isobmff` for MP4/MOV, :mod:`~handoff.media.riff` for
WAV), the H.264 bitstream facts the probe needs (:mod:`~handoff.media.h264`), decoding
sound to arrays block by block (:mod:`~handoff.media.audio`), and test and demo media made
with PyAV (:mod:`~handoff.media.synth`).
"""

"""Shared: files and the documents that pass between stages.

Finding the media a user named (:mod:`~handoff.files.find`), writing outputs atomically
and clearing what a stopped run left (:mod:`~handoff.files.fsutil`), names as editors and
terminals can hold them (:mod:`~handoff.files.names`), and the JSON documents people may
edit: the narration manifest (:mod:`~handoff.files.manifest`) read through
:mod:`~handoff.files.jsondoc`.
"""

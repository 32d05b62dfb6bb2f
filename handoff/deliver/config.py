"""Batch files: the options of ``handoff deliver`` saved in TOML, so a batch a user
settled on is re-run unchanged (``handoff deliver --config batch.toml``).

The keys are the command's options with dashes or underscores
(``renders``, ``manifest``, ``out``, ``preset``, ``review``, ``format``, ``fps``,
``crop``, ``add-silence``, ``allow-truncated``, ``reencode``, ``engine``,
``tolerance-ms``, ``jobs``, ``cluster``, ``path-map``). Relative paths are taken from the
batch file's folder, so the file works from wherever the command is run. A flag on the
command line wins over the file. An unknown key is refused by name (a typo must not
silently fall back to a default).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Final

from handoff.errors import UsageError

__all__ = ["KEYS", "load_batch_file"]

KEYS: Final = (
    "renders", "manifest", "out", "preset", "review", "format", "fps", "crop",
    "add_silence", "allow_truncated", "reencode", "engine", "tolerance_ms", "jobs", "cluster",
    "path_map",
)  # fmt: skip
_PATHS: Final = ("manifest", "out")
_PRESETS: Final = ("preset", "review")


def _where(path: Path, key: str) -> str:
    return f"{path}: {key.replace('_', '-')}"


def load_batch_file(path: Path) -> dict[str, Any]:
    """The batch file's options, keyed by the command's parameter names, with paths
    made absolute from the file's folder. Raises :class:`UsageError` in one line."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the batch file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: the batch file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not a valid TOML batch file ({exc})") from None
    if set(data) == {"deliver"} and isinstance(data["deliver"], dict):
        data = data["deliver"]  # the options may sit under a [deliver] table
    folder = path.parent
    out: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        if key not in KEYS:
            known = ", ".join(k.replace("_", "-") for k in KEYS)
            raise UsageError(f"{path}: unknown key '{raw_key}' (a batch file knows: {known})")
        out[key] = _value(path, key, value, folder)
    return out


def _value(path: Path, key: str, value: Any, folder: Path) -> Any:
    if key == "renders":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
            raise UsageError(f"{_where(path, key)} must be a path or a list of paths")
        return tuple(str(folder / v) for v in items)
    if key == "format":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise UsageError(f"{_where(path, key)} must be a format name or a list of them")
        return tuple(items)
    if key == "path_map":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise UsageError(
                f'{_where(path, key)} must be a table of "local folder" = "folder on the workers"'
            )
        return tuple(f"{k}={v}" for k, v in value.items())
    if key in ("add_silence", "allow_truncated", "reencode"):
        if not isinstance(value, bool):
            raise UsageError(f"{_where(path, key)} must be true or false")
        return value
    if key == "jobs":
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UsageError(f"{_where(path, key)} must be a whole number of at least 1")
        return value
    if key == "tolerance_ms":
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise UsageError(f"{_where(path, key)} must be a number of milliseconds")
        return float(value)
    if key == "fps" and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise UsageError(f"{_where(path, key)} must be a string")
    if key in _PATHS:
        return str(folder / value)
    if key in _PRESETS and value.lower().endswith(".toml"):
        return str(folder / value)
    return value

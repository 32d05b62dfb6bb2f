"""Reading a JSON document a person may edit: one line naming the field for every fault.

:mod:`handoff.files.manifest` (prep-audio's ``manifest.json``) and :mod:`handoff.sync.selects` (the
selects file) read their documents with this module. What differs between documents --
the error class, what messages call the document, how large it may be -- is a
:class:`DocumentKind`; the rules are the same for all:

The file
    :func:`read_bytes` refuses a folder, a FIFO, socket or device (opening a FIFO would
    wait for a writer forever) and a file larger than :attr:`DocumentKind.max_bytes`,
    checked before reading and again after (a file that grows while being read), and
    reads at most ``max_bytes + 1`` bytes. A missing file, a permission error and any
    other OS error each have their own message.

The text
    :func:`parse_json` takes UTF-8 only (the error gives the offset of the first bad
    byte) and JSON as RFC 8259 defines it. Python's :mod:`json` accepts ``NaN``,
    ``Infinity`` and ``-Infinity``, which RFC 8259 (section 6) does not allow; it turns
    ``1e999`` into an infinite float; and it spends quadratic time on a long integer
    (CVE-2020-10735) and refuses one of more than 4300 digits with a ``ValueError``
    naming no field. Each of these literals -- and every integer of more than
    :data:`MAX_DIGITS` digits -- is kept in the document as a :class:`NotANumber`
    marker instead, so that the error can name the field it is in: either the field's
    own check (:class:`Fields`: a marker is not a number) or
    :func:`reject_bad_numbers`, which refuses one anywhere in the document, read or not.
    A document nested deeper than the parser can go is refused with
    :attr:`DocumentKind.too_deep`, not a ``RecursionError``.

The fields
    :class:`Fields` reads typed fields and names a bad one by its JSON path
    (``segments[2].source_in``; array entries count from 0). A document written by a
    program that writes every key (``writer``) must hold every key, even one whose value
    may be ``null``; in a document a person writes, a key whose value may be ``null``
    (or has a default) may be left out.

One line
    Every message is one line: values are shown by :func:`got` in JSON's words, strings
    cut to 40 characters and escaped, objects and arrays by their kind, long integers and
    markers by their length or first characters. The errors are
    :class:`~handoff.errors.HandoffError` subclasses, so the file's path leads the line.
"""

from __future__ import annotations

import json
import math
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar

from handoff.errors import HandoffError

__all__ = [
    "MAX_DIGITS",
    "DocumentKind",
    "Fields",
    "NotANumber",
    "got",
    "join_path",
    "load_json",
    "parse_json",
    "read_bytes",
    "reject_bad_numbers",
]

MAX_DIGITS: Final = 30
"""Longest integer literal parsed; a longer one becomes a :class:`NotANumber`, never
converted (nothing a document here counts needs more)."""

_LOG10_2 = 0.30102999566398  # a little below log10(2): a digit count from it is never too high


@dataclass(frozen=True, slots=True)
class DocumentKind:
    """One kind of document: its error class, its size cap and the words of its messages."""

    error: type[HandoffError]
    """Raised for every fault, with the document's path."""
    name: str
    """What messages call the document: ``"manifest"`` gives "manifest not found" and
    "permission denied (cannot read the manifest)"."""
    not_one: str
    """Said of a file that cannot be the document: ``"not a prep-audio manifest"``
    ends "not UTF-8 text (byte 3): not a prep-audio manifest"."""
    folder: str
    """The message for a folder given as the document."""
    max_bytes: int
    """The largest file read."""
    too_big: Callable[[int], str]
    """The message for a file of that many bytes, more than ``max_bytes``."""
    too_deep: str
    """The message for a document nested deeper than the JSON parser can go."""


def load_json(path: Path, kind: DocumentKind) -> object:
    """:func:`read_bytes` then :func:`parse_json`."""
    return parse_json(read_bytes(path, kind), path, kind)


def read_bytes(path: Path, kind: DocumentKind) -> bytes:
    """The file's bytes, or ``kind.error`` saying in one line why it cannot be read."""
    error = kind.error
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise error(kind.folder, path)
        if not stat.S_ISREG(st.st_mode):
            # Opening a FIFO would wait for a writer forever.
            raise error("not a regular file (a FIFO, socket or device)", path)
        if st.st_size > kind.max_bytes:
            raise error(kind.too_big(st.st_size), path)
        with path.open("rb") as f:
            data = f.read(kind.max_bytes + 1)
    except FileNotFoundError:
        raise error(f"{kind.name} not found", path) from None
    except PermissionError:
        raise error(f"permission denied (cannot read the {kind.name})", path) from None
    except OSError as exc:
        raise error(f"cannot be read ({exc.strerror or exc})", path) from None
    if len(data) > kind.max_bytes:  # it grew while being read
        raise error(kind.too_big(len(data)), path)
    return data


def parse_json(raw: bytes, path: Path, kind: DocumentKind) -> object:
    """The document in ``raw`` (UTF-8 JSON), with a :class:`NotANumber` for each literal
    JSON has no number for; ``kind.error`` when it is not UTF-8 or not JSON."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise kind.error(f"not UTF-8 text (byte {exc.start}): {kind.not_one}", path) from None
    try:
        return json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=NotANumber,
        )
    except json.JSONDecodeError as exc:
        raise kind.error(
            f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})", path
        ) from None
    except RecursionError:
        raise kind.error(kind.too_deep, path) from None


class NotANumber:
    """A literal JSON (RFC 8259 section 6) has no number for: NaN, Infinity, 1e999, or an
    integer longer than :data:`MAX_DIGITS` digits. Kept in the document so that the error
    can name the field it is in."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def describe(self) -> str:
        """The literal, short: ``NaN``, ``1e999``, "an integer of 5000 digits"."""
        if self.text.lstrip("-").isdigit():
            return f"an integer of {len(self.text.lstrip('-'))} digits"
        return self.text if len(self.text) <= 24 else self.text[:21] + "..."

    def __repr__(self) -> str:
        return self.describe()


def _parse_int(text: str) -> int | NotANumber:
    # Python refuses int() of more than 4300 digits (a ValueError naming no field, and
    # CVE-2020-10735's quadratic time below that): nothing this long is a count.
    if len(text) > MAX_DIGITS:
        return NotANumber(text)
    return int(text)


def _parse_float(text: str) -> float | NotANumber:
    value = float(text)
    return value if math.isfinite(value) else NotANumber(text)


def reject_bad_numbers(data: object, error: type[HandoffError], path: Path) -> None:
    """Raise ``error`` for the first :class:`NotANumber` anywhere in the document, named
    by its path: for a document that must hold none, even where no field is read.

    Depth first, in document order, holding one iterator per level: memory grows with
    the nesting, not with the size of the document.
    """
    if isinstance(data, NotANumber):
        _bad_number("the document", data, error, path)
    stack: list[tuple[Iterator[tuple[object, object]], str]] = [(_children(data), "")]
    while stack:
        children, where = stack[-1]
        for key, value in children:
            if isinstance(value, NotANumber):
                _bad_number(_child_path(where, key), value, error, path)
            if isinstance(value, dict | list) and value:
                stack.append((_children(value), _child_path(where, key)))
                break
        else:
            stack.pop()


def _children(node: object) -> Iterator[tuple[object, object]]:
    if isinstance(node, dict):
        return iter(node.items())
    if isinstance(node, list):
        return enumerate(node)
    return iter(())


def _child_path(where: str, key: object) -> str:
    return f"{where}[{key}]" if isinstance(key, int) else join_path(where, str(key))


def _bad_number(where: str, value: NotANumber, error: type[HandoffError], path: Path) -> NoReturn:
    raise error(
        f"{where}: {value.describe()} is not a number JSON can hold (RFC 8259 has no NaN "
        "or Infinity, and no number this large)",
        path,
    )


def join_path(where: str, key: str) -> str:
    """The JSON path of member ``key`` of the object at ``where`` (``""``: the top)."""
    return f"{where}.{key}" if where else key


def got(value: object) -> str:
    """A value as an error shows it: JSON's own words, short, on one line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        text = json.dumps(value if len(value) <= 40 else value[:37] + "...", ensure_ascii=False)
        # A lone surrogate (a file name byte that is not UTF-8) cannot be printed as is.
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, NotANumber):
        return value.describe()
    if isinstance(value, int) and abs(value) >= 10**MAX_DIGITS:
        # A document from elsewhere (not json.loads); str() refuses over 4300 digits.
        return f"an integer of {_digits(abs(value))} digits"
    return repr(value)


def _digits(n: int) -> int:
    count = int((n.bit_length() - 1) * _LOG10_2) + 1
    while 10**count <= n:
        count += 1
    return count


_T = TypeVar("_T")


class Fields:
    """Typed fields of one document; every failure is one ``error`` naming the field's
    JSON path (``where`` is the path of the object the key is read from, ``""`` at the
    top).

    ``source`` is the document's path, or -- for a document that is no file -- its name
    (``"sync result"``), which then leads the message. ``writer``: the program that
    writes every key of this document (``"prep-audio"``); a key left out is then always
    an error ("missing (prep-audio always writes it)"), even one that may be ``null``.
    Without it, a key that may be ``null`` or has a default may be left out.
    """

    def __init__(
        self, error: type[HandoffError], source: Path | str, *, writer: str | None = None
    ) -> None:
        self._error = error
        self._source = source
        self._writer = writer

    def fail(self, where: str, message: str) -> NoReturn:
        if isinstance(self._source, Path):
            raise self._error(f"{where}: {message}", self._source)
        raise self._error(f"{self._source}: {where}: {message}")

    def obj(self, value: object, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(where, f"must be an object (got {got(value)})")
        return value

    def field(self, obj: Mapping[str, Any], key: str, where: str) -> tuple[object, str]:
        """A required key's value, and its path."""
        at = join_path(where, key)
        if key not in obj:
            why = "" if self._writer is None else f" ({self._writer} always writes it)"
            self.fail(at, f"missing{why}")
        return obj[key], at

    def _value(
        self, obj: Mapping[str, Any], key: str, where: str, *, required: bool
    ) -> tuple[object, str]:
        """:meth:`field`; not ``required``, a key left out reads as null (unless the
        document has a writer, which writes every key)."""
        if not required and self._writer is None and key not in obj:
            return None, join_path(where, key)
        return self.field(obj, key, where)

    def integer(
        self,
        obj: Mapping[str, Any],
        key: str,
        where: str,
        lo: int,
        hi: int | None = None,
        what: str = "a whole number",
        *,
        lo_name: str | None = None,
        hi_name: str | None = None,
    ) -> int:
        """An integer ``lo <= value <= hi`` (``hi`` None: no upper bound); ``lo_name`` /
        ``hi_name`` say in the message what the bound is."""
        value, at = self.field(obj, key, where)
        return self._integer(value, at, lo, hi, what, lo_name, hi_name, nullable=False)

    def opt_integer(
        self,
        obj: Mapping[str, Any],
        key: str,
        where: str,
        lo: int,
        hi: int | None = None,
        what: str = "a whole number",
        *,
        hi_name: str | None = None,
    ) -> int | None:
        """:meth:`integer`, or null."""
        value, at = self._value(obj, key, where, required=False)
        if value is None:
            return None
        return self._integer(value, at, lo, hi, what, None, hi_name, nullable=True)

    def _integer(
        self,
        value: object,
        at: str,
        lo: int,
        hi: int | None,
        what: str,
        lo_name: str | None,
        hi_name: str | None,
        *,
        nullable: bool,
    ) -> int:
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < lo
            or (hi is not None and value > hi)
        ):
            lo_text = str(lo) if lo_name is None else f"{lo_name} ({lo})"
            if hi is None:
                bounds = f"of {lo_text} or more"
            else:
                bounds = f"from {lo_text} to {hi if hi_name is None else f'{hi_name} ({hi})'}"
            null = "null or " if nullable else ""
            self.fail(at, f"must be {null}{what} {bounds} (got {got(value)})")
        return value

    def number(
        self,
        obj: Mapping[str, Any],
        key: str,
        where: str,
        *,
        positive: bool = False,
        non_negative: bool = False,
    ) -> float:
        """A finite number (a JSON integer or not), as a float."""
        value, at = self.field(obj, key, where)
        return self._number(value, at, positive, non_negative, nullable=False)

    def opt_number(self, obj: Mapping[str, Any], key: str, where: str) -> float | None:
        """:meth:`number`, or null."""
        value, at = self._value(obj, key, where, required=False)
        if value is None:
            return None
        return self._number(value, at, False, False, nullable=True)

    def _number(
        self, value: object, at: str, positive: bool, non_negative: bool, *, nullable: bool
    ) -> float:
        number = _finite(value)
        if number is None:
            self.fail(
                at, f"must be {'null or ' if nullable else ''}a finite number (got {got(value)})"
            )
        if positive and not number > 0:
            self.fail(at, f"must be more than 0 (got {got(value)})")
        if non_negative and not number >= 0:
            self.fail(at, f"must be 0 or more (got {got(value)})")
        return number

    def string(self, obj: Mapping[str, Any], key: str, where: str, what: str = "a string") -> str:
        """A string, not empty; ``what`` names it in the message."""
        value, at = self.field(obj, key, where)
        if not isinstance(value, str) or not value:
            self.fail(at, f"must be {what} (got {got(value)})")
        return value

    def opt_string(self, obj: Mapping[str, Any], key: str, where: str) -> str | None:
        """:meth:`string`, or null."""
        value, at = self._value(obj, key, where, required=False)
        if value is not None and (not isinstance(value, str) or not value):
            self.fail(at, f"must be null or a string (got {got(value)})")
        return value

    def choice(
        self,
        obj: Mapping[str, Any],
        key: str,
        where: str,
        choices: tuple[str, ...],
        default: str | None = None,
    ) -> str:
        """One of ``choices``; with a ``default``, null (or left out) gives it."""
        value, at = self._value(obj, key, where, required=default is None)
        if value is None and default is not None:
            return default
        if not isinstance(value, str) or value not in choices:
            self.fail(at, f"must be one of {', '.join(choices)} (got {got(value)})")
        return value

    def boolean(
        self, obj: Mapping[str, Any], key: str, where: str, default: bool | None = None
    ) -> bool:
        """``true`` or ``false``; with a ``default``, null (or left out) gives it."""
        value, at = self._value(obj, key, where, required=default is None)
        if value is None and default is not None:
            return default
        if not isinstance(value, bool):
            self.fail(at, f"must be true or false (got {got(value)})")
        return value

    def child(self, obj: Mapping[str, Any], key: str, where: str) -> tuple[dict[str, Any], str]:
        """A required object, and its path."""
        value, at = self.field(obj, key, where)
        return self.obj(value, at), at

    def array(
        self, obj: Mapping[str, Any], key: str, where: str, *, required: bool = True
    ) -> list[Any]:
        """An array; not ``required``: null (or left out) is empty."""
        value, at = self._value(obj, key, where, required=required)
        if value is None and not required:
            return []
        if not isinstance(value, list):
            self.fail(at, f"must be an array (got {got(value)})")
        return value

    def items(
        self, obj: Mapping[str, Any], key: str, where: str, item: Callable[[object, str], _T]
    ) -> tuple[_T, ...]:
        """A required array, each entry read by ``item(value, its path)``."""
        at = join_path(where, key)
        return tuple(item(v, f"{at}[{i}]") for i, v in enumerate(self.array(obj, key, where)))


def _finite(value: object) -> float | None:
    """``value`` as a finite float; None if it is not a number or has no finite float
    (an integer beyond the float range, given by a document from elsewhere)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None

"""Where videos go on disk: safe file names, destination checks and never-overwriting placement.

Data flow: :mod:`._download` streams a finished video into a hidden ``.part`` file made here
(:func:`create_part`), then :func:`place` gives it its final name. Names come from a template
(:func:`video_filename`) and are checked to stay inside the folder (:func:`safe_destination`): prompts, task ids
and URLs never become path components verbatim. :func:`check_destination` runs before anything is paid for, so a
folder that cannot take a video is refused up front. Everything here is blocking file-system work, run in worker
threads by its callers.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import re
import secrets
import shutil
import stat
import unicodedata
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

from ._exceptions import DownloadError, InvalidRequestError

__all__ = [
    "MAX_NAME_BYTES",
    "TYPICAL_VIDEO_BYTES",
    "Placement",
    "check_destination",
    "create_part",
    "numbered",
    "place",
    "read_head",
    "remove",
    "safe_destination",
    "video_filename",
]

TYPICAL_VIDEO_BYTES = 64 * 1024**2
"""Free space a destination folder must have before a paid generation starts (a 1080p Hailuo-02 clip is a few
tens of MB; the check is a floor, not a guarantee)."""

MAX_NAME_BYTES = 200
"""Longest file name produced or accepted, in bytes (most file systems allow 255)."""

_SLUG_CHARS = 40
_TASK_ID_CHARS = 64
_HASH_CHARS = 12
_MAX_INDEX = 10**15
_COMPARE_BLOCK = 1024 * 1024
_WINDOWS_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
)


# -- names ---------------------------------------------------------------------------------------------------


def _slug(prompt: str | None) -> str:
    folded = unicodedata.normalize("NFKD", prompt or "").encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", folded).strip("-")[:_SLUG_CHARS].strip("-")
    return slug or "video"


def _safe_task_id(task_id: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", task_id).strip("-")
    if cleaned == task_id and 0 < len(cleaned) <= _TASK_ID_CHARS:
        return cleaned
    # Changed, truncated or empty: add a digest of the original so two hostile ids never share a name.
    digest = hashlib.sha256(task_id.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    head = cleaned[: _TASK_ID_CHARS - _HASH_CHARS - 1].strip("-")
    return f"{head}-{digest}" if head else f"task-{digest}"


def video_filename(index: int | None, prompt: str | None, task_id: str) -> str:
    """A safe file name ``{index:05d}_{slug}_{taskid}.mp4`` (the index part omitted when ``index`` is None).

    The slug is the prompt lower-cased and folded to ASCII with every other run of characters turned into
    ``-`` (at most 40 characters, ``video`` when nothing is left). The task id keeps only ``[A-Za-z0-9_-]``
    (at most 64 characters); when that changes it, a short SHA-256 of the original id is appended so distinct
    ids never collide. The result is never ``.``/``..``/empty, has no path separator and is at most
    :data:`MAX_NAME_BYTES` bytes. Pure function."""
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < _MAX_INDEX):
        raise InvalidRequestError("index", index, f"an integer from 0 to {_MAX_INDEX - 1}")
    if not isinstance(task_id, str):
        raise InvalidRequestError("task_id", task_id, "a string")
    parts = [_slug(prompt), _safe_task_id(task_id)]
    if index is not None:
        parts.insert(0, f"{index:05d}")
    return "_".join(parts) + ".mp4"  # ASCII, at most 15 + 1 + 40 + 1 + 64 + 4 = 125 bytes


def _name_problem(filename: str) -> str | None:
    """Why ``filename`` is not a plain file name, or ``None`` when it is safe to use in a folder."""
    if not isinstance(filename, str) or not filename:
        return "an empty or non-text name"
    if len(filename.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"longer than {MAX_NAME_BYTES} bytes"
    decoded = filename
    for _ in range(3):  # %252e%252e%252f decodes twice before it shows its dots
        decoded = unquote(decoded)
    for text in (filename, decoded):
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
            return "a control or NUL character"
        if "/" in text or "\\" in text or (os.altsep and os.altsep in text) or os.sep in text:
            return "a path separator"
        if ".." in text or text.strip() in ("", "."):
            return "a relative path component"
        if ":" in text:
            return "a drive or stream separator"
    if os.path.isabs(filename) or Path(filename).name != filename:
        return "a path instead of a name"
    if filename[-1] in ". ":
        return "a trailing dot or space"
    if filename.split(".")[0].strip().lower() in _WINDOWS_RESERVED:
        return "a reserved device name"
    return None


def safe_destination(directory: str | os.PathLike[str], filename: str, *, parameter: str | None = None) -> Path:
    """``directory / filename``, after checking that it stays strictly inside ``directory``.

    ``filename`` must be a plain name: no separators (``/`` or ``\\``), NUL or control characters, ``..``,
    absolute or drive paths, nor any of these once percent-decoded (``%2e%2e%2f``), at most
    :data:`MAX_NAME_BYTES` bytes. Symbolic links are resolved on both sides and the target must still be a
    direct child of the folder. The folder is created when missing. Raises :class:`DownloadError`, or
    :class:`InvalidRequestError` naming ``parameter`` when the name came from the user. Blocking (file system)."""
    problem = _name_problem(filename)
    if problem is None:
        base = Path(directory)
        try:
            base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DownloadError(f"cannot create folder {os.fspath(base)!r}: {exc.strerror or exc}") from None
        root = Path(os.path.realpath(base))
        candidate = root / filename
        target = Path(os.path.realpath(candidate))
        if target == root or not target.is_relative_to(root) or target.parent != root:
            problem = "a name that resolves outside the folder"
        else:
            return candidate
    if parameter is not None:
        raise InvalidRequestError(parameter, filename, f"a plain file name (got {problem})")
    raise DownloadError(f"refusing output file name {filename!r}: {problem}")


def check_destination(directory: str | os.PathLike[str], *, parameter: str = "download_to") -> Path:
    """Check, before anything is paid for, that videos can be saved into ``directory``: it exists or can be
    created, is a folder, is writable, and has room for a typical video (:data:`TYPICAL_VIDEO_BYTES`).

    Creates the folder when missing and returns it. Raises :class:`InvalidRequestError` naming ``parameter``,
    the folder and what is wrong. Blocking (file system)."""
    folder = Path(directory)

    def refuse(problem: str) -> InvalidRequestError:
        return InvalidRequestError(parameter, os.fspath(folder), f"a writable folder ({problem})")

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise refuse("it exists and is not a folder") from None
    except NotADirectoryError:
        raise refuse("a part of its path is a file, not a folder") from None
    except OSError as exc:
        raise refuse(f"it cannot be created: {exc.strerror or exc}") from None
    if not folder.is_dir():
        raise refuse("it is not a folder")
    probe = folder / f".hailuo-write-check-{secrets.token_hex(6)}"
    try:
        probe.open("xb").close()
        probe.unlink()
    except OSError as exc:
        raise refuse(f"it cannot be written: {exc.strerror or exc}") from None
    try:
        free: int | None = shutil.disk_usage(folder).free
    except OSError:
        free = None  # unknown: the download itself reports a full disk
    if free is not None and free < TYPICAL_VIDEO_BYTES:
        raise refuse(f"only {free // 1024**2} MB free; a video needs about {TYPICAL_VIDEO_BYTES // 1024**2} MB")
    return folder


# -- the .part file and its final name ---------------------------------------------------------------------


def read_head(path: Path) -> bytes:
    with path.open("rb") as file:
        return file.read(8)


def create_part(directory: Path, name: str) -> Path:
    """A new, empty, uniquely named hidden ``.part`` file next to the final name (never an existing file)."""
    base = name[:150]
    # A process killed mid-transfer leaves its .part behind; the next download of the same name clears it.
    for stale in directory.glob(f".{glob.escape(base)}.*.part"):
        if stale.is_file() and not stale.is_symlink():
            stale.unlink(missing_ok=True)
    for _ in range(100):
        part = directory / f".{base}.{secrets.token_hex(4)}.part"
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
        except FileExistsError:
            continue
        os.close(fd)
        return part
    raise DownloadError(f"cannot create a temporary file in {os.fspath(directory)!r}")


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)


Placement = Literal["placed", "identical", "conflict"]


def _same_content(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as left, b.open("rb") as right:
        while True:
            block = left.read(_COMPARE_BLOCK)
            if block != right.read(_COMPARE_BLOCK):
                return False
            if not block:
                return True


def _existing_verdict(part: Path, dest: Path) -> Placement | None:
    """``identical`` (and ``part`` removed) when ``dest`` is a regular file with the same bytes, ``conflict``
    when it is anything else, ``None`` when it vanished meanwhile."""
    try:
        info = os.lstat(dest)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode) or not _same_content(part, dest):
        return "conflict"
    remove(part)
    return "identical"


def _claim(part: Path, dest: Path) -> bool:
    """Atomically give ``part``'s content the name ``dest``; ``False`` if something already has that name.

    A hard link claims the name atomically (it fails if anything exists there). Where hard links are not
    supported, an exclusive create reserves the name and ``os.replace`` then swaps the video in."""
    try:
        os.link(part, dest)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        try:
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        os.close(fd)
        os.replace(part, dest)
        return True
    remove(part)
    return True


def place(part: Path, dest: Path) -> Placement:
    """Give the verified ``part`` the name ``dest`` without ever replacing an existing file (blocking)."""
    for _ in range(3):
        if _claim(part, dest):
            return "placed"
        verdict = _existing_verdict(part, dest)
        if verdict is not None:
            return verdict
    return "conflict"


def numbered(filename: str, number: int) -> str:
    stem, dot, ext = filename.rpartition(".")
    return f"{stem}-{number}.{ext}" if dot else f"{filename}-{number}"

"""Atomic writing of a run folder.

A file is written to a temporary name in its own folder and moved into
place with ``os.replace``, so a reader sees the old file or the complete
new one. A run is written into ``runs/.partial-<run_id>`` and renamed to
``runs/<run_id>`` only after its last file is closed, so an interrupted
comparison leaves either a complete run folder or a partial one that
:func:`remove_partial_runs` deletes on resume.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = [
    "CsvLog",
    "PARTIAL_PREFIX",
    "RUN_FILE",
    "commit_run_folder",
    "finished_run_ids",
    "format_cell",
    "new_run_folder",
    "remove_partial_runs",
    "write_json_atomic",
    "write_text_atomic",
]

logger = logging.getLogger(__name__)

PARTIAL_PREFIX = ".partial-"
RUN_FILE = "run.json"


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``.

    The file gets mode ``0o666`` less the umask, as ``open`` gives, and not
    the ``0o600`` of ``tempfile.mkstemp``.
    """
    handle, temporary = _create_temporary(path)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _create_temporary(path: Path) -> tuple[int, str]:
    # O_EXCL makes a name collision fail instead of sharing a file, so a
    # few random names are tried.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temporary = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name for {path} in {path.parent}")


def write_json_atomic(path: Path, value: Any) -> None:
    """Write ``value`` as indented JSON; NaN floats are written as ``NaN``."""
    write_text_atomic(path, json.dumps(value, indent=2, allow_nan=True) + "\n")


def format_cell(value: float | int | str | None) -> str:
    """Format one CSV cell: ``repr`` for floats, so values read back exactly."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value).lower()
    return str(value)


class CsvLog:
    """A CSV file with fixed columns, written row by row.

    Missing keys in a row become empty cells; keys outside ``columns`` are
    ignored, so monitors may return more than the file records.
    """

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = path
        self.columns = tuple(columns)
        self._stream = open(path, "w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._stream, lineterminator="\n")
        self._writer.writerow(self.columns)

    def write(self, row: Mapping[str, Any]) -> None:
        """Append one row."""
        self._writer.writerow([format_cell(row.get(column)) for column in self.columns])

    def close(self) -> None:
        """Flush the file to disk and close it."""
        if not self._stream.closed:
            self._stream.flush()
            os.fsync(self._stream.fileno())
            self._stream.close()

    def __enter__(self) -> CsvLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def new_run_folder(runs_dir: Path, run_id: str) -> Path:
    """Create an empty ``runs/.partial-<run_id>`` folder, replacing a stale one."""
    partial = runs_dir / f"{PARTIAL_PREFIX}{run_id}"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    return partial


def commit_run_folder(partial: Path, run_id: str) -> Path:
    """Move a finished partial folder to ``runs/<run_id>`` in one rename."""
    final = partial.parent / run_id
    if final.exists():
        raise FileExistsError(f"run folder {final} exists already and is not overwritten")
    _fsync_folder(partial)
    os.replace(partial, final)
    _fsync_folder(final.parent)
    return final


def finished_run_ids(runs_dir: Path) -> set[str]:
    """Return the ids of complete run folders (those holding ``run.json``)."""
    if not runs_dir.is_dir():
        return set()
    return {
        entry.name
        for entry in runs_dir.iterdir()
        if entry.is_dir()
        and not entry.name.startswith(PARTIAL_PREFIX)
        and (entry / RUN_FILE).is_file()
    }


def remove_partial_runs(runs_dir: Path) -> list[str]:
    """Delete partial run folders left by an interrupted comparison; return their names."""
    removed: list[str] = []
    if not runs_dir.is_dir():
        return removed
    for entry in sorted(runs_dir.iterdir()):
        if entry.is_dir() and entry.name.startswith(PARTIAL_PREFIX):
            shutil.rmtree(entry)
            removed.append(entry.name)
            logger.info("removed partial run folder %s", entry)
    return removed


def _fsync_folder(folder: Path) -> None:
    # Persisting a rename needs an fsync of the folder on POSIX systems.
    if os.name != "posix":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)

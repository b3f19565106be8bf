"""Where outputs go: writable-location checks made before any work starts, the file mode new files
get, and the absolute paths a saved configuration stores."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from aam.errors import UserError


def _nearest_existing(path: Path) -> Path:
    """`path` itself or its closest ancestor that exists (what a `mkdir -p` would start from)."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")


def _check_can_create_in(folder: Path, flag: str, given: str | Path) -> None:
    """UserError when files cannot be created inside the existing `folder` (read-only file system,
    missing write or search permission). A regular file where a folder is needed is reported too."""
    if not folder.is_dir():
        raise UserError(f"{flag} {given}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {given}: cannot write in {folder} (permission denied or read-only)")


def check_writable_dir(path: str | Path, flag: str) -> None:
    """The folder `path` exists and is writable, or could be created: checked before anything is written."""
    path = Path(path)
    existing = _nearest_existing(path)
    if existing == path and not path.is_dir():
        raise UserError(f"{flag} {path} exists and is not a folder")
    _check_can_create_in(existing, flag, path)


def check_writable_file(path: str | Path, flag: str) -> None:
    """The file `path` can be written (replaced atomically): it is not a folder and its folder is, or
    can be made, writable."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file name")
    _check_can_create_in(_nearest_existing(path.parent), flag, path)


def file_mode() -> int:
    """Permission bits a new file gets under the process umask (0o644 under the usual umask 022)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def absolute_data_paths(config):
    """A RunConfig whose table, metadata, sequences and output folder are absolute paths, so a saved
    configuration works from any working directory. Symbolic links are kept as given."""
    def absolute(value):
        return os.path.abspath(value) if value else value

    data = dataclasses.replace(config.data, table=absolute(config.data.table),
                               metadata=absolute(config.data.metadata), sequences=absolute(config.data.sequences))
    train = dataclasses.replace(config.train, output_dir=absolute(config.train.output_dir))
    return dataclasses.replace(config, data=data, train=train)

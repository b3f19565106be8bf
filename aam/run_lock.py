"""`folder_lock`: one command at a time per output folder.

An exclusive `fcntl.flock` on `<folder>/.aam.lock`. The kernel drops the lock when the process ends
in any way (kill -9 included), so a stale lock file never blocks a later command; the file only
holds the holder's PID and command for the message a refused command prints.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from aam.errors import UserError
from aam.paths import file_mode

LOCK_FILE = ".aam.lock"


@contextlib.contextmanager
def folder_lock(folder: str | Path, command: str) -> Iterator[Path]:
    """Hold the lock of `folder` (created if needed) for the `with` block; UserError naming the PID of
    the process that holds it. When the folder was created here and is empty afterwards, it is
    removed again, so a command that fails early leaves nothing behind."""
    folder = Path(folder)
    created = not folder.exists()
    fd = _acquire(folder, command)
    try:
        yield folder
    finally:
        # Unlink before unlocking: a process that opened the old file then finds it replaced and retries.
        Path(folder, LOCK_FILE).unlink(missing_ok=True)
        os.close(fd)
        if created:
            with contextlib.suppress(OSError):  # not empty (outputs written) or already gone
                folder.rmdir()


def _acquire(folder: Path, command: str) -> int:
    path = folder / LOCK_FILE
    while True:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, file_mode())
        except FileNotFoundError:  # the folder was removed by a command that just finished: make it again
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise UserError(f"cannot lock {folder}: {exc.strerror}") from None
            raise UserError(f"{folder} is in use by {holder}: wait for it to finish or choose another "
                            "folder") from None
        # The file may have been unlinked by its previous holder between our open and our lock.
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {command}\n".encode())
            return fd
        os.close(fd)


def _read_holder(fd: int) -> str:
    """'process 1234 (aam train)' from the lock file, or a plain 'another process'."""
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").split()
    except OSError:
        text = []
    if text and text[0].isdigit():
        return f"process {text[0]}" + (f" ({' '.join(text[1:])})" if len(text) > 1 else "")
    return "another process"

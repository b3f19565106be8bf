"""`run_folder`: how every command that writes an output folder claims it.

In this order: the folder is writable (or can be made, `check_writable_dir`), its lock is taken
(`folder_lock`: one command at a time), and only then are its contents judged against the command's
`FolderRules`, so two commands started together on one folder never both find it empty. A refused
command leaves the folder as it found it (the lock removes a folder it created).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from aam.errors import UserError
from aam.paths import check_writable_dir
from aam.run_lock import LOCK_FILE, folder_lock


@dataclass(frozen=True)
class FolderRules:
    """What a command accepts in its output folder besides an empty one."""

    # what to do about a folder that holds something (and that the command may not reuse)
    advice: str = "pass --overwrite or choose another folder"
    what: str | None = None  # what such a folder probably holds, for the message: "a previous run"
    resume_file: str | None = None  # the file --resume continues from; None: the command does not resume
    reusable: Callable[[Path], bool] | None = None  # a folder it holds only what this accepts counts as empty
    resume_hint: str = ""  # added to the missing-`resume_file` message when the folder is `reusable`
    clear: Callable[[Path], None] | None = None  # what --overwrite removes first; None: files are written over


@contextlib.contextmanager
def run_folder(path: str | Path, command: str, *, rules: FolderRules = FolderRules(), overwrite: bool = False,
               resume: bool = False, flag: str = "--output-dir") -> Iterator[Path]:
    """Claim the folder `path` for `command` for the `with` block (see the module doc); UserError naming
    `flag` when it cannot be written, is in use, or holds what `rules` refuse."""
    path = Path(path)
    check_writable_dir(path, flag)
    with folder_lock(path, command):
        check_contents(path, rules, overwrite=overwrite, resume=resume, flag=flag)
        yield path


def check_contents(path: Path, rules: FolderRules, *, overwrite: bool = False, resume: bool = False,
                   flag: str = "--output-dir") -> None:
    """Never overwrite a previous output silently: `resume` needs the rules' resume file; otherwise a folder
    holding more than the lock (and what `rules.reusable` accepts) needs `overwrite`, which first removes
    what `rules.clear` removes."""
    if resume:
        assert rules.resume_file is not None, "this command does not resume"
        if not (path / rules.resume_file).is_file():
            hint = rules.resume_hint if rules.reusable is not None and path.is_dir() and rules.reusable(path) else ""
            raise UserError(f"--resume: no {rules.resume_file} in {path} to resume from{hint}")
        return
    if not path.is_dir() or all(p.name == LOCK_FILE for p in path.iterdir()):
        return
    if rules.reusable is not None and rules.reusable(path):
        return
    if not overwrite:
        what = f" ({rules.what}?)" if rules.what else ""
        raise UserError(f"{flag} {path} is not empty{what}: {rules.advice}")
    if rules.clear is not None:
        rules.clear(path)

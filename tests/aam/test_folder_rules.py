"""`run_folder`: writable check, then the lock, then the folder's contents judged by the command's rules."""

import os

import pytest

from aam.errors import UserError
from aam.run_folder import FolderRules, run_folder
from aam.run_lock import LOCK_FILE, folder_lock

RULES = FolderRules(advice="pass --resume to continue it, or choose another folder", what="a previous thing",
                    resume_file="state.txt", reusable=lambda path: {p.name for p in path.iterdir()} <= {"start.txt",
                                                                                                         LOCK_FILE},
                    resume_hint=" (nothing finished there)")


def test_a_new_folder_is_locked_inside_and_removed_when_nothing_was_written(tmp_path):
    out = tmp_path / "new" / "out"
    with run_folder(out, "aam test") as claimed:
        assert claimed == out and os.listdir(out) == [LOCK_FILE]
        assert f"{os.getpid()} aam test" in (out / LOCK_FILE).read_text()
    assert not out.exists()


def test_a_non_empty_folder_needs_overwrite_and_the_rules_clear_it_first(tmp_path):
    (tmp_path / "old.txt").write_text("old")
    with pytest.raises(UserError, match=r"--output-dir .* is not empty: pass --overwrite or choose another folder"):
        with run_folder(tmp_path, "aam test"):
            pass
    removed = []
    with run_folder(tmp_path, "aam test", rules=FolderRules(clear=removed.append), overwrite=True):
        assert removed == [tmp_path]
    assert (tmp_path / "old.txt").read_text() == "old" and not (tmp_path / LOCK_FILE).exists()


def test_what_the_rules_accept_counts_as_empty(tmp_path):
    (tmp_path / "start.txt").write_text("")
    with run_folder(tmp_path, "aam test", rules=RULES):
        pass
    (tmp_path / "more.txt").write_text("")
    with pytest.raises(UserError, match=r"is not empty \(a previous thing\?\): pass --resume to continue it, or"):
        with run_folder(tmp_path, "aam test", rules=RULES):
            pass


def test_resume_needs_the_resume_file_and_hints_at_an_unfinished_start(tmp_path):
    with pytest.raises(UserError, match=r"--resume: no state.txt in .* to resume from \(nothing finished there\)"):
        with run_folder(tmp_path / "never", "aam test", rules=RULES, resume=True):
            pass
    assert not (tmp_path / "never").exists()
    (tmp_path / "more.txt").write_text("")
    with pytest.raises(UserError, match=r"--resume: no state.txt in .* to resume from$"):
        with run_folder(tmp_path, "aam test", rules=RULES, resume=True):
            pass
    (tmp_path / "state.txt").write_text("")
    with run_folder(tmp_path, "aam test", rules=RULES, resume=True):
        pass


def test_the_lock_comes_before_the_contents_and_the_writable_check_before_both(tmp_path):
    (tmp_path / "old.txt").write_text("old")
    with folder_lock(tmp_path, "holder"):  # flock conflicts between two opens, even in one process
        with pytest.raises(UserError, match="in use by process"):
            with run_folder(tmp_path, "aam test"):
                pass
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(UserError, match="--model-dir .* is a file, not a folder"):
        with run_folder(blocker / "out", "aam test", flag="--model-dir"):
            pass

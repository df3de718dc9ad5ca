"""The lab's run notes: one file per lab beside its lock, replaced whole; a value of None
removes a note; another process (here: another Settings) reads what one wrote."""

from __future__ import annotations

import threading

from toolkit.lab.notes import clear_notes, read_notes, update_notes
from toolkit.settings import settings_for_lab


def test_notes_are_read_back_by_anyone_naming_the_lab(monkeypatch, tmp_path):
    monkeypatch.setenv("KNIGHT_LOCKS", str(tmp_path))
    mine, theirs = settings_for_lab("kctk-notes"), settings_for_lab("kctk-notes")
    assert read_notes(theirs) == {}
    update_notes(mine, deploying="8.0.0", until_close=["open_ab12"])
    assert read_notes(theirs) == {"deploying": "8.0.0", "until_close": ["open_ab12"]}
    update_notes(theirs, until_close=None)
    assert read_notes(mine) == {"deploying": "8.0.0"}
    assert mine.notes_path == tmp_path / "kctk-notes.notes.json"
    assert read_notes(settings_for_lab("kctk-other")) == {}  # each lab its own
    clear_notes(mine)
    assert read_notes(theirs) == {}


def test_concurrent_updates_in_one_process_lose_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("KNIGHT_LOCKS", str(tmp_path))
    settings = settings_for_lab("kctk-notes")

    def add(i: int) -> None:
        update_notes(settings, **{f"k{i}": i})

    threads = [threading.Thread(target=add, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert read_notes(settings) == {f"k{i}": i for i in range(20)}

"""SQLite's per-class counter: a file from before it gets it filled from its rows on open."""

from __future__ import annotations

from kqueue.backends.sqlite import SQLiteBackend

TRIGGERS = ("jobs_count_insert", "jobs_count_delete", "jobs_count_leave", "jobs_count_enter")


def test_a_file_without_the_counter_gets_it_from_its_rows(tmp_path):
    # Given a file whose counter and triggers are gone (as in a file made before them)
    old = SQLiteBackend(tmp_path / "k.db")
    old.enqueue_many("q", [("a", b""), ("b", b"")], job_class="c")
    db = old._db
    db.execute("DROP TABLE class_counts")
    for trigger in TRIGGERS:
        db.execute(f"DROP TRIGGER {trigger}")
    old.enqueue_many("q", [("c", b""), ("d", b"")], job_class="c")
    old.enqueue("q", "e", b"", job_class="d", delay_s=600)
    assert len(old.lease("q", "w", 1, 30.0)) == 1
    old.close()
    # When it is opened again
    new = SQLiteBackend(tmp_path / "k.db")
    # Then the counts are right, and stay right through the next changes
    assert new.pending_by_class("q") == {"c": 3}
    new.enqueue("q", "f", b"", job_class="d")
    assert new.pending_by_class("q") == {"c": 3, "d": 1}
    new.close()

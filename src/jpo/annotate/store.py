"""The annotation store: one SQLite file (WAL) holding items, annotators, assignments and answers.

Why SQLite: the server must start with one command and no other service, survive a SIGKILL without losing an
acknowledged answer (every write is a committed transaction before the HTTP response goes out), and let
`add-annotator` / `export` work on the same file while the server runs. One connection behind a lock serialises
writers, which also makes "pick the next item" atomic without retry loops. All SQL takes parameters.

Tokens are stored only as SHA-256 digests: the database file never holds a usable credential.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jpo.errors import JpoError

CHOICES = ("a", "b", "equal")
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- slots: answers plus unexpired open assignments, kept current so picking an item is an index lookup
CREATE TABLE IF NOT EXISTS items (
  id TEXT PRIMARY KEY, seq INTEGER NOT NULL, body TEXT NOT NULL, gold_label TEXT, slots INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS items_by_slots ON items(gold_label, slots, seq);
CREATE TABLE IF NOT EXISTS annotators (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, token_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS assignments (
  id TEXT PRIMARY KEY, item_id TEXT NOT NULL REFERENCES items(id),
  annotator_id INTEGER NOT NULL REFERENCES annotators(id), swapped INTEGER NOT NULL, assigned_at TEXT NOT NULL,
  answered INTEGER NOT NULL DEFAULT 0, expired INTEGER NOT NULL DEFAULT 0,
  UNIQUE (item_id, annotator_id)
);
CREATE INDEX IF NOT EXISTS assignments_by_annotator ON assignments(annotator_id, answered);
CREATE INDEX IF NOT EXISTS open_assignments ON assignments(answered, expired, assigned_at);
CREATE TABLE IF NOT EXISTS answers (
  assignment_id TEXT PRIMARY KEY REFERENCES assignments(id), choice TEXT NOT NULL, shown_choice TEXT NOT NULL,
  explanation TEXT NOT NULL, answered_at TEXT NOT NULL
);
"""
# Answers as the export shows them: the choice in the item's own terms and the side it was clicked on.
EXPORT_SQL = """
SELECT n.name, s.item_id, s.id, x.choice, x.shown_choice, s.swapped, x.explanation, s.assigned_at, x.answered_at,
       i.gold_label
FROM answers x JOIN assignments s ON s.id = x.assignment_id JOIN annotators n ON n.id = s.annotator_id
JOIN items i ON i.id = s.item_id ORDER BY x.answered_at, s.id
"""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def to_item_terms(shown_choice: str, swapped: bool) -> str:
    """The annotator clicked on what was shown as A or B; when the sides were swapped, shown A is the item's b."""
    if shown_choice == "equal" or not swapped:
        return shown_choice
    return "b" if shown_choice == "a" else "a"


def gold_choice(label: str) -> str:
    """Gold items use the judged-item labels (a | b | tie); the page's third option is called equal."""
    return "equal" if label == "tie" else label


@dataclass(frozen=True)
class Annotator:
    id: int
    name: str


@dataclass(frozen=True)
class Assignment:
    id: str
    item_id: str
    swapped: bool
    item: dict[str, Any]


class NotFound(Exception):
    """The assignment does not exist for this annotator (another's looks the same: it must not leak)."""


class Conflict(Exception):
    """A second, different answer to an assignment that already has one."""


def annotator_name(name: str) -> str:
    """`name` stripped; JpoError unless it is 1-100 printable characters (a bad name, not a taken one)."""
    name = name.strip()
    if not name or len(name) > 100 or not name.isprintable():
        raise JpoError(f"annotator name must be 1-100 printable characters, got {name!r}")
    return name


class Store:
    """All reads and writes of one annotation database; safe to share between the server's threads."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.parent.exists():
            raise JpoError(f"{self.path}: folder {self.path.parent} does not exist")
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as error:
            raise JpoError(f"{self.path}: not an annotation database ({error})") from error
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self) -> _Transaction:
        return _Transaction(self._db, self._lock)

    # --- setup --------------------------------------------------------------------------------------------------

    def add_items(self, items: list[dict[str, Any]], *, gold: bool = False) -> int:
        """Insert items (idempotent: rerunning `serve` with the same file adds nothing). Returns how many are new.

        An id already stored with other content is an error, not a silent replacement: answers refer to it.
        """
        added = 0
        with self._write() as db:
            (seq,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM items").fetchone()
            for item in items:
                body = json.dumps({k: v for k, v in item.items() if k != "label"}, ensure_ascii=False,
                                  sort_keys=True)
                label = gold_choice(item["label"]) if gold else None
                row = db.execute("SELECT body, gold_label FROM items WHERE id = ?", (item["id"],)).fetchone()
                if row is not None:
                    if row != (body, label):
                        raise JpoError(f"{self.path}: item {item['id']!r} is already stored with different content "
                                       "or gold label; use a new database or give the item a new id")
                    continue
                seq += 1
                db.execute("INSERT INTO items (id, seq, body, gold_label) VALUES (?, ?, ?, ?)",
                           (item["id"], seq, body, label))
                added += 1
        return added

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as db:
            db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
                       (key, value, value))

    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def add_annotator(self, name: str) -> str:
        """Create an annotator and return their token; only its digest is kept, so it is shown exactly once."""
        name = annotator_name(name)
        token = secrets.token_urlsafe(24)
        with self._write() as db:
            if db.execute("SELECT 1 FROM annotators WHERE name = ?", (name,)).fetchone():
                raise JpoError(f"{self.path}: an annotator named {name!r} already exists")
            db.execute("INSERT INTO annotators (name, token_hash, created_at) VALUES (?, ?, ?)",
                       (name, token_digest(token), now()))
        return token

    def annotator(self, token: str) -> Annotator | None:
        with self._lock:
            row = self._db.execute("SELECT id, name FROM annotators WHERE token_hash = ?",
                                   (token_digest(token),)).fetchone()
        return None if row is None else Annotator(*row)

    # --- assignment ---------------------------------------------------------------------------------------------

    def next_assignment(self, annotator: Annotator, *, per_item: int, lease: timedelta,
                        gold_every: int = 10) -> Assignment | None:
        """The annotator's open assignment, else a new one, else None when nothing is left for them.

        Regular items go to `per_item` distinct annotators; slots held by assignments unanswered for longer than
        `lease` are given to others (a late answer is still kept). Items already started come first, so items
        get complete sets of answers early. Gold items are mixed in: one before the first regular item, then one
        after every `gold_every` regular answers, and the rest once no regular item is left for this annotator.
        """
        with self._write() as db:
            row = db.execute(
                "SELECT id, item_id, swapped FROM assignments WHERE annotator_id = ? AND answered = 0 "
                "ORDER BY assigned_at LIMIT 1", (annotator.id,)).fetchone()
            if row is None:
                self._expire(db, lease)
                item_id = self._pick(db, annotator, per_item, gold_every)
                if item_id is None:
                    return None
                row = (secrets.token_urlsafe(12), item_id, secrets.randbelow(2))
                db.execute("INSERT INTO assignments (id, item_id, annotator_id, swapped, assigned_at) "
                           "VALUES (?, ?, ?, ?, ?)", (row[0], item_id, annotator.id, row[2], now()))
                db.execute("UPDATE items SET slots = slots + 1 WHERE id = ?", (item_id,))
            (body,) = db.execute("SELECT body FROM items WHERE id = ?", (row[1],)).fetchone()
        return Assignment(row[0], row[1], bool(row[2]), json.loads(body))

    @staticmethod
    def _expire(db: sqlite3.Connection, lease: timedelta) -> None:
        """Give back the slots of assignments left unanswered for longer than `lease`."""
        cutoff = (datetime.now(UTC) - lease).isoformat(timespec="microseconds")
        stale = db.execute("SELECT id, item_id FROM assignments WHERE answered = 0 AND expired = 0 "
                           "AND assigned_at <= ?", (cutoff,)).fetchall()
        for assignment_id, item_id in stale:
            db.execute("UPDATE assignments SET expired = 1 WHERE id = ?", (assignment_id,))
            db.execute("UPDATE items SET slots = slots - 1 WHERE id = ?", (item_id,))

    @staticmethod
    def _pick(db: sqlite3.Connection, annotator: Annotator, per_item: int, gold_every: int) -> str | None:
        regular = None
        for slots in range(per_item - 1, -1, -1):  # the fullest unfinished items first
            regular = db.execute(
                "SELECT i.id FROM items i WHERE i.gold_label IS NULL AND i.slots = ? AND NOT EXISTS "
                "(SELECT 1 FROM assignments s WHERE s.item_id = i.id AND s.annotator_id = ?) ORDER BY i.seq LIMIT 1",
                (slots, annotator.id)).fetchone()
            if regular is not None:
                break
        gold = db.execute(
            "SELECT i.id FROM items i WHERE i.gold_label IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM assignments s WHERE s.item_id = i.id AND s.annotator_id = ?) ORDER BY i.seq LIMIT 1",
            (annotator.id,)).fetchone()
        if gold is not None:
            n_gold, n_regular = db.execute(
                "SELECT COALESCE(SUM(i.gold_label IS NOT NULL), 0), COALESCE(SUM(i.gold_label IS NULL), 0) "
                "FROM assignments s JOIN items i ON i.id = s.item_id WHERE s.annotator_id = ?",
                (annotator.id,)).fetchone()
            if regular is None or n_gold * gold_every <= n_regular:
                return gold[0]
        return None if regular is None else regular[0]

    def answer(self, annotator: Annotator, assignment_id: str, item_id: str, shown_choice: str,
               explanation: str) -> bool:
        """Record an answer; True when new, False when the same answer was already stored (a retried POST).

        Raises NotFound for an assignment that is not this annotator's, Conflict for a different second answer.
        """
        if shown_choice not in CHOICES:
            raise ValueError(f"choice must be one of {CHOICES}, got {shown_choice!r}")
        with self._write() as db:
            row = db.execute("SELECT item_id, swapped, expired FROM assignments WHERE id = ? AND annotator_id = ?",
                             (assignment_id, annotator.id)).fetchone()
            if row is None or row[0] != item_id:
                raise NotFound(assignment_id)
            stored = db.execute("SELECT shown_choice, explanation FROM answers WHERE assignment_id = ?",
                                (assignment_id,)).fetchone()
            if stored is not None:
                if stored != (shown_choice, explanation):
                    raise Conflict(assignment_id)
                return False
            db.execute("INSERT INTO answers (assignment_id, choice, shown_choice, explanation, answered_at) "
                       "VALUES (?, ?, ?, ?, ?)",
                       (assignment_id, to_item_terms(shown_choice, bool(row[1])), shown_choice, explanation, now()))
            db.execute("UPDATE assignments SET answered = 1, expired = 0 WHERE id = ?", (assignment_id,))
            if row[2]:  # a late answer to an expired assignment takes its slot back
                db.execute("UPDATE items SET slots = slots + 1 WHERE id = ?", (row[0],))
        return True

    # --- reading ------------------------------------------------------------------------------------------------

    def annotator_progress(self, annotator: Annotator, *, per_item: int) -> dict[str, int]:
        with self._lock:
            answered, open_ = self._db.execute(
                "SELECT COALESCE(SUM(answered = 1), 0), COALESCE(SUM(answered = 0), 0) FROM assignments "
                "WHERE annotator_id = ?", (annotator.id,)).fetchone()
            (available,) = self._db.execute(
                "SELECT COUNT(*) FROM items i WHERE (i.gold_label IS NOT NULL OR i.slots < ?) AND NOT EXISTS "
                "(SELECT 1 FROM assignments s WHERE s.item_id = i.id AND s.annotator_id = ?)",
                (per_item, annotator.id)).fetchone()
        return {"answered": answered, "remaining": available + open_}

    def progress(self, *, per_item: int) -> dict[str, Any]:
        """The admin's view: totals, complete items, and each annotator's count and accuracy on gold items."""
        with self._lock:
            n_items, n_gold = self._db.execute(
                "SELECT COALESCE(SUM(gold_label IS NULL), 0), COALESCE(SUM(gold_label IS NOT NULL), 0) "
                "FROM items").fetchone()
            (n_answers,) = self._db.execute("SELECT COUNT(*) FROM answers").fetchone()
            (complete,) = self._db.execute(
                "SELECT COUNT(*) FROM (SELECT s.item_id FROM answers x JOIN assignments s ON s.id = x.assignment_id "
                "JOIN items i ON i.id = s.item_id WHERE i.gold_label IS NULL GROUP BY s.item_id "
                "HAVING COUNT(*) >= ?)", (per_item,)).fetchone()
            people = self._db.execute(
                "SELECT n.name, COUNT(x.assignment_id), COALESCE(SUM(i.gold_label IS NOT NULL), 0), "
                "COALESCE(SUM(i.gold_label IS NOT NULL AND x.choice = i.gold_label), 0) "
                "FROM annotators n LEFT JOIN assignments s ON s.annotator_id = n.id "
                "LEFT JOIN answers x ON x.assignment_id = s.id LEFT JOIN items i ON i.id = s.item_id "
                "AND x.assignment_id IS NOT NULL GROUP BY n.id ORDER BY n.name").fetchall()
        return {
            "items": n_items, "gold_items": n_gold, "per_item": per_item, "answers": n_answers,
            "complete_items": complete,
            "annotators": [{"name": name, "answered": answered, "gold_answered": gold, "gold_correct": correct,
                            "gold_accuracy": None if gold == 0 else correct / gold}
                           for name, answered, gold, correct in people],
        }

    def export_rows(self) -> Iterator[dict[str, Any]]:
        """Every answer, oldest first, as the admin export's rows."""
        with self._lock:
            rows = self._db.execute(EXPORT_SQL).fetchall()
        for name, item_id, assignment_id, choice, shown, swapped, explanation, assigned, answered, gold in rows:
            row = {"annotator": name, "item_id": item_id, "assignment_id": assignment_id, "choice": choice,
                   "shown_choice": shown, "swapped": bool(swapped), "explanation": explanation,
                   "assigned_at": assigned, "answered_at": answered, "gold": gold is not None}
            if gold is not None:
                row["gold_label"] = gold
                row["correct"] = choice == gold
            yield row

    def items(self) -> dict[str, dict[str, Any]]:
        """Every stored item by id, gold ones with their `gold_label`."""
        with self._lock:
            rows = self._db.execute("SELECT id, body, gold_label FROM items ORDER BY seq").fetchall()
        out = {}
        for item_id, body, gold in rows:
            item = json.loads(body)
            if gold is not None:
                item["gold_label"] = gold
            out[item_id] = item
        return out


class _Transaction:
    """`with store._write() as db:` — the lock, then BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error)."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self.db, self.lock = db, lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        return self.db

    def __exit__(self, kind, error, traceback) -> None:
        try:
            self.db.execute("COMMIT" if kind is None else "ROLLBACK")
        finally:
            self.lock.release()

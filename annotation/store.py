"""The campaign database (SQLAlchemy Core): SQLite in WAL mode by default, any SQLAlchemy URL (PostgreSQL) for a team.

Every submission is one transaction. UNIQUE(annotator, item) makes a resent identical submission a no-op; a changed
value is an edit whose earlier value goes to `rating_history`. Items are referenced outside the server only by an
opaque random `public_id`; the system behind an item never leaves this module except in admin/export paths.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from capeval.errors import CapevalError

metadata = sa.MetaData()

meta_t = sa.Table("meta", metadata, sa.Column("key", sa.String(64), primary_key=True),
                  sa.Column("value", sa.Text, nullable=False))
users_t = sa.Table(
    "users", metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(256), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
)
annotators_t = sa.Table("annotators", metadata, sa.Column("name", sa.String(64), primary_key=True),
                        sa.Column("seed", sa.BigInteger, nullable=False))
items_t = sa.Table(
    "items", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("public_id", sa.String(32), nullable=False, unique=True),
    sa.Column("image_id", sa.String(256), nullable=False),
    sa.Column("gold", sa.Boolean, nullable=False, default=False),
    sa.Column("gold_expect", sa.Text, nullable=True),
    sa.Column("caption_id", sa.String(256), nullable=False),
    sa.Column("system", sa.String(128), nullable=False),
    sa.Column("caption", sa.Text, nullable=False),
    sa.Column("caption_id_b", sa.String(256), nullable=True),
    sa.Column("system_b", sa.String(128), nullable=True),
    sa.Column("caption_b", sa.Text, nullable=True),
)
assignments_t = sa.Table(
    "assignments", metadata,
    sa.Column("annotator", sa.String(64), nullable=False),
    sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("swap", sa.Boolean, nullable=False, default=False),
    sa.PrimaryKeyConstraint("annotator", "item_id"),
    sa.UniqueConstraint("annotator", "position", name="uq_assign_position"),
)
ratings_t = sa.Table(
    "ratings", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("annotator", sa.String(64), nullable=False),
    sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), nullable=False),
    sa.Column("ratings", sa.Text, nullable=False),  # JSON {criterion: value}; {} for a broken-image report
    sa.Column("comment", sa.Text, nullable=False, default=""),
    sa.Column("broken", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
    sa.UniqueConstraint("annotator", "item_id", name="uq_rating_annotator_item"),
)
history_t = sa.Table(
    "rating_history", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rating_id", sa.Integer, sa.ForeignKey("ratings.id"), nullable=False),
    sa.Column("annotator", sa.String(64), nullable=False),
    sa.Column("item_id", sa.Integer, nullable=False),
    sa.Column("ratings", sa.Text, nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("broken", sa.Boolean, nullable=False),
    sa.Column("valid_from", sa.String(40), nullable=False),
    sa.Column("replaced_at", sa.String(40), nullable=False),
)

# Login sessions (token hashes only) survive a server restart; they end when idle or old, on logout, and when the
# user's password changes or the login is disabled.
sessions_t = sa.Table(
    "sessions", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("username", sa.String(64), nullable=False, index=True),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
)
user_flags_t = sa.Table("user_flags", metadata, sa.Column("username", sa.String(64), primary_key=True),
                        sa.Column("disabled", sa.Boolean, nullable=False, default=False),
                        sa.Column("changed_at", sa.String(40), nullable=False))
# Time on task: when the server first showed an item, when it was first submitted, and the active time the page
# measured (focused and visible; None for API clients).
timings_t = sa.Table(
    "timings", metadata,
    sa.Column("annotator", sa.String(64), nullable=False),
    sa.Column("item_id", sa.Integer, nullable=False),
    sa.Column("shown_at", sa.String(40), nullable=False),
    sa.Column("submitted_at", sa.String(40), nullable=True),
    sa.Column("active_ms", sa.Integer, nullable=True),
    sa.PrimaryKeyConstraint("annotator", "item_id"),
)
practice_t = sa.Table("practice_answers", metadata, sa.Column("annotator", sa.String(64), nullable=False),
                      sa.Column("k", sa.Integer, nullable=False), sa.Column("ratings", sa.Text, nullable=False),
                      sa.Column("correct", sa.Boolean, nullable=False), sa.Column("at", sa.String(40), nullable=False),
                      sa.PrimaryKeyConstraint("annotator", "k"))
consents_t = sa.Table("consents", metadata, sa.Column("annotator", sa.String(64), primary_key=True),
                      sa.Column("agreed_at", sa.String(40), nullable=False),
                      sa.Column("text_sha", sa.String(64), nullable=False))


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class ItemSpec:
    """An item to materialise: one caption (or two for pairwise) of one image; `gold_expect` for gold items."""

    image_id: str
    caption_id: str
    system: str
    caption: str
    caption_id_b: str | None = None
    system_b: str | None = None
    caption_b: str | None = None
    gold_expect: dict[str, list[Any]] | None = None


@dataclass(frozen=True)
class AssignedItem:
    """What one annotator is shown for one item: no system names, captions already in this annotator's order."""

    public_id: str
    image_id: str
    captions: tuple[str, ...]
    position: int  # 1-based place in this annotator's queue
    total: int
    swap: bool
    previous: dict[str, Any] | None = None  # the annotator's current rating when revisiting
    comment: str = ""


@dataclass(frozen=True)
class SubmitResult:
    status: str  # saved | unchanged | edited
    public_id: str


@dataclass(frozen=True)
class _QueueEntry:
    item_id: int
    public_id: str
    image_id: str
    captions: tuple[str, ...]
    swap: bool
    position: int  # 1-based


class NotAssigned(CapevalError):
    """The item does not exist or is not one of this annotator's items."""


class Store:
    """One campaign database. Thread-safe; for SQLite, writes from this process are serialised by a lock."""

    def __init__(self, url: str, *, echo: bool = False, synchronous: str = "NORMAL") -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise CapevalError(f"unsupported database {scheme!r} in {url!r}: use SQLite or PostgreSQL")
        if self.is_sqlite:
            _private_sqlite_file(url)
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            kwargs["poolclass"] = sa.pool.QueuePool
            kwargs["pool_size"] = 8
            kwargs["max_overflow"] = 32
        else:
            kwargs["pool_pre_ping"] = True
        try:
            self.engine = sa.create_engine(url, **kwargs)
        except ImportError as exc:
            raise CapevalError(f"cannot open {scheme} database: its Python driver is not installed ({exc.name}); "
                               "for PostgreSQL: pip install 'capeval[postgres]'") from None
        except sa.exc.ArgumentError as exc:
            raise CapevalError(f"malformed database URL {url!r} ({exc})") from None
        if self.is_sqlite:
            if synchronous not in ("NORMAL", "FULL"):
                raise ValueError("synchronous must be NORMAL or FULL")
            sa.event.listen(self.engine, "connect",
                            lambda conn, _rec: _sqlite_pragmas(conn, synchronous))
        self._write_lock = threading.Lock() if self.is_sqlite else None
        self._queues: dict[str, list[_QueueEntry]] = {}
        self._assign_version: str | None = None
        self._version_checked = -1e9
        self._by_public: dict[str, dict[str, _QueueEntry]] = {}
        if self.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert
        elif self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            raise CapevalError(f"unsupported database {url!r}: use SQLite or PostgreSQL")
        self._insert = insert
        self._returning = not self.is_sqlite or sqlite3.sqlite_version_info >= (3, 35)
        try:
            metadata.create_all(self.engine)
        except sa.exc.OperationalError as exc:
            raise CapevalError(f"cannot open database {url}: {exc.orig}") from None
        if self.is_sqlite:
            _private_sqlite_file(url)  # the -wal/-shm files SQLite just created

    def close(self) -> None:
        self.engine.dispose()

    # ---------------------------------------------------------------- transactions
    def _write(self):
        store = self

        class _Tx:
            def __enter__(self_inner):
                if store._write_lock is not None:
                    store._write_lock.acquire()
                try:
                    self_inner.cm = store.engine.begin()
                    return self_inner.cm.__enter__()
                except BaseException:
                    if store._write_lock is not None:
                        store._write_lock.release()
                    raise

            def __exit__(self_inner, *exc):
                try:
                    return self_inner.cm.__exit__(*exc)
                finally:
                    if store._write_lock is not None:
                        store._write_lock.release()

        return _Tx()

    # ---------------------------------------------------------------- meta
    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(meta_t.c.value).where(meta_t.c.key == key)).scalar_one_or_none()

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as c:
            c.execute(meta_t.delete().where(meta_t.c.key == key))
            c.execute(meta_t.insert().values(key=key, value=value))

    # ---------------------------------------------------------------- work management
    def _bump_assignments(self, c: Any) -> None:
        c.execute(meta_t.delete().where(meta_t.c.key == "assign_version"))
        c.execute(meta_t.insert().values(key="assign_version", value=secrets.token_hex(8)))

    def _append(self, c: Any, annotator: str, item_ids: list[int], seed: int) -> None:
        """Add items at the end of an annotator's queue (in a seeded order); registers a new annotator's seed."""
        import random

        if not item_ids:
            return
        if c.execute(sa.select(annotators_t.c.name).where(annotators_t.c.name == annotator)).first() is None:
            c.execute(annotators_t.insert().values(name=annotator, seed=seed))
        top = c.execute(sa.select(sa.func.max(assignments_t.c.position))
                        .where(assignments_t.c.annotator == annotator)).scalar_one_or_none()
        start = -1 if top is None else int(top)
        ids = list(item_ids)
        random.Random(f"{seed}:{start}").shuffle(ids)
        c.execute(assignments_t.insert(), [{"annotator": annotator, "item_id": i, "position": start + 1 + k,
                                            "swap": False} for k, i in enumerate(ids)])

    def move_unrated(self, from_annotator: str, to_annotator: str, seed: int) -> int:
        """Move `from_annotator`'s unrated items to `to_annotator` (items the latter already has stay put)."""
        with self._write() as c:
            rated = set(c.execute(sa.select(ratings_t.c.item_id).where(ratings_t.c.annotator == from_annotator))
                        .scalars())
            theirs = set(c.execute(sa.select(assignments_t.c.item_id)
                                   .where(assignments_t.c.annotator == from_annotator)).scalars())
            has = set(c.execute(sa.select(assignments_t.c.item_id)
                                .where(assignments_t.c.annotator == to_annotator)).scalars())
            move = sorted(theirs - rated - has)
            if move:
                c.execute(assignments_t.delete().where(assignments_t.c.annotator == from_annotator,
                                                       assignments_t.c.item_id.in_(move)))
                self._append(c, to_annotator, move, seed)
                self._bump_assignments(c)
        self._queues.clear()
        self._by_public.clear()
        return len(move)

    def top_up_broken(self, raters_per_item: int, annotators: Sequence[str]) -> int:
        """Give items with broken-image reports to more annotators (least loaded first, never twice to one) until
        the assignments without a broken report again number `raters_per_item`."""
        from annotation.assign import annotator_seed

        added = 0
        with self._write() as c:
            broken_items = set(c.execute(sa.select(ratings_t.c.item_id).where(ratings_t.c.broken)).scalars())
            gold = set(c.execute(sa.select(items_t.c.id).where(items_t.c.gold)).scalars())
            load: dict[str, int] = {a: 0 for a in annotators}
            holders: dict[int, set[str]] = {}
            for a, i in c.execute(sa.select(assignments_t.c.annotator, assignments_t.c.item_id)):
                load[a] = load.get(a, 0) + 1
                holders.setdefault(i, set()).add(a)
            reports: dict[int, set[str]] = {}
            for a, i in c.execute(sa.select(ratings_t.c.annotator, ratings_t.c.item_id).where(ratings_t.c.broken)):
                reports.setdefault(i, set()).add(a)
            seeds = {r[0]: int(r[1]) for r in c.execute(sa.select(annotators_t.c.name, annotators_t.c.seed))}
            new: dict[str, list[int]] = {}
            for i in sorted(broken_items - gold):
                have = holders.get(i, set())
                need = raters_per_item - len(have - reports.get(i, set()))
                for a in sorted((a for a in annotators if a not in have), key=lambda a: (load[a], a))[:max(0, need)]:
                    new.setdefault(a, []).append(i)
                    load[a] += 1
                    added += 1
            for a, ids in new.items():
                self._append(c, a, ids, seeds.get(a, annotator_seed(0, a)))
            if new:
                self._bump_assignments(c)
        self._queues.clear()
        self._by_public.clear()
        return added

    # ---------------------------------------------------------------- users
    def add_user(self, username: str, password_hash: str, role: str) -> bool:
        """Create or update a login; returns True when it was new."""
        if role not in ("annotator", "admin"):
            raise ValueError("role must be annotator or admin")
        with self._write() as c:
            exists = c.execute(sa.select(users_t.c.username).where(users_t.c.username == username)).first()
            if exists:
                c.execute(users_t.update().where(users_t.c.username == username)
                          .values(password_hash=password_hash, role=role))
                c.execute(sessions_t.delete().where(sessions_t.c.username == username))
            else:
                c.execute(users_t.insert().values(username=username, role=role, password_hash=password_hash,
                                                  created_at=now()))
        return not exists

    def set_disabled(self, username: str, disabled: bool) -> None:
        """Disable (or re-enable) a login; disabling also ends its sessions."""
        with self._write() as c:
            if c.execute(sa.select(users_t.c.username).where(users_t.c.username == username)).first() is None:
                raise CapevalError(f"no login named {username!r}")
            c.execute(user_flags_t.delete().where(user_flags_t.c.username == username))
            c.execute(user_flags_t.insert().values(username=username, disabled=disabled, changed_at=now()))
            if disabled:
                c.execute(sessions_t.delete().where(sessions_t.c.username == username))

    def disabled_users(self) -> set[str]:
        with self.engine.connect() as c:
            return set(c.execute(sa.select(user_flags_t.c.username).where(user_flags_t.c.disabled)).scalars())

    # ---------------------------------------------------------------- sessions
    def create_session(self, username: str, token_hash: str, csrf: str, at: float) -> None:
        with self._write() as c:
            c.execute(sessions_t.insert().values(token_hash=token_hash, username=username, csrf=csrf, created=at,
                                                 last_seen=at))

    def session(self, token_hash: str) -> tuple[str, str, float, float] | None:
        """(username, csrf, created, last_seen) of a live session, or None."""
        with self.engine.connect() as c:
            r = c.execute(sa.select(sessions_t.c.username, sessions_t.c.csrf, sessions_t.c.created,
                                    sessions_t.c.last_seen).where(sessions_t.c.token_hash == token_hash)).first()
        return None if r is None else (r[0], r[1], float(r[2]), float(r[3]))

    def touch_session(self, token_hash: str, at: float) -> None:
        with self._write() as c:
            c.execute(sessions_t.update().where(sessions_t.c.token_hash == token_hash).values(last_seen=at))

    def end_session(self, token_hash: str) -> None:
        with self._write() as c:
            c.execute(sessions_t.delete().where(sessions_t.c.token_hash == token_hash))

    def end_sessions_of(self, username: str) -> int:
        with self._write() as c:
            return c.execute(sessions_t.delete().where(sessions_t.c.username == username)).rowcount

    def session_counts(self) -> dict[str, int]:
        with self.engine.connect() as c:
            return {r[0]: int(r[1]) for r in c.execute(sa.select(sessions_t.c.username, sa.func.count())
                                                       .group_by(sessions_t.c.username))}

    def purge_sessions(self, idle_before: float, created_before: float) -> int:
        with self._write() as c:
            return c.execute(sessions_t.delete().where(sa.or_(sessions_t.c.last_seen < idle_before,
                                                              sessions_t.c.created < created_before))).rowcount

    # ---------------------------------------------------------------- consent and timing
    def record_consent(self, annotator: str, text_sha: str) -> None:
        with self._write() as c:
            c.execute(self._insert(consents_t).values(annotator=annotator, agreed_at=now(), text_sha=text_sha)
                      .on_conflict_do_nothing())

    def consented(self, annotator: str, text_sha: str) -> bool:
        with self.engine.connect() as c:
            return c.execute(sa.select(consents_t.c.annotator).where(
                consents_t.c.annotator == annotator, consents_t.c.text_sha == text_sha)).first() is not None

    def practice_done(self, annotator: str) -> int:
        with self.engine.connect() as c:
            return c.execute(sa.select(sa.func.count()).select_from(practice_t)
                             .where(practice_t.c.annotator == annotator)).scalar_one()

    def record_practice(self, annotator: str, k: int, values: dict[str, Any], correct: bool) -> None:
        with self._write() as c:
            c.execute(self._insert(practice_t).values(annotator=annotator, k=k, ratings=json.dumps(values),
                                                      correct=correct, at=now()).on_conflict_do_nothing())

    def practice_scores(self) -> dict[str, tuple[int, int]]:
        """annotator -> (practice items answered as expected, answered)."""
        with self.engine.connect() as c:
            rows = c.execute(sa.select(practice_t.c.annotator, practice_t.c.correct)).all()
        out: dict[str, tuple[int, int]] = {}
        for a, ok in rows:
            good, n = out.get(a, (0, 0))
            out[a] = (good + bool(ok), n + 1)
        return out

    def mark_shown(self, annotator: str, public_id: str) -> None:
        """Record when an item was first shown to this annotator (kept on later views)."""
        e = self._entry(annotator, public_id)
        with self._write() as c:
            c.execute(self._insert(timings_t).values(annotator=annotator, item_id=e.item_id, shown_at=now())
                      .on_conflict_do_nothing())

    def pace_seconds(self, annotator: str, last: int = 20) -> float | None:
        """Median seconds per item over this annotator's last submissions (active time when the page measured it,
        else shown-to-submitted capped at 10 min); None before 3 timed items."""
        with self.engine.connect() as c:
            rows = c.execute(sa.select(timings_t.c.shown_at, timings_t.c.submitted_at, timings_t.c.active_ms)
                             .where(timings_t.c.annotator == annotator, timings_t.c.submitted_at.is_not(None))
                             .order_by(timings_t.c.submitted_at.desc()).limit(last)).all()
        secs = [min(600.0, r[2] / 1000 if r[2] is not None else
                    (datetime.fromisoformat(r[1]) - datetime.fromisoformat(r[0])).total_seconds()) for r in rows]
        if len(secs) < 3:
            return None
        secs.sort()
        return secs[len(secs) // 2]

    def shown_captions(self) -> list[tuple[str, str]]:
        """(system, caption) of every non-gold caption in the campaign (both sides of pairwise items)."""
        with self.engine.connect() as c:
            rows = c.execute(sa.select(items_t.c.system, items_t.c.caption, items_t.c.system_b, items_t.c.caption_b)
                             .where(items_t.c.gold.is_(False))).all()
        out = [(r[0], r[1]) for r in rows]
        out += [(r[2], r[3]) for r in rows if r[2] is not None]
        return out

    def timings(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            rows = c.execute(sa.select(timings_t.c.annotator, items_t.c.public_id, timings_t.c.shown_at,
                                       timings_t.c.submitted_at, timings_t.c.active_ms)
                             .join(items_t, items_t.c.id == timings_t.c.item_id)).mappings().all()
        return [dict(r) for r in rows]

    def user(self, username: str) -> tuple[str, str] | None:
        """(role, password_hash) or None."""
        with self.engine.connect() as c:
            row = c.execute(sa.select(users_t.c.role, users_t.c.password_hash)
                            .where(users_t.c.username == username)).first()
        return (row[0], row[1]) if row else None

    def users(self) -> list[tuple[str, str]]:
        with self.engine.connect() as c:
            return [(r[0], r[1]) for r in c.execute(sa.select(users_t.c.username, users_t.c.role)
                                                    .order_by(users_t.c.username))]

    # ---------------------------------------------------------------- materialisation
    def materialise(self, fingerprint: str, items: Sequence[ItemSpec],
                    queues: dict[str, list[tuple[int, bool]]], seeds: dict[str, int], info: dict[str, str]) -> bool:
        """Write items and per-annotator queues once, in one transaction. Returns False when already done with the
        same fingerprint; raises when the database belongs to a different campaign setup."""
        with self._write() as c:
            old = c.execute(sa.select(meta_t.c.value).where(meta_t.c.key == "fingerprint")).scalar_one_or_none()
            if old is not None:
                if old != fingerprint:
                    raise CapevalError(
                        f"the database {self.url} was created for a different campaign setup (systems, rubric, "
                        "sampling, gold, annotators or seed changed). Keep the original campaign file, or start a new "
                        "campaign with another `database:`.")
                return False
            public_ids: set[str] = set()
            rows = []
            for idx, it in enumerate(items):
                pid = secrets.token_hex(6)
                while pid in public_ids:
                    pid = secrets.token_hex(6)
                public_ids.add(pid)
                rows.append({"id": idx + 1, "public_id": pid, "image_id": it.image_id,
                             "gold": it.gold_expect is not None,
                             "gold_expect": json.dumps(it.gold_expect) if it.gold_expect is not None else None,
                             "caption_id": it.caption_id, "system": it.system, "caption": it.caption,
                             "caption_id_b": it.caption_id_b, "system_b": it.system_b, "caption_b": it.caption_b})
            if rows:
                c.execute(items_t.insert(), rows)
            arows = [{"annotator": a, "item_id": idx + 1, "position": pos, "swap": swap}
                     for a, q in queues.items() for pos, (idx, swap) in enumerate(q)]
            if arows:
                c.execute(assignments_t.insert(), arows)
            if seeds:
                c.execute(annotators_t.insert(), [{"name": a, "seed": s} for a, s in seeds.items()])
            meta_rows = [{"key": "fingerprint", "value": fingerprint}, {"key": "created_at", "value": now()}]
            meta_rows += [{"key": k, "value": v} for k, v in info.items()]
            c.execute(meta_t.insert(), meta_rows)
        return True

    # ---------------------------------------------------------------- annotator view
    # Items never change after materialisation (the fingerprint check enforces it); queues change only through
    # `reassign`, which bumps `assign_version`. Each annotator's queue is read once and kept until the version
    # changes (checked at most every few seconds); ratings are always read from the database.
    def _queue(self, annotator: str) -> list[_QueueEntry]:
        now_t = time.monotonic()
        if now_t - self._version_checked > 3.0:
            self._version_checked = now_t
            v = self.get_meta("assign_version")
            if v != self._assign_version:
                self._assign_version = v
                self._queues.clear()
                self._by_public.clear()
        q = self._queues.get(annotator)
        if q is None:
            with self.engine.connect() as c:
                rows = c.execute(sa.select(items_t.c.id, items_t.c.public_id, items_t.c.image_id, items_t.c.caption,
                                           items_t.c.caption_b, assignments_t.c.swap)
                                 .join(assignments_t, assignments_t.c.item_id == items_t.c.id)
                                 .where(assignments_t.c.annotator == annotator)
                                 .order_by(assignments_t.c.position)).all()
            q = []
            for pos, r in enumerate(rows):
                caps = (r.caption,) if r.caption_b is None else (
                    (r.caption_b, r.caption) if r.swap else (r.caption, r.caption_b))
                q.append(_QueueEntry(r.id, r.public_id, r.image_id, caps, bool(r.swap), pos + 1))
            self._queues[annotator] = q
            self._by_public[annotator] = {e.public_id: e for e in q}
        return q

    def _entry(self, annotator: str, public_id: str) -> _QueueEntry:
        self._queue(annotator)
        e = self._by_public[annotator].get(public_id)
        if e is None:
            raise NotAssigned("this item is not one of yours")
        return e

    def _rated(self, annotator: str) -> set[int]:
        with self.engine.connect() as c:
            return set(c.execute(sa.select(ratings_t.c.item_id).where(ratings_t.c.annotator == annotator)).scalars())

    def queue_size(self, annotator: str) -> int:
        return len(self._queue(annotator))

    def progress(self, annotator: str) -> tuple[int, int]:
        """(items this annotator has submitted, items assigned to them)."""
        return len(self._rated(annotator)), len(self._queue(annotator))

    def _view(self, annotator: str, e: _QueueEntry, with_rating: bool) -> AssignedItem:
        previous = None
        comment = ""
        if with_rating:
            with self.engine.connect() as c:
                r = c.execute(sa.select(ratings_t.c.ratings, ratings_t.c.comment).where(
                    ratings_t.c.annotator == annotator, ratings_t.c.item_id == e.item_id)).first()
            if r is not None:
                previous = _unswap(json.loads(r[0]), e.swap)
                comment = r[1]
        return AssignedItem(e.public_id, e.image_id, e.captions, e.position, len(self._queue(annotator)), e.swap,
                            previous, comment)

    def next_item(self, annotator: str) -> AssignedItem | None:
        """The first item in this annotator's queue without a submission (resume point); None when finished."""
        return self.next_and_progress(annotator)[0]

    def next_and_progress(self, annotator: str) -> tuple[AssignedItem | None, int, int]:
        """(resume point, items done, items assigned) from one query."""
        rated = self._rated(annotator)
        q = self._queue(annotator)
        nxt = next((e for e in q if e.item_id not in rated), None)
        return (None if nxt is None else self._view(annotator, nxt, False)), len(rated), len(q)

    def item_for(self, annotator: str, public_id: str) -> AssignedItem:
        """One of this annotator's items with their current rating (for revisiting); NotAssigned otherwise."""
        return self._view(annotator, self._entry(annotator, public_id), True)

    def previous_rated(self, annotator: str, before_position: int | None) -> AssignedItem | None:
        """The rated item just before queue place `before_position` (1-based; None = the last rated one)."""
        rated = self._rated(annotator)
        q = self._queue(annotator)
        limit = len(q) if before_position is None else before_position - 1
        for e in reversed(q[:limit]):
            if e.item_id in rated:
                return self._view(annotator, e, True)
        return None

    def submit(self, annotator: str, public_id: str, values: dict[str, Any], comment: str = "",
               broken: bool = False, active_ms: int | None = None) -> SubmitResult:
        """Record one submission in one transaction. `values` are in the annotator's on-screen orientation.
        The first submission also records its time (and the page's active time) in `timings`."""
        e = self._entry(annotator, public_id)
        stored = json.dumps(_unswap(values, e.swap), sort_keys=True)
        ts = now()
        with self._write() as c:
            c.execute(self._insert(timings_t).values(annotator=annotator, item_id=e.item_id, shown_at=ts)
                      .on_conflict_do_nothing())
            c.execute(timings_t.update().where(timings_t.c.annotator == annotator, timings_t.c.item_id == e.item_id,
                                               timings_t.c.submitted_at.is_(None))
                      .values(submitted_at=ts, active_ms=active_ms))
            ins = self._insert(ratings_t).values(annotator=annotator, item_id=e.item_id, ratings=stored,
                                                 comment=comment, broken=broken, created_at=ts, updated_at=ts)
            # RETURNING tells whether this request inserted the row (psycopg reports no rowcount with RETURNING);
            # SQLite before 3.35 has no RETURNING, and there rowcount is exact.
            ins = ins.on_conflict_do_nothing()
            inserted = (c.execute(ins.returning(ratings_t.c.id)).first() is not None if self._returning
                        else c.execute(ins).rowcount == 1)
            if inserted:
                return SubmitResult("saved", public_id)
            old = c.execute(sa.select(ratings_t.c.id, ratings_t.c.ratings, ratings_t.c.comment, ratings_t.c.broken,
                                      ratings_t.c.updated_at)
                            .where(ratings_t.c.annotator == annotator, ratings_t.c.item_id == e.item_id)).one()
            if old.ratings == stored and old.comment == comment and bool(old.broken) == broken:
                return SubmitResult("unchanged", public_id)
            c.execute(history_t.insert().values(rating_id=old.id, annotator=annotator, item_id=e.item_id,
                                                ratings=old.ratings, comment=old.comment, broken=old.broken,
                                                valid_from=old.updated_at, replaced_at=ts))
            c.execute(ratings_t.update().where(ratings_t.c.id == old.id)
                      .values(ratings=stored, comment=comment, broken=broken, updated_at=ts))
            return SubmitResult("edited", public_id)

    def own_ratings(self, annotator: str) -> list[dict[str, Any]]:
        """This annotator's submissions, as they see them (public ids, no systems)."""
        with self.engine.connect() as c:
            rows = c.execute(sa.select(items_t.c.public_id, ratings_t.c.ratings, ratings_t.c.comment,
                                       ratings_t.c.broken, ratings_t.c.updated_at, assignments_t.c.swap)
                             .join(items_t, items_t.c.id == ratings_t.c.item_id)
                             .join(assignments_t, sa.and_(assignments_t.c.item_id == ratings_t.c.item_id,
                                                          assignments_t.c.annotator == ratings_t.c.annotator))
                             .where(ratings_t.c.annotator == annotator).order_by(assignments_t.c.position)).all()
        return [{"item": r[0], "ratings": _unswap(json.loads(r[1]), bool(r[5])), "comment": r[2],
                 "broken": bool(r[3]), "updated_at": r[4]} for r in rows]

    # ---------------------------------------------------------------- researcher side
    def all_ratings(self) -> list[dict[str, Any]]:
        """Every current rating joined with its item (systems included): for export and the admin view only."""
        with self.engine.connect() as c:
            rows = c.execute(sa.select(ratings_t.c.annotator, ratings_t.c.ratings, ratings_t.c.comment,
                                       ratings_t.c.broken, ratings_t.c.created_at, ratings_t.c.updated_at,
                                       items_t.c.public_id, items_t.c.image_id, items_t.c.gold, items_t.c.gold_expect,
                                       items_t.c.caption_id, items_t.c.system, items_t.c.caption,
                                       items_t.c.caption_id_b, items_t.c.system_b, items_t.c.caption_b)
                             .join(items_t, items_t.c.id == ratings_t.c.item_id)
                             .order_by(ratings_t.c.id)).mappings().all()
        out = []
        for r in rows:
            d = dict(r)
            d["ratings"] = json.loads(d["ratings"])
            d["gold_expect"] = json.loads(d["gold_expect"]) if d["gold_expect"] else None
            d["gold"] = bool(d["gold"])
            d["broken"] = bool(d["broken"])
            out.append(d)
        return out

    def assignment_counts(self) -> list[dict[str, Any]]:
        """(annotator, system, gold, assigned) rows for progress tables."""
        with self.engine.connect() as c:
            rows = c.execute(sa.select(assignments_t.c.annotator, items_t.c.system, items_t.c.system_b, items_t.c.gold,
                                       sa.func.count().label("n"))
                             .join(items_t, items_t.c.id == assignments_t.c.item_id)
                             .group_by(assignments_t.c.annotator, items_t.c.system, items_t.c.system_b,
                                       items_t.c.gold)).mappings().all()
        return [dict(r) for r in rows]

    def history_count(self) -> int:
        with self.engine.connect() as c:
            return c.execute(sa.select(sa.func.count()).select_from(history_t)).scalar_one()

    def annotator_seeds(self) -> dict[str, int]:
        with self.engine.connect() as c:
            return {r[0]: int(r[1]) for r in c.execute(sa.select(annotators_t.c.name, annotators_t.c.seed))}

    def item_count(self) -> int:
        with self.engine.connect() as c:
            return c.execute(sa.select(sa.func.count()).select_from(items_t)).scalar_one()

    def image_ids(self) -> list[str]:
        with self.engine.connect() as c:
            return [r[0] for r in c.execute(sa.select(items_t.c.image_id).distinct())]


def _unswap(values: dict[str, Any], swap: bool) -> dict[str, Any]:
    """Pairwise choices are stored in canonical (A = first system) order; the annotator may have seen them swapped."""
    if not swap or "preference" not in values:
        return dict(values)
    out = dict(values)
    out["preference"] = {"A": "B", "B": "A"}.get(values["preference"], values["preference"])
    return out


def _sqlite_pragmas(dbapi_conn: Any, synchronous: str) -> None:
    """WAL; NORMAL sync keeps every committed rating through a process crash (SIGKILL) without an fsync per
    rating; FULL also survives power loss at the cost of one fsync per submission."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA synchronous={synchronous}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()



def _private_sqlite_file(url: str) -> None:
    """Create the SQLite file owner-only (0600) before SQLite does (its -wal and -shm files copy the mode), and
    tighten existing files of the campaign that are readable by others (ratings and password hashes)."""
    import os
    from pathlib import Path

    path = url.split(":///", 1)[1] if ":///" in url else ""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    p = Path(path)
    if not p.parent.is_dir():
        raise CapevalError(f"database folder {p.parent} does not exist")
    try:
        fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
    except FileExistsError:
        pass
    for f in (p, Path(f"{p}-wal"), Path(f"{p}-shm")):
        try:
            if f.exists() and f.stat().st_mode & 0o077 and f.stat().st_uid == os.getuid():
                f.chmod(0o600)
        except OSError:
            pass

"""The campaign as the server runs it: login, what each user may see and do, submissions, admin tables, export.

Plain Python with no Gradio: the app's callbacks are one call each into this class, and tests drive it directly.
Everything an annotator receives is keyed by opaque item ids; system names only reach admin methods.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from capeval.errors import CapevalError, InputError

from annotation import auth
from annotation.blinding import distinguishability, normalise_caption
from annotation.assign import plan_campaign
from annotation.campaign import Campaign, load_campaign
from annotation.export import Summary, judgments, summarise, write_judgments
from annotation.images import ImageIndex, fetch_coco_images, index_campaign_images
from annotation.store import AssignedItem, NotAssigned, Store, SubmitResult

MAX_COMMENT = 2000
TOKEN_CHARS = set("0123456789abcdef")


class Forbidden(CapevalError):
    """The logged-in user may not do this (wrong role or not part of the campaign)."""


class Refused(CapevalError):
    """A malformed or oversized submission; the message says what was expected."""


@dataclass(frozen=True)
class Screen:
    """What the annotator page shows next."""

    done: bool
    position: int = 0
    total: int = 0
    completed: int = 0
    public_id: str = ""
    image_path: str | None = None
    captions: tuple[str, ...] = ()
    previous: dict[str, Any] | None = None
    comment: str = ""
    message: str = ""
    revisiting: bool = False
    seconds_left: float | None = None  # estimate from this annotator's own pace (None until 3 items are timed)
    practice: bool = False

    @property
    def progress(self) -> str:
        if self.done:
            return f"All {self.total} items done"
        if self.practice:
            return f"Practice {self.position} of {self.total} (not part of the study)"
        text = f"Item {self.position} of {self.total} · {self.completed} done"
        if self.seconds_left is not None:
            mins = self.seconds_left / 60
            text += f" · about {max(1, round(mins))} min left" if mins >= 1 else " · under a minute left"
        return text


@dataclass
class Service:
    campaign: Campaign
    store: Store
    images: ImageIndex
    _roles: dict[str, str] = field(default_factory=dict)

    # ---------------------------------------------------------------- auth
    def login(self, username: str, password: str) -> bool:
        """Gradio's auth callable: the user must exist in the store and be listed in the campaign in that role."""
        if not isinstance(username, str) or not isinstance(password, str) or len(username) > 64:
            return False
        rec = self.store.user(username)
        if rec is None:
            auth.verify_password(password, _DUMMY_HASH)  # same cost for unknown names
            return False
        role, pw_hash = rec
        if not auth.verify_password(password, pw_hash):
            return False
        if username in self.store.disabled_users():
            return False
        return self.role(username) is not None

    def role(self, username: str | None) -> str | None:
        """'annotator' or 'admin' when the user is listed in the campaign with that role in the store; else None."""
        if not username:
            return None
        if username in self._roles:
            return self._roles[username]
        rec = self.store.user(username)
        role = None
        if rec is not None:
            if rec[0] == "annotator" and username not in self.campaign.annotators:
                self._reload_people()  # an annotator added to the YAML while the server runs
            if rec[0] == "admin" and username in self.campaign.admins:
                role = "admin"
            elif rec[0] == "annotator" and username in self.campaign.annotators:
                role = "annotator"
        if role is not None:
            self._roles[username] = role
        return role

    def _reload_people(self) -> None:
        """Pick up annotators added to the campaign file (the item set must be unchanged)."""
        try:
            fresh = load_campaign(self.campaign.path)
        except CapevalError:
            return
        if fresh.fingerprint() == self.campaign.fingerprint():
            self.campaign.annotators = fresh.annotators

    def _annotator(self, username: str | None) -> str:
        if self.role(username) != "annotator":
            raise Forbidden("only annotators of this campaign can rate")
        return username  # type: ignore[return-value]

    def _admin(self, username: str | None) -> str:
        if self.role(username) != "admin":
            raise Forbidden("the researcher view needs an admin login")
        return username  # type: ignore[return-value]

    # ---------------------------------------------------------------- annotator
    def _screen(self, annotator: str, item: AssignedItem | None, message: str = "", revisiting: bool = False,
                counts: tuple[int, int] | None = None) -> Screen:
        done, total = counts if counts is not None else self.store.progress(annotator)
        if item is None:
            return Screen(True, total=total, completed=done, message=message)
        self.store.mark_shown(annotator, item.public_id)
        caps = tuple(normalise_caption(c) for c in item.captions) if self.campaign.normalise_captions \
            else item.captions
        pace = self.store.pace_seconds(annotator)
        left = None if pace is None else pace * max(0, total - done)
        return Screen(False, item.position, total, done, item.public_id, str(self.images.path_for(item.image_id)),
                      caps, item.previous, item.comment, message, revisiting, left)

    # ---------------------------------------------------------------- instructions and consent
    def intro(self, username: str | None) -> str | None:
        """The instructions/consent Markdown to show before rating, or None when there is nothing (more) to show:
        shown until the annotator agrees (consent) or, without consent text, before their first rating."""
        a = self._annotator(username)
        c = self.campaign
        if not c.instructions and not c.consent:
            return None
        if c.consent:
            if self.store.consented(a, self.consent_sha()):
                return None
        elif self.store.progress(a)[0] > 0:
            return None
        return self.intro_markdown()

    def intro_markdown(self) -> str:
        c = self.campaign
        parts = [f"## Instructions\n\n{c.instructions}" if c.instructions else "",
                 f"## Consent\n\n{c.consent}" if c.consent else ""]
        return "\n\n".join(p for p in parts if p) or "## Instructions\n\nRate each caption against its image."

    def consent_sha(self) -> str:
        import hashlib

        return hashlib.sha256(self.campaign.consent.encode()).hexdigest()

    def agree(self, username: str | None) -> Screen:
        """Record consent (when the campaign asks for it) and return the first screen."""
        a = self._annotator(username)
        if self.campaign.consent:
            self.store.record_consent(a, self.consent_sha())
        return self._next(a)

    def current(self, username: str | None) -> Screen:
        """The resume point: the next practice item, else the first unrated item of this annotator's queue (or the
        completion screen)."""
        a = self._annotator(username)
        return self._next(a)

    # ---------------------------------------------------------------- practice
    def _practice_screen(self, k: int, message: str = "") -> Screen:
        g = self.campaign.practice[k]
        caps = tuple(normalise_caption(c) for c in g.captions) if self.campaign.normalise_captions else g.captions
        return Screen(False, k + 1, len(self.campaign.practice), k, practice_token(k),
                      str(self.images.path_for(g.image_id)), caps, None, "", message, practice=True)

    def _practice(self, annotator: str, pid: str, values: dict[str, Any]) -> Screen:
        k = int(pid, 16)
        if k >= len(self.campaign.practice):
            raise Refused("malformed item id (reload the page)")
        g = self.campaign.practice[k]
        try:
            parsed = self.campaign.rubric.parse(values)
        except ValueError as exc:
            raise Refused(str(exc)) from None
        correct = all(parsed.get(crit) in ok for crit, ok in g.expect.items())
        self.store.record_practice(annotator, k, parsed, correct)
        parts = []
        for crit, ok in g.expect.items():
            c = self.campaign.rubric.criterion(crit)
            name = c.label.split(":")[0]
            parts.append(f"{name}: you chose {parsed.get(crit)}, expected {' or '.join(str(v) for v in ok)}")
        verdict = "As expected." if correct else "Not quite."
        text = f"**Practice {k + 1}: {verdict}** " + "; ".join(parts) + (f". {g.explain}" if g.explain else ".")
        return self._next(annotator, text)

    def _next(self, annotator: str, message: str = "") -> Screen:
        if self.campaign.practice:
            k = self.store.practice_done(annotator)
            if k < len(self.campaign.practice):
                return self._practice_screen(k, message)
        item, done, total = self.store.next_and_progress(annotator)
        return self._screen(annotator, item, message, counts=(done, total))

    def submit(self, username: str | None, public_id: str, values: dict[str, Any], comment: str = "",
               active_ms: Any = None) -> tuple[SubmitResult, Screen]:
        """Check and store one rating, then return the next screen. Resending the same rating is a no-op.
        `active_ms`: the time the page was visible and in use for this item (the browser measures it)."""
        a = self._annotator(username)
        active = _check_active_ms(active_ms)
        if self.campaign.consent and not self.store.consented(a, self.consent_sha()):
            raise Refused("agree to the consent text first (reload the page)")
        pid = _check_token(public_id)
        comment = _check_comment(comment)
        if is_practice_token(pid):
            return SubmitResult("practice", pid), self._practice(a, pid, values)
        try:
            parsed = self.campaign.rubric.parse(values)
        except ValueError as exc:
            raise Refused(str(exc)) from None
        try:
            res = self.store.submit(a, pid, parsed, comment, active_ms=active)
        except NotAssigned:
            raise Refused("this item is not one of yours (reload the page)") from None
        msg = {"saved": "Saved.", "unchanged": "Already saved.", "edited": "Changed; the earlier rating is kept in "
               "the history."}[res.status]
        return res, self._next(a, msg)

    def report_broken(self, username: str | None, public_id: str, comment: str = "") -> tuple[SubmitResult, Screen]:
        """Record that the image of this item does not show; the item counts as done for this annotator."""
        a = self._annotator(username)
        pid = _check_token(public_id)
        comment = _check_comment(comment)
        if is_practice_token(pid):
            raise Refused("practice images cannot be reported; tell your researcher")
        try:
            res = self.store.submit(a, pid, {}, comment, broken=True)
        except NotAssigned:
            raise Refused("this item is not one of yours (reload the page)") from None
        return res, self._next(a, "Thanks, the broken image was reported.")

    def back(self, username: str | None, public_id: str | None) -> Screen:
        """The previously rated item (before the one on screen), with the annotator's rating, to change it."""
        a = self._annotator(username)
        pos = None
        if public_id and is_practice_token(_check_token(public_id)):
            return self._next(a, "Practice items cannot be revisited.")
        if public_id:
            try:
                pos = self.store.item_for(a, _check_token(public_id)).position
            except NotAssigned:
                raise Refused("this item is not one of yours (reload the page)") from None
        item = self.store.previous_rated(a, pos)
        if item is None:
            return self._next(a, "Nothing rated before this item.")
        return self._screen(a, item, "Revisiting an item you rated; submit to change it.", revisiting=True)

    def image_file(self, username: str | None, public_id: str) -> Path:
        """The image file of one of this annotator's items (served at image/<item id>; nothing else is)."""
        a = self._annotator(username)
        pid = _check_token(public_id)
        if is_practice_token(pid) and int(pid, 16) < len(self.campaign.practice):
            return self.images.path_for(self.campaign.practice[int(pid, 16)].image_id)
        try:
            e = self.store._entry(a, pid)
        except NotAssigned:
            raise Forbidden("this item is not one of yours") from None
        return self.images.path_for(e.image_id)

    def own_ratings(self, username: str | None) -> list[dict[str, Any]]:
        return self.store.own_ratings(self._annotator(username))

    # ---------------------------------------------------------------- admin
    def summary(self, username: str | None) -> Summary:
        self._admin(username)
        return summarise(self.store.all_ratings(), self.store.assignment_counts(), self.campaign.rubric,
                         self.campaign.annotators, self.store.history_count(), self.store.timings(),
                         practice=self.store.practice_scores() if self.campaign.practice else None)

    def blinding(self, username: str | None) -> pd.DataFrame:
        """How distinguishable the systems' captions still are (admin view)."""
        self._admin(username)
        return distinguishability(self.store.shown_captions(), self.campaign.normalise_captions)

    def judgments(self, username: str | None, include_gold: bool = False) -> pd.DataFrame:
        self._admin(username)
        return judgments(self.store.all_ratings(), self.campaign.rubric, include_gold, self.store.timings())

    def export(self, username: str | None, out: str | Path, include_gold: bool = False) -> Path:
        return write_judgments(self.judgments(username, include_gold), out)

    def close(self) -> None:
        self.store.close()


_DUMMY_HASH = "scrypt$16384$8$1$" + "00" * 16 + "$" + "00" * 32


PRACTICE_TOKEN_CHARS = 14  # item ids have 12 hex characters; practice tokens 14, so they never collide


def practice_token(k: int) -> str:
    return f"{k:0{PRACTICE_TOKEN_CHARS}x}"


def is_practice_token(pid: str) -> bool:
    return len(pid) == PRACTICE_TOKEN_CHARS


def _check_token(public_id: Any) -> str:
    if not isinstance(public_id, str) or not 1 <= len(public_id) <= 32 or not set(public_id) <= TOKEN_CHARS:
        raise Refused("malformed item id (reload the page)")
    return public_id


def _check_active_ms(v: Any) -> int | None:
    if v is None or v == "":
        return None
    try:
        ms = int(float(v))
    except (TypeError, ValueError):
        raise Refused("active time must be a number of milliseconds") from None
    return ms if 0 <= ms <= 24 * 3600 * 1000 else None


def _check_comment(comment: Any) -> str:
    if comment is None:
        return ""
    if not isinstance(comment, str):
        raise Refused("the comment must be text")
    if len(comment) > MAX_COMMENT:
        raise Refused(f"the comment is {len(comment)} characters; the limit is {MAX_COMMENT}")
    return comment.strip()


@dataclass(frozen=True)
class Prepared:
    service: Service
    created: bool  # items and queues were written now (first start)
    seconds: float


def open_campaign(path: str | Path, *, materialise: bool = True) -> Prepared:
    """Load the YAML, open the database and, on first use, build items and queues; index and check the images."""
    t0 = time.perf_counter()
    campaign = load_campaign(path)
    store = Store(campaign.database_url, synchronous=campaign.sqlite_sync)
    try:
        created = False
        fp = store.get_meta("fingerprint")
        if fp is None:
            if not materialise:
                raise CapevalError(f"campaign {campaign.path} has not been started yet (run `capeval annotate serve`)")
            plan = plan_campaign(campaign)
            image_ids = {it.image_id for it in plan.items}
            folder = campaign.image_folder or fetch_coco_images(image_ids, campaign.coco_split or "val2014")
            index_campaign_images(folder, image_ids, where=f"{campaign.path}: images")
            created = store.materialise(campaign.fingerprint(), plan.items, plan.queues, plan.seeds,
                                        {"seed": str(campaign.seed), "rubric": campaign.rubric.name,
                                         "campaign": campaign.name})
        elif fp == campaign.legacy_fingerprint():
            store.set_meta("fingerprint", campaign.fingerprint())  # created by an earlier version: same items
        elif fp != campaign.fingerprint():
            store.materialise(campaign.fingerprint(), [], {}, {}, {})  # raises the explanatory error
        image_ids = set(store.image_ids()) | {g.image_id for g in campaign.practice}
        folder = campaign.image_folder or fetch_coco_images(image_ids, campaign.coco_split or "val2014")
        images = index_campaign_images(folder, image_ids, where=f"{campaign.path}: images")
    except BaseException:
        store.close()
        raise
    return Prepared(Service(campaign, store, images), created, time.perf_counter() - t0)


def add_user(path: str | Path, username: str, password: str, admin: bool = False) -> bool:
    """Store a salted password hash for a user named in the campaign; True when the login is new."""
    campaign = load_campaign(path)
    role = "admin" if admin else "annotator"
    listed = campaign.admins if admin else campaign.annotators
    if username not in listed:
        raise InputError(f"{username!r} is not listed under `{'admins' if admin else 'annotators'}`; add it there "
                         "first", path=str(campaign.path))
    try:
        pw_hash = auth.hash_password(password)
    except ValueError as exc:
        raise InputError(str(exc), where="password") from None
    store = Store(campaign.database_url)
    try:
        return store.add_user(username, pw_hash, role)
    finally:
        store.close()


@dataclass(frozen=True)
class Status:
    campaign: str
    database: str
    started: bool
    items: int
    summary: Summary | None


def campaign_status(path: str | Path) -> Status:
    """Progress of a campaign without starting a server (read-only)."""
    campaign = load_campaign(path)
    store = Store(campaign.database_url)
    try:
        if store.get_meta("fingerprint") is None:
            return Status(campaign.name, campaign.database_url, False, 0, None)
        summ = summarise(store.all_ratings(), store.assignment_counts(), campaign.rubric, campaign.annotators,
                         store.history_count(), store.timings(),
                         practice=store.practice_scores() if campaign.practice else None)
        return Status(campaign.name, campaign.database_url, True, store.item_count(), summ)
    finally:
        store.close()


def export_campaign(path: str | Path, out: str | Path, include_gold: bool = False) -> tuple[Path, int]:
    """Write the judgments table of a campaign (CLI export; reads the database, no login needed on the host)."""
    campaign = load_campaign(path)
    store = Store(campaign.database_url)
    try:
        if store.get_meta("fingerprint") is None:
            raise CapevalError(f"campaign {campaign.path} has no ratings yet (it was never served)")
        df = judgments(store.all_ratings(), campaign.rubric, include_gold, store.timings())
    finally:
        store.close()
    return write_judgments(df, out), len(df)


def list_users(path: str | Path) -> pd.DataFrame:
    """Logins of a campaign: role, whether the YAML lists them, disabled, open sessions, progress."""
    campaign = load_campaign(path)
    store = Store(campaign.database_url)
    try:
        disabled = store.disabled_users()
        started = store.get_meta("fingerprint") is not None
        sessions = store.session_counts()
        rows = []
        for name, role in store.users():
            listed = name in (campaign.admins if role == "admin" else campaign.annotators)
            done, total = store.progress(name) if started and role == "annotator" else (0, 0)
            rows.append({"user": name, "role": role, "listed_in_campaign": listed, "disabled": name in disabled,
                         "open_sessions": sessions.get(name, 0), "done": done, "assigned": total})
        for name in campaign.annotators + campaign.admins:
            if name not in {r["user"] for r in rows}:
                rows.append({"user": name, "role": "admin" if name in campaign.admins else "annotator",
                             "listed_in_campaign": True, "disabled": False, "open_sessions": 0, "done": 0,
                             "assigned": 0, })
        return pd.DataFrame(rows, columns=["user", "role", "listed_in_campaign", "disabled", "open_sessions", "done",
                                           "assigned"])
    finally:
        store.close()


def set_user_disabled(path: str | Path, username: str, disabled: bool) -> None:
    """Disable a login (its sessions end at once, and it can no longer log in) or enable it again."""
    campaign = load_campaign(path)
    store = Store(campaign.database_url)
    try:
        try:
            store.set_disabled(username, disabled)
        except CapevalError as exc:
            raise InputError(str(exc), path=str(campaign.path)) from None
    finally:
        store.close()


def reset_password(path: str | Path, username: str, password: str) -> None:
    """New password for an existing login; its open sessions end."""
    campaign = load_campaign(path)
    store = Store(campaign.database_url)
    try:
        rec = store.user(username)
        if rec is None:
            raise InputError(f"no login named {username!r} (create it with `capeval annotate add-user`)",
                             path=str(campaign.path))
        try:
            pw_hash = auth.hash_password(password)
        except ValueError as exc:
            raise InputError(str(exc), where="password") from None
        store.add_user(username, pw_hash, rec[0])
    finally:
        store.close()


@dataclass(frozen=True)
class Reassigned:
    moved: int  # unrated items moved from one annotator to another
    added: int  # extra assignments so items with broken-image reports still reach their raters


def reassign(path: str | Path, from_annotator: str | None = None, to_annotator: str | None = None,
             broken: bool = False) -> Reassigned:
    """Work management on a running campaign: move `from_annotator`'s unrated items to `to_annotator` (who must be
    listed under `annotators`; items they already have stay), and with `broken` give every item with a broken-image
    report to further annotators (least loaded first) until it can again reach `raters_per_item` ratings.
    A running server picks the change up within seconds."""
    campaign = load_campaign(path)
    store = Store(campaign.database_url)
    try:
        fp = store.get_meta("fingerprint")
        if fp is None:
            raise InputError("campaign was never served; nothing to reassign", path=str(campaign.path))
        if fp not in (campaign.fingerprint(), campaign.legacy_fingerprint()):
            raise InputError("the database was created for a different campaign setup", path=str(campaign.path))
        moved = 0
        if from_annotator or to_annotator:
            if not (from_annotator and to_annotator):
                raise InputError("give both --from and --to")
            if to_annotator not in campaign.annotators:
                raise InputError(f"{to_annotator!r} is not listed under `annotators`; add it there first",
                                 path=str(campaign.path))
            from annotation.assign import annotator_seed

            moved = store.move_unrated(from_annotator, to_annotator, annotator_seed(campaign.seed, to_annotator))
        added = store.top_up_broken(campaign.raters_per_item, campaign.annotators) if broken else 0
        return Reassigned(moved, added)
    finally:
        store.close()

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

    @property
    def progress(self) -> str:
        if self.done:
            return f"All {self.total} items done"
        return f"Item {self.position} of {self.total} · {self.completed} done"


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
            if rec[0] == "admin" and username in self.campaign.admins:
                role = "admin"
            elif rec[0] == "annotator" and username in self.campaign.annotators:
                role = "annotator"
        if role is not None:
            self._roles[username] = role
        return role

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
        return Screen(False, item.position, total, done, item.public_id, str(self.images.path_for(item.image_id)),
                      item.captions, item.previous, item.comment, message, revisiting)

    def current(self, username: str | None) -> Screen:
        """The resume point: the first unrated item of this annotator's queue (or the completion screen)."""
        a = self._annotator(username)
        return self._next(a)

    def _next(self, annotator: str, message: str = "") -> Screen:
        item, done, total = self.store.next_and_progress(annotator)
        return self._screen(annotator, item, message, counts=(done, total))

    def submit(self, username: str | None, public_id: str, values: dict[str, Any], comment: str = "") -> tuple[
            SubmitResult, Screen]:
        """Check and store one rating, then return the next screen. Resending the same rating is a no-op."""
        a = self._annotator(username)
        pid = _check_token(public_id)
        comment = _check_comment(comment)
        try:
            parsed = self.campaign.rubric.parse(values)
        except ValueError as exc:
            raise Refused(str(exc)) from None
        try:
            res = self.store.submit(a, pid, parsed, comment)
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
        try:
            res = self.store.submit(a, pid, {}, comment, broken=True)
        except NotAssigned:
            raise Refused("this item is not one of yours (reload the page)") from None
        return res, self._next(a, "Thanks, the broken image was reported.")

    def back(self, username: str | None, public_id: str | None) -> Screen:
        """The previously rated item (before the one on screen), with the annotator's rating, to change it."""
        a = self._annotator(username)
        pos = None
        if public_id:
            try:
                pos = self.store.item_for(a, _check_token(public_id)).position
            except NotAssigned:
                raise Refused("this item is not one of yours (reload the page)") from None
        item = self.store.previous_rated(a, pos)
        if item is None:
            return self._next(a, "Nothing rated before this item.")
        return self._screen(a, item, "Revisiting an item you rated; submit to change it.", revisiting=True)

    def own_ratings(self, username: str | None) -> list[dict[str, Any]]:
        return self.store.own_ratings(self._annotator(username))

    # ---------------------------------------------------------------- admin
    def summary(self, username: str | None) -> Summary:
        self._admin(username)
        return summarise(self.store.all_ratings(), self.store.assignment_counts(), self.campaign.rubric,
                         self.campaign.annotators, self.store.history_count())

    def judgments(self, username: str | None, include_gold: bool = False) -> pd.DataFrame:
        self._admin(username)
        return judgments(self.store.all_ratings(), self.campaign.rubric, include_gold)

    def export(self, username: str | None, out: str | Path, include_gold: bool = False) -> Path:
        return write_judgments(self.judgments(username, include_gold), out)

    def close(self) -> None:
        self.store.close()


_DUMMY_HASH = "scrypt$16384$8$1$" + "00" * 16 + "$" + "00" * 32


def _check_token(public_id: Any) -> str:
    if not isinstance(public_id, str) or not 1 <= len(public_id) <= 32 or not set(public_id) <= TOKEN_CHARS:
        raise Refused("malformed item id (reload the page)")
    return public_id


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
        elif fp != campaign.fingerprint():
            store.materialise(campaign.fingerprint(), [], {}, {}, {})  # raises the explanatory error
        image_ids = set(store.image_ids())
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
                         store.history_count())
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
        df = judgments(store.all_ratings(), campaign.rubric, include_gold)
    finally:
        store.close()
    return write_judgments(df, out), len(df)

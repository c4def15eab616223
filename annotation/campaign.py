"""A rating campaign read from YAML: images, candidate sets, rubric, annotators, raters per item, gold items, database.

The YAML never holds passwords (`capeval annotate add-user` stores salted hashes in the database).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capeval.errors import InputError

from annotation.rubrics import RUBRICS, Rubric

MAX_CAPTION_CHARS = 2000
MAX_ITEMS = 200_000
MAX_YAML_BYTES = 1_000_000
MAX_YAML_ALIASES = 100  # anchors reused this often are fine; a "billion laughs" document needs far more
MAX_YAML_NODES = 200_000  # nodes after expanding every alias

TEMPLATE = """\
# capeval annotation campaign. Start it with:  capeval annotate serve {name}
# Passwords are never written here: create logins with  capeval annotate add-user {name} USER [--admin]
name: my-caption-study

# Images: a folder whose file names carry the image ids (391895.jpg, COCO_val2014_000000391895.jpg, Flickr names).
images:
  folder: images
  # Or fetch the COCO images of the candidate sets into the capeval cache (needs network or CAPEVAL_DATA_MIRROR):
  # coco: val2014

# Candidate sets to rate, by a name that is never shown to annotators. Any caption file capeval reads:
# COCO results/annotations, Karpathy dataset_coco.json, {{id: caption}} dicts, CSV/TSV/JSONL, Flickr8k tokens.
systems:
  baseline: outputs/baseline.json
  tuned: outputs/tuned.json
  # References can be a "system" too; `pick` chooses which of an image's captions is shown (first | random).
  reference: {{path: refs/captions_val2014.json, pick: random}}

# Only images present in every system are used; `sample_images` draws that many of them (seeded).
sample_images: 100

# Rubric: thumb (precision 1-5, recall 1-5, fluency/conciseness flags), flickr8k (1-4), or pairwise (A vs B).
rubric: thumb
# For pairwise: which systems are compared (every listed pair, for every image).
# pairs: [[baseline, tuned]]

raters_per_item: 3
annotators: [alice, bob, carol]
admins: [pi]

# Gold items: captions with a known answer, mixed in unmarked and scored per annotator.
# `expect` gives the accepted values of a criterion (a number or a list of numbers; pairwise: A, B or tie).
gold:
  - image_id: "391895"
    caption: "A plate of spaghetti on a wooden table."
    expect: {{precision: [1, 2]}}

# Practice items: shown first (after the instructions), with feedback; their answers are kept apart, never exported.
# practice:
#   - image_id: "391895"
#     caption: "A plate of food on a table."
#     expect: {{precision: [4, 5]}}
#     explain: "Everything said is right; the missing details lower recall, not precision."

# Seed of every shuffle (item order per annotator, A/B sides, sampling); recorded in the database.
seed: 13

# SQLite file next to this YAML (WAL mode), or a SQLAlchemy URL such as postgresql://user@host/db
database: ratings.db
# SQLite durability: normal keeps every acknowledged rating through a server crash; full also through a power cut
# (one disk sync per rating, slower under load).
sqlite_sync: normal

# Shown before the first item (Markdown) and later behind the "Instructions" button.
instructions: |
  You will see one image and one caption at a time. Rate what the caption says, not its style.
# Optional: when given, every annotator must agree before the first item (the time is recorded).
# consent: |
#   Your ratings are stored under your login name and used for research only.

# Captions are shown in lower case without final punctuation, so references do not stand out.
normalise_captions: true
# Logins: sessions end after this much inactivity or age; a name is locked after repeated wrong passwords.
session: {{idle_minutes: 240, max_hours: 72}}
login: {{max_failures: 5, lockout_seconds: 300}}
"""


@dataclass(frozen=True)
class SystemSpec:
    name: str
    path: Path
    format: str | None = None
    pick: str = "first"  # first | random: which caption of an image is rated when a file has several


@dataclass(frozen=True)
class GoldSpec:
    """A caption with a known answer: a gold item (scored, unmarked) or a practice item (feedback, not exported)."""

    image_id: str
    captions: tuple[str, ...]  # one caption, or two (A, B) for pairwise
    expect: dict[str, tuple[Any, ...]]
    explain: str = ""  # practice items: shown with the feedback


@dataclass
class Campaign:
    """A parsed campaign file. Paths are absolute (relative ones are resolved against the YAML's folder)."""

    path: Path
    name: str
    rubric: Rubric
    systems: list[SystemSpec]
    annotators: list[str]
    admins: list[str]
    raters_per_item: int
    seed: int
    database_url: str
    image_folder: Path | None
    coco_split: str | None = None
    sample_images: int | None = None
    pairs: list[tuple[str, str]] = field(default_factory=list)
    gold: list[GoldSpec] = field(default_factory=list)
    practice: list[GoldSpec] = field(default_factory=list)  # shown first, with feedback; answers kept apart
    sqlite_sync: str = "NORMAL"
    instructions: str = ""  # Markdown shown before the first item and behind the "Instructions" button
    consent: str = ""  # Markdown; when given, annotators must agree before the first item
    normalise_captions: bool = True  # shown captions: first letter lower-cased, final punctuation removed
    session_idle_minutes: int = 240
    session_max_hours: int = 72
    login_max_failures: int = 5  # wrong passwords for one name before it is locked
    login_lockout_seconds: int = 300

    @property
    def root(self) -> Path:
        return self.path.parent

    def fingerprint(self) -> str:
        """What fixes the item set: changing it after ratings exist would silently re-map items, so it is checked.
        Annotators are not part of it: they can be added or replaced (`capeval annotate reassign`)."""
        return self._fingerprint(with_annotators=False)

    def legacy_fingerprint(self) -> str:
        """The fingerprint databases created before annotators could change recorded (annotators included)."""
        return self._fingerprint(with_annotators=True)

    def _fingerprint(self, with_annotators: bool) -> str:
        doc = {"rubric": self.rubric.name, "systems": [(s.name, str(s.path), s.pick) for s in self.systems],
               "pairs": self.pairs, "sample": self.sample_images, "seed": self.seed,
               "gold": [(g.image_id, g.captions, sorted(g.expect)) for g in self.gold],
               "raters": self.raters_per_item}
        if with_annotators:
            doc["annotators"] = self.annotators
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def write_template(path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a commented example campaign file; refuses to overwrite an existing file."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise InputError("file exists; not overwriting it (choose another name)", path=str(p))
    p.write_text(TEMPLATE.format(name=p.name), encoding="utf-8")
    return p


def _err(path: Path, where: str, msg: str) -> InputError:
    return InputError(msg, path=str(path), where=where)


def _str_list(raw: Any, path: Path, where: str) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(x, (str, int)) and str(x).strip() for x in raw):
        raise _err(path, where, "expected a list of user names")
    out = [str(x).strip() for x in raw]
    for u in out:
        if len(u) > 64 or any(ch.isspace() for ch in u):
            raise _err(path, where, f"user name {u!r} must be at most 64 characters without spaces")
    if len(set(out)) != len(out):
        raise _err(path, where, "a user name is listed twice")
    return out


def safe_yaml(text: str) -> Any:
    """`yaml.safe_load` that refuses duplicate mapping keys and alias bombs (too many aliases or expanded nodes).

    Raises yaml.YAMLError (with a problem mark where there is one) for every refusal.
    """
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    aliases = [0]

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        if self.check_event(yaml.AliasEvent):
            aliases[0] += 1
            if aliases[0] > MAX_YAML_ALIASES:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(None, None, f"more than {MAX_YAML_ALIASES} aliases (*name) "
                                                  "refused", mark)
        return yaml.SafeLoader.compose_node(self, parent, index)

    def construct_mapping(self, node, deep=False):  # noqa: ANN001
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(None, None, "a mapping key must be plain text or a number",
                                                        key_node.start_mark) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key].line + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark
        return yaml.SafeLoader.construct_mapping(self, node, deep)

    _Loader.compose_node = compose_node  # type: ignore[method-assign]
    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                            lambda loader, node: loader.construct_mapping(node))
    _Loader.construct_mapping = construct_mapping  # type: ignore[method-assign]

    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        sizes: dict[int, int] = {}

        def size(n) -> int:  # noqa: ANN001 - expanded node count, memoised per node (aliases share nodes)
            if id(n) in sizes:
                return sizes[id(n)]
            sizes[id(n)] = 1  # cycles count once
            total = 1
            if isinstance(n, yaml.SequenceNode):
                total += sum(size(c) for c in n.value)
            elif isinstance(n, yaml.MappingNode):
                total += sum(size(k) + size(v) for k, v in n.value)
            sizes[id(n)] = total
            if total > MAX_YAML_NODES:
                raise yaml.composer.ComposerError(None, None, f"the document expands to more than {MAX_YAML_NODES} "
                                                  "values (aliases); refused", n.start_mark)
            return total

        size(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_campaign(path: str | Path) -> Campaign:
    """Parse and check a campaign YAML; every problem is one message naming the file and the key."""
    import yaml

    p = Path(path).resolve()
    if not p.is_file():
        raise InputError("campaign file not found (create one with `capeval annotate init campaign.yaml`)", path=str(p))
    if p.stat().st_size > MAX_YAML_BYTES:
        raise _err(p, "file", f"campaign file is larger than {MAX_YAML_BYTES} bytes")
    try:
        doc = safe_yaml(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "YAML"
        raise _err(p, where, f"not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except UnicodeDecodeError:
        raise _err(p, "file", "not UTF-8 text") from None
    except RecursionError:
        raise _err(p, "YAML", "nested too deeply") from None
    if not isinstance(doc, dict):
        raise _err(p, "top level", "expected a mapping of campaign settings")
    known = {"name", "images", "systems", "rubric", "pairs", "raters_per_item", "annotators", "admins", "gold", "seed",
             "database", "sample_images", "sqlite_sync", "instructions", "consent", "normalise_captions", "session",
             "login", "practice"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise _err(p, unknown[0], f"unknown setting; expected one of {', '.join(sorted(known))}")

    name = str(doc.get("name") or p.stem)

    rubric_name = doc.get("rubric", "thumb")
    if not isinstance(rubric_name, str) or rubric_name not in RUBRICS:
        raise _err(p, "rubric", f"unknown rubric {rubric_name!r}; expected one of {', '.join(RUBRICS)}")
    rubric = RUBRICS[rubric_name]

    raw_sys = doc.get("systems")
    if not isinstance(raw_sys, dict) or not raw_sys:
        raise _err(p, "systems", "expected a mapping {system name: caption file} with at least one entry")
    systems: list[SystemSpec] = []
    for sname, spec in raw_sys.items():
        where = f"systems.{sname}"
        if not isinstance(sname, str) or not sname.strip():
            raise _err(p, where, "system names must be non-empty text")
        if isinstance(spec, str):
            spec = {"path": spec}
        if not isinstance(spec, dict) or "path" not in spec:
            raise _err(p, where, "expected a file path or {path: ..., format: ..., pick: first|random}")
        pick = spec.get("pick", "first")
        if pick not in ("first", "random"):
            raise _err(p, f"{where}.pick", "expected 'first' or 'random'")
        fpath = (p.parent / str(spec["path"])).resolve()
        systems.append(SystemSpec(sname, fpath, spec.get("format"), pick))

    pairs: list[tuple[str, str]] = []
    if rubric.pairwise:
        raw_pairs = doc.get("pairs")
        names = [s.name for s in systems]
        if raw_pairs is None:
            if len(names) != 2:
                raise _err(p, "pairs", "pairwise rubric: list the pairs to compare, e.g. [[baseline, tuned]]")
            raw_pairs = [names]
        if not isinstance(raw_pairs, list) or not raw_pairs:
            raise _err(p, "pairs", "expected a list of [system, system] pairs")
        for i, pr in enumerate(raw_pairs):
            if not (isinstance(pr, list) and len(pr) == 2 and all(x in names for x in pr) and pr[0] != pr[1]):
                raise _err(p, f"pairs[{i}]", f"expected two different system names from {names}")
            pairs.append((pr[0], pr[1]))
    elif doc.get("pairs"):
        raise _err(p, "pairs", "only used with rubric: pairwise")

    images = doc.get("images") or {}
    if isinstance(images, str):
        images = {"folder": images}
    if not isinstance(images, dict):
        raise _err(p, "images", "expected {folder: path} or {coco: val2014}")
    folder = images.get("folder")
    coco = images.get("coco")
    if bool(folder) == bool(coco):
        raise _err(p, "images", "give exactly one of `folder` (a folder of image files) or `coco` (val2014 or val2017)")
    image_folder = (p.parent / str(folder)).resolve() if folder else None
    if image_folder is not None:
        if not image_folder.is_dir():
            raise _err(p, "images.folder", f"folder {image_folder} not found")
        if image_folder == p.parent or image_folder in p.parents:
            raise _err(p, "images.folder", "the image folder must not contain the campaign file (its files are served)")

    def _int(key: str, default: int | None, lo: int, hi: int) -> int | None:
        v = doc.get(key, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise _err(p, key, f"expected a whole number from {lo} to {hi}")
        return v

    raters = _int("raters_per_item", 3, 1, 1000)
    seed = _int("seed", 13, 0, 2**31 - 1)
    sample = _int("sample_images", None, 1, MAX_ITEMS)
    annotators = _str_list(doc.get("annotators"), p, "annotators")
    admins = _str_list(doc.get("admins"), p, "admins")
    if not annotators:
        raise _err(p, "annotators", "list at least one annotator")
    if set(annotators) & set(admins):
        raise _err(p, "admins", "a user cannot be both annotator and admin here (use two logins)")
    if raters > len(annotators):
        raise _err(p, "raters_per_item", f"{raters} raters per item but only {len(annotators)} annotators")

    def _known_answers(key: str) -> list[GoldSpec]:
        out: list[GoldSpec] = []
        raw = doc.get(key) or []
        if not isinstance(raw, list):
            raise _err(p, key, "expected a list of {image_id, caption, expect}")
        for i, g in enumerate(raw):
            where = f"{key}[{i}]"
            if not isinstance(g, dict) or "image_id" not in g or "expect" not in g:
                raise _err(p, where, "expected {image_id: ..., caption: ... (or captions: [A, B]), "
                                     "expect: {criterion: value}}")
            bad = sorted(set(g) - {"image_id", "caption", "captions", "expect", "explain"})
            if bad:
                raise _err(p, f"{where}.{bad[0]}", "unknown key; expected image_id, caption(s), expect, explain")
            caps = g.get("captions") if rubric.pairwise else [g.get("caption")]
            need = 2 if rubric.pairwise else 1
            if not isinstance(caps, list) or len(caps) != need or not all(isinstance(c, str) and c.strip()
                                                                          for c in caps):
                raise _err(p, where,
                           "pairwise items need `captions: [A, B]`" if rubric.pairwise else "needs a `caption` text")
            if any(len(c) > MAX_CAPTION_CHARS for c in caps):
                raise _err(p, where, f"caption longer than {MAX_CAPTION_CHARS} characters")
            exp = g["expect"]
            if not isinstance(exp, dict) or not exp:
                raise _err(p, f"{where}.expect", "expected {criterion: value or [values]}")
            parsed: dict[str, tuple[Any, ...]] = {}
            for crit, val in exp.items():
                vals = tuple(val) if isinstance(val, list) else (val,)
                try:
                    parsed[crit] = tuple(rubric.parse_value(crit, v) for v in vals)
                except ValueError as exc:
                    raise _err(p, f"{where}.expect.{crit}", str(exc)) from None
            explain = g.get("explain") or ""
            if not isinstance(explain, str):
                raise _err(p, f"{where}.explain", "expected text")
            from capeval.records import normalize_image_id

            out.append(GoldSpec(normalize_image_id(g["image_id"]), tuple(caps), parsed, explain.strip()))
        return out

    gold = _known_answers("gold")
    practice = _known_answers("practice")

    db = doc.get("database", f"{p.stem}.db")
    if not isinstance(db, str) or not db.strip():
        raise _err(p, "database", "expected a SQLite file name or a SQLAlchemy URL")
    if "://" in db:
        scheme = db.split("://", 1)[0].split("+", 1)[0].lower()
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise _err(p, "database", f"unsupported database {scheme!r}; expected a SQLite file name or a "
                                      "postgresql:// URL")
        database_url = db
    else:
        dbp = (p.parent / db).resolve()
        if image_folder is not None and image_folder in dbp.parents:
            raise _err(p, "database", "the database must not be inside the image folder (its files are served)")
        database_url = f"sqlite:///{dbp}"

    sync = str(doc.get("sqlite_sync", "normal")).upper()
    if sync not in ("NORMAL", "FULL"):
        raise _err(p, "sqlite_sync", "expected normal (survives a server crash) or full (also a power cut)")

    texts = {}
    for key in ("instructions", "consent"):
        v = doc.get(key) or ""
        if not isinstance(v, str) or len(v) > 50_000:
            raise _err(p, key, "expected Markdown text (at most 50,000 characters)")
        texts[key] = v.strip()
    norm = doc.get("normalise_captions", True)
    if not isinstance(norm, bool):
        raise _err(p, "normalise_captions", "expected true or false")

    def _sub(key: str, defaults: dict[str, tuple[int, int, int]]) -> dict[str, int]:
        raw = doc.get(key) or {}
        if not isinstance(raw, dict):
            raise _err(p, key, f"expected a mapping with {', '.join(defaults)}")
        bad = sorted(set(raw) - set(defaults))
        if bad:
            raise _err(p, f"{key}.{bad[0]}", f"unknown setting; expected one of {', '.join(defaults)}")
        out = {}
        for k, (dflt, lo, hi) in defaults.items():
            v = raw.get(k, dflt)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise _err(p, f"{key}.{k}", f"expected a whole number from {lo} to {hi}")
            out[k] = v
        return out

    sess = _sub("session", {"idle_minutes": (240, 1, 7 * 24 * 60), "max_hours": (72, 1, 24 * 90)})
    login = _sub("login", {"max_failures": (5, 1, 1000), "lockout_seconds": (300, 1, 24 * 3600)})

    return Campaign(path=p, name=name, rubric=rubric, systems=systems, annotators=annotators, admins=admins,
                    raters_per_item=raters, seed=seed, database_url=database_url, image_folder=image_folder,
                    coco_split=str(coco) if coco else None, sample_images=sample, pairs=pairs, gold=gold,
                    sqlite_sync=sync, practice=practice, instructions=texts["instructions"], consent=texts["consent"],
                    normalise_captions=norm, session_idle_minutes=sess["idle_minutes"],
                    session_max_hours=sess["max_hours"], login_max_failures=login["max_failures"],
                    login_lockout_seconds=login["lockout_seconds"])

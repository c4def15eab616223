"""Dataset registry and fetcher: name -> files (mirror-layout path, original URLs, checksums), licence, citation.

`get(name)` returns a verified local copy from the cache (`$CAPEVAL_HOME/datasets`, default
`~/.cache/capeval/datasets`), fetching it first from the mirror (`CAPEVAL_DATA_MIRROR` or `mirror=`: a folder or an
http(s)/file URL laid out like the shared datasets folder) and else from the original public URL. Downloads go to a
temporary file, are checked against the recorded checksum and only then renamed into place, so the cache never holds
a partial or corrupt file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from capeval.errors import CapevalError, InputError

MANIFEST = Path(__file__).with_name("data") / "datasets.json"
ENV_HOME = "CAPEVAL_HOME"
ENV_MIRROR = "CAPEVAL_DATA_MIRROR"
_CHUNK = 1 << 20
_PROGRESS_MIN_BYTES = 4 << 20
_TIMEOUT_S = 60.0


class DatasetError(CapevalError):
    """A dataset could not be fetched or verified; the message names the file, the sources tried and what to do."""


class DatasetWarning(UserWarning):
    """A fetch that worked but deserves attention (no recorded checksum, a cached copy replaced)."""


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset: its path in the mirror/cache layout, where it comes from and how to verify it."""

    path: str
    urls: tuple[str, ...]
    source: str = ""
    sha256: str | None = None
    size: int | None = None
    sha1: str | None = None
    extract: tuple[str, ...] = ()  # zip members to unpack next to the archive

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def outputs(self) -> list[str]:
        """Mirror-layout paths this file provides: itself and, for an archive, its extracted members."""
        folder = self.path.rsplit("/", 1)[0]
        return [self.path] + [f"{folder}/{m}" for m in self.extract]


@dataclass(frozen=True)
class Dataset:
    """A registry entry. `format` is the loader hint (a capeval.io format, or the name of a judgment loader)."""

    name: str
    description: str
    files: tuple[DataFile, ...]
    licence: str
    citation: str
    format: str | None = None
    primary: str | None = None  # the file `resolve()` returns for a multi-file dataset

    @property
    def folder(self) -> str:
        """The mirror-layout folder shared by the dataset's files."""
        return os.path.commonpath([f.path.rsplit("/", 1)[0] for f in self.files])

    @property
    def size(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(sizes)  # type: ignore[misc]

    def outputs(self) -> list[str]:
        return [p for f in self.files for p in f.outputs()]


@dataclass(frozen=True)
class DatasetStatus:
    """One row of `capeval data list`."""

    name: str
    files: int
    size: int | None
    licence: str
    cached: str  # "yes", "partial" or "no"
    description: str = ""


@dataclass
class _Manifest:
    datasets: dict[str, Dataset] = field(default_factory=dict)
    image_urls: dict[str, str] = field(default_factory=dict)


def load_manifest(path: str | os.PathLike[str] = MANIFEST) -> _Manifest:
    """Parse a registry manifest (capeval/data/datasets.json) into Dataset objects."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    out = _Manifest(image_urls=dict(doc.get("image_urls", {})))
    for d in doc["datasets"]:
        files = tuple(DataFile(path=f["path"], urls=tuple(f.get("urls", ())), source=f.get("source", ""),
                               sha256=f.get("sha256"), size=f.get("size"), sha1=f.get("sha1"),
                               extract=tuple(f.get("extract", ()))) for f in d["files"])
        out.datasets[d["name"]] = Dataset(name=d["name"], description=d.get("description", ""), files=files,
                                          licence=d.get("licence", ""), citation=d.get("citation", ""),
                                          format=d.get("format"), primary=d.get("primary"))
    return out


_MANIFEST = load_manifest()
REGISTRY: dict[str, Dataset] = _MANIFEST.datasets
COCO_IMAGE_URLS: dict[str, str] = _MANIFEST.image_urls


# ------------------------------------------------------------------------------------------ locations


def capeval_home() -> Path:
    """`$CAPEVAL_HOME`, else `~/.cache/capeval`."""
    env = os.environ.get(ENV_HOME)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "capeval"


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where fetched files live, in the mirror layout: `cache_dir`, else `$CAPEVAL_HOME/datasets`."""
    return Path(cache_dir).expanduser() if cache_dir is not None else capeval_home() / "datasets"


def _mirror(mirror: str | os.PathLike[str] | None) -> str | None:
    value = os.fspath(mirror) if mirror is not None else os.environ.get(ENV_MIRROR)
    return value or None


def _mirror_source(mirror: str, rel: str) -> str:
    if mirror.startswith(("http://", "https://", "file://")):
        return mirror.rstrip("/") + "/" + urllib.parse.quote(rel)
    return str(Path(mirror).expanduser() / rel)


def lookup(name: str) -> Dataset:
    """The registry entry for `name`; unknown names -> an error listing the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; expected one of: {', '.join(REGISTRY)}") from None


# ------------------------------------------------------------------------------------------ verification


def _sidecar(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.verified")


def _hash_file(path: Path) -> tuple[str, str, int]:
    h256, h1, n = hashlib.sha256(), hashlib.sha1(), 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h256.update(chunk)
            h1.update(chunk)
            n += len(chunk)
    return h256.hexdigest(), h1.hexdigest(), n


def _checksum_problem(df: DataFile, sha256: str, sha1: str, size: int) -> str | None:
    """None when the content matches what the registry records, else what differs (expected vs got)."""
    if df.sha256 and sha256 != df.sha256:
        return f"expected sha256 {df.sha256}, got {sha256}"
    if not df.sha256 and df.sha1 and sha1 != df.sha1:
        return f"expected sha1 {df.sha1}, got {sha1}"
    if df.size is not None and size != df.size:
        return f"expected {df.size} bytes, got {size}"
    return None


def _write_sidecar(dest: Path, sha256: str) -> None:
    st = dest.stat()
    tmp = _sidecar(dest).with_suffix(".tmp")
    tmp.write_text(json.dumps({"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}), encoding="utf-8")
    os.replace(tmp, _sidecar(dest))


def _cached_ok(dest: Path, df: DataFile) -> bool:
    """A cached file is reused when its verification record matches (size, mtime) or, failing that, its hash does."""
    if not dest.is_file():
        return False
    try:
        rec = json.loads(_sidecar(dest).read_text(encoding="utf-8"))
        st = dest.stat()
        if rec["size"] == st.st_size and rec["mtime_ns"] == st.st_mtime_ns and (
                not df.sha256 or rec["sha256"] == df.sha256):
            return True
    except (OSError, ValueError, KeyError, TypeError):
        pass
    sha256, sha1, size = _hash_file(dest)
    problem = _checksum_problem(df, sha256, sha1, size)
    if problem:
        warnings.warn(f"cached {dest} does not match the registry ({problem}); removed it, fetching it again",
                      DatasetWarning, stacklevel=4)
        dest.unlink(missing_ok=True)
        _sidecar(dest).unlink(missing_ok=True)
        return False
    _write_sidecar(dest, sha256)
    return True


# ------------------------------------------------------------------------------------------ transfer


def _default_mode(path: Path) -> None:
    """mkstemp creates 0600 files; give cached data the usual permissions (0666 minus the umask)."""
    mask = os.umask(0)
    os.umask(mask)
    path.chmod(0o666 & ~mask)


class _Unavailable(Exception):
    """This source does not have the file (missing, HTTP error, no network); the next source is tried."""


@contextmanager
def _open_source(src: str) -> Iterator[tuple[IO[bytes], int | None]]:
    if "://" not in src:
        try:
            f = open(src, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise _Unavailable("not in the mirror") from None
        except OSError as exc:
            raise _Unavailable(exc.strerror or str(exc)) from None
        with f:
            yield f, os.fstat(f.fileno()).st_size
        return
    req = urllib.request.Request(src, headers={"User-Agent": "capeval (+https://pypi.org/project/capeval)"})
    try:
        resp = urllib.request.urlopen(req, timeout=_TIMEOUT_S)  # noqa: S310 - http(s)/file URLs by design
    except urllib.error.HTTPError as exc:
        raise _Unavailable(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise _Unavailable(f"{exc.reason}") from None
    except (OSError, ValueError) as exc:
        raise _Unavailable(str(exc)) from None
    with resp:
        length = resp.headers.get("Content-Length")
        yield resp, int(length) if length and length.isdigit() else None


def _progress_bar(label: str, total: int | None, enabled: bool) -> Any:
    if not enabled or (total is not None and total < _PROGRESS_MIN_BYTES):
        return None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   console=Console(stderr=True), transient=True)
    bar.start()
    bar.add_task(label, total=total)
    return bar


def _transfer(src: str, dest: Path, df: DataFile, progress: bool) -> tuple[str, str, int]:
    """Copy `src` to a temp file beside `dest`, hashing as it goes; returns (sha256, sha1, size) and the temp path is
    renamed to `dest` only by the caller after verification."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    h256, h1, n = hashlib.sha256(), hashlib.sha1(), 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    bar = None
    try:
        with os.fdopen(fd, "wb") as out, _open_source(src) as (inp, total):
            bar = _progress_bar(df.name, total if total is not None else df.size, progress)
            while True:
                try:
                    chunk = inp.read(_CHUNK)
                except OSError as exc:
                    raise _Unavailable(f"transfer interrupted ({exc})") from None
                if not chunk:
                    break
                out.write(chunk)
                h256.update(chunk)
                h1.update(chunk)
                n += len(chunk)
                if bar is not None:
                    bar.advance(bar.task_ids[0], len(chunk))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if bar is not None:
            bar.stop()
    sums = (h256.hexdigest(), h1.hexdigest(), n)
    problem = _checksum_problem(df, *sums)
    if problem:
        tmp.unlink(missing_ok=True)
        raise DatasetError(f"checksum mismatch for {df.path} from {src}: {problem}; the file was discarded and not "
                           "cached (a corrupt or different mirror copy?)")
    _default_mode(tmp)
    os.replace(tmp, dest)
    return sums


def _fetch_file(df: DataFile, root: Path, mirror: str | None, force: bool, progress: bool,
                dataset: str = "", verify_cache: bool = True) -> Path:
    dest = root / df.path
    if not force and (_cached_ok(dest, df) if verify_cache else dest.is_file()):
        _extract(df, root, dest, force=False)
        return dest
    sources = ([_mirror_source(mirror, df.path)] if mirror else []) + list(df.urls)
    tried: list[str] = []
    for src in sources:
        try:
            sha256, _, _ = _transfer(src, dest, df, progress)
        except _Unavailable as exc:
            tried.append(f"{src} ({exc})")
            continue
        if verify_cache:
            _write_sidecar(dest, sha256)
        if verify_cache and not df.sha256 and not df.sha1:
            warnings.warn(f"{df.path}: the registry records no checksum for this file; fetched from {src}, "
                          f"sha256 {sha256} (recorded in the cache for later checks)", DatasetWarning, stacklevel=4)
        _extract(df, root, dest, force=True)
        return dest
    what = f"{df.path} of dataset {dataset!r}" if dataset else df.path
    if mirror:
        hint = f"add {df.path} to the mirror {mirror}, or fetch where {' or '.join(df.urls)} is reachable"
    else:
        hint = f"offline? set {ENV_MIRROR} (or --mirror) to a folder or URL laid out like shared/datasets"
    raise DatasetError(f"could not fetch {what}: tried {'; '.join(tried) or 'no source'}; {hint}")


def _extract(df: DataFile, root: Path, archive: Path, *, force: bool) -> None:
    """Unpack the listed members of a zip next to it (each via a temp file and rename)."""
    if not df.extract:
        return
    folder = archive.parent
    todo = [m for m in df.extract if force or not (folder / m).is_file()]
    if not todo:
        return
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in todo:
                target = folder / member
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
                try:
                    with os.fdopen(fd, "wb") as out, zf.open(member) as inp:
                        shutil.copyfileobj(inp, out, _CHUNK)
                    _default_mode(Path(tmp))
                    os.replace(tmp, target)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
    except KeyError as exc:
        raise DatasetError(f"{archive}: archive has no member {exc.args[0]!r}; "
                           f"expected {', '.join(df.extract)}") from None
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{archive}: not a valid zip archive ({exc})") from None


# ------------------------------------------------------------------------------------------ public API


def fetch(dataset: Dataset, *, mirror: str | os.PathLike[str] | None = None,
          cache_dir: str | os.PathLike[str] | None = None, force: bool = False, progress: bool = True) -> Path:
    """Fetch and verify every file of `dataset`; returns its single file, or its folder for multi-file datasets."""
    root = cache_root(cache_dir)
    m = _mirror(mirror)
    paths = [_fetch_file(df, root, m, force, progress, dataset.name) for df in dataset.files]
    if len(dataset.files) == 1 and not dataset.files[0].extract:
        return paths[0]
    return root / dataset.folder


def get(name: str, *, mirror: str | os.PathLike[str] | None = None, cache_dir: str | os.PathLike[str] | None = None,
        force: bool = False, progress: bool = True) -> Path:
    """Local path of a registered dataset (file, or folder for multi-file datasets), fetched and verified if needed."""
    return fetch(lookup(name), mirror=mirror, cache_dir=cache_dir, force=force, progress=progress)


def get_file(name: str, filename: str, **kwargs: Any) -> Path:
    """One file of a dataset by base name or mirror-layout path (extracted archive members included)."""
    ds = lookup(name)
    matches = [p for p in ds.outputs() if p == filename or p.endswith("/" + filename)]
    if len(matches) != 1:
        names = ", ".join(p.rsplit("/", 1)[-1] for p in ds.outputs())
        raise DatasetError(f"dataset {name!r} has {'no' if not matches else 'several'} file {filename!r}; "
                           f"its files: {names}")
    fetch(ds, **kwargs)
    return cache_root(kwargs.get("cache_dir")) / matches[0]


def resolve(name_or_path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """A file path for CLI arguments that take either a path or a dataset name (an existing path wins)."""
    p = Path(name_or_path)
    if p.exists() or os.fspath(name_or_path) not in REGISTRY:
        if not p.exists():
            raise InputError(f"no such file, and not a dataset name; expected a caption file or one of: "
                             f"{', '.join(REGISTRY)}", path=os.fspath(name_or_path))
        return p
    ds = REGISTRY[os.fspath(name_or_path)]
    loadable = ds.primary or (ds.outputs()[0] if len(ds.outputs()) == 1 else None)
    if loadable is None:
        raise DatasetError(f"dataset {ds.name!r} has several files ({', '.join(f.name for f in ds.files)}); "
                           f"pass one of them as a path (`capeval data get {ds.name}` prints their folder; in "
                           "Python capeval.datasets.get_file)")
    fetch(ds, **kwargs)
    return cache_root(kwargs.get("cache_dir")) / loadable


def load(name_or_path: str | os.PathLike[str], *, format: str | None = None, split: str | None = None,
         allow_empty: bool = False, **kwargs: Any) -> Any:
    """Same as `capeval.io.load` (kept for existing callers): a dataset name, a path or a URL -> CaptionSet."""
    from capeval.io import load as io_load

    return io_load(name_or_path, format=format, split=split, allow_empty=allow_empty, **kwargs)


def fetch_url(url: str, *, cache_dir: str | os.PathLike[str] | None = None, force: bool = False,
              progress: bool = True) -> Path:
    """A caption file at an http(s)/file URL, downloaded once into `<cache>/urls/<hash>/<name>` (via a temp file,
    renamed into place only when complete); unreachable -> DatasetError naming the URL and why."""
    parsed = urllib.parse.urlparse(url)
    base = Path(urllib.parse.unquote(parsed.path)).name or "download"
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    df = DataFile(path=f"urls/{digest}/{base}", urls=(url,), source=url)
    dest = cache_root(cache_dir) / df.path
    if dest.is_file() and not force:
        return dest
    try:
        _transfer(url, dest, df, progress)
    except _Unavailable as exc:
        raise DatasetError(f"could not fetch {url} ({exc}); expected a reachable caption file") from None
    return dest


def cached_state(ds: Dataset, cache_dir: str | os.PathLike[str] | None = None) -> str:
    """'yes' when every file (and extracted member) is in the cache, 'partial' when some are, else 'no'."""
    root = cache_root(cache_dir)
    have = [(root / p).is_file() for p in ds.outputs()]
    return "yes" if all(have) else "partial" if any(have) else "no"


def list_datasets(cache_dir: str | os.PathLike[str] | None = None) -> list[DatasetStatus]:
    """Every registered dataset with its size, licence and whether it is cached."""
    return [DatasetStatus(ds.name, len(ds.files), ds.size, ds.licence, cached_state(ds, cache_dir), ds.description)
            for ds in REGISTRY.values()]


# ------------------------------------------------------------------------------------------ COCO images


def coco_image_url(image_id: object, split: str) -> str:
    """Public URL of a COCO image:
    (391895, 'val2014') -> http://images.cocodataset.org/val2014/COCO_val2014_000000391895.jpg."""
    from capeval.records import normalize_image_id

    try:
        pattern = COCO_IMAGE_URLS[split]
    except KeyError:
        raise DatasetError(f"unknown COCO split {split!r}; expected one of: {', '.join(COCO_IMAGE_URLS)}") from None
    img = normalize_image_id(image_id)
    if not img.isdigit():
        raise InputError(f"expected a numeric COCO image id, got {image_id!r}")
    return pattern.format(id=int(img))


def fetch_coco_image(image_id: object, split: str, *, cache: str | os.PathLike[str] | None = None,
                     mirror: str | os.PathLike[str] | None = None, force: bool = False,
                     progress: bool = False) -> Path:
    """A COCO image in the cache (`<cache>/coco-images/<split>/<file>`), from the mirror's same path or cocodataset.org.

    COCO publishes no per-image checksums; the file is checked to be a JPEG before it is kept.
    """
    url = coco_image_url(image_id, split)
    df = DataFile(path=f"coco-images/{split}/{url.rsplit('/', 1)[-1]}", urls=(url,), source="cocodataset.org")
    dest = _fetch_file(df, cache_root(cache), _mirror(mirror), force, progress, verify_cache=False)
    with dest.open("rb") as f:
        magic = f.read(3)
    if magic != b"\xff\xd8\xff":
        dest.unlink(missing_ok=True)
        raise DatasetError(f"{url}: the download is not a JPEG image (starts with {magic!r}); it was discarded")
    return dest

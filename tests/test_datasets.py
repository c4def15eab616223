"""Dataset registry and fetcher: checksums of the real files, mirror folder/file/http fetches, cache reuse,
corrupt copies rejected, clear errors offline, archives, COCO image URLs."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import shutil
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from capeval import datasets as D
from capeval.errors import InputError

NAMES = ["coco-karpathy-test", "m2-transformer", "blip2", "llava-1.5-7b-briefly", "llava-1.5-7b-default",
         "flickr8k-expert", "flickr8k-crowdflower", "flickr8k-tokens", "pascal50s", "coco-val2017-captions",
         "coco-captions-2014", "coco-captions-2017"]


@pytest.fixture(autouse=True)
def _own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache per test and no mirror unless the test sets one."""
    monkeypatch.setenv("CAPEVAL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CAPEVAL_DATA_MIRROR", raising=False)
    return tmp_path / "home"


def _sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _mini_mirror(shared: Path, tmp_path: Path, *rels: str) -> Path:
    mirror = tmp_path / "mirror"
    for rel in rels:
        (mirror / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared / rel, mirror / rel)
    return mirror


def test_registry_has_every_contracted_name() -> None:
    assert set(NAMES) <= set(D.REGISTRY)
    for ds in D.REGISTRY.values():
        assert ds.files and ds.licence and ds.citation and ds.description
        for f in ds.files:
            assert f.urls, f.path
            assert all(u.startswith(("https://", "http://")) for u in f.urls)


def test_manifest_checksums_match_the_shared_files(shared_datasets: Path) -> None:
    checked = 0
    for ds in D.REGISTRY.values():
        for f in ds.files:
            local = shared_datasets / f.path
            if f.sha256 is None:
                assert not local.exists(), f"{f.path} is in the mirror but has no sha256 in the manifest"
                continue
            if not local.exists():  # registered with a checksum computed elsewhere (e.g. nebula), not mirrored
                continue
            assert _sha256(local) == f.sha256, f.path
            assert local.stat().st_size == f.size, f.path
            checked += 1
    assert checked == 22  # every data file of the shared folder (its README aside)


def test_get_from_a_mirror_folder_verifies_and_caches(shared_datasets: Path, _own_home: Path) -> None:
    path = D.get("coco-karpathy-test", mirror=shared_datasets)
    assert path == _own_home / "datasets" / "coco-karpathy-test" / "coco_test.json"
    assert _sha256(path) == D.REGISTRY["coco-karpathy-test"].files[0].sha256
    assert not list(path.parent.glob("*.part")) and not list(path.parent.glob(".*.part"))


def test_mirror_is_read_from_the_environment(shared_datasets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPEVAL_DATA_MIRROR", str(shared_datasets))
    assert D.get("blip2").name == "blip2_results_xe.json"


def test_second_get_reuses_the_cache_without_the_mirror(shared_datasets: Path, tmp_path: Path) -> None:
    rel = "coco-system-outputs/m2_transformer.json"
    mirror = _mini_mirror(shared_datasets, tmp_path, rel)
    first = D.get("m2-transformer", mirror=mirror)
    mtime = first.stat().st_mtime_ns
    shutil.rmtree(mirror)  # the mirror is gone: only the cache can answer
    second = D.get("m2-transformer", mirror=mirror)
    assert second == first and second.stat().st_mtime_ns == mtime


def test_corrupt_mirror_copy_is_rejected_and_not_cached(shared_datasets: Path, tmp_path: Path,
                                                        _own_home: Path) -> None:
    rel = "coco-system-outputs/blip2_results_xe.json"
    mirror = _mini_mirror(shared_datasets, tmp_path, rel)
    bad = mirror / rel
    bad.write_bytes(bad.read_bytes().replace(b"motorcycle", b"motorcycel", 1))
    with pytest.raises(D.DatasetError) as info:
        D.get("blip2", mirror=mirror)
    msg = str(info.value)
    expected = D.REGISTRY["blip2"].files[0].sha256
    assert msg.startswith(f"checksum mismatch for {rel} from {bad}: expected sha256 {expected}, got {_sha256(bad)}")
    assert "not cached" in msg
    folder = _own_home / "datasets" / "coco-system-outputs"
    assert not (folder / "blip2_results_xe.json").exists()
    assert list(folder.iterdir()) == []  # no temp file left behind


def test_corrupted_cache_file_is_fetched_again(shared_datasets: Path) -> None:
    path = D.get("flickr8k-expert", mirror=shared_datasets)
    path.write_bytes(b"tampered")
    with pytest.warns(D.DatasetWarning, match="does not match the registry"):
        again = D.get("flickr8k-expert", mirror=shared_datasets)
    assert _sha256(again) == D.REGISTRY["flickr8k-expert"].files[0].sha256


def test_corrupted_cache_file_is_removed_even_when_refetch_fails(shared_datasets: Path, tmp_path: Path) -> None:
    mirror = _mini_mirror(shared_datasets, tmp_path, "flickr8k/ExpertAnnotations.txt")
    path = D.get("flickr8k-expert", mirror=mirror)
    path.write_bytes(b"tampered")
    shutil.rmtree(mirror)
    ds = D.REGISTRY["flickr8k-expert"]
    offline = D.Dataset(ds.name, ds.description, (D.DataFile(ds.files[0].path, ("http://127.0.0.1:9/x",),
                                                             sha256=ds.files[0].sha256),), ds.licence, ds.citation)
    with pytest.warns(D.DatasetWarning), pytest.raises(D.DatasetError, match="could not fetch"):
        D.fetch(offline, mirror=mirror)
    assert not path.exists()


def test_force_fetches_again(shared_datasets: Path) -> None:
    path = D.get("m2-transformer", mirror=shared_datasets)
    os.utime(path, ns=(1, 1))
    D.get("m2-transformer", mirror=shared_datasets, force=True)
    assert path.stat().st_mtime_ns != 1


def test_multi_file_dataset_returns_its_folder(shared_datasets: Path, _own_home: Path) -> None:
    folder = D.get("pascal50s", mirror=shared_datasets)
    assert folder == _own_home / "datasets" / "pascal50s"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == sorted(
        f.name for f in D.REGISTRY["pascal50s"].files)
    assert D.get_file("pascal50s", "expert_repo_pascal_50s.json", mirror=shared_datasets) == \
        folder / "expert_repo_pascal_50s.json"


def test_file_url_mirror(shared_datasets: Path) -> None:
    path = D.get("flickr8k-expert", mirror=shared_datasets.resolve().as_uri())
    assert _sha256(path) == D.REGISTRY["flickr8k-expert"].files[0].sha256


@pytest.fixture
def http_mirror(shared_datasets: Path) -> Iterator[str]:
    """The shared folder served over HTTP on 127.0.0.1 from a thread (closed after the test)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(shared_datasets), **kwargs)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_http_mirror_fetch_is_verified(http_mirror: str) -> None:
    path = D.get("llava-1.5-7b-briefly", mirror=http_mirror)
    assert _sha256(path) == D.REGISTRY["llava-1.5-7b-briefly"].files[0].sha256


def test_http_404_everywhere_names_each_url(http_mirror: str) -> None:
    ds = D.Dataset("ghost", "a file no source has", (D.DataFile("ghost/none.json", (f"{http_mirror}/orig.json",),
                                                                sha256="0" * 64),), "none", "none")
    with pytest.raises(D.DatasetError) as info:
        D.fetch(ds, mirror=http_mirror)
    msg = str(info.value)
    assert f"{http_mirror}/ghost/none.json (HTTP 404" in msg and f"{http_mirror}/orig.json (HTTP 404" in msg
    assert "add ghost/none.json to the mirror" in msg


def test_offline_without_mirror_says_which_url_failed_and_what_to_set() -> None:
    url = "http://127.0.0.1:9/nothing-listens-here.json"  # port 9 (discard): connection refused
    ds = D.Dataset("offline", "d", (D.DataFile("offline/x.json", (url,), sha256="0" * 64),), "none", "none")
    with pytest.raises(D.DatasetError) as info:
        D.fetch(ds)
    msg = str(info.value)
    assert msg.startswith(f"could not fetch offline/x.json of dataset 'offline': tried {url} (")
    assert "set CAPEVAL_DATA_MIRROR" in msg


def test_unknown_dataset_lists_the_known_ones() -> None:
    with pytest.raises(D.DatasetError, match=r"unknown dataset 'coco'; expected one of: coco-karpathy-test, "):
        D.get("coco")


def _zip_bytes(members: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return buf.getvalue()


def test_archive_members_are_extracted_and_resolvable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      _own_home: Path) -> None:
    data = _zip_bytes({"annotations/captions_val.json": '{"annotations": [{"image_id": 1, "id": 9, "caption": "a"}]}',
                       "annotations/other.json": "{}"})
    mirror = tmp_path / "mirror"
    (mirror / "arch").mkdir(parents=True)
    (mirror / "arch" / "ann.zip").write_bytes(data)
    ds = D.Dataset("arch", "zip", (D.DataFile("arch/ann.zip", ("http://127.0.0.1:9/ann.zip",),
                                              sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                                              extract=("annotations/captions_val.json",)),),
                   "none", "none", format="coco-annotations", primary="arch/annotations/captions_val.json")
    monkeypatch.setitem(D.REGISTRY, "arch", ds)
    folder = D.get("arch", mirror=mirror)
    assert folder == _own_home / "datasets" / "arch"
    assert (folder / "annotations" / "captions_val.json").is_file()
    assert not (folder / "annotations" / "other.json").exists()
    caps = D.load("arch", mirror=mirror)
    assert [c.caption_id for c in caps] == ["9"] and caps.name == "arch"
    assert D.get_file("arch", "captions_val.json", mirror=mirror) == folder / "annotations" / "captions_val.json"


def test_file_without_recorded_checksum_warns_and_records_one(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "nock").mkdir(parents=True)
    (mirror / "nock" / "f.txt").write_text("hello", encoding="utf-8")
    ds = D.Dataset("nock", "d", (D.DataFile("nock/f.txt", ("http://127.0.0.1:9/f.txt",)),), "none", "none")
    with pytest.warns(D.DatasetWarning, match="records no checksum.*sha256 2cf24dba"):
        path = D.fetch(ds, mirror=mirror)
    assert '"sha256": "2cf24dba' in (path.parent / ".f.txt.verified").read_text(encoding="utf-8")


def test_sha1_only_file_is_checked_with_sha1(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "s1").mkdir(parents=True)
    (mirror / "s1" / "f.txt").write_text("hello", encoding="utf-8")
    good = D.DataFile("s1/f.txt", ("http://127.0.0.1:9/f",), sha1="aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d")
    assert D.fetch(D.Dataset("s1", "d", (good,), "n", "n"), mirror=mirror).read_text() == "hello"
    bad = D.DataFile("s1/g.txt", ("http://127.0.0.1:9/g",), sha1="0" * 40)
    (mirror / "s1" / "g.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(D.DatasetError, match="expected sha1 0{40}, got aaf4c61d"):
        D.fetch(D.Dataset("s1g", "d", (bad,), "n", "n"), mirror=mirror)


def test_large_download_with_progress_bar(tmp_path: Path) -> None:
    blob = os.urandom(5 << 20)
    mirror = tmp_path / "mirror"
    (mirror / "big").mkdir(parents=True)
    (mirror / "big" / "b.bin").write_bytes(blob)
    df = D.DataFile("big/b.bin", ("http://127.0.0.1:9/b",), sha256=hashlib.sha256(blob).hexdigest(), size=len(blob))
    path = D.fetch(D.Dataset("big", "d", (df,), "n", "n"), mirror=mirror, progress=True)
    assert path.stat().st_size == len(blob)


def test_resolve_accepts_names_and_paths(shared_datasets: Path, tmp_path: Path) -> None:
    assert D.resolve("blip2", mirror=shared_datasets).name == "blip2_results_xe.json"
    f = tmp_path / "mine.json"
    f.write_text('{"1": "a"}', encoding="utf-8")
    assert D.resolve(str(f)) == f
    with pytest.raises(InputError, match="no such file, and not a dataset name"):
        D.resolve(str(tmp_path / "missing.json"))
    with pytest.raises(D.DatasetError, match="has several files"):
        D.resolve("pascal50s", mirror=shared_datasets)


def test_load_by_name_uses_the_format_hint(shared_datasets: Path) -> None:
    caps = D.load("llava-1.5-7b-briefly", mirror=shared_datasets)
    assert (caps.name, caps.format, len(caps)) == ("llava-1.5-7b-briefly", "dict", 5000)


def test_list_datasets_reports_cache_state(shared_datasets: Path) -> None:
    before = {s.name: s.cached for s in D.list_datasets()}
    assert before["blip2"] == "no"
    D.get("blip2", mirror=shared_datasets)
    after = {s.name: s for s in D.list_datasets()}
    assert after["blip2"].cached == "yes" and after["blip2"].size == 313216


def test_coco_image_urls() -> None:
    assert D.coco_image_url("COCO_val2014_000000391895.jpg", "val2014") == \
        "http://images.cocodataset.org/val2014/COCO_val2014_000000391895.jpg"
    assert D.coco_image_url(391895, "train2014") == \
        "http://images.cocodataset.org/train2014/COCO_train2014_000000391895.jpg"
    assert D.coco_image_url("139", "val2017") == "http://images.cocodataset.org/val2017/000000000139.jpg"
    with pytest.raises(D.DatasetError, match="unknown COCO split 'val2015'"):
        D.coco_image_url(1, "val2015")


def test_fetch_coco_image_from_a_mirror_and_cache(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    img_dir = mirror / "coco-images" / "val2014"
    img_dir.mkdir(parents=True)
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 100 + b"\xff\xd9"
    (img_dir / "COCO_val2014_000000391895.jpg").write_bytes(jpeg)
    path = D.fetch_coco_image("391895", "val2014", cache=tmp_path / "cache", mirror=mirror)
    assert path == tmp_path / "cache" / "coco-images" / "val2014" / "COCO_val2014_000000391895.jpg"
    assert path.read_bytes() == jpeg
    shutil.rmtree(mirror)
    assert D.fetch_coco_image(391895, "val2014", cache=tmp_path / "cache", mirror=mirror) == path


def test_fetch_coco_image_rejects_a_non_jpeg(tmp_path: Path) -> None:
    img_dir = tmp_path / "mirror" / "coco-images" / "val2017"
    img_dir.mkdir(parents=True)
    (img_dir / "000000000139.jpg").write_bytes(b"<html>not found</html>")
    with pytest.raises(D.DatasetError, match="is not a JPEG image"):
        D.fetch_coco_image(139, "val2017", cache=tmp_path / "cache", mirror=tmp_path / "mirror")
    assert not (tmp_path / "cache" / "coco-images" / "val2017" / "000000000139.jpg").exists()

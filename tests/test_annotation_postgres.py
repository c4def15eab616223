"""The campaign store on a real PostgreSQL server (a throwaway cluster in a temp folder, unix socket only).

Skipped when PostgreSQL's initdb/pg_ctl or the psycopg driver are not installed.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("psycopg")
INITDB, PG_CTL = shutil.which("initdb"), shutil.which("pg_ctl")
if not (INITDB and PG_CTL):
    pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed", allow_module_level=True)

from annotation.example import make_campaign  # noqa: E402
from annotation.service import export_campaign, open_campaign  # noqa: E402


@pytest.fixture(scope="module")
def pg_url():
    prefix: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="capeval-pg-", dir="/tmp"))
    if os.geteuid() == 0:  # the server refuses to run as root
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no 'postgres' user to run the server")
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"
    try:
        subprocess.run([*prefix, INITDB, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run([*prefix, PG_CTL, "-D", str(data), "-w", "-l", str(root / "log"), "-o",
                        f"-k {root} -p {port} -c listen_addresses='' -c fsync=off", "start"],
                       check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"could not start a throwaway PostgreSQL: {exc}")
    try:
        yield f"postgresql+psycopg://postgres@/postgres?host={root}&port={port}"
    finally:
        subprocess.run([*prefix, PG_CTL, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def test_campaign_runs_on_postgresql(tmp_path, pg_url):
    import yaml

    ex = make_campaign(tmp_path, n_images=10, rubric="thumb", annotators=("ann1", "ann2"), create_users=False)
    doc = yaml.safe_load(ex.path.read_text())
    doc["database"] = pg_url
    ex.path.write_text(yaml.safe_dump(doc))
    from annotation.service import add_user

    for u in ("ann1", "ann2"):
        add_user(ex.path, u, "long-password-1")
    add_user(ex.path, "boss", "long-password-1", admin=True)
    svc = open_campaign(ex.path).service
    try:
        assert svc.store.engine.dialect.name == "postgresql" and svc.login("ann1", "long-password-1")
        s = svc.current("ann1")
        vals = {"precision": "4", "recall": "5"}
        # the same submission sent 8 times at once: one row, no history
        with cf.ThreadPoolExecutor(8) as pool:
            statuses = sorted(r[0].status for r in pool.map(lambda _: svc.submit("ann1", s.public_id, vals), range(8)))
        assert statuses == ["saved"] + ["unchanged"] * 7
        assert svc.submit("ann1", s.public_id, {**vals, "recall": "1"})[0].status == "edited"
        assert svc.store.history_count() == 1
        for a in ("ann1", "ann2"):
            while not (cur := svc.current(a)).done:
                svc.submit(a, cur.public_id, {"precision": "3", "recall": "2", "fluency": True})
        p, n = export_campaign(ex.path, tmp_path / "r.csv")
        assert n == 20 * 2 * 4  # 10 images x 2 systems, 2 raters, 4 criteria
    finally:
        svc.close()
    # a restart on the same database resumes (nothing to rate) and keeps the items
    again = open_campaign(ex.path)
    try:
        assert not again.created and again.service.current("ann1").done
    finally:
        again.service.close()

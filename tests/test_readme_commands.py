"""Every command in README.md's bash code blocks, run as written (parsed at collection time, so the README cannot drift
from the code), in one shared workspace with the data mirror: each README section's commands in README order, two
sections at a time (the whole run is dominated by the audit and meta-evaluation examples).

How each command is checked:
- capeval commands and shell lines run as written and must exit 0; the files the README takes for granted exist as
  small stand-ins (my_captions.json, baseline.json/tuned.json = two real system outputs, a tiny coco-train.json with
  its images under ~/coco, the example campaign's images and caption files);
- a command that needs a model under `~/models/` (HOME is the workspace, so no model is there) must fail with exit 2
  and one clear line on stderr, never a traceback;
- `capeval annotate serve` is started and must listen on its port, then it is stopped; the example campaign is then
  rated by the README's annotators through the library (so `status`, `export` and `correlate` see ratings);
- `make demo`/`make test` are checked with `make -n` (tests/test_demo.py runs the demo; the suite would recurse);
- benchmark scripts are checked with `--help` (they are measured by hand, see README "Benchmarks");
- templates with a literal `...` (accelerate launch ... finetune train ...) check that their tool, config files and
  capeval subcommand exist.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
VENV_BIN = Path(sys.executable).parent
PASSWORD = "readme-test-password-1"
TIMEOUT_S = 900

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Command:
    section: str
    line: str

    @property
    def tokens(self) -> list[str]:
        return shlex.split(self.line, comments=True)

    def __str__(self) -> str:
        return " ".join(self.tokens)


def readme_commands(text: str | None = None) -> list[Command]:
    """Every command of every ```bash block, with the heading it is under (continuation lines joined)."""
    text = README.read_text(encoding="utf-8") if text is None else text
    out: list[Command] = []
    section, in_bash, pending = "", False, ""
    for line in text.splitlines():
        if not in_bash and line.startswith("#"):
            section = line.lstrip("#").strip()
        if line.strip().startswith("```"):
            in_bash = not in_bash and line.strip() in ("```bash", "```sh", "```shell", "```console")
            continue
        if not in_bash:
            continue
        s = line.rstrip()
        if s.endswith("\\"):
            pending += s[:-1] + " "
            continue
        s = (pending + s).strip()
        pending = ""
        if s.startswith("$ "):
            s = s[2:]
        if s and not s.startswith("#") and shlex.split(s, comments=True):
            out.append(Command(section, s))
    return out


def test_readme_parser() -> None:
    doc = "# A\n```bash\ncapeval score --refs x a \\\n  b   # two systems\n# a comment\n```\n```python\nx = 1\n```\n"
    assert readme_commands(doc) == [Command("A", "capeval score --refs x a    b   # two systems")]
    assert readme_commands(doc)[0].tokens == ["capeval", "score", "--refs", "x", "a", "b"]
    assert len(readme_commands()) >= 10


# ------------------------------------------------------------------------------------------ the workspace


def _jpeg(path: Path, k: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), (40 + 9 * k % 200, 120, 200 - 7 * k % 150)).save(path, quality=80)


def _make_standins(ws: Path, mirror: Path) -> None:
    """The files the README's commands take for granted, small and built from the real data where it matters."""
    from capeval.io import load, write_coco_annotations

    home = ws / "home"
    outputs = mirror / "coco-system-outputs"
    shutil.copy(outputs / "m2_transformer.json", ws / "baseline.json")
    shutil.copy(outputs / "blip2_results_xe.json", ws / "tuned.json")
    refs = load(mirror / "coco-karpathy-test" / "coco_test.json")
    ids = refs.image_ids()[:12]
    (ws / "my_captions.json").write_text(json.dumps({i: refs.by_image()[i][0].text for i in ids[:3]}), "utf-8")
    # the example campaign (`capeval annotate init`): images/, outputs/baseline.json, outputs/tuned.json, refs/
    for k, img in enumerate(ids):
        _jpeg(ws / "images" / f"COCO_val2014_{int(img):012d}.jpg", k)
    (ws / "outputs").mkdir()
    for name, src in (("baseline", "baseline.json"), ("tuned", "tuned.json")):
        sys_caps = load(ws / src).by_image()
        rows = [{"image_id": int(i), "caption": sys_caps[i][0].text} for i in ids]
        (ws / "outputs" / f"{name}.json").write_text(json.dumps(rows), "utf-8")
    (ws / "refs").mkdir()
    write_coco_annotations(refs.subset_images(ids), ws / "refs" / "captions_val2014.json")
    # fine-tuning inputs: a tiny training set with its images under ~/coco (ids outside every evaluation split)
    train_ids = [9_000_001 + k for k in range(6)]
    anns = {"images": [{"id": i, "file_name": f"COCO_train2014_{i:012d}.jpg"} for i in train_ids],
            "annotations": [{"image_id": i, "id": 100 * i + j, "caption": f"a {w} standing in a field"}
                            for i, w in zip(train_ids, ["dog", "horse", "cow", "sheep", "man", "woman"])
                            for j in range(2)]}
    (ws / "coco-train.json").write_text(json.dumps(anns), "utf-8")
    for k, i in enumerate(train_ids):
        _jpeg(home / "coco" / "train2014" / f"COCO_train2014_{i:012d}.jpg", k)
    for k, img in enumerate(ids[:3]):
        _jpeg(home / "coco" / "val2014" / f"COCO_val2014_{int(img):012d}.jpg", k)
    (ws / "test_ids.txt").write_text("\n".join(ids[:3]) + "\n", "utf-8")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, shared_datasets: Path) -> dict[str, object]:
    ws = tmp_path_factory.mktemp("readme")
    (ws / "home").mkdir()
    _make_standins(ws, shared_datasets)
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": str(ws / "home"),
           "CAPEVAL_HOME": str(ws / "capeval-home"), "CAPEVAL_DATA_MIRROR": str(shared_datasets),
           "CAPEVAL_ANNOTATE_PASSWORD": PASSWORD, "COLUMNS": "80", "GRADIO_ANALYTICS_ENABLED": "False",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("CAPEVAL_REQUIRE_DATA", None)
    return {"ws": ws, "env": env, "times": {}}


# ------------------------------------------------------------------------------------------ checks per kind


def _bash(line: str, cwd: Path, env: dict[str, str], timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _show(r: subprocess.CompletedProcess[str]) -> str:
    return f"exit {r.returncode}\n--- stdout (tail)\n{r.stdout[-3000:]}\n--- stderr (tail)\n{r.stderr[-3000:]}"


def _kind(cmd: Command) -> str:
    t = cmd.tokens
    if t[0] == "make":
        return "make"
    if "..." in t:
        return "template"
    if any(Path(x).parts[:1] == ("benchmarks",) and x.endswith(".py") for x in t):
        return "benchmark"
    if any(x.startswith("~/models/") for x in t):
        return "needs-model"
    if t[:3] == ["capeval", "annotate", "serve"]:
        return "serve"
    return "run"


def _check_make(cmd: Command, env: dict[str, str]) -> None:
    targets = [x for x in cmd.tokens[1:] if not x.startswith("-")]
    r = subprocess.run(["make", "-n", *targets], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, _show(r)


def _check_benchmark(cmd: Command, env: dict[str, str]) -> None:
    script = next(x for x in cmd.tokens if x.endswith(".py"))
    assert (REPO / script).is_file(), f"{script} does not exist"
    r = subprocess.run([sys.executable, script, "--help"], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, _show(r)


def _check_template(cmd: Command, env: dict[str, str]) -> None:
    t = cmd.tokens
    assert shutil.which(t[0], path=env["PATH"]), f"{t[0]} is not installed"
    for x in t:
        if re.search(r"\.(?:ya?ml|json)$", x) and "/" in x:
            assert (REPO / x).is_file(), f"{x} (named in the README) does not exist"
    words = [x for x in t if x.endswith("capeval") or x == "$(which capeval)"]
    assert words, "a template without a capeval command"
    start = t.index(words[0]) + 1
    sub = []
    for x in t[start:]:
        if x.startswith("-") or x == "...":
            break
        sub.append(x)
    r = subprocess.run([sys.executable, "-m", "capeval.cli", *sub, "--help"], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, _show(r)


def _check_needs_model(cmd: Command, ws: Path, env: dict[str, str]) -> None:
    r = _bash(cmd.line, ws, env)
    err = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("warning:")]
    assert r.returncode == 2, f"expected exit 2 (no model at ~/models), got:\n{_show(r)}"
    assert "Traceback" not in r.stderr + r.stdout, _show(r)
    assert len(err) == 1 and err[0].startswith("error:"), f"expected one error line:\n{_show(r)}"
    assert "models" in err[0], f"the error should name the missing model folder:\n{_show(r)}"


def _wait_listening(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.5)
    return False


def _rate_example_campaign(campaign: Path, annotators: list[str]) -> int:
    """Rate every item of the README's annotators through the annotation service (deterministic values)."""
    import hashlib

    sys.path.insert(0, str(REPO))
    from annotation.service import open_campaign

    svc = open_campaign(campaign).service
    n = 0
    try:
        for a in annotators:
            if svc.role(a) != "annotator":
                continue
            if svc.intro(a) is not None:
                svc.agree(a)
            screen = svc.current(a)
            for _ in range(100_000):  # a bound, in case the service ever repeated a screen
                if screen.done:
                    break
                h = int(hashlib.sha1(" ".join(screen.captions).encode()).hexdigest(), 16)
                values = {c.name: c.values[h % len(c.values)] for c in svc.campaign.rubric.criteria
                          if c.kind != "flag"}
                _, screen = svc.submit(a, screen.public_id, values)
                n += 1
    finally:
        svc.close()
    return n


def _check_serve(cmd: Command, ws: Path, env: dict[str, str], annotators: list[str]) -> None:
    t = cmd.tokens
    host = t[t.index("--host") + 1] if "--host" in t else "127.0.0.1"
    port = int(t[t.index("--port") + 1]) if "--port" in t else 7860
    with socket.socket() as s:
        if s.connect_ex((host, port)) == 0:
            pytest.fail(f"port {port} is already in use; the README's serve command cannot be checked here")
    log = (ws / "serve.log").open("w")
    proc = subprocess.Popen(["bash", "-c", f"exec {cmd.line}"], cwd=ws, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        listening = _wait_listening(host, port, proc, 240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
    assert listening, f"`{cmd}` never listened on {host}:{port}:\n{(ws / 'serve.log').read_text()[-3000:]}"
    campaign = next((ws / x for x in t[3:] if x.endswith((".yaml", ".yml"))), None)
    if campaign is not None and annotators:
        rated = _rate_example_campaign(campaign, annotators)
        assert rated > 0, f"no item to rate for {annotators} in {campaign}"
        from annotation.service import export_campaign

        _, rows = export_campaign(campaign, ws / ".rated-check.csv")
        assert rows > 0, f"{rated} ratings submitted through the service, but the export has none"


COMMANDS = readme_commands()


@dataclass
class Outcome:
    ok: bool
    message: str = ""
    seconds: float = 0.0


def _check(cmd: Command, ws: Path, env: dict[str, str]) -> None:
    kind = _kind(cmd)
    if kind == "make":
        _check_make(cmd, env)
    elif kind == "benchmark":
        _check_benchmark(cmd, env)
    elif kind == "template":
        _check_template(cmd, env)
    elif kind == "needs-model":
        _check_needs_model(cmd, ws, env)
    elif kind == "serve":
        users = [c.tokens[4] for c in COMMANDS if c.tokens[:3] == ["capeval", "annotate", "add-user"]
                 and len(c.tokens) > 4 and "--admin" not in c.tokens]
        _check_serve(cmd, ws, env, users)
    else:
        r = _bash(cmd.line, ws, env)
        assert r.returncode == 0, f"README ({cmd.section}): `{cmd}`\n{_show(r)}"
        assert "Traceback" not in r.stderr, _show(r)


def _run_section(cmds: list[tuple[int, Command]], ws: Path, env: dict[str, str], out: dict[int, Outcome]) -> None:
    for i, cmd in cmds:
        t0 = time.monotonic()
        try:
            _check(cmd, ws, env)
            out[i] = Outcome(True, seconds=time.monotonic() - t0)
        except BaseException as exc:  # noqa: BLE001 - recorded and reported by the command's own test
            if isinstance(exc, KeyboardInterrupt):
                raise
            out[i] = Outcome(False, f"{type(exc).__name__}: {exc}", time.monotonic() - t0)


@pytest.fixture(scope="module")
def outcomes(workspace: dict[str, object]) -> dict[int, Outcome]:
    """Run every README command once. Sections (README headings) run two at a time, each in README order, so
    commands that use an earlier one's output (the audit's findings.jsonl, the exported ratings) see it; the
    files the README takes for granted are stand-ins prepared before, shared by all sections."""
    from concurrent.futures import ThreadPoolExecutor

    ws: Path = workspace["ws"]  # type: ignore[assignment]
    env: dict[str, str] = workspace["env"]  # type: ignore[assignment]
    sections: dict[str, list[tuple[int, Command]]] = {}
    for i, cmd in enumerate(COMMANDS):
        sections.setdefault(cmd.section, []).append((i, cmd))
    out: dict[int, Outcome] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for fut in [pool.submit(_run_section, cmds, ws, env, out) for cmds in sections.values()]:
            fut.result()
    return out


@pytest.mark.parametrize("index", range(len(COMMANDS)), ids=[f"{i:02d} {c}"[:120] for i, c in enumerate(COMMANDS)])
def test_readme_command(index: int, outcomes: dict[int, Outcome]) -> None:
    o = outcomes[index]
    assert o.ok, f"README ({COMMANDS[index].section}): `{COMMANDS[index]}` ({o.seconds:.0f} s)\n{o.message}"

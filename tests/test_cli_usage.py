"""Usage errors everywhere: every subcommand (discovered from the typer app) answers a bad option, a bad integer
and a missing argument with one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer.main

from capeval.cli import app, main


def _leaf_commands() -> list[tuple[list[str], object]]:
    out: list[tuple[list[str], object]] = []

    def walk(cmd: object, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
        else:
            out.append((path, cmd))

    walk(typer.main.get_command(app), [])
    return out


LEAVES = _leaf_commands()
GROUPS = sorted({tuple(p[:-1]) for p, _ in LEAVES if len(p) > 1})


def _one_line_error(capsys: pytest.CaptureFixture[str], rc: int) -> str:
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("error:")
    return lines[0]


def test_every_command_is_discovered() -> None:
    names = {" ".join(p) for p, _ in LEAVES}
    assert {"score", "data inspect", "audit-references", "correlate"} <= names
    assert len(LEAVES) >= 10


@pytest.mark.parametrize("path", [p for p, _ in LEAVES], ids=[" ".join(p) for p, _ in LEAVES])
def test_unknown_option(path: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    line = _one_line_error(capsys, main([*path, "--no-such-option-xyz"]))
    assert "--no-such-option-xyz" in line
    assert f"capeval {' '.join(path)}" in line


@pytest.mark.parametrize("path,option", [(p, o) for p, c in LEAVES for o in
                                          [next((q.opts[0] for q in c.params  # type: ignore[attr-defined]
                                                 if str(q.bare_type()) == "int" and getattr(q, "opts", None)
                                                 and q.opts[0].startswith("--")), None)] if o],
                         ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_bad_integer(path: list[str], option: str, capsys: pytest.CaptureFixture[str]) -> None:
    line = _one_line_error(capsys, main([*path, option, "not-a-number"]))
    assert option in line


@pytest.mark.parametrize("path", [p for p, c in LEAVES if any(q.required for q in c.params)],  # type: ignore[attr-defined]
                         ids=lambda p: " ".join(p))
def test_missing_required(path: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    line = _one_line_error(capsys, main(list(path)))
    assert "Missing" in line


@pytest.mark.parametrize("group", [[]] + [list(g) for g in GROUPS], ids=lambda g: " ".join(g) or "capeval")
def test_unknown_command(group: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    line = _one_line_error(capsys, main([*group, "no-such-command"]))
    assert "no-such-command" in line


def test_console_script_usage_error_is_one_line() -> None:
    """The real entry point (a fresh process), not only main(): exit 2 and one stderr line."""
    r = subprocess.run([sys.executable, "-m", "capeval.cli", "score", "--bootstrap-typo", "1"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_help_does_not_cut_default_lists(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """At 80 columns typer's rich help ended long option names, metavars and default lists with an ellipsis."""
    monkeypatch.setenv("COLUMNS", "80")
    for path, _ in LEAVES:
        assert main([*path, "--help"]) == 0, path
        out = capsys.readouterr().out
        assert out.startswith("Usage: capeval"), (path, out[:200])
        cut = [ln for ln in out.splitlines() if "…" in ln]
        assert not cut, (path, cut)

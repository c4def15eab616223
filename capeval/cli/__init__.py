"""The `capeval` command: a thin layer over the library. Each command group lives in its own module and
registers itself here; heavy libraries are imported inside the commands so `capeval --help` stays fast."""

from __future__ import annotations

import importlib
import sys

import typer
import typer.main

from capeval.errors import CapevalError

app = typer.Typer(
    name="capeval",
    help="Image-caption evaluation: exact metrics, reference audits, meta-evaluation, annotation, fine-tuning.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# module -> each defines `register(app: typer.Typer) -> None`
_COMMAND_MODULES = (
    "capeval.cli.score",
    "capeval.cli.data",
    "capeval.cli.audit",
    "capeval.cli.meta",
    "capeval.cli.demo",
    "capeval.cli.annotate",
    "capeval.cli.finetune",
)

for _mod in _COMMAND_MODULES:
    try:
        module = importlib.import_module(_mod)
    except ModuleNotFoundError as exc:  # a command group not built yet must not break the others
        if exc.name != _mod:
            raise
        continue
    module.register(app)


def _plain_help(command: object) -> None:
    """`--help` that never cuts text: click's plain help (wraps at the terminal width) instead of typer's rich panels
    (which end long option names, metavars and default lists with "…" at 80 columns)."""
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None  # click's plain help wraps everything; typer's rich panels cut with "…"
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


def _usage_error_line(exc: Exception) -> str:
    """One line for a click/typer usage error: the command, what was wrong, where to look."""
    ctx = getattr(exc, "ctx", None)
    prog = getattr(ctx, "command_path", None) or "capeval"
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    message = " ".join(str(message).split())
    return f"error: {prog}: {message} (see '{prog} --help')"


def _click_exception_types() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """(ClickException, Abort, NoArgsIsHelpError) classes of both click and typer's vendored copy (typer >= 0.20
    raises `typer._click` exceptions, which are not click's)."""
    exc_types: list[type] = []
    abort_types: list[type] = []
    no_args: list[type] = []
    for modname in ("typer._click.exceptions", "typer.exceptions", "click.exceptions"):
        try:
            mod = importlib.import_module(modname)
        except ImportError:
            continue
        for bucket, attr in ((exc_types, "ClickException"), (abort_types, "Abort"), (no_args, "NoArgsIsHelpError")):
            cls = getattr(mod, attr, None)
            if isinstance(cls, type) and cls not in bucket:
                bucket.append(cls)
    return tuple(exc_types), tuple(abort_types), tuple(no_args)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: user errors and usage errors (unknown command or option, missing argument, bad value)
    become one line on stderr and exit code 2, never a traceback."""
    from rich.console import Console

    import warnings

    click_errors, aborts, no_args = _click_exception_types()
    command = typer.main.get_command(app)
    _plain_help(command)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning  # one line per warning, not Python's two-line source echo
            rc = command.main(args=argv, prog_name="capeval", standalone_mode=False)
    except CapevalError as exc:
        message = " ".join(str(exc).split("\n"))
        Console(stderr=True).print(f"[bold red]error:[/] {rich_escape(message)}", highlight=False, markup=True,
                                   soft_wrap=True)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted")
        return 130
    except Exception as exc:  # usage errors arrive here in non-standalone mode
        if no_args and isinstance(exc, no_args):  # `capeval data` alone: its help, as click would print it
            exc.show()  # type: ignore[attr-defined]
            return 2
        if isinstance(exc, click_errors):
            print(_usage_error_line(exc), file=sys.stderr)
            code = getattr(exc, "exit_code", 2)
            return 2 if code in (None, 1) and _is_usage(exc) else (code or 2)
        if isinstance(exc, aborts):
            return 1
        raise
    return rc if isinstance(rc, int) else 0


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: object = None, line: str | None = None) -> None:
    text = " ".join(str(message).split())
    kind = "warning" if issubclass(category, UserWarning) else category.__name__
    print(f"{kind}: {text}", file=sys.stderr)


def _is_usage(exc: Exception) -> bool:
    return any(cls.__name__ == "UsageError" for cls in type(exc).__mro__)


def rich_escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


if __name__ == "__main__":
    sys.exit(main())

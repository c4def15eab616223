"""The `capeval` command: a thin layer over the library. Each command group lives in its own module and
registers itself here; heavy libraries are imported inside the commands so `capeval --help` stays fast."""

from __future__ import annotations

import importlib
import sys

import typer

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


def main(argv: list[str] | None = None) -> int:
    """Console entry point: user errors become one clear line on stderr and exit code 2, never a traceback."""
    from rich.console import Console

    try:
        rc = app(args=argv, standalone_mode=False)
    except CapevalError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted")
        return 130
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            return 1
        raise
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())

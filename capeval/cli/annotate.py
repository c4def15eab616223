"""`capeval annotate`: create, serve and export human rating campaigns (thin layer over `annotation`)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    grp = typer.Typer(help="Blind human rating campaigns in the browser (Gradio), exported for `capeval correlate`.",
                      no_args_is_help=True)

    @grp.command("init")
    def init(campaign: Path = typer.Argument(..., help="campaign YAML to create"),
             force: bool = typer.Option(False, "--force", help="overwrite an existing file")) -> None:
        """Write a commented example campaign file."""
        from rich.console import Console

        from annotation.campaign import write_template

        p = write_template(campaign, overwrite=force)
        Console().print(f"wrote {p}; edit it, then `capeval annotate add-user {p} NAME` and "
                        f"`capeval annotate serve {p}`")

    @grp.command("add-user")
    def add_user(campaign: Path = typer.Argument(..., help="campaign YAML"),
                 username: str = typer.Argument(..., help="a name listed under annotators (or admins with --admin)"),
                 admin: bool = typer.Option(False, "--admin", help="researcher login: admin view and export"),
                 password: str = typer.Option(None, "--password", envvar="CAPEVAL_ANNOTATE_PASSWORD",
                                              help="password (prompted when omitted; stored as a salted scrypt hash)")
                 ) -> None:
        """Create a login or change its password."""
        from rich.console import Console

        from annotation.service import add_user as _add

        if password is None:
            password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
        new = _add(campaign, username, password, admin=admin)
        Console().print(f"{'created' if new else 'updated'} {'admin' if admin else 'annotator'} login {username!r}")

    @grp.command("serve")
    def serve(campaign: Path = typer.Argument(..., help="campaign YAML"),
              host: str = typer.Option("127.0.0.1", help="interface to listen on (0.0.0.0 for a team server)"),
              port: int = typer.Option(7860, help="port")) -> None:
        """Start the rating app (login required)."""
        from rich.console import Console

        from annotation.service import open_campaign

        prep = open_campaign(campaign)
        svc = prep.service
        missing = [u for u in svc.campaign.annotators + svc.campaign.admins if svc.store.user(u) is None]
        con = Console()
        con.print(f"campaign {svc.campaign.name!r}: {svc.store.item_count()} items "
                  f"({'created now' if prep.created else 'resumed'}), database {svc.store.url}")
        if missing:
            con.print(f"[yellow]no login yet for: {', '.join(missing)}[/] (capeval annotate add-user {campaign} NAME)")
        from annotation.app import launch

        launch(svc, host=host, port=port)

    @grp.command("status")
    def status(campaign: Path = typer.Argument(..., help="campaign YAML")) -> None:
        """Progress, gold accuracy and agreement, read from the database."""
        from rich.console import Console

        from annotation.service import campaign_status

        st = campaign_status(campaign)
        con = Console()
        if not st.started:
            con.print(f"campaign {st.campaign!r} not started yet (database {st.database})")
            return
        con.print(f"campaign {st.campaign!r}: {st.items} items, {st.summary.edits} edits kept in history")
        for title, df in (("per annotator", st.summary.per_annotator), ("per system", st.summary.per_system),
                          ("Krippendorff's alpha", st.summary.alpha), ("weighted kappa", st.summary.kappa)):
            if df is not None and not df.empty:
                con.print(_table(df, title))

    @grp.command("export")
    def export(campaign: Path = typer.Argument(..., help="campaign YAML"),
               out: Path = typer.Option(..., "--out", "-o", help="ratings.csv | .jsonl | .parquet"),
               include_gold: bool = typer.Option(False, "--include-gold", help="also export gold items")) -> None:
        """Write the ratings in the judgments format `capeval correlate` reads."""
        from rich.console import Console

        from annotation.service import export_campaign

        p, n = export_campaign(campaign, out, include_gold)
        Console().print(f"wrote {n} judgment rows to {p}")

    app.add_typer(grp, name="annotate")


def _table(df, title: str):
    """A pandas DataFrame as a rich table."""
    from rich.table import Table

    t = Table(title=title)
    for c in df.columns:
        t.add_column(str(c))
    for row in df.itertuples(index=False):
        t.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row])
    return t

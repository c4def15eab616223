"""`capeval annotate`: create, serve and export human rating campaigns (thin layer over `annotation`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from capeval.cli.output import FormatOpt, OutputFormat, emit

PASSWORD_ENV = "CAPEVAL_ANNOTATE_PASSWORD"


def read_password(password_stdin: bool, *, confirm: bool = True) -> str:
    """The new password: from stdin (`--password-stdin`, first line), the environment, or a hidden prompt on a
    terminal; without any of them a one-line error instead of waiting for input that cannot come."""
    from capeval.errors import InputError

    if password_stdin:
        line = sys.stdin.readline()
        pw = line.rstrip("\r\n")
        if not pw:
            raise InputError("no password on standard input (--password-stdin reads its first line)")
        return pw
    env = os.environ.get(PASSWORD_ENV)
    if env:
        return env
    if not sys.stdin.isatty():
        raise InputError(f"no terminal to ask for a password: pipe it with --password-stdin or set {PASSWORD_ENV}")
    return typer.prompt("password", hide_input=True, confirmation_prompt=confirm)


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
                 password_stdin: bool = typer.Option(False, "--password-stdin",
                                                     help="read the password from the first line of stdin"),
                 ) -> None:
        """Create a login or change its password (ends that login's open sessions).

        The password is prompted on a terminal, read with --password-stdin, or taken from CAPEVAL_ANNOTATE_PASSWORD.
        """
        from rich.console import Console

        from annotation.service import add_user as _add

        new = _add(campaign, username, read_password(password_stdin), admin=admin)
        Console().print(f"{'created' if new else 'updated'} {'admin' if admin else 'annotator'} login {username!r}"
                        + ("" if new else " (its open sessions were ended)"))

    users = typer.Typer(help="List, disable, enable or reset the logins of a campaign.", no_args_is_help=True)

    @users.command("list")
    def users_list(campaign: Path = typer.Argument(..., help="campaign YAML"), fmt: FormatOpt = OutputFormat.table
                   ) -> None:
        """Every login: role, listed in the YAML, disabled, open sessions, progress."""
        from annotation.service import list_users

        emit(list_users(campaign), fmt, title="logins")

    @users.command("disable")
    def users_disable(campaign: Path = typer.Argument(..., help="campaign YAML"),
                      username: str = typer.Argument(..., help="login to disable")) -> None:
        """Disable a login: its sessions end now and it cannot log in (its ratings are kept)."""
        from rich.console import Console

        from annotation.service import set_user_disabled

        set_user_disabled(campaign, username, True)
        Console().print(f"disabled {username!r}; its sessions were ended")

    @users.command("enable")
    def users_enable(campaign: Path = typer.Argument(..., help="campaign YAML"),
                     username: str = typer.Argument(..., help="login to enable again")) -> None:
        """Allow a disabled login again."""
        from rich.console import Console

        from annotation.service import set_user_disabled

        set_user_disabled(campaign, username, False)
        Console().print(f"enabled {username!r}")

    @users.command("reset")
    def users_reset(campaign: Path = typer.Argument(..., help="campaign YAML"),
                    username: str = typer.Argument(..., help="login whose password is replaced"),
                    password_stdin: bool = typer.Option(False, "--password-stdin",
                                                        help="read the password from the first line of stdin")
                    ) -> None:
        """Set a new password for an existing login (its open sessions end)."""
        from rich.console import Console

        from annotation.service import reset_password

        reset_password(campaign, username, read_password(password_stdin))
        Console().print(f"new password set for {username!r}; its sessions were ended")

    grp.add_typer(users, name="users")

    @grp.command("reassign")
    def reassign_cmd(campaign: Path = typer.Argument(..., help="campaign YAML"),
                     from_: str = typer.Option(None, "--from", help="annotator whose unrated items move"),
                     to: str = typer.Option(None, "--to", help="annotator who takes them (listed under annotators)"),
                     broken: bool = typer.Option(False, "--broken", help="give items with broken-image reports to "
                                                 "more annotators so they still reach raters_per_item")) -> None:
        """Add or replace annotators in a running campaign: move unrated items, top up broken-image items."""
        from rich.console import Console

        from annotation.service import reassign

        r = reassign(campaign, from_, to, broken)
        Console().print(f"moved {r.moved} unrated items; added {r.added} assignments for broken-image items",
                        markup=False)

    @grp.command("serve")
    def serve(campaign: Path = typer.Argument(..., help="campaign YAML"),
              host: str = typer.Option("127.0.0.1", help="interface to listen on (0.0.0.0 for a team server)"),
              port: int = typer.Option(7860, help="port"),
              behind_proxy: bool = typer.Option(False, "--behind-proxy",
                                                help="trust X-Forwarded-For/-Proto/-Host from a reverse proxy "
                                                     "(HTTPS termination); only when the port is not reachable "
                                                     "directly"),
              root_path: str = typer.Option("", "--root-path", help="URL prefix when the proxy serves the app under "
                                                                     "a sub-path, e.g. /rating")) -> None:
        """Start the rating app (login required)."""
        from rich.console import Console

        from annotation.server import bind_socket
        from annotation.service import open_campaign

        bind_socket(host, port).close()  # a port in use is reported before the campaign is prepared
        prep = open_campaign(campaign)
        svc = prep.service
        missing = [u for u in svc.campaign.annotators + svc.campaign.admins if svc.store.user(u) is None]
        con = Console()
        con.print(f"campaign {svc.campaign.name!r}: {svc.store.item_count()} items "
                  f"({'created now' if prep.created else 'resumed'}), database {svc.store.url}", markup=False)
        if missing:
            con.print(f"no login yet for: {', '.join(missing)} (capeval annotate add-user {campaign} NAME)",
                      markup=False, style="yellow")
        from annotation.app import launch

        try:
            launch(svc, host=host, port=port, trust_proxy=behind_proxy, root_path=root_path.rstrip("/"))
        finally:
            svc.close()

    @grp.command("status")
    def status(campaign: Path = typer.Argument(..., help="campaign YAML"), fmt: FormatOpt = OutputFormat.table
               ) -> None:
        """Progress, annotator quality, gold accuracy and agreement (with bootstrap CIs), read from the database."""
        from rich.console import Console

        from annotation.service import campaign_status

        st = campaign_status(campaign)
        con = Console(stderr=fmt in (OutputFormat.csv, OutputFormat.json))
        if not st.started:
            con.print(f"campaign {st.campaign!r} not started yet (database {st.database})", markup=False)
            return
        con.print(f"campaign {st.campaign!r}: {st.items} items, {st.summary.edits} edits kept in history",
                  markup=False)
        alpha = st.summary.alpha.drop(columns=["shown"]) if fmt in (OutputFormat.csv, OutputFormat.json) else \
            st.summary.alpha[["criterion", "level", "shown", "items_with_2plus_raters", "ratings", "raters"]].rename(
                columns={"shown": "alpha [95% CI]"})
        for title, df in (("per annotator", st.summary.per_annotator), ("per system", st.summary.per_system),
                          ("Krippendorff's alpha", alpha), ("weighted kappa", st.summary.kappa)):
            if df is not None and not df.empty:
                emit(df, fmt, title=title)

    @grp.command("export")
    def export(campaign: Path = typer.Argument(..., help="campaign YAML"),
               out: Path = typer.Option(..., "--out", "-o", help="ratings.csv | .jsonl | .parquet"),
               include_gold: bool = typer.Option(False, "--include-gold", help="also export gold items")) -> None:
        """Write the ratings in the judgments format `capeval correlate` reads."""
        from rich.console import Console

        from annotation.service import export_campaign

        p, n = export_campaign(campaign, out, include_gold)
        Console().print(f"wrote {n} judgment rows to {p}", markup=False)

    app.add_typer(grp, name="annotate")

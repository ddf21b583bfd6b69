"""The ``nube`` application: every command group put together."""

from __future__ import annotations

import typer

from nube.tools.cli import catalog, containers, jobs, login
from nube.tools.cli.catalog import GROUPS
from nube.tools.cli.core import NubeGroup
from nube.tools.cli.tokens import tokens_app
from nube.tools.cli_audit import audit_app
from nube.tools.cli_certs import certs_app
from nube.tools.cli_keys import keys_app

app = typer.Typer(
    cls=NubeGroup,
    help="nube: containers and VMs through a message broker. Exit codes: 0 done, 1 refused or "
    "failed (error: <code>: ...), 2 usage, 3 nube unreachable or failing; nube run: the "
    "container's.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

groups = {name: typer.Typer(help=text, no_args_is_help=True) for name, text in GROUPS.items()}
catalog.register(groups)
groups["containers"].command("run", context_settings={"allow_interspersed_args": False})(
    containers.run
)
groups["images"].command("build")(containers.build)

app.command("login")(login.login)
app.command("logout")(login.logout)
app.command("config")(login.config)
app.command("run", context_settings={"allow_interspersed_args": False})(containers.run)
app.command("ps")(containers.ps)
for name, group in groups.items():
    app.add_typer(group, name=name)
app.add_typer(jobs.jobs_app, name="jobs")
app.add_typer(tokens_app, name="tokens")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(certs_app, name="certs")
app.command("call")(jobs.call)
app.command("job", hidden=True)(jobs.job)

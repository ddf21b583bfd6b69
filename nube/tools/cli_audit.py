"""``nube audit verify``: recompute the audit chain (mounted by ``nube.tools.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from nube.tools.cli.config import settings_environment

if TYPE_CHECKING:  # redis and the audit log load when a command runs: nube starts faster
    from nube.audit.verifier import VerifyReport

audit_app = typer.Typer(help="The tamper-evident audit log")


@audit_app.callback()
def _group() -> None:
    """The tamper-evident audit log (a group, so ``nube audit verify`` keeps its name)."""


def _print(source: str, report: VerifyReport) -> None:
    if report.ok:
        typer.echo(f"{source}: ok, {report.checked} records, chain intact")
    else:
        typer.echo(f"{source}: {str(report.problem).upper()}: {report.message}", err=True)


@audit_app.command("verify")
def verify_cmd(
    redis_url: Annotated[
        str | None,
        typer.Option(
            help="Redis URL (default: NUBE_REDIS_URL, else .nube/local.env's); "
            "rediss:// uses the NUBE_TLS_* files"
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", "-f", help="Also verify this JSON-lines mirror (alone with --no-redis)"
        ),
    ] = None,
    use_redis: Annotated[bool, typer.Option("--redis/--no-redis")] = True,
) -> None:
    """Recompute the hash chain; name the first altered, inserted or deleted record.

    Exit status 0 when every source verifies, 1 when a record was tampered with.
    """
    import redis

    from nube import tls
    from nube.audit.log import AuditLog
    from nube.audit.verifier import verify_file
    from nube.redis_client import connect
    from nube.settings import load_settings_or_exit

    reports: list[tuple[str, VerifyReport]] = []
    if use_redis:
        if redis_url:  # that server, as given; a rediss:// one with the NUBE_TLS_* files
            settings = load_settings_or_exit(
                {**settings_environment(), "NUBE_REDIS_URL": redis_url}
            )
            client = redis.Redis.from_url(redis_url, **tls.redis_options(settings))
        else:
            client = connect(load_settings_or_exit(settings_environment()))
        reports.append(("redis", AuditLog(client).verify()))
    if file is not None:
        reports.append((str(file), verify_file(file)))
    for source, report in reports:
        _print(source, report)
    if not all(r.ok for _, r in reports):
        raise typer.Exit(1)

"""Builds what every process needs to seal and audit, and puts it on a Celery app.

Every nube process (api, agent, workers, Flower) calls :func:`load_security` once at start-up and
:func:`secure_app` on its Celery app: from then on it sends and accepts only sealed messages and
results, and refused messages are audited and fail their job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery

from nube.audit.log import AuditEvent, AuditLog, Decision
from nube.broker import job_of_task
from nube.errors import KeyringInvalid, MessageMisbound
from nube.jobs import JobStore
from nube.sealing import celery_hooks, serializer
from nube.sealing.keyring import Keyring
from nube.sealing.refusals import Refusal
from nube.sealing.replay import RedisNonceStore, ReplayGuard
from nube.sealing.sealer import Binding, Mode, Opened, Sealer
from nube.settings import Settings, SettingsError

log = logging.getLogger(__name__)

#: The task name bound into sealed job records (results stored outside Celery).
JOB_RECORD = "nube.job-record"


@dataclass(frozen=True)
class Security:
    """What every process needs to seal and audit: its sealer, replay guard and audit log."""

    sealer: Sealer
    guard: ReplayGuard
    audit: AuditLog


def load_security(settings: Settings, client: redis.Redis) -> Security:
    """Read the keyring named by the settings; a missing or bad one is a ``SettingsError``."""
    if not settings.keys:
        raise SettingsError(
            "NUBE_KEYS: required (a keyring; make one with `nube keys generate`, "
            "or point NUBE_KEYS_FILE at a key file)"
        )
    try:
        ring = Keyring.from_text(settings.keys)
    except KeyringInvalid as e:
        raise SettingsError(f"NUBE_KEYS: {e.message}") from e
    mode = Mode(settings.agent_mode)
    if mode is Mode.PASSIVE:
        log.warning("!" * 78)
        log.warning("NUBE_AGENT_MODE=passive: messages are signed but READABLE in Redis, and the")
        log.warning("agent does not check policy. For debugging only; never in production.")
        log.warning("!" * 78)
    guard = ReplayGuard(
        RedisNonceStore(client), settings.replay_window_seconds, settings.replay_skew_seconds
    )
    audit = AuditLog(
        client,
        mirror=settings.audit_file,
        retention_s=settings.audit_retention_days * 86400,
    )
    return Security(Sealer(ring, mode), guard, audit)


def secure_app(app: Celery, security: Security, jobs: JobStore | None = None) -> None:
    """Make ``app`` send and accept sealed content only; refusals are audited, jobs failed."""
    serializer.register(security.sealer, security.guard)
    celery_hooks.install(app, security.guard, on_refused=refusal_handler(security, jobs))


def refusal_handler(security: Security, jobs: JobStore | None) -> Any:
    """Audit a refused message and, when it names a job, fail that job."""

    def on_refused(refusal: Refusal) -> None:
        detail: dict[str, Any] = {"reason": refusal.reason, "channel": refusal.channel}
        if refusal.channel != "task":
            detail.update(sender=refusal.sender, suppressed=refusal.suppressed)
        security.audit.append(
            AuditEvent(
                operation=refusal.task or "-",
                outcome="refused",
                decision=Decision.REFUSED.value,
                tenant=refusal.tenant,
                job_id=refusal.job_id,
                actor="worker",
                detail=detail,
            )
        )
        job_id = job_of_task(refusal.job_id)[0] if refusal.job_id else None
        if jobs is not None and job_id and refusal.fails_job:
            jobs.fail(
                job_id,
                {
                    "code": refusal.code,
                    "message": f"message refused: {refusal.reason}",
                    "retryable": False,
                    "details": {"reason": refusal.reason},
                },
            )

    return on_refused


class RecordSealer:
    """Seals what a job record holds (its result) so Redis never holds it readable."""

    def __init__(self, sealer: Sealer) -> None:
        self.sealer = sealer

    def seal(self, job_id: str, tenant: str, data: bytes) -> str:
        return self.sealer.seal(data, Binding(JOB_RECORD, job_id, tenant)).decode()

    def open(self, job_id: str, sealed: str) -> bytes:
        opened: Opened = self.sealer.open(sealed)
        if opened.header.job != job_id or opened.header.task != JOB_RECORD:
            raise MessageMisbound(field="job", sealed=opened.header.job, actual=job_id)
        return opened.body

"""The agent's relay: the path of every request from ``nube.ingress`` to a worker queue.

``relay(request)`` validates the :class:`~nube.wire.RelayRequest`, builds a
:class:`RelayMessage`, runs the middleware chain (audit, validate, log, policy, route), then
forwards the operation with the job id as its Celery task id
(:func:`nube.publish.publish_operation`). A refused message fails its job; a message with no job
is dropped and logged. Nothing reaches a worker unless every middleware passed it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from celery import Celery
from pydantic import ValidationError

from agents.metrics import observed
from agents.middleware import Chain, Middleware, RelayMessage
from agents.policy import Counts, Policy
from nube.audit.log import AuditEvent, AuditLog, Decision
from nube.broker import redelivered_without_job_store, relay_task_id
from nube.catalog import CATALOG, Operation
from nube.errors import InvalidRequest, NubeError
from nube.jobs import Job, JobStore
from nube.placement import Placements
from nube.publish import publish_operation
from nube.sealing.sealer import Mode
from nube.sealing.setup import Security
from nube.settings import Settings
from nube.summary import summarize, target_of
from nube.wire import RelayRequest, field_error

log = logging.getLogger(__name__)


class Validate(Middleware):
    """The operation exists in the catalog and its parameters match its model."""

    def before_relay(self, message: RelayMessage) -> None:
        op = CATALOG.get(message.operation)
        try:
            params = op.params.model_validate(message.params)
        except ValidationError as e:
            err = e.errors(include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"])
            raise InvalidRequest(f"{where}: {err['msg']}", field=where) from e
        message.params = params.model_dump(mode="json", exclude_unset=True)


class Log(Middleware):
    """One log line per message and outcome, with a redacted summary only."""

    def before_relay(self, message: RelayMessage) -> None:
        log.info(
            "relay %s %s",
            message.job_id,
            summarize(message.operation, message.params, message.tenant),
        )

    def after_relay(self, message: RelayMessage, error: NubeError | None) -> None:
        outcome = f"refused: {error.code}: {error.message}" if error else f"→ {message.queue}"
        log.info("relay %s %s", message.job_id, outcome)


class Route(Middleware):
    """Chooses the worker queue: the service's shared queue, or for an operation on an existing
    VM (``op.pinned``) the queue of the node where it lives."""

    def __init__(self, placements: Placements | None = None) -> None:
        self.placements = placements

    def before_relay(self, message: RelayMessage) -> None:
        op = CATALOG.get(message.operation)
        node = self._node(op, message)
        message.queue = f"{op.queue}.{node}" if node else op.queue

    def _node(self, op: Operation, message: RelayMessage) -> str | None:
        name = message.params.get("name")
        if self.placements is None or not op.pinned or not isinstance(name, str):
            return None
        node = self.placements.node_of(op.service, message.tenant, name)
        if node is None and message.admin:  # an admin may act on another tenant's VM
            nodes = self.placements.nodes_of_any_tenant(op.service, name)
            node = nodes.pop() if len(nodes) == 1 else None
        return node


class PolicyCheck(Middleware):
    """The tenant's policy allows the request; allowed creates get hardening defaults."""

    def __init__(self, policy: Policy, counts: Counts | None = None) -> None:
        self.policy = policy
        self.counts = counts

    def before_relay(self, message: RelayMessage) -> None:
        decision = self.policy.check(
            message.operation, message.params, message.tenant, message.admin, self.counts
        )
        message.notes["policy"] = decision.rule or "allowed"
        decision.raise_if_denied()
        message.hardening = decision.hardening


class Audit(Middleware):
    """One audit record per relayed or refused request (first in the chain, so last after)."""

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit

    def after_relay(self, message: RelayMessage, error: NubeError | None) -> None:
        if error is None:
            outcome, decision, detail = "routed", Decision.ACCEPTED, {"queue": message.queue}
        else:
            denied = error.code == "policy_denied"
            outcome = "denied" if denied else "refused"
            decision = Decision.DENIED if denied else Decision.REFUSED
            detail = {
                "code": error.code,
                "rule": error.details.get("rule"),
                "reason": error.message,
            }
        self.audit.append(
            AuditEvent(
                operation=message.operation,
                outcome=outcome,
                decision=decision.value,
                tenant=message.tenant,
                job_id=message.job_id,
                token_id=message.token_id,
                target=target_of(message.operation, message.params),
                actor="agent",
                detail={k: v for k, v in detail.items() if v is not None},
            )
        )


def default_middlewares(
    security: Security,
    policy: Policy,
    counts: Counts | None = None,
    placements: Placements | None = None,
) -> list[Middleware]:
    """Audit, validate, log, policy, route; passive mode (debugging) skips the policy."""
    route = Route(placements)
    if security.sealer.mode is Mode.PASSIVE:
        return observed([Audit(security.audit), Validate(), Log(), route])
    return observed([Audit(security.audit), Validate(), Log(), PolicyCheck(policy, counts), route])


class Relay:
    """Relays requests from the ingress queue to the worker queues."""

    def __init__(
        self,
        app: Celery,
        jobs: JobStore,
        middlewares: Sequence[Middleware],
        settings: Settings,
    ) -> None:
        self.app = app
        self.jobs = jobs
        self.chain = Chain(middlewares)
        self.settings = settings

    def relay(self, raw: Any) -> None:
        """Check, route and forward one relay request; fail its job when it is refused."""
        request = self._request(raw)
        if request is None:
            return
        message = RelayMessage.of(request)
        with redelivered_without_job_store(relay_task_id(message.job_id), self.settings):
            job = self.jobs.find(message.job_id)
        if job is None or job.status.terminal:
            log.info(
                "dropping %s: job %s",
                message.job_id,
                "unknown" if job is None else job.status.value,
            )
            return
        try:
            with redelivered_without_job_store(relay_task_id(message.job_id), self.settings):
                self.chain.before(message)  # the policy's counts and the placements are in Redis
                self._record_relayed(message, job)
            self._publish(message)
        except NubeError as e:
            self.jobs.fail(message.job_id, e.to_dict(), base=job)
            self.chain.after(message, e)
            return
        self.chain.after(message, None)

    def _request(self, raw: Any) -> RelayRequest | None:
        try:
            return RelayRequest.model_validate(raw)
        except ValidationError as e:
            job_id = raw.get("job_id") if isinstance(raw, dict) else None
            why = field_error(e)  # the field's name, never its value: a value may be a parameter
            log.warning("dropping a malformed relay request (job %s): %s", job_id, why)
            if job_id:
                self.jobs.fail(str(job_id), InvalidRequest(f"malformed request: {why}").to_dict())
            return None

    def _record_relayed(self, message: RelayMessage, job: Job) -> None:
        assert message.queue is not None
        self.jobs.update(
            message.job_id, "relayed", f"to queue {message.queue}", base=job, queue=message.queue
        )

    def _publish(self, message: RelayMessage) -> None:
        assert message.queue is not None
        publish_operation(
            self.app,
            message.job_id,
            message.operation,
            message.queue,
            message.params,
            message.job_meta(),
        )

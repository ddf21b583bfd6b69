"""An operation's publish that RabbitMQ refuses is tried again (``nube.publish``), as when a
quorum queue's leader dies and publishes in flight are nacked. Made here on demand: the queue
exists with other arguments (a classic queue), so the publish's declaration is refused
(``PRECONDITION_FAILED``) until that queue is deleted a moment later; then the operation lands
once, in the quorum queue it declares, and the log says what happened meanwhile."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest
from kombu import Connection, Queue

from nube.broker import make_celery
from nube.publish import OPERATION_PUBLISH_PAUSES, publish_operation
from nube.settings import load_settings
from nube.tools.devstack import Stack
from nube.wire import JobMeta
from tests.brokers import RabbitNode

QUEUE = "refusing"


def test_a_refused_operation_publish_lands_once_the_queue_takes_it(
    rabbitmq_node: RabbitNode, redis_only: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    url = rabbitmq_node.take_vhost()
    settings = load_settings(
        {
            "NUBE_BROKER_URL": url,
            "NUBE_REDIS_URL": redis_only.redis_url,
            "NUBE_REDIS_PASSWORD": redis_only.redis_password,
        }
    )
    app = make_celery(settings, "publish-retry")
    with Connection(url) as conn:
        Queue(QUEUE, durable=True, channel=conn.default_channel).declare()  # a classic queue

    def delete_it() -> None:
        with Connection(url) as conn:
            conn.default_channel.queue_delete(QUEUE)

    lifted = threading.Timer(1.2, delete_it)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="nube.publish"):
        lifted.start()
        publish_operation(app, str(uuid.uuid4()), "vms.list", QUEUE, {}, JobMeta(tenant="t"))
    took = time.monotonic() - started
    lifted.join()

    retried = [r.getMessage() for r in caplog.records if "publishing job" in r.getMessage()]
    assert retried, "the first publish was not refused"
    assert "PRECONDITION_FAILED" in retried[0] or "inequivalent" in retried[0], retried
    assert len(retried) <= len(OPERATION_PUBLISH_PAUSES), retried
    assert 1.2 < took < sum(OPERATION_PUBLISH_PAUSES) + 5, took
    deadline = time.monotonic() + 15  # a quorum queue's counts are published with a delay
    while True:
        queued = rabbitmq_node.queues(url)[QUEUE]
        if queued["messages_ready"] != "0" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert queued["type"] == "quorum" and queued["messages_ready"] == "1", queued

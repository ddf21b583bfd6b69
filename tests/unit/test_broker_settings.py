"""NUBE_BROKER_URL: unset, the messages go through Redis; amqp:// or amqps://, through RabbitMQ
with quorum queues, topic exchanges and publisher confirms; results stay on Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from nube.broker import make_celery
from nube.settings import SettingsError, load_settings

REDIS = {"NUBE_REDIS_URL": "redis://h:1/0", "NUBE_REDIS_PASSWORD": "pw"}


def test_unset_the_broker_is_redis() -> None:
    s = load_settings(REDIS)
    assert not s.amqp and s.broker == s.redis_dsn == "redis://:pw@h:1/0"
    app = make_celery(s, "t")
    assert app.conf.broker_url == s.redis_dsn
    assert app.conf.broker_transport_options == {"visibility_timeout": 3600}
    assert app.conf.task_default_queue_type == "classic"


def test_amqp_broker_with_quorum_queues_and_confirms() -> None:
    s = load_settings(REDIS | {"NUBE_BROKER_URL": "amqp://u:p@rabbit:5672/nube"})
    assert s.amqp and s.broker == "amqp://u:p@rabbit:5672/nube"
    app = make_celery(s, "t")
    assert app.conf.broker_url == "amqp://u:p@rabbit:5672/nube"
    assert app.conf.result_backend == "redis://:pw@h:1/0"
    assert app.conf.broker_transport_options == {"confirm_publish": True}
    assert app.conf.task_default_queue_type == "quorum"
    assert app.conf.task_create_missing_queue_type == "quorum"
    assert app.conf.task_acks_late and app.conf.worker_prefetch_multiplier == 1
    queue = app.amqp.queues["vms.node-1"]  # a per-node queue, made on first use
    assert queue.queue_arguments == {"x-queue-type": "quorum"}
    assert queue.exchange.type == "topic"
    assert "u:p@" not in repr(s)  # the URL may hold a password


def test_broker_url_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "url"
    secret.write_text("amqps://u:p@rabbit:5671/nube\n")
    s = load_settings(REDIS | {"NUBE_BROKER_URL_FILE": str(secret)})
    assert s.broker == "amqps://u:p@rabbit:5671/nube"


@pytest.mark.parametrize("url", ["redis://h:1/0", "http://rabbit", "rabbit:5672"])
def test_a_broker_url_not_amqp_names_the_variable(url: str) -> None:
    with pytest.raises(SettingsError, match="NUBE_BROKER_URL"):
        load_settings(REDIS | {"NUBE_BROKER_URL": url})

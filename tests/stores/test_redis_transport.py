"""nube's kombu Redis transport: one client per channel, and messages still flow."""

from __future__ import annotations

from kombu import Connection, Exchange, Queue
from kombu.message import Message

from nube.broker import make_celery
from nube.redis_transport import TRANSPORT, Transport
from nube.settings import load_settings
from nube.tools.devstack import Stack


def test_the_apps_use_it_for_redis_urls(redis_only: Stack) -> None:
    app = make_celery(load_settings(redis_only.env()), "t")
    with app.connection_for_write() as conn:
        assert isinstance(conn.transport, Transport)


def test_one_client_per_channel_and_messages_round_trip(redis_only: Stack) -> None:
    with Connection(redis_only.broker_url, transport=TRANSPORT) as conn:
        channel = conn.channel()
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second  # kombu's own Channel makes a new client each time
        queue = Queue("nube-transport-test", Exchange("nube-transport-test"), "k")
        with conn.Producer() as producer:
            producer.publish({"n": 1}, exchange=queue.exchange, routing_key="k", declare=[queue])
        received: list[object] = []

        def on_message(body: object, message: Message) -> None:
            received.append(body)
            message.ack()

        with conn.Consumer(queue, callbacks=[on_message]):
            conn.drain_events(timeout=5)
        assert received == [{"n": 1}]
        assert channel.client.llen("nube-transport-test") == 0

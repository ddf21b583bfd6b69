"""The kombu serializers, and a real Celery worker (in a thread) on a private Redis.

Checks the properties the issue asks of the message path at the serializer level: no marker
secret anywhere in Redis, redacted argsrepr/kwargsrepr, plaintext/pickle/tampered/foreign-key/
replayed messages refused (never run) and reported with their job id.
"""

from __future__ import annotations

import base64
import contextlib
import json
import pickle
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker
from kombu.exceptions import ContentDisallowed, DecodeError, EncodeError
from kombu.serialization import dumps, loads
from kombu.utils.json import dumps as json_dumps

from nube.errors import MessageMisbound, MessageReplayed
from nube.sealing import celery_hooks
from nube.sealing.events import redact_event
from nube.sealing.keyring import Keyring, generate_key
from nube.sealing.refusals import Refusal
from nube.sealing.replay import MemoryNonceStore, RedisNonceStore, ReplayGuard
from nube.sealing.sealer import Binding, Sealer
from nube.sealing.serializer import (
    BINDING_KEY,
    RESULT_CONTENT_TYPE,
    RESULT_SERIALIZER,
    TASK_CONTENT_TYPE,
    TASK_SERIALIZER,
    cause_of,
    envelope_error_of,
    register,
    registered_codec,
    unregister,
)
from tests.redis_replies import one

MARKER = "nube-marker-5ec7e7"
ACCEPT = [TASK_CONTENT_TYPE]


@pytest.fixture
def codec(ring: Keyring) -> Iterator[Any]:
    yield register(Sealer(ring), ReplayGuard(MemoryNonceStore()))
    unregister()


def _body(job: str = "j1", task: str = "containers.run") -> list[Any]:
    embed = {"callbacks": None, BINDING_KEY: {"task": task, "job": job, "tenant": "acme"}}
    return [[], {"params": {"env": {"TOKEN": MARKER}}}, embed]


def test_kombu_round_trip_and_seal_info(codec: Any) -> None:
    ctype, enc, data = dumps(_body(), serializer=TASK_SERIALIZER)
    assert ctype == TASK_CONTENT_TYPE and MARKER.encode() not in data
    _args, kwargs, embed = loads(data, ctype, enc, accept=ACCEPT)
    assert kwargs["params"]["env"]["TOKEN"] == MARKER
    assert set(embed[BINDING_KEY]["seal"]) == {"nonce", "kid", "ts"}


def test_body_without_binding_is_not_encoded(codec: Any) -> None:
    with pytest.raises(EncodeError):
        dumps([[], {}, {}], serializer=TASK_SERIALIZER)
    with pytest.raises(EncodeError):
        dumps({"not": "a task body"}, serializer=TASK_SERIALIZER)


@pytest.mark.parametrize(
    "ctype, data",
    [
        ("application/json", json.dumps(_body()).encode()),
        ("application/x-python-serialize", pickle.dumps(_body())),
    ],
)
def test_plaintext_and_pickle_are_disallowed(codec: Any, ctype: str, data: bytes) -> None:
    with pytest.raises(ContentDisallowed):
        loads(data, ctype, "utf-8", accept=ACCEPT)


def test_sealed_binding_must_match_header(codec: Any, ring: Keyring) -> None:
    # a sealer that lies: header says job j2, body says j1 (only a key holder can do this)
    body = json_dumps(_body("j1")).encode()
    lying = Sealer(ring).seal(body, Binding("containers.run", "j2", "acme"))
    with pytest.raises(DecodeError) as e:
        loads(lying, TASK_CONTENT_TYPE, "utf-8", accept=ACCEPT)
    assert isinstance(envelope_error_of(e.value), MessageMisbound)


def test_replayed_after_completion_is_refused(codec: Any) -> None:
    _, _, data = dumps(_body(), serializer=TASK_SERIALIZER)
    body = loads(data, TASK_CONTENT_TYPE, "utf-8", accept=ACCEPT)
    loads(data, TASK_CONTENT_TYPE, "utf-8", accept=ACCEPT)  # redelivery: fine
    codec.guard.complete(body[2][BINDING_KEY]["seal"]["nonce"])
    with pytest.raises(DecodeError) as e:
        loads(data, TASK_CONTENT_TYPE, "utf-8", accept=ACCEPT)
    assert isinstance(envelope_error_of(e.value), MessageReplayed)


def test_cause_of_finds_an_error_inside_kombus_decode_error() -> None:
    """kombu wraps a decoder's error as DecodeError's first argument, without chaining."""
    lost = redis.exceptions.ConnectionError("lost")
    try:
        try:
            raise lost
        except redis.exceptions.ConnectionError as e:
            raise RuntimeError("decoding failed") from e
    except RuntimeError as wrapped:
        decode_error = DecodeError(wrapped)
    assert cause_of(decode_error, (redis.exceptions.ConnectionError,)) is lost
    assert cause_of(decode_error, MessageReplayed) is None
    assert cause_of(None, ValueError) is None


def test_results_are_sealed_and_bound_to_their_task_id(codec: Any) -> None:
    meta = {"status": "SUCCESS", "result": {"out": MARKER}, "task_id": "j1"}
    ctype, enc, data = dumps(meta, serializer=RESULT_SERIALIZER)
    assert MARKER.encode() not in data
    assert loads(data, ctype, enc, accept=[RESULT_CONTENT_TYPE]) == meta
    assert json.loads(data)["job"] == "j1"


# --- a real Celery worker ----------------------------------------------------------------------


def _dump_everything(r: redis.Redis) -> bytes:
    """Every key's DUMP plus, for strings/lists/hashes/zsets, its readable values."""
    out = []
    for key in r.scan_iter(count=1000):
        out.append(key)
        out.append(r.dump(key) or b"")
        kind = r.type(key)
        if kind == b"list":
            out += r.lrange(key, 0, -1)
        elif kind == b"string":
            out.append(r.get(key) or b"")
        elif kind == b"hash":
            out += [v for kv in r.hgetall(key).items() for v in kv]
    blob = b"\n".join(out)
    decoded = [_b64_guess(part) for part in out]
    return blob + b"\n".join(decoded)


def _b64_guess(raw: bytes) -> bytes:
    """kombu's Redis transport base64-encodes bodies: decode whatever looks like a body."""
    try:
        msg = json.loads(raw)
        return base64.b64decode(msg["body"]) if isinstance(msg, dict) and "body" in msg else b""
    except (ValueError, KeyError, TypeError):
        return b""


@pytest.fixture
def celery_app(redis_url: str, ring: Keyring, r: redis.Redis) -> Iterator[tuple[Celery, list]]:
    guard = ReplayGuard(RedisNonceStore(r), window_s=600)
    register(Sealer(ring), guard)
    app = Celery("t", broker=redis_url, backend=redis_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        worker_hijack_root_logger=False,
    )
    refused: list[Refusal] = []
    ran: list[str] = []
    celery_hooks.install(app, guard, on_refused=refused.append)

    @app.task(name="containers.run", bind=True, shared=False)
    def run(self: Any, params: dict[str, Any]) -> dict[str, Any]:
        binding = celery_hooks.verify_request(self)
        ran.append(self.request.id)
        return {"tenant": binding.tenant, "n_env": len(params["env"])}

    app.nube_ran = ran
    yield app, refused
    celery_hooks.uninstall(app)
    unregister()


def _publish(app: Celery, job: str) -> Any:
    return app.send_task(
        "containers.run",
        kwargs={"params": {"image": "busybox", "env": {"TOKEN": MARKER}}},
        task_id=job,
        headers={"nube": {"tenant": "acme", "target": "busybox"}},
    )


def _queued(r: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(m) for m in r.lrange("celery", 0, -1)]


def test_worker_runs_sealed_jobs_and_redis_never_holds_the_marker(
    celery_app: tuple[Celery, list], r: redis.Redis
) -> None:
    app, refused = celery_app
    results = [_publish(app, f"job-{i}") for i in range(3)]
    queued = _queued(r)
    assert len(queued) == 3 and MARKER.encode() not in _dump_everything(r)
    headers = queued[0]["headers"]
    assert headers["argsrepr"] == "()"
    assert json.loads(headers["kwargsrepr"]) == {
        "operation": "containers.run",
        "target": "busybox",
        "tenant": "acme",
    }
    assert queued[0]["content-type"] == TASK_CONTENT_TYPE
    with start_worker(app, perform_ping_check=False, loglevel="WARNING"):
        values = [res.get(timeout=20) for res in results]
    assert values == [{"tenant": "acme", "n_env": 1}] * 3
    assert MARKER.encode() not in _dump_everything(r)
    assert not refused


def _inject(r: redis.Redis, message: dict[str, Any]) -> None:
    r.lpush("celery", json.dumps(message))


def test_bad_messages_are_refused_never_run_and_reported(
    celery_app: tuple[Celery, list], r: redis.Redis
) -> None:
    app, refused = celery_app
    _publish(app, "good")
    template = _queued(r)[0]
    r.delete("celery")

    def variant(job: str, body: bytes, ctype: str = TASK_CONTENT_TYPE) -> dict[str, Any]:
        msg = json.loads(json.dumps(template))
        msg["headers"]["id"] = job
        msg["body"] = base64.b64encode(body).decode()
        msg["content-type"] = ctype
        msg["properties"]["delivery_tag"] = job
        return msg

    sealed = base64.b64decode(template["body"])
    flipped = bytearray(sealed)
    flipped[sealed.index(b'"ct":"') + 10] ^= 0x01
    foreign = Sealer(Keyring([generate_key("other")])).seal(b"[[],{},{}]", _binding("j-foreign"))
    plain = json.dumps(_body("j-plain")).encode()
    for msg in (
        variant("j-tampered", bytes(flipped)),
        variant("j-foreign", foreign),
        variant("j-plain", plain, "application/json"),
        variant("j-pickle", pickle.dumps(_body("j-pickle")), "application/x-python-serialize"),
    ):
        _inject(r, msg)
    with start_worker(app, perform_ping_check=False, loglevel="CRITICAL"):
        _wait_for(lambda: len(refused) >= 4)
    by_job = {x.job_id: x.reason for x in refused}
    assert by_job == {
        "j-tampered": "tampered",
        "j-foreign": "unknown_key",
        "j-plain": "not_sealed",
        "j-pickle": "not_sealed",
    }
    assert app.nube_ran == []


def test_replay_of_a_finished_job_is_refused(
    celery_app: tuple[Celery, list], r: redis.Redis
) -> None:
    app, refused = celery_app
    res = _publish(app, "job-once")
    captured = r.lrange("celery", 0, -1)[0]
    with start_worker(app, perform_ping_check=False, loglevel="CRITICAL"):
        res.get(timeout=20)
        r.lpush("celery", captured)
        _wait_for(lambda: bool(refused))
    assert [(x.job_id, x.reason) for x in refused] == [("job-once", "replayed")]
    assert app.nube_ran == ["job-once"]


def test_copies_under_another_id_or_name_are_refused_and_leave_the_nonce(
    celery_app: tuple[Celery, list], r: redis.Redis
) -> None:
    app, refused = celery_app
    original = _publish(app, "job-a")
    raw = one(r.lpop("celery"), bytes)
    copies = []
    for field, value in (("id", "job-b"), ("task", "containers.remove"), ("id", "job-c")):
        msg = json.loads(raw)
        msg["headers"][field] = value
        msg["properties"]["delivery_tag"] = f"copy-{value}"
        copies.append(msg)
    for msg in copies:
        _inject(r, msg)
    nonces_before = sorted(r.scan_iter("nube:nonce:*"))
    with start_worker(app, perform_ping_check=False, loglevel="CRITICAL"):
        _wait_for(lambda: len(refused) >= 3)
        assert sorted(r.scan_iter("nube:nonce:*")) == nonces_before == []  # never decoded
        r.rpush("celery", raw)  # the original, after its copies: it still runs
        assert original.get(timeout=20) == {"tenant": "acme", "n_env": 1}
    assert sorted((x.job_id, x.reason) for x in refused) == [
        ("job-a", "misbound_task_name"),
        ("job-b", "misbound_task_id"),
        ("job-c", "misbound_task_id"),
    ]
    assert not any(x.fails_job for x in refused)
    assert app.nube_ran == ["job-a"]
    assert app.AsyncResult("job-b").state == "PENDING"  # no result: the copy never ran


def _binding(job: str) -> Binding:
    return Binding("containers.run", job, "acme")


def _wait_for(cond: Any, timeout: float = 15.0) -> None:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


# --- the control channel and events ------------------------------------------------------------


def _plain_app(redis_url: str) -> Celery:
    """A Celery app that speaks plain JSON (what a tool outside nube would send)."""
    return Celery("plain", broker=redis_url, set_as_current=False)


def _published(r: redis.Redis, run: Any) -> list[bytes]:
    """Everything published on any pub/sub channel of ``r`` while ``run()`` runs."""
    pubsub = r.pubsub()
    pubsub.psubscribe("*")
    pubsub.get_message(timeout=1)
    run()
    seen: list[bytes] = []
    while (m := pubsub.get_message(timeout=0.5)) is not None:
        seen.append(m["data"] if isinstance(m["data"], bytes) else str(m["data"]).encode())
    pubsub.close()
    return seen


def test_control_channel_is_sealed_and_answers(
    celery_app: tuple[Celery, list], r: redis.Redis
) -> None:
    app, refused = celery_app
    with start_worker(app, perform_ping_check=False, loglevel="CRITICAL"):
        replies: dict[str, Any] = {}

        def ask() -> None:
            replies.update(app.control.inspect(timeout=3).registered() or {})

        published = _published(r, ask)
    assert any("containers.run" in tasks for tasks in replies.values()), replies
    assert not refused
    assert not any(b"registered" in p for p in published)  # the command itself is sealed too


def test_plaintext_shutdown_broadcast_is_refused_once_per_sender(
    celery_app: tuple[Celery, list], r: redis.Redis, redis_url: str
) -> None:
    app, refused = celery_app
    plain = _plain_app(redis_url)
    with start_worker(app, perform_ping_check=False, loglevel="CRITICAL"):
        # the worker listens on its control channel (a broadcast before that is lost: pub/sub)
        _wait_for(lambda: app.control.inspect(timeout=0.5).ping())
        for _ in range(5):
            plain.control.broadcast("shutdown")
        _wait_for(lambda: len(refused) >= 1)
        time.sleep(1)  # the other four arrive and are throttled
        assert app.control.inspect(timeout=3).ping()  # still alive, answering sealed pings
    control = [x for x in refused if x.channel == "control"]
    assert [(x.reason, x.job_id) for x in control] == [("not_sealed", None)]


def test_replayed_control_message_is_refused(celery_app: tuple[Celery, list]) -> None:
    codec = registered_codec()
    assert codec is not None
    sealed = codec.encode_control({"method": "ping", "arguments": {}})
    assert codec.decode_control(sealed)["method"] == "ping"
    with pytest.raises(MessageReplayed):
        codec.decode_control(sealed)


def test_events_are_sealed_and_redacted(celery_app: tuple[Celery, list], r: redis.Redis) -> None:
    app, _ = celery_app
    app.conf.update(worker_send_task_events=True, task_send_sent_event=True)
    seen: list[dict[str, Any]] = []

    def listen() -> None:
        with app.connection_for_read() as conn:
            receiver = app.events.Receiver(conn, handlers={"*": seen.append})
            with contextlib.suppress(TimeoutError):
                for _ in receiver.consume(limit=None, timeout=3, wakeup=False):
                    if any(e["type"] == "task-succeeded" for e in seen):
                        return

    def run_jobs() -> None:
        listener = threading.Thread(target=listen)
        listener.start()
        time.sleep(0.5)
        with start_worker(app, perform_ping_check=False, loglevel="CRITICAL"):
            _publish(app, "job-ev").get(timeout=20)
            listener.join(timeout=20)

    published = _published(r, run_jobs)
    assert published and not any(MARKER.encode() in p for p in published)
    assert not any(b"task-sent" in p for p in published)  # even event types are sealed
    sent = [e for e in seen if e["type"] == "task-sent"]
    assert sent and json.loads(sent[0]["kwargs"])["operation"] == "containers.run"


def test_redact_event_keeps_only_summaries_and_error_classes() -> None:
    event = {
        "type": "task-failed",
        "args": f"('{MARKER}',)",
        "kwargs": f"{{'env': '{MARKER}'}}",
        "exception": f"NotFound(\"image '{MARKER}' was not found\")",
        "traceback": f"Traceback ... {MARKER}",
        "result": MARKER,
    }
    redacted = redact_event(event)
    assert MARKER not in json.dumps(redacted)
    assert redacted["exception"] == "NotFound"
    summary = json.dumps({"operation": "containers.run", "target": None, "tenant": "a"})
    assert redact_event({"kwargs": summary})["kwargs"] == summary

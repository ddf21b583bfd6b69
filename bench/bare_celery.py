"""A bare Celery app with one no-op task: the baseline the message-path benchmark compares to."""

from __future__ import annotations

import os

from celery import Celery

app = Celery("bare", broker=os.environ["BARE_BROKER"], backend=os.environ["BARE_BROKER"])
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_prefetch_multiplier=1,
    task_acks_late=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bare.noop")
def noop(params: dict) -> dict:
    return {"ok": True}

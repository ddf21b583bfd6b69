"""The control channel, sealed like tasks: Celery's broadcasts and their replies.

Flower's inspect and control commands (``registered``, ``enable_events``, ``shutdown`` ...) are
Celery broadcasts on the ``celery.pidbox`` fanout exchange, and each node replies on the
sender's reply queue. A nube app seals both with the ``nube-sealed-control`` serializer and
accepts nothing else there, so a plaintext ``shutdown`` written into Redis is refused: reported
once per sender and reason per interval, logged as one line, never run.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu.pidbox import Node

from nube.sealing.refusals import decode_reason, describe_refusal
from nube.sealing.serializer import CONTROL_CONTENT_TYPE, CONTROL_SERIALIZER


class RefusingNode(Node):
    """kombu's pidbox node; a message it cannot decode is reported, not logged as a traceback."""

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        reporter = getattr(self.mailbox, "nube_refusals", None)
        if reporter is not None:
            reporter.report(describe_refusal(message, exc, decode_reason(exc), channel="control"))


def seal_control_channel(app: Celery, reporter: Any) -> None:
    """Make ``app``'s broadcasts and replies sealed, and refuse any other control content."""
    mailbox = app.control.mailbox
    mailbox.serializer = CONTROL_SERIALIZER
    mailbox.accept = [CONTROL_CONTENT_TYPE]
    mailbox.node_cls = RefusingNode
    mailbox.nube_refusals = reporter

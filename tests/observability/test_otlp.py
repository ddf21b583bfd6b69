"""``OTEL_EXPORTER_OTLP_ENDPOINT``: a process sends its spans with OTLP over HTTP (a receiver
here decodes the protobuf the SDK's exporter posts to ``/v1/traces``)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from nube.tools.devstack import ROOT

SCRIPT = """
from nube.observability import tracing
assert tracing.setup("agent")
parent = tracing.context_of("00-" + "ab" * 16 + "-" + "cd" * 8 + "-01")
tracing.start_span("relay containers.list", parent).end()
tracing.shutdown()  # flushes the batch
"""


class Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        """Quiet."""


@pytest.fixture
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    Receiver.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_spans_are_exported_with_otlp_when_an_endpoint_is_set(receiver: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "OTEL_EXPORTER_OTLP_ENDPOINT": receiver},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    [(path, body)] = Receiver.received
    assert path == "/v1/traces"
    request = ExportTraceServiceRequest.FromString(body)
    [resource_spans] = request.resource_spans
    service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert service["service.name"] == "nube-agent"
    [span] = resource_spans.scope_spans[0].spans
    assert span.name == "relay containers.list"
    assert span.trace_id.hex() == "ab" * 16 and span.parent_span_id.hex() == "cd" * 8

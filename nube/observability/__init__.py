"""What nube shows of itself: JSON logs with the job's context, Prometheus metrics, traces.

- :mod:`.context` — the fields every log line carries (request, job, trace, tenant, operation);
- :mod:`.logs` — one log set-up for every process (JSON lines or plain text);
- :mod:`.metrics` — every metric nube exports, and the small HTTP server of an agent or worker;
- :mod:`.cluster` — what is read from Redis when Prometheus scrapes (queues, consumers, audit);
- :mod:`.tracing` — OpenTelemetry: the W3C ``traceparent`` carried inside sealed messages;
- :mod:`.tasks` — Celery signals that time, count and trace every task of the agent and workers.

``docs/operations.md`` ("Observability") lists every metric and setting.
"""

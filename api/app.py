"""The Flask app factory: ``create_app()`` builds everything; nothing global at import."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from api import audit, console, docs, health, jobs, metrics, operations, problems, tokens
from api.services import Services
from nube.bootstrap import bootstrap
from nube.job_waiters import JobWaiters
from nube.registry import Registry
from nube.settings import Settings, exit_on_bad_setting, load_settings_or_exit
from nube.tokens import TokenStore


def create_app(
    settings: Settings | None = None, test_config: dict[str, Any] | None = None
) -> Flask:
    """The nube API. ``settings`` default to the ``NUBE_*`` environment."""
    settings = settings or load_settings_or_exit()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    app = Flask(__name__)
    # Every body's limit; an operation with a binary payload raises its own (api.body).
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes, JSON_SORT_KEYS=False)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if test_config:
        app.config.update(test_config)
    with exit_on_bad_setting():
        process = bootstrap(settings, "api")
    process.jobs.waiters = JobWaiters(process.redis)  # one subscriber for every waiting request
    app.extensions["nube"] = svc = Services(
        settings=settings,
        redis=process.redis,
        jobs=process.jobs,
        tokens=TokenStore(process.redis),
        registry=Registry(process.redis),
        celery=process.celery,
        audit=process.security.audit,
    )
    problems.register(app)
    metrics.register(app, svc)  # request ids, spans, metrics; GET /metrics
    register_routes(app)
    app.register_blueprint(console.bp)  # the web console (/console): a page, not part of the API
    return app


def register_routes(app: Flask) -> None:
    """Every route of the API: the fixed blueprints, then one route per catalog operation."""
    for blueprint in (health.bp, jobs.bp, tokens.bp, audit.bp, docs.bp):
        app.register_blueprint(blueprint)
    operations.register(app)

"""The Flask app factory: ``create_app()`` builds everything; nothing global at import."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from api import audit, docs, health, jobs, operations, problems, tokens
from api.services import Services
from nube.broker import make_celery
from nube.jobs import JobStore
from nube.redis_client import connect
from nube.registry import Registry
from nube.sealing.setup import RecordSealer, load_security, secure_app
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
    client = connect(settings)
    with exit_on_bad_setting():
        security = load_security(settings, client)
    celery = make_celery(settings, "nube-api")
    secure_app(celery, security)
    app.extensions["nube"] = Services(
        settings=settings,
        redis=client,
        jobs=JobStore(client, RecordSealer(security.sealer)),
        tokens=TokenStore(client),
        registry=Registry(client),
        celery=celery,
        audit=security.audit,
    )
    problems.register(app)
    register_routes(app)
    return app


def register_routes(app: Flask) -> None:
    """Every route of the API: the fixed blueprints, then one route per catalog operation."""
    for blueprint in (health.bp, jobs.bp, tokens.bp, audit.bp, docs.bp):
        app.register_blueprint(blueprint)
    operations.register(app)

"""What the API's views use, built once by the app factory (no globals at import)."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery
from flask import current_app

from nube.audit.log import AuditLog
from nube.jobs import JobStore
from nube.registry import Registry
from nube.settings import Settings
from nube.tokens import TokenStore


@dataclass(frozen=True)
class Services:
    settings: Settings
    redis: redis.Redis
    jobs: JobStore
    tokens: TokenStore
    registry: Registry
    celery: Celery
    audit: AuditLog


def services() -> Services:
    """The services of the current Flask app."""
    svc: Services = current_app.extensions["nube"]
    return svc

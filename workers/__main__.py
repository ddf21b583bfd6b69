"""``python -m workers containers|vms [celery worker options]``: run a worker."""

from __future__ import annotations

import logging
import sys

from nube.broker import run_worker
from nube.settings import exit_on_bad_setting, load_settings_or_exit
from workers.app import create_worker_app, queues_for


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ("containers", "vms"):
        print("usage: python -m workers containers|vms [celery worker options]", file=sys.stderr)
        raise SystemExit(2)
    service, extra = argv[0], argv[1:]
    settings = load_settings_or_exit()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    with exit_on_bad_setting():
        app = create_worker_app(settings, service)
    run_worker(app, queues_for(service, settings), settings, extra)


if __name__ == "__main__":
    main(sys.argv[1:])

"""``python -m agents [celery worker options]``: run the agent."""

from __future__ import annotations

import logging
import sys

from agents.app import create_agent_app
from nube.broker import INGRESS_QUEUE, run_worker
from nube.settings import exit_on_bad_setting, load_settings_or_exit


def main(argv: list[str]) -> None:
    settings = load_settings_or_exit()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    with exit_on_bad_setting():
        app = create_agent_app(settings)
    run_worker(app, [INGRESS_QUEUE], settings, argv)


if __name__ == "__main__":
    main(sys.argv[1:])

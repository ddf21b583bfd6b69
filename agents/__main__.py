"""``python -m agents [celery worker options]``: run the agent.

``python -m agents --check`` loads the settings and the policy file as the agent does at
start-up, then exits: 0 when they are good, else 2 with one line naming the variable (what
``make up`` runs before it starts anything).
"""

from __future__ import annotations

import logging
import sys

from agents.app import create_agent_app, load_agent_policy
from nube.broker import INGRESS_QUEUE, run_worker
from nube.settings import exit_on_bad_setting, load_settings_or_exit

CHECK = "--check"
#: The agent only does I/O and AES: a thread pool relays in the process that received the
#: message (no hop to a pool child per message). Options given on the command line win.
POOL_DEFAULTS = ["--pool=threads", "--concurrency=8"]


def main(argv: list[str]) -> None:
    settings = load_settings_or_exit()
    if argv[:1] == [CHECK]:
        with exit_on_bad_setting():
            load_agent_policy(settings)
        return
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    with exit_on_bad_setting():
        app = create_agent_app(settings)
    run_worker(app, [INGRESS_QUEUE], settings, [*POOL_DEFAULTS, *argv])


if __name__ == "__main__":
    main(sys.argv[1:])

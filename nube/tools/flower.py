"""``python -m nube.tools.flower [flower options]``: Flower on nube's own Celery app.

Flower runs in this process with the app every nube service builds, sealed
(:func:`nube.bootstrap.bootstrap`), so it reads the same ``NUBE_*`` settings
(``NUBE_REDIS_URL``, ``NUBE_REDIS_PASSWORD``, ``NUBE_KEYS``/``NUBE_KEYS_FILE``, ...) and whatever
it sends on the control channel is sealed like every other message.

No secret goes on the command line, where ``ps`` and ``/proc/<pid>/cmdline`` show it to every
user of the machine: the broker URL with the Redis password is built in-process from the
settings, and Flower's own secrets come from its ``FLOWER_*`` environment variables (Flower
reads every option from ``FLOWER_<OPTION>``), e.g. ``FLOWER_BASIC_AUTH=admin:<password>``.
Options that carry a secret are refused on the command line.

    FLOWER_BASIC_AUTH=admin:secret python -m nube.tools.flower --address=127.0.0.1 --port=5555
"""

from __future__ import annotations

import logging
import os
import sys

from nube.bootstrap import bootstrap
from nube.settings import exit_on_bad_setting, load_settings_or_exit

log = logging.getLogger(__name__)

#: Options that carry a secret (or a URL with one): environment only (``FLOWER_<OPTION>``).
SECRET_OPTIONS = frozenset(
    {"basic_auth", "broker", "broker_api", "oauth2_secret", "cookie_secret", "result_backend"}
)
#: Flower's authentication options; without one of them every page is open.
AUTH_VARIABLES = ("FLOWER_BASIC_AUTH", "FLOWER_AUTH")


def _secret_options(argv: list[str]) -> list[str]:
    names = (arg.lstrip("-").partition("=")[0].replace("-", "_") for arg in argv)
    return [name for name in names if name in SECRET_OPTIONS]


def main(argv: list[str]) -> int:
    refused = _secret_options(argv)
    if refused:
        option = refused[0]
        print(
            f"nube: --{option.replace('_', '-')}: secrets are not accepted on the command line "
            f"(set FLOWER_{option.upper()} in the environment; the broker comes from "
            "NUBE_REDIS_URL and NUBE_REDIS_PASSWORD)",
            file=sys.stderr,
        )
        return 2
    settings = load_settings_or_exit()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    with exit_on_bad_setting():
        app = bootstrap(settings, "flower").celery
    if not any(os.environ.get(name) for name in AUTH_VARIABLES):
        log.warning("Flower runs WITHOUT authentication: set FLOWER_BASIC_AUTH=user:password")
    return int(app.start(["flower", *argv]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

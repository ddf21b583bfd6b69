"""``python -m nube.tools.cli``."""

from nube.tools.cli import main

main()

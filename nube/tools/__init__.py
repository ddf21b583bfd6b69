"""nube's tools, apart from the library every process loads: the command line (``cli``, with
``cli_keys`` and ``cli_audit``), the Python client of the HTTP API (``client``), the local stack
``make up`` runs (``devstack``) and the Flower launcher (``flower``)."""

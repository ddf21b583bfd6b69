"""The tamper-evident audit log, appended to by every nube process.

- :mod:`~nube.audit.log`: writing and reading it (the records, the hash chain, the mirror).
- :mod:`~nube.audit.verifier`: checking the chain (``nube audit verify``).
"""

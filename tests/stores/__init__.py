"""Redis-backed stores (jobs, sealed job records, the API's rate limiter), each test on a private
redis-server (``redis_only`` in tests/conftest.py): not unit tests, which need no service."""

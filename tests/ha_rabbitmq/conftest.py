"""The broker-failover tests on RabbitMQ share the mesh tests' ``report`` fixture."""

from tests.mesh.conftest import report  # noqa: F401 - a fixture

"""The Docker SDK implementation of the container driver."""

from workers.drivers.docker.driver import DockerDriver

__all__ = ["DockerDriver"]

"""A schema fuzzer against the OpenAPI document (reliability #23): no 5xx, every 4xx is
problem+json.

Schemathesis generates valid (positive) and invalid (negative) requests for every operation of
``/v1/openapi.json``; the API runs in-process on a private Redis with no agent or workers, so
submitted jobs are only queued: the fuzzer exercises the edge (auth, validation, routing,
problem+json) and nothing reaches Docker or libvirt.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from api.app import create_app
from nube.settings import load_settings
from nube.tokens import Scope, TokenStore
from nube.tools.devstack import Stack

EXAMPLES = 6


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(workdir=tmp_path_factory.mktemp("fuzz"))
    stack.start_redis()
    yield stack
    stack.stop_all()


@pytest.fixture(scope="module")
def api_schema(fuzz_stack: Stack) -> Any:
    env = {**fuzz_stack.env(), "NUBE_MAX_WAIT_SECONDS": "0", "NUBE_RATE_LIMIT": "0"}
    return schemathesis.openapi.from_wsgi("/v1/openapi.json", create_app(load_settings(env)))


@pytest.fixture(scope="module")
def admin_header(fuzz_stack: Stack) -> dict[str, str]:
    secret, _ = TokenStore(fuzz_stack.redis()).create("fuzz", [Scope.ADMIN])
    return {"Authorization": f"Bearer {secret}"}


def problem_json(ctx: Any, response: Any, case: Any) -> bool:
    """Every 4xx answer is application/problem+json with a stable code."""
    if 400 <= response.status_code < 500:
        headers = {k.lower(): v for k, v in response.headers.items()}
        content_type = headers.get("content-type", [""])
        content_type = content_type[0] if isinstance(content_type, list) else content_type
        assert content_type.startswith("application/problem+json"), (case.path, content_type)
        assert response.json()["code"], response.text
    return True


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors_and_every_4xx_is_a_problem(
    api_schema: Any, admin_header: dict[str, str], mode: GenerationMode
) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 80
    fuzzed = sum(fuzz(operation, mode, admin_header) for operation in operations)
    assert fuzzed > len(operations) * 0.8, f"only {fuzzed} of {len(operations)} fuzzed"


def fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> bool:
    """Fuzz one operation; False when there is nothing to generate (no negative cases)."""

    @given(operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=[not_a_server_error, problem_json])

    try:
        run()
    except Unsatisfiable:
        return False
    return True

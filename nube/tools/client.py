"""A small client for the nube REST API (used by the CLI, the local stack and the tests)."""

from __future__ import annotations

from typing import Any

import requests


class ApiError(Exception):
    """A problem+json answer: ``status``, ``code`` and the whole ``problem``."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.code = str(problem.get("code", "unknown"))
        self.problem = problem
        super().__init__(f"{status} {self.code}: {problem.get('detail', '')}")


class NubeClient:
    """Submit operations and follow their jobs."""

    def __init__(self, url: str, token: str, timeout: float = 90.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        response = self.session.request(method, self.url + path, **kwargs)
        if response.status_code >= 400:
            raise ApiError(response.status_code, _json(response))
        return response

    def submit(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        params: dict[str, Any] | None = None,
        wait: int = 0,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Send an operation; with ``wait`` > 0, ask the API to hold the answer until it ends."""
        headers = {}
        if wait:
            headers["Prefer"] = f"wait={wait}"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        response = self.request(method, path, json=body, params=params, headers=headers)
        return dict(response.json())

    def job(self, job_id: str, wait: int = 0) -> dict[str, Any]:
        params = {"wait": wait} if wait else None
        return dict(self.request("GET", f"/v1/jobs/{job_id}", params=params).json())

    def run(self, method: str, path: str, body: dict[str, Any] | None = None, **kw: Any) -> Any:
        """Submit and wait (up to 60 s a round) until the job ends; return its result or raise."""
        job = self.submit(method, path, body, wait=60, **kw)
        while job["status"] in ("queued", "running"):
            job = self.job(job["id"], wait=60)
        if job["status"] != "succeeded":
            error = job.get("error") or {"code": job["status"], "message": job["status"]}
            raise ApiError(200, {"code": error["code"], "detail": error["message"], "job": job})
        return job["result"]


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {"code": "unknown", "detail": response.text[:200]}

"""A small client for the nube REST API (used by the CLI, the local stack and the tests)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import requests

from nube.errors import error_class


class ApiError(Exception):
    """A problem+json answer: ``status``, ``code`` and the whole ``problem``."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.code = str(problem.get("code", "unknown"))
        self.problem = problem
        super().__init__(f"{status} {self.code}: {problem.get('detail', '')}")


#: The statuses of a job that has ended.
ENDED = frozenset({"succeeded", "failed", "cancelled"})


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

    # --- jobs, tokens: what the CLI needs besides operations ----------------------------------
    def jobs(
        self,
        *,
        status: str | None = None,
        operation: str | None = None,
        limit: int = 50,
        cursor: int | None = None,
    ) -> dict[str, Any]:
        """``GET /v1/jobs``: the caller's jobs, newest first (``jobs``, ``next_cursor``)."""
        params = {"status": status, "operation": operation, "limit": limit, "cursor": cursor}
        query = {k: v for k, v in params.items() if v is not None}
        return dict(self.request("GET", "/v1/jobs", params=query).json())

    def cancel(self, job_id: str) -> dict[str, Any]:
        """``DELETE /v1/jobs/<id>``: cancel a queued job (a running or ended one is ``409``)."""
        return dict(self.request("DELETE", f"/v1/jobs/{job_id}").json())

    def events(
        self, job_id: str, read_timeout: float = 30.0
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Follow ``GET /v1/jobs/<id>/events`` (Server-Sent Events): yield ``(event, job)`` for
        each event, the first being ``job`` (the job as it is), until the job ends. A stream
        the server closes before that (it ends each after a few minutes) is opened again."""
        while True:
            response = self.session.get(
                f"{self.url}/v1/jobs/{job_id}/events",
                headers={"Accept": "text/event-stream"},
                stream=True,
                timeout=(10.0, read_timeout),  # the server sends a keep-alive every 5 s
            )
            with response:
                if response.status_code >= 400:
                    raise ApiError(response.status_code, _json(response))
                response.encoding = "utf-8"
                for event, data in _server_sent(response.iter_content(None, decode_unicode=True)):
                    job = json.loads(data)
                    yield event, job
                    if job.get("status") in ENDED:
                        return

    def create_token(self, tenant: str, scopes: list[str], name: str = "") -> dict[str, Any]:
        """``POST /v1/tokens`` (admin): the new token's record and, once, its secret
        (``token``)."""
        body = {"tenant": tenant, "scopes": scopes, "name": name}
        return dict(self.request("POST", "/v1/tokens", json=body).json())

    def tokens(self) -> list[dict[str, Any]]:
        """``GET /v1/tokens`` (admin): every token's record, never a secret."""
        return list(self.request("GET", "/v1/tokens").json()["tokens"])

    def revoke_token(self, token_id: str) -> None:
        """``DELETE /v1/tokens/<id>`` (admin)."""
        self.request("DELETE", f"/v1/tokens/{token_id}")

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
        """Send an operation and return its job, whatever became of it.

        With ``wait`` > 0 the API holds the answer up to ``wait`` s (``Prefer: wait``); without,
        it answers at once (``Prefer: respond-async``: a read would wait by default). Where the
        API answered with something else than the job (a read's resource, or the problem of a
        job that failed within the wait), the job is fetched from the link the answer carries.
        A request the API refused (no job) raises :class:`ApiError`.
        """
        headers = {"Prefer": f"wait={wait}" if wait else "respond-async"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        try:
            response = self.request(method, path, json=body, params=params, headers=headers)
        except ApiError as e:
            job_url = e.problem.get("job")
            if not isinstance(job_url, str):
                raise
            return dict(self.request("GET", job_url).json())
        if method == "GET" and response.status_code == 200:
            return self.job(job_of(response))
        return dict(response.json())

    def read(self, path: str, params: dict[str, Any] | None = None, wait: int = 0) -> Any:
        """A read of live infrastructure (a ``GET`` operation): its resource, or
        :class:`ApiError` with the problem the API answered (a failed read is its error's
        status). ``wait``: seconds the API may wait (default: ``NUBE_READ_WAIT_SECONDS``); if
        the wait runs out (``202``), the job is long-polled until it ends."""
        headers = {"Prefer": f"wait={wait}"} if wait else {}
        response = self.request("GET", path, params=params, headers=headers)
        if response.status_code == 200:
            return response.json()
        return self.outcome(self.finish(dict(response.json())))

    def job(self, job_id: str, wait: int = 0) -> dict[str, Any]:
        params = {"wait": wait} if wait else None
        return dict(self.request("GET", f"/v1/jobs/{job_id}", params=params).json())

    def finish(self, job: dict[str, Any]) -> dict[str, Any]:
        """Long-poll ``job`` (60 s a round) until it ends."""
        while job["status"] in ("queued", "running"):
            job = self.job(job["id"], wait=60)
        return job

    def run(self, method: str, path: str, body: dict[str, Any] | None = None, **kw: Any) -> Any:
        """Submit and wait (up to 60 s a round) until the job ends; return its result or raise
        :class:`ApiError` with the job's error (its status, code and detail, and the job)."""
        if method == "GET" and body is None:
            return self.read(path, params=kw.get("params"), wait=60)
        return self.outcome(self.finish(self.submit(method, path, body, wait=60, **kw)))

    @staticmethod
    def outcome(job: dict[str, Any]) -> Any:
        """The result of a job that ended, or :class:`ApiError` as the API answers its
        failure."""
        if job["status"] == "succeeded":
            return job["result"]
        error = job.get("error") or {
            "code": job["status"],
            "message": f"the job was {job['status']}",
        }
        cls = error_class(error["code"])
        status = int(error.get("status") or cls.status)
        problem = {
            "code": error["code"],
            "status": status,
            "detail": error["message"],
            "job": f"/v1/jobs/{job['id']}",
        }
        if error.get("details"):
            problem["details"] = error["details"]
        raise ApiError(status, problem)


def job_of(response: requests.Response) -> str:
    """The job id a read's ``200`` answer links (``Link: </v1/jobs/<id>>; rel="related"``)."""
    link = response.links.get("related", {}).get("url", "")
    if not link.startswith("/v1/jobs/"):
        raise ApiError(response.status_code, {"code": "unknown", "detail": "no job link"})
    return link.removeprefix("/v1/jobs/")


def _server_sent(chunks: Iterable[str]) -> Iterator[tuple[str, str]]:
    """``(event, data)`` of each Server-Sent Event in a text stream (comments skipped)."""
    buffer, event, data = "", "message", list[str]()
    for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split("\n")
        for line in (raw.removesuffix("\r") for raw in lines):
            if not line:
                if data:
                    yield event, "\n".join(data)
                event, data = "message", []
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {"code": "unknown", "detail": response.text[:200]}

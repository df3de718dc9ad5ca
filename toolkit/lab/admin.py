"""HTTP client for the routers' and the venue's admin APIs (JSON over 127.0.0.1)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from toolkit.errors import LabError

__all__ = ["AdminClient", "AdminResponse"]


@dataclass(frozen=True)
class AdminResponse:
    status: int
    body: Any


class AdminClient:
    """One node's (or the venue's) admin endpoint; the token is kept here, never logged."""

    def __init__(
        self, name: str, port: int, token: str, host: str = "127.0.0.1", timeout: float = 2.0
    ) -> None:
        self.name = name
        self.port = port
        self.base = f"http://{host}:{port}"
        self._token = token
        self.timeout = timeout

    @classmethod
    def at(cls, name: str, url: str, token: str = "", timeout: float = 2.0) -> AdminClient:
        """The client of an admin API at `url` (http://host:port, as an inventory gives it)."""
        parsed = urllib.parse.urlsplit(url)
        client = cls(name, parsed.port or 80, token, parsed.hostname or "", timeout)
        client.base = url.rstrip("/")
        return client

    def __repr__(self) -> str:  # keeps the token out of tracebacks and logs
        return f"AdminClient({self.name!r}, {self.base!r})"

    def request(self, method: str, path: str, body: Any = None, auth: bool = True) -> AdminResponse:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if auth:
            req.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return AdminResponse(resp.status, _decode(resp.read()))
        except urllib.error.HTTPError as exc:
            return AdminResponse(exc.code, _decode(exc.read()))
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise LabError(
                f"{self.name}: admin API at {self.base} did not answer: {reason}"
            ) from None

    def get(self, path: str) -> Any:
        resp = self.request("GET", path, auth=False)
        if resp.status >= 400 and resp.status != 503:
            raise LabError(f"{self.name}: GET {path} answered {resp.status}: {resp.body}")
        return resp.body

    def post(self, path: str, body: Any = None) -> Any:
        resp = self.request("POST", path, body if body is not None else {})
        if resp.status >= 400:
            raise LabError(f"{self.name}: POST {path} answered {resp.status}: {resp.body}")
        return resp.body

    def metrics(self) -> str:
        req = urllib.request.Request(self.base + "/metrics")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.read().decode()
        except (urllib.error.URLError, OSError) as exc:
            raise LabError(f"{self.name}: metrics at {self.base} did not answer: {exc}") from None


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")

"""Pull requests through a forge's REST API (GitHub, GitLab), with :mod:`urllib`: a timeout on every
call, no redirect followed (it would carry the token to another host), and :class:`ForgeError`
subclasses whose text says what the forge answered. No Django imports.
"""

from __future__ import annotations

import enum
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from .remotes import GITHUB, GITHUB_API_VERSION, GITLAB, NAMES, USER_AGENT, Repository


class State(enum.StrEnum):
    OPEN = "open"
    MERGED = "merged"
    CLOSED = "closed"


@dataclass(frozen=True)
class PullRequest:
    number: int  # GitHub's number, GitLab's iid: what the forge shows as #12 or !12
    url: str
    state: State


@dataclass(frozen=True)
class Opened:
    pull_request: PullRequest
    existed: bool  # one was already open for the branch: it is the one answered


# ---------------------------------------------------------------------------------------
# Errors


class ForgeError(Exception):
    """The forge refused or did not answer; the text says what it answered."""

    def __init__(self, text: str, *, status: int | None = None) -> None:
        super().__init__(text)
        self.status = status


class Unreachable(ForgeError):
    """No answer: the network, a wrong API URL, a timeout."""


class TokenRejected(ForgeError):
    """401 or 403: the token is wrong, expired, or may not do this."""


class NotFound(ForgeError):
    """404: no such repository or pull request (or the token may not see it)."""


class Refused(ForgeError):
    """Any other error answer (e.g. GitHub's 422 for a base branch it does not have)."""


# ---------------------------------------------------------------------------------------
# HTTP


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as the error it is, not followed (with the token) elsewhere."""

    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def _message(answer: Any) -> str:
    """The forge's own words in an error answer (GitHub: message and errors; GitLab: message or error)."""
    if not isinstance(answer, dict):
        return str(answer)[:300] if answer else ""
    parts: list[str] = []
    message = answer.get("message", answer.get("error", ""))
    if isinstance(message, dict):
        parts += [
            f"{name} {' '.join(map(str, text if isinstance(text, list) else [text]))}" for name, text in message.items()
        ]
    elif isinstance(message, list):
        parts += [str(text) for text in message]
    elif message:
        parts.append(str(message))
    for error in answer.get("errors") or []:
        if isinstance(error, dict):
            parts.append(
                str(error.get("message") or " ".join(str(error.get(k, "")) for k in ("field", "code")).strip())
            )
        else:
            parts.append(str(error))
    return ": ".join(part for part in parts if part)


class _Client:
    name = ""

    def __init__(self, repository: Repository, token: str, *, timeout: float) -> None:
        self.repository, self.token, self.timeout = repository, token, timeout

    def headers(self) -> dict[str, str]:
        raise NotImplementedError

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, query: dict[str, str] | None = None
    ) -> Any:
        url = self.repository.api.rstrip("/") + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        headers = {**self.headers(), "User-Agent": USER_AGENT}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        where = f"{self.name} at {self.repository.api}"
        try:
            with _opener.open(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise self.error(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unreachable(f"{where} did not answer ({reason or type(exc).__name__})") from None
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise Refused(f"{where} answered something that is not JSON: {raw[:200]!r}") from None

    def error(self, exc: urllib.error.HTTPError) -> ForgeError:
        try:
            answer: Any = json.loads(exc.read() or b"null")
        except (ValueError, OSError):
            answer = None
        said = _message(answer) or exc.reason or ""
        text = f"{self.name} answered {exc.code}" + (f" ({said})" if said else "")
        if 300 <= exc.code < 400:
            where = exc.headers.get("Location", "elsewhere") if exc.headers else "elsewhere"
            return Unreachable(
                f"{self.name} at {self.repository.api} answered {exc.code}, a redirect to {where}, "
                "which is not followed",
                status=exc.code,
            )
        kind: type[ForgeError] = {401: TokenRejected, 403: TokenRejected, 404: NotFound}.get(exc.code, Refused)
        return kind(text, status=exc.code)

    def pull(self, answer: Any) -> PullRequest:
        """The pull request an answer describes; an answer of another shape is refused, not a crash."""
        try:
            return self.read_pull(answer)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise Refused(
                f"{self.name} at {self.repository.api} answered something that is not a pull request: "
                f"{str(answer)[:200]}"
            ) from None

    def read_pull(self, answer: Any) -> PullRequest:
        raise NotImplementedError

    def create(self, *, head: str, base: str, title: str, body: str) -> PullRequest:
        raise NotImplementedError

    def find_open(self, *, head: str, base: str) -> PullRequest | None:
        raise NotImplementedError

    def get(self, number: int) -> PullRequest:
        raise NotImplementedError

    def close(self, number: int) -> PullRequest:
        raise NotImplementedError

    # Already open for the branch: GitHub answers 422, GitLab 409.
    EXISTS: int = 0

    def open(self, *, head: str, base: str, title: str, body: str) -> Opened:
        try:
            return Opened(self.create(head=head, base=base, title=title, body=body), existed=False)
        except Refused as exc:
            if exc.status != self.EXISTS:
                raise
            found = self.find_open(head=head, base=base)
            if found is None:
                raise
            return Opened(found, existed=True)


class _GitHub(_Client):
    name = NAMES[GITHUB]
    EXISTS = 422

    def headers(self) -> dict[str, str]:
        return {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {self.token}",
            "X-GitHub-Api-Version": GITHUB_API_VERSION,
        }

    @property
    def base(self) -> str:
        owner, repo = self.repository.path.split("/")
        return f"/repos/{urllib.parse.quote(owner, safe='')}/{urllib.parse.quote(repo, safe='')}/pulls"

    def read_pull(self, answer: Any) -> PullRequest:
        if answer.get("merged") or answer.get("merged_at"):
            state = State.MERGED
        else:
            state = State.OPEN if answer.get("state") == "open" else State.CLOSED
        return PullRequest(number=int(answer["number"]), url=_web_url(answer.get("html_url"), GITHUB), state=state)

    def create(self, *, head: str, base: str, title: str, body: str) -> PullRequest:
        return self.pull(self.call("POST", self.base, {"title": title, "head": head, "base": base, "body": body}))

    def find_open(self, *, head: str, base: str) -> PullRequest | None:
        owner = self.repository.path.split("/")[0]
        found = self.call("GET", self.base, query={"head": f"{owner}:{head}", "base": base, "state": "open"})
        return self.pull(found[0]) if isinstance(found, list) and found else None

    def get(self, number: int) -> PullRequest:
        return self.pull(self.call("GET", f"{self.base}/{int(number)}"))

    def close(self, number: int) -> PullRequest:
        return self.pull(self.call("PATCH", f"{self.base}/{int(number)}", {"state": "closed"}))


class _GitLab(_Client):
    name = NAMES[GITLAB]
    EXISTS = 409
    STATES = {"opened": State.OPEN, "locked": State.OPEN, "merged": State.MERGED, "closed": State.CLOSED}

    def headers(self) -> dict[str, str]:
        return {"Accept": "application/json", "PRIVATE-TOKEN": self.token}

    @property
    def base(self) -> str:
        return f"/projects/{urllib.parse.quote(self.repository.path, safe='')}/merge_requests"

    def read_pull(self, answer: Any) -> PullRequest:
        return PullRequest(
            number=int(answer["iid"]),
            url=_web_url(answer.get("web_url"), GITLAB),
            state=self.STATES.get(str(answer.get("state")), State.OPEN),
        )

    def create(self, *, head: str, base: str, title: str, body: str) -> PullRequest:
        return self.pull(
            self.call(
                "POST", self.base, {"source_branch": head, "target_branch": base, "title": title, "description": body}
            )
        )

    def find_open(self, *, head: str, base: str) -> PullRequest | None:
        found = self.call("GET", self.base, query={"source_branch": head, "target_branch": base, "state": "opened"})
        return self.pull(found[0]) if isinstance(found, list) and found else None

    def get(self, number: int) -> PullRequest:
        return self.pull(self.call("GET", f"{self.base}/{int(number)}"))

    def close(self, number: int) -> PullRequest:
        return self.pull(self.call("PUT", f"{self.base}/{int(number)}", {"state_event": "close"}))


def _web_url(url: Any, forge: str) -> str:
    """A pull request's page: only an http(s) URL is shown as a link."""
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise Refused(f"{NAMES[forge]} answered a pull request without an http(s) address: {str(url)[:100]!r}")
    return url


def _client(repository: Repository, token: str, timeout: float) -> _Client:
    kind = _GitHub if repository.forge == GITHUB else _GitLab
    return kind(repository, token, timeout=timeout)


# The calls block on the network (at most ``timeout`` seconds a request): async callers run them
# in a thread.


def open_pull_request(
    repository: Repository, token: str, *, head: str, base: str, title: str, body: str, timeout: float
) -> Opened:
    """Open a pull request of ``head`` into ``base``; if one is already open for the branch, that one."""
    return _client(repository, token, timeout).open(head=head, base=base, title=title, body=body)


def get_pull_request(repository: Repository, token: str, number: int, *, timeout: float) -> PullRequest:
    return _client(repository, token, timeout).get(number)


def close_pull_request(repository: Repository, token: str, number: int, *, timeout: float) -> PullRequest:
    return _client(repository, token, timeout).close(number)

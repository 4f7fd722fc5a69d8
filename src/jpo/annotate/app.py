"""The annotation server: a Starlette app over a `Store`, serving the annotator page and its JSON API.

Security model: annotators authenticate with their own bearer token (the page keeps it from the link's #fragment,
which browsers never send, so tokens stay out of request lines and access logs); the admin token comes from the
environment and is compared in constant time. Both go through Starlette's AuthenticationMiddleware (`TokenAuth`). The page is static, fetches everything as JSON and writes text only
through `textContent`; a strict Content-Security-Policy (no inline script, no other origin) backs that up.
"""

from __future__ import annotations

import hmac
import json
from datetime import timedelta
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
    SimpleUser,
)
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jpo.annotate.store import CHOICES, Annotator, Conflict, NotFound, Store, annotator_name
from jpo.errors import JpoError

MAX_BODY_BYTES = 64 * 1024
MAX_EXPLANATION_CHARS = 10_000
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}
STATIC = {"/": ("page.html", "text/html; charset=utf-8"),
          "/page.js": ("page.js", "text/javascript; charset=utf-8"),
          "/page.css": ("page.css", "text/css; charset=utf-8")}


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class Settings:
    """What `serve` was started with."""

    def __init__(self, *, admin_token: str, per_item: int = 2, require_explanation: bool = False,
                 lease: timedelta = timedelta(minutes=30), gold_every: int = 10,
                 max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.admin_token = admin_token
        self.per_item = per_item
        self.require_explanation = require_explanation
        self.lease = lease
        self.gold_every = gold_every
        self.max_body_bytes = max_body_bytes


class TokenAuth(AuthenticationBackend):
    """Starlette's authentication backend for the bearer tokens: the admin token (from the environment, compared in
    constant time) has scope `admin`; an annotator's token, scope `annotator` and the Annotator as the user. No
    header is an anonymous request (the static page); a token nobody has is a 401 (`on_error`)."""

    def __init__(self, store: Store, admin_token: str) -> None:
        self.store, self.admin_token = store, admin_token

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        scheme, _, token = conn.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        if hmac.compare_digest(token.encode(), self.admin_token.encode()):
            return AuthCredentials(["admin"]), SimpleUser("admin")
        annotator = await run_in_threadpool(self.store.annotator, token)
        if annotator is None:
            raise AuthenticationError("unknown token")
        return AuthCredentials(["annotator"]), AnnotatorUser(annotator)


class AnnotatorUser(SimpleUser):
    def __init__(self, annotator: Annotator) -> None:
        super().__init__(annotator.name)
        self.annotator = annotator


def create_app(store: Store, settings: Settings) -> ASGIApp:
    async def who(request: Request) -> Annotator | str | Response:
        """The annotator, the string "admin", or the 401 to return."""
        if "admin" in request.auth.scopes:
            return "admin"
        if "annotator" in request.auth.scopes:
            return request.user.annotator
        return error(401, "missing bearer token")

    async def annotator_only(request: Request) -> Annotator | Response:
        user = await who(request)
        if user == "admin":
            return error(403, "the admin token is not an annotator's; create one with `jpo annotate add-annotator`")
        return user

    async def next_item(request: Request) -> Response:
        user = await annotator_only(request)
        if isinstance(user, Response):
            return user
        assignment = await run_in_threadpool(store.next_assignment, user, per_item=settings.per_item,
                                             lease=settings.lease, gold_every=settings.gold_every)
        if assignment is None:
            return Response(status_code=204)
        item = assignment.item
        first, second = ("b", "a") if assignment.swapped else ("a", "b")
        shown = {"prompt_a": item[f"prompt_{first}"], "response_a": item[f"response_{first}"],
                 "prompt_b": item[f"prompt_{second}"], "response_b": item[f"response_{second}"]}
        return JSONResponse({"item_id": assignment.item_id, "assignment_id": assignment.id,
                             "protocol": "conditional" if shown["prompt_a"] == shown["prompt_b"] else "joint",
                             "item": shown, "require_explanation": settings.require_explanation})

    async def answer(request: Request) -> Response:
        user = await annotator_only(request)
        if isinstance(user, Response):
            return user
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return error(400, "body must be a JSON object")
        problem = _check_answer(body, settings.require_explanation)
        if problem:
            return error(400, problem)
        try:
            created = await run_in_threadpool(store.answer, user, body["assignment_id"], body["item_id"],
                                              body["choice"], body.get("explanation") or "")
        except NotFound:
            return error(404, "no such assignment for this annotator")
        except Conflict:
            return error(409, "this assignment already has a different answer")
        return JSONResponse({"status": "recorded" if created else "already recorded"},
                            status_code=201 if created else 200)

    async def progress(request: Request) -> Response:
        user = await who(request)
        if isinstance(user, Response):
            return user
        if user == "admin":
            return JSONResponse(await run_in_threadpool(store.progress, per_item=settings.per_item))
        return JSONResponse(await run_in_threadpool(store.annotator_progress, user, per_item=settings.per_item))

    async def export(request: Request) -> Response:
        user = await who(request)
        if isinstance(user, Response):
            return user
        if user != "admin":
            return error(403, "the export needs the admin token")
        rows = await run_in_threadpool(lambda: list(store.export_rows()))
        lines = (json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        return StreamingResponse(lines, media_type="application/x-ndjson")

    async def add_annotator(request: Request) -> Response:
        user = await who(request)
        if isinstance(user, Response):
            return user
        if user != "admin":
            return error(403, "creating annotators needs the admin token")
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return error(400, "body must be a JSON object")
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            return error(400, "body must be {\"name\": ...}")
        try:
            annotator_name(body["name"])
        except JpoError as problem:  # a bad name is a bad request; 409 means only that the name is taken
            return error(400, str(problem))
        try:
            token = await run_in_threadpool(store.add_annotator, body["name"])
        except JpoError as problem:
            return error(409, str(problem))
        base = str(request.base_url).rstrip("/")
        return JSONResponse({"name": body["name"].strip(), "token": token, "url": f"{base}/#token={token}"},
                            status_code=201)

    async def static(request: Request) -> Response:
        name, media_type = STATIC[request.url.path]
        return Response(resources.files("jpo.annotate").joinpath("static", name).read_bytes(),
                        media_type=media_type)

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    routes = [Route(path, static) for path in STATIC] + [
        Route("/healthz", health),
        Route("/api/next", next_item),
        Route("/api/answer", answer, methods=["POST"]),
        Route("/api/progress", progress),
        Route("/api/export", export),
        Route("/api/annotators", add_annotator, methods=["POST"]),
    ]
    auth = Middleware(AuthenticationMiddleware, backend=TokenAuth(store, settings.admin_token),
                      on_error=lambda conn, problem: error(401, str(problem)))
    return SecurityHeaders(BodyLimit(Starlette(routes=routes, middleware=[auth]), settings.max_body_bytes))


def _check_answer(body: Any, require_explanation: bool) -> str | None:
    if not isinstance(body, dict):
        return "body must be a JSON object"
    for field in ("item_id", "assignment_id"):
        if not isinstance(body.get(field), str) or not body[field]:
            return f"'{field}' must be a non-empty string"
    if body.get("choice") not in CHOICES:
        return "'choice' must be one of a, b, equal"
    explanation = body.get("explanation")
    if explanation is not None and not isinstance(explanation, str):
        return "'explanation' must be a string"
    if explanation and len(explanation) > MAX_EXPLANATION_CHARS:
        return f"'explanation' is longer than {MAX_EXPLANATION_CHARS} characters"
    if require_explanation and not (explanation or "").strip():
        return "an explanation is required"
    return None


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, whether announced by Content-Length or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await error(413, f"request body over {self.limit} bytes")(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                await error(413, f"request body over {self.limit} bytes")(scope, receive, send)
                return
        body, sent = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class SecurityHeaders:
    """The CSP and friends on every response, JSON and errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.decode().lower() not in SECURITY_HEADERS]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

"""`openai:MODEL` -- any OpenAI-compatible /v1/chat/completions endpoint (OpenAI, vLLM, llama.cpp, Ollama, ...).

Plain httpx rather than the openai package: one POST is all a judge needs, and owning the retry loop is what makes
the behaviour under failure explicit. The runner keeps `max_concurrency` questions in flight; each is retried with
exponential backoff and full jitter on 429, 5xx, timeouts, connection errors and unparseable answers, waiting
exactly `Retry-After` when the server sends one. Errors that retrying cannot fix (a bad key, an unknown model) stop
the run at once instead of marking every item invalid.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import os
import random
import socket
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from jpo.errors import JpoError
from jpo.feedback.base import Judge, JudgeOptions, Question, Usage, Verdict
from jpo.feedback.parsing import parse_choice
from jpo.feedback.templates import Template, load_template

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRYABLE = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# USD per million (input, output) tokens, list prices; `--price_in/--price_out` override or fill in.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4": (30.00, 60.00),
}


def known_price(model: str) -> tuple[float, float] | None:
    """The list price of the longest known model-name prefix (dated snapshots share their family's price)."""
    matches = [name for name in PRICES if model == name or model.startswith(name + "-")]
    return PRICES[max(matches, key=len)] if matches else None


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds (it may be a number or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class OpenAIJudge(Judge):
    batch_size = 1

    def __init__(self, model: str, options: JudgeOptions, template: Template | None = None) -> None:
        self.model = model
        self.options = options
        self.template = template or load_template(options.template)
        self.id = f"openai:{model}"
        self.template_version = self.template.version
        self.max_concurrency = max(1, options.concurrency)
        # $OPENAI_BASE_URL as the OpenAI SDK reads it (vLLM, Ollama, a proxy), unless --base_url says otherwise
        base_url = options.base_url or os.environ.get("OPENAI_BASE_URL") or None
        base = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.url = base if base.endswith("/chat/completions") else base + "/chat/completions"
        self.api_key = options.api_key or os.environ.get(options.api_key_env)
        if self.api_key is None and base_url is None:
            raise JpoError(f"no API key: set {options.api_key_env} (or --api_key_env NAME), or pass --base_url")
        self.usage = Usage()
        self.requests = self.answered = self.rejected = 0
        self._idle: list[httpx.AsyncClient] = []
        self._tls: ssl.SSLContext | None = None

    @classmethod
    def from_spec(cls, argument: str | None, options: JudgeOptions) -> OpenAIJudge:
        if not argument:
            raise JpoError("openai judge needs a model name: --judge openai:MODEL (e.g. openai:gpt-4o-mini)")
        return cls(argument, options)

    def _new_client(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        # TCP_NODELAY: h11 writes headers and body separately, and Nagle + delayed ACK would add ~40 ms to each.
        if self._tls is None:  # building a TLS context reads the CA bundle (~40 ms): once per judge, not per client
            self._tls = httpx.create_ssl_context()
        transport = httpx.AsyncHTTPTransport(
            verify=self._tls,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        return httpx.AsyncClient(headers=headers, transport=transport, timeout=httpx.Timeout(self.options.request_timeout))

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[httpx.AsyncClient]:
        """One single-connection client per request in flight. httpcore's shared pool rescans every connection on
        each request, which at concurrency 32 cost more CPU than the requests themselves; a free list of one-socket
        clients keeps the per-request overhead constant. Clients are made inside the running loop (each is bound to
        one) and closed by aclose() at the end of a run."""
        client = self._idle.pop() if self._idle else self._new_client()
        try:
            yield client
        except BaseException:
            # A request cut off mid-flight (timeout, cancellation) can leave its connection with the old request
            # still queued on the server, so the next request would wait behind it: never reuse such a client.
            with contextlib.suppress(Exception):
                await client.aclose()
            raise
        self._idle.append(client)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for client in idle:
            await client.aclose()

    async def answer_batch(self, questions: Sequence[Question]) -> list[Verdict]:
        return list(await asyncio.gather(*(self.ask(question) for question in questions)))

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.options.backoff_max, self.options.backoff_base * 2**attempt))

    async def ask(self, question: Question) -> Verdict:
        body = {
            "model": self.model,
            "messages": self.template.messages(question),
            "temperature": 0,
            "max_tokens": self.options.max_tokens,
        }
        usage = Usage()
        unparseable: tuple[str, str] | None = None  # the last answer received, if it could not be read
        error = "no attempt made"
        attempts = self.options.max_retries + 1
        for attempt in range(attempts):
            delay = self._backoff(attempt)
            try:
                async with self._client() as client, asyncio.timeout(self.options.request_timeout):
                    response = await client.post(self.url, json=body)
            except (TimeoutError, httpx.TimeoutException):
                error = f"timeout after {self.options.request_timeout:g}s"
            except httpx.TransportError as exc:
                error = f"connection error: {type(exc).__name__}: {exc}"
            else:
                self.requests += 1
                status = response.status_code
                if status == 200:
                    self.answered += 1
                    content, spent = self._content(response)
                    usage = usage + spent
                    self.usage = self.usage + spent
                    choice, why = parse_choice(content)
                    if choice is not None:
                        return Verdict(choice, content, None, usage, attempt + 1)
                    unparseable, error = (content, why or "unparseable"), why or "unparseable"
                elif status in RETRYABLE or status >= 500:
                    error = f"HTTP {status}"
                    waited = retry_after_seconds(response.headers.get("retry-after"))
                    if waited is not None:
                        delay = min(waited, self.options.backoff_max)
                else:
                    self._raise_fatal(response)
                    self.rejected += 1
                    if self.rejected >= 3 and self.answered == 0:  # the request itself is wrong, not this item
                        raise JpoError(f"{self.url}: the first {self.rejected} requests were all rejected with HTTP "
                                       f"{status} ({_message(response)})")
                    return Verdict(None, response.text[:500], f"HTTP {status}: {_message(response)}", usage,
                                   attempt + 1, received=False)
            if attempt + 1 < attempts:
                await asyncio.sleep(delay)
        if unparseable is not None:
            return Verdict(None, unparseable[0], f"{unparseable[1]} after {attempts} attempts", usage, attempts)
        return Verdict(None, "", f"{error} after {attempts} attempts", usage, attempts, received=False)

    def _content(self, response: httpx.Response) -> tuple[str, Usage]:
        try:
            data: Any = response.json()
            content = data["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError):
            return response.text[:500], Usage()
        spent = data.get("usage") or {}
        return content, Usage(int(spent.get("prompt_tokens") or 0), int(spent.get("completion_tokens") or 0))

    def _raise_fatal(self, response: httpx.Response) -> None:
        status = response.status_code
        if status in (401, 403):
            raise JpoError(f"{self.url}: HTTP {status} ({_message(response)}): check the key in ${self.options.api_key_env}")
        if status == 404:
            raise JpoError(f"{self.url}: HTTP 404 ({_message(response)}): wrong --base_url or unknown model '{self.model}'")

    def cost_summary(self) -> str | None:
        if not self.requests:
            return None
        spent = f"{self.usage.prompt_tokens} prompt + {self.usage.completion_tokens} completion tokens"
        price_in, price_out = self.options.price_in, self.options.price_out
        listed = known_price(self.model)
        if listed is not None:
            price_in = listed[0] if price_in is None else price_in
            price_out = listed[1] if price_out is None else price_out
        if price_in is None or price_out is None:
            return f"{spent} in {self.requests} requests (price of '{self.model}' unknown: pass --price_in/--price_out)"
        cost = (self.usage.prompt_tokens * price_in + self.usage.completion_tokens * price_out) / 1e6
        return f"{spent} in {self.requests} requests, est. ${cost:.4f}"


def _message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = None
    return str(message or response.text or response.reason_phrase)[:200].replace("\n", " ")

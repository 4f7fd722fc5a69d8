"""A local OpenAI-compatible chat-completions server for tests, benchmarks and dry runs of a judging pipeline.

It answers from a Python policy (default: prefer the longer output), after a fixed latency, and can fail on
purpose -- 429 with Retry-After, 500, a reply slower than the client's timeout, an unparseable answer -- so the
judge's retry and resume behaviour can be checked without a network or an API bill. It records every request
(question key, attempt, outcome, time), which is how tests prove that no finished verdict is asked for twice.
Loopback only.

    python -m jpo.cli.mock_judge --port 8000 --delay 0.05
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

Policy = Callable[[list[dict[str, Any]]], str]
# (question key, how many times this key was asked before) -> "429" | "500" | "slow" | "garbage" | "400" | "401" | "404" | None
FailurePlan = Callable[[str, int], str | None]
_OUTPUT = re.compile(r"### Output \(([ab])\):\n(.*?)(?=\n\n##|\Z)", re.S)


def prefer_longer(messages: list[dict[str, Any]]) -> str:
    outputs = dict(_OUTPUT.findall(messages[-1]["content"]))
    return "Output (a)" if len(outputs.get("a", "")) >= len(outputs.get("b", "")) else "Output (b)"


def request_key(messages: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode("utf-8")).hexdigest()[:16]


@dataclass
class Logged:
    key: str
    attempt: int
    outcome: str  # ok, or the failure mode served
    time: float


class MockJudgeServer:
    """Run with `with MockJudgeServer(...) as server:`; `server.base_url` is the OpenAI-style base URL."""

    def __init__(
        self,
        policy: Policy = prefer_longer,
        *,
        delay: float = 0.0,
        failures: FailurePlan | None = None,
        retry_after: float = 0.2,
        slow_seconds: float = 5.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the mock judge server only listens on loopback")
        self.policy, self.delay, self.failures = policy, delay, failures
        self.retry_after, self.slow_seconds = retry_after, slow_seconds
        self.log: list[Logged] = []
        self._seen: Counter = Counter()
        self._socket = socket.socket(socket.AF_INET6 if host == "::1" else socket.AF_INET)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted connections
        self._socket.bind((host, port))
        self.port = self._socket.getsockname()[1]
        self.base_url = f"http://{host}:{self.port}/v1"
        app = Starlette(routes=[
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
        ])
        config = uvicorn.Config(app, log_level="error", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=int(slow_seconds + delay) + 2)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def outcomes(self) -> Counter:
        return Counter(entry.outcome for entry in self.log)

    async def _models(self, request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": "mock", "object": "model"}]})

    async def _chat(self, request: Request) -> JSONResponse:
        body = await request.json()
        messages = body["messages"]
        key = request_key(messages)
        attempt = self._seen[key]
        self._seen[key] += 1
        mode = self.failures(key, attempt) if self.failures else None
        self.log.append(Logged(key, attempt, mode or "ok", time.time()))
        await asyncio.sleep(self.delay)
        if mode == "429":
            return JSONResponse({"error": {"message": "rate limited"}}, 429, {"Retry-After": f"{self.retry_after:g}"})
        if mode == "500":
            return JSONResponse({"error": {"message": "internal error"}}, 500)
        if mode == "400":
            return JSONResponse({"error": {"message": "Unsupported parameter: 'max_tokens'"}}, 400)
        if mode == "401":
            return JSONResponse({"error": {"message": "Incorrect API key provided"}}, 401)
        if mode == "404":
            return JSONResponse({"error": {"message": f"The model {body.get('model')!r} does not exist"}}, 404)
        if mode == "slow":
            await asyncio.sleep(self.slow_seconds)
        content = "Hmm, hard to say." if mode == "garbage" else self.policy(messages)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        return JSONResponse({
            "id": f"mock-{key}-{attempt}", "object": "chat.completion", "model": body.get("model", "mock"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 3, "total_tokens": prompt_tokens + 3},
        })

    def start(self) -> MockJudgeServer:
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)
        self._thread.start()
        for _ in range(500):  # bounded: 5 s
            if self._server.started:
                return self
            time.sleep(0.01)
        raise RuntimeError("mock judge server did not start")

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._socket.close()

    def __enter__(self) -> MockJudgeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

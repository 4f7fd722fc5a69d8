"""`python -m jpo.cli.mock_judge [--port 8000] [--delay SECONDS]`: the local OpenAI-compatible judge
(jpo.feedback.mock_server, which prefers the longer output) served until interrupted, for trying a judging
pipeline without a network or an API bill: point `OPENAI_BASE_URL` at the address it prints."""

from __future__ import annotations

import argparse
import time

from jpo.feedback.mock_server import MockJudgeServer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False,  # `--por 1` must not mean --port
                                     description="a local OpenAI-compatible judge that prefers the longer output")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)
    server = MockJudgeServer(delay=args.delay, port=args.port).start()
    print(f"listening on {server.base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()

"""`jpo annotate serve | add-annotator | export`: the human annotation server and what comes out of it."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from datetime import timedelta

from jpo.annotate.store import Store
from jpo.errors import JpoError

ADMIN_TOKEN_ENV = "JPO_ANNOTATE_ADMIN_TOKEN"
MIN_ADMIN_TOKEN_CHARS = 16
DEFAULT_BASE_URL = "http://127.0.0.1:8000"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="{serve,add-annotator,export}")

    serve = verbs.add_parser("serve", help="serve the annotator page and its JSON API",
                             description=f"Serve items to annotators. The admin token is read from ${ADMIN_TOKEN_ENV}.")
    serve.add_argument("--items", required=True, help="comparison items (`jpo pairs` output) or any preference file")
    serve.add_argument("--db", required=True, help="SQLite database (created if absent; reuse it to resume)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000, help="0 picks a free port (printed at start)")
    serve.add_argument("--per-item", type=int, default=2, help="distinct annotators per item (default 2)")
    serve.add_argument("--require-explanation", action="store_true", help="refuse answers without an explanation")
    serve.add_argument("--gold", help="judged items (with label a|b|tie) shown to every annotator to measure accuracy")
    serve.add_argument("--gold-every", type=int, default=10, help="one gold item per this many regular items")
    serve.add_argument("--lease-minutes", type=float, default=30.0,
                       help="an unanswered assignment's slot goes to someone else after this long")

    add = verbs.add_parser("add-annotator", help="create an annotator and print their link")
    add.add_argument("name")
    add.add_argument("--db", required=True)
    add.add_argument("--base-url", help="the server's public address (default: where `serve` last listened)")
    add.add_argument("--json", action="store_true", help='print one JSON object {"name", "token", "url"}')

    export = verbs.add_parser("export", help="write the answers as a preference file for training")
    export.add_argument("--db", required=True)
    export.add_argument("--output", required=True)
    export.add_argument("--aggregate", choices=("majority", "none"), default="majority",
                        help="majority: one row per item with a strict majority; none: one row per answer")
    export.add_argument("--format", choices=("preferences", "items"), default="preferences",
                        help="preferences: {prompt_chosen, chosen, prompt_rejected, rejected} (equal answers "
                             "skipped); items: judged items with label a|b|tie, for `jpo analyze`")


def run(args: argparse.Namespace) -> int:
    return {"serve": serve, "add-annotator": add_annotator, "export": export}[args.verb](args)


# --- serve ---------------------------------------------------------------------------------------------------------

def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from jpo.annotate.app import Settings, create_app
    from jpo.annotate.export import load_annotation_items

    admin_token = os.environ.get(ADMIN_TOKEN_ENV, "")
    if len(admin_token) < MIN_ADMIN_TOKEN_CHARS:
        raise JpoError(f"set {ADMIN_TOKEN_ENV} to a secret of at least {MIN_ADMIN_TOKEN_CHARS} characters "
                       "(e.g. `export " + ADMIN_TOKEN_ENV + "=$(python -c 'import secrets; print(secrets.token_urlsafe())')`)")
    if args.per_item < 1:
        raise JpoError("--per-item must be at least 1")
    if args.gold_every < 1:
        raise JpoError("--gold-every must be at least 1")
    items = load_annotation_items(args.items)
    gold = load_annotation_items(args.gold, gold=True) if args.gold else []
    clash = {i["id"] for i in items} & {g["id"] for g in gold}
    if clash:
        raise JpoError(f"{args.gold}: gold item ids also in {args.items}: {sorted(clash)[:5]}")
    store = Store(args.db)
    added = store.add_items(items) + store.add_items(gold, gold=True)

    try:
        sock = socket.create_server((args.host, args.port))
    except OSError as problem:
        raise JpoError(f"cannot listen on {args.host}:{args.port}: {problem.strerror}") from problem
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    base_url = f"http://{host}:{port}"
    store.set_meta("base_url", base_url)
    settings = Settings(admin_token=admin_token, per_item=args.per_item, require_explanation=args.require_explanation,
                        lease=timedelta(minutes=args.lease_minutes), gold_every=args.gold_every)
    print(f"jpo annotate: {len(items)} items and {len(gold)} gold items ({added} new) in {args.db}; "
          f"{args.per_item} annotators per item; serving on {base_url}/", flush=True)
    print(f"jpo annotate: add annotators with `jpo annotate add-annotator NAME --db {args.db}`", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print("jpo annotate: warning: plain HTTP on a public interface sends tokens in clear; put the server behind "
              "an HTTPS reverse proxy", file=sys.stderr, flush=True)
    config = uvicorn.Config(create_app(store, settings), log_level="info", access_log=True, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])
    store.close()
    return 0


# --- add-annotator -------------------------------------------------------------------------------------------------

def add_annotator(args: argparse.Namespace) -> int:
    store = Store(args.db)
    token = store.add_annotator(args.name)
    base = (args.base_url or store.meta("base_url") or DEFAULT_BASE_URL).rstrip("/")
    store.close()
    url = f"{base}/#token={token}"
    if args.json:
        print(json.dumps({"name": args.name.strip(), "token": token, "url": url}))
    else:
        print(f"{args.name.strip()}: {url}")
        print("(the token is shown only once; the link's #fragment is never sent to the server's logs)",
              file=sys.stderr)
    return 0


# --- export --------------------------------------------------------------------------------------------------------

def export(args: argparse.Namespace) -> int:
    from jpo.annotate.export import aggregate_answers
    from jpo.data import write_jsonl

    if not os.path.exists(args.db):
        raise JpoError(f"{args.db}: no such annotation database")
    store = Store(args.db)
    answers = list(store.export_rows())
    rows, skipped = aggregate_answers(answers, store.items(), aggregate=args.aggregate, output_format=args.format)
    people = store.progress(per_item=1)["annotators"]
    store.close()
    written = write_jsonl(args.output, rows)
    left_out = ", ".join(f"{n} {why}" for why, n in sorted(skipped.items())) or "nothing"
    print(f"jpo annotate export: {len(answers)} answers -> {written} rows in {args.output} "
          f"(aggregate={args.aggregate}; left out: {left_out})")
    scored = [p for p in people if p["gold_answered"]]
    if scored:
        print("gold accuracy: " + ", ".join(f"{p['name']} {p['gold_correct']}/{p['gold_answered']} "
                                            f"({100 * p['gold_accuracy']:.0f}%)" for p in scored))
    return 0

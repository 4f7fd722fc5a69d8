"""Every ```bash block of README.md and docs/*.md runs, as written, in a folder of small local files of the names the
blocks use (prefs.jsonl, sft.jsonl, sft.parquet, dc.jsonl, test.jsonl, gen_*.jsonl), in the order it is written.

What stands in for what a reader has; the command lines themselves are not changed, except where said:
- ``MODEL``: a link of that name to the tiny stories260K model; ``path/to/lm``: stories260K with 2048 positions
  (a judge: the paper's template alone is ~600 of its tokens, beyond its 512); ``RM_A``, ``RM_B``: two tiny
  reward models of those names;
- ``--judge openai:...``: the mock OpenAI-compatible server (jpo.feedback.mock_server) at ``$OPENAI_BASE_URL``;
- the Hugging Face Hub: offline caches of the real dataset repositories (tests/hub_cache.py, built from ../shared);
  a dry run's tiny model takes its tokenizer from ``$JPO_DRY_RUN_TOKENIZER``;
- the absolute placeholders ``/data/jpo-authors`` and ``/models/any-small-tokenizer`` (replaced in the line): the
  shared authors' data and the tiny model;
- ``make demo`` / ``make test``: ``make -n`` from the repository (what they would run: the demo is `jpo demo
  --dry-run` below, and the test suite is this one);
- ``jpo run`` and ``jpo demo``: with ``--dry-run`` added (the whole experiment at toy size);
- ``jpo annotate serve``: in the background (with ``--port 0`` added if port 8000 is taken), stopped at the end;
- the people: after ``jpo annotate add-annotator NAME``, NAME labels every item through the JSON API with the link
  it printed; ``human_items.jsonl`` (people's labels on joint.jsonl) is joint.jsonl with labels.

Every ```python block runs too, as written, with ``python`` in the same folder after the commands: a model the block
names by its Hub name (HUB_MODELS) is the tiny model in the offline hub cache under that name.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Hub model names the documents' Python blocks load, and the shared model that stands in for each in the hub cache
# (with the chat template of the named model's kind: an Instruct model's ChatML, as Qwen2's tokenizer has).
HUB_MODELS = {"Qwen/Qwen2-0.5B-Instruct": ("models", "stories260K")}
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
PLACEHOLDERS = {"/data/jpo-authors": ("data", "jpo-authors"), "/models/any-small-tokenizer": ("models", "stories260K")}


def commands(doc: Path) -> list[str]:
    """The commands of a document's ```bash blocks: continuation lines joined, comment-only lines left out."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", doc.read_text(encoding="utf-8"), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                out.append(line.strip())
    return out


def python_blocks(doc: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)


def hub_models(hub_cache: Path, shared: Path) -> None:
    """Each of HUB_MODELS in `hub_cache` as the Hub's cache lays a model out (snapshot, refs/main)."""
    from hub_cache import COMMIT

    for name, parts in HUB_MODELS.items():
        folder = hub_cache / ("models--" + name.replace("/", "--"))
        snapshot = folder / "snapshots" / COMMIT
        snapshot.mkdir(parents=True)
        for file in shared.joinpath(*parts).iterdir():
            (snapshot / file.name).write_bytes(file.read_bytes())
        config = json.loads((snapshot / "tokenizer_config.json").read_text())
        (snapshot / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": CHATML}))
        (folder / "refs").mkdir()
        (folder / "refs" / "main").write_text(COMMIT)


def is_run(command: str) -> bool:
    words = shlex.split(command, comments=True)
    return words[:2] in (["jpo", "run"], ["jpo", "demo"])


README_TEXT = "".join(doc.read_text(encoding="utf-8") for doc in DOCS)
STAGE_COMMANDS = [(doc.name, c) for doc in DOCS for c in commands(doc) if not is_run(c)]
RUN_COMMANDS = sorted({(doc.name, c) for doc in DOCS for c in commands(doc) if is_run(c)})


def test_the_blocks_are_found():
    """The extraction sees every block (a changed fence would silently test nothing)."""
    assert sum(len(python_blocks(doc)) for doc in DOCS) == README_TEXT.count("```python")
    readme = commands(ROOT / "README.md")
    assert any(c.startswith("jpo analyze --labels human=labels.db ai=judged.jsonl") for c in readme)
    assert len(readme) >= 25 and len(RUN_COMMANDS) >= 10


def test_analyze_takes_several_label_sources_after_one_flag():
    """`--labels human=labels.db ai=judged.jsonl` (the README's form) and `--labels A --labels B` both parse."""
    from jpo.cli import build_parser

    parser = build_parser("analyze")
    one = parser.parse_args(["--labels", "human=labels.db", "ai=judged.jsonl", "--output", "o"])
    two = parser.parse_args(["--labels", "human=labels.db", "--labels", "ai=judged.jsonl", "--output", "o"])
    assert one.labels == two.labels == ["human=labels.db", "ai=judged.jsonl"]


# --- the folder a reader would have ---------------------------------------------------------------------------------


def _short(text: str, n: int = 160) -> str:
    return text[:n]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _reward_model(folder: Path, base: Path, seed: int) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(base, num_labels=1))
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)


def _judge_model(folder: Path, base: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(base, max_position_embeddings=2048).save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)


def prepare(work: Path, shared: Path) -> None:
    """Small local files of the names the README uses, from ../shared (texts cut short: the tiny model is quick)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from jpo.data import load_prompts, read_jsonl

    helpful = shared / "data" / "jpo-authors" / "anthropic_helpful"
    sft = [{"instruction": _short(r["instruction"]), "response": _short(r["response"])}
           for r in read_jsonl(helpful / "val_sft.jsonl")[:80]]
    _write_jsonl(work / "sft.jsonl", sft)
    pq.write_table(pa.Table.from_pylist(sft), work / "sft.parquet")
    prefs = [{k: _short(v) for k, v in r.items()} for r in read_jsonl(helpful / "val_conditional_pref.jsonl")[:40]]
    _write_jsonl(work / "prefs.jsonl", prefs)
    _write_jsonl(work / "dc.jsonl", prefs)
    _write_jsonl(work / "test.jsonl", [{"instruction": _short(r["instruction"]),
                                        "gold_response": _short(r["gold_response"])}
                                       for r in read_jsonl(helpful / "test.jsonl")[:6]])
    for n, system in enumerate(("sft", "dpo", "jpo")):  # three systems' answers to the test prompts
        _write_jsonl(work / f"gen_{system}.jsonl", [{"id": p["id"], "prompt": p["prompt"],
                                                     "response": "Sure. " * (n + 1) + p["prompt"][:40]}
                                                    for p in load_prompts(work / "test.jsonl")])
    model = shared / "models" / "stories260K"
    (work / "MODEL").symlink_to(model, target_is_directory=True)
    (work / "path" / "to").mkdir(parents=True)
    _judge_model(work / "path" / "to" / "lm", model)
    _reward_model(work / "RM_A", model, 0)
    _reward_model(work / "RM_B", model, 1)
    (work / "configs").symlink_to(ROOT / "configs", target_is_directory=True)


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Reader:
    """Runs the documents' commands in `work` with the stand-ins of the module docstring."""

    def __init__(self, work: Path, env: dict[str, str], shared: Path) -> None:
        self.work, self.env, self.shared = work, env, shared
        self.servers: list[subprocess.Popen] = []
        self.seconds: dict[str, float] = {}  # wall-clock seconds per command (printed with -s)

    def command(self, command: str) -> str:
        for placeholder, parts in PLACEHOLDERS.items():
            command = command.replace(placeholder, str(self.shared.joinpath(*parts)))
        words = shlex.split(command, comments=True)
        if words[0] == "make":  # `make demo` is half an hour and `make test` is this suite: what they would run
            return f"make -n -C {shlex.quote(str(ROOT))} {shlex.join(words[1:])}"
        if is_run(command) and "--dry-run" not in words:
            return f"{shlex.join(words)} --dry-run"
        return command

    def run(self, command: str, timeout: float = 600) -> subprocess.CompletedProcess:
        started = time.monotonic()
        try:
            return self._run(self.command(command), timeout)
        finally:
            self.seconds[command] = time.monotonic() - started

    def _run(self, command: str, timeout: float) -> subprocess.CompletedProcess:
        if command.startswith("export "):  # `export NAME=VALUE`: the value as bash computes it, for later commands
            name = command.split()[1].split("=", 1)[0]
            shown = subprocess.run(["bash", "-c", f"{command} && printf %s \"${name}\""], cwd=self.work, env=self.env,
                                   capture_output=True, text=True, timeout=60, check=True)
            self.env[name] = shown.stdout
            return shown
        if command.startswith("jpo annotate serve"):
            return self._serve(command)
        done = subprocess.run(["bash", "-c", command], cwd=self.work, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode == 0 and command.startswith("jpo annotate add-annotator"):
            self._annotate(done.stdout)
        return done

    def _serve(self, command: str) -> subprocess.CompletedProcess:
        words = shlex.split(command, comments=True)
        if "--port" not in words and not _port_free(8000):
            words += ["--port", "0"]
        log = (self.work / "serve.log").open("w")
        server = subprocess.Popen(words, cwd=self.work, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.servers.append(server)
        deadline = time.monotonic() + 60
        while "serving on" not in (self.work / "serve.log").read_text() and server.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        return subprocess.CompletedProcess(words, 0 if server.poll() is None else server.returncode,
                                           (self.work / "serve.log").read_text(), "")

    def _annotate(self, printed: str) -> None:
        """The annotator opens the printed link and labels every item (the page's JSON API), then is done (204)."""
        import httpx

        url = printed.split(": ", 1)[1].strip()
        base, token = url.split("/#token=")
        auth = {"Authorization": f"Bearer {token}"}
        for n in range(10_000):
            job = httpx.get(f"{base}/api/next", headers=auth, timeout=30)
            if job.status_code == 204:
                return
            job = job.json()
            body = {"item_id": job["item_id"], "assignment_id": job["assignment_id"], "choice": "ab"[n % 2]}
            assert httpx.post(f"{base}/api/answer", headers=auth, json=body, timeout=30).status_code == 201

    def human_items(self) -> None:
        """People's labels on the joint items `--export_items joint.jsonl` wrote."""
        items = [json.loads(line) for line in (self.work / "joint.jsonl").read_text().splitlines() if line]
        _write_jsonl(self.work / "human_items.jsonl", [{**item, "label": "ab"[n % 2]} for n, item in enumerate(items)])

    def stop(self) -> None:
        for server in self.servers:
            server.terminate()
            server.wait(timeout=30)


@pytest.fixture(scope="module")
def reader(tmp_path_factory, tiny_model_path):
    from conftest import shared_path
    from hub_cache import build_offline_hub

    from jpo.feedback.mock_server import MockJudgeServer

    shared = shared_path()
    work = tmp_path_factory.mktemp("reader")
    prepare(work, shared)
    hub = build_offline_hub(tmp_path_factory.mktemp("hub"), shared / "data",
                            sorted(p for p in (ROOT / "configs").glob("*.yaml") if p.name != "demo.yaml"))
    hub_models(Path(hub.env()["HF_HUB_CACHE"]), shared)
    shims = work / ".bin"
    shims.mkdir()
    for name, script in (("jpo", f'exec "{sys.executable}" -m jpo "$@"'), ("python", f'exec "{sys.executable}" "$@"')):
        (shims / name).write_text(f"#!/bin/sh\n{script}\n")
        (shims / name).chmod(0o755)
    with MockJudgeServer() as server:
        env = {**os.environ, **hub.env(), "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}",
               "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
               "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "mock-key",
               "JPO_DRY_RUN_TOKENIZER": str(tiny_model_path), "JPO_CACHE": str(work / ".cache"),
               "HF_HOME": str(work / ".hf"), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        env["HF_HUB_CACHE"] = hub.env()["HF_HUB_CACHE"]  # HF_HOME above must not move the hub cache
        reader = Reader(work, env, shared)
        try:
            yield reader
        finally:
            reader.stop()


@pytest.mark.slow
def test_every_stage_command_of_the_docs_runs_as_written(reader):
    """README's and docs' commands other than `jpo run`, in their order (later ones read what earlier ones wrote).
    Every failure is collected, with its output, before the test fails."""
    failures = []
    for doc, command in STAGE_COMMANDS:
        if "--labels human_items.jsonl" in command:
            reader.human_items()
        done = reader.run(command)
        if done.returncode != 0:
            failures.append(f"{doc}: {command}\n  exit {done.returncode}\n{done.stdout[-1500:]}{done.stderr[-3000:]}")
    print("\n".join(f"{seconds:6.1f}s  {command}" for command, seconds in reader.seconds.items()))
    assert not failures, "\n\n".join(failures)
    work = reader.work
    for written in ("items.jsonl", "dh.jsonl", "dm.jsonl", "judged.jsonl", "runs/sft", "runs/jpo", "gen.jsonl",
                    "human_prefs.jsonl", "sel.jsonl", "joint.jsonl", "analysis"):
        assert (work / written).exists(), written


@pytest.mark.slow
def test_every_recipe_command_of_the_docs_dry_runs(reader):
    """`jpo run RECIPE` and `jpo demo`, as the docs write them, with `--dry-run`: recipe, hub data (offline caches of
    the real repos), every stage, the report. Two at a time (each is one process on one thread; the suite has two
    cores); every failure is collected before the test fails."""
    from concurrent.futures import ThreadPoolExecutor

    unique = {}  # the same command in two documents (comments aside) runs once
    for doc, command in RUN_COMMANDS:
        unique.setdefault(shlex.join(shlex.split(reader.command(command), comments=True)), (doc, command))
    # commands of one recipe write one run folder: they run one after the other, in one worker
    groups: dict[str, list[str]] = {}
    for key, (_, command) in unique.items():
        groups.setdefault(shlex.split(key)[2] if key.startswith("jpo run ") else "demo", []).append(command)
    with ThreadPoolExecutor(max_workers=2) as pool:
        finished = dict(zip(groups, pool.map(lambda group: [reader.run(c) for c in group], groups.values()),
                            strict=True))
    results = {command: d for group, ds in finished.items() for command, d in zip(groups[group], ds, strict=True)}
    done = [results[command] for _, command in unique.values()]
    print("\n".join(f"{seconds:6.1f}s  {command}" for command, seconds in reader.seconds.items()))
    failures = [f"{doc}: {command}\n  exit {d.returncode}\n{d.stdout[-1500:]}{d.stderr[-3000:]}"
                for (doc, command), d in zip(unique.values(), done, strict=True)
                if d.returncode != 0 or "(dry run)" not in d.stdout]
    assert not failures, "\n\n".join(failures)


@pytest.mark.slow
def test_every_python_block_of_the_docs_runs_as_written(reader):
    """README's and docs' Python blocks, after the commands (whose files some of them read), each in a process of its
    own in the same folder: the Hub's names resolve to the offline caches, the OpenAI judge to the mock server."""
    failures, trained = [], 0
    for doc in DOCS:
        for block in python_blocks(doc):
            done = subprocess.run([sys.executable, "-c", block], cwd=reader.work, env=reader.env, capture_output=True,
                                  text=True, timeout=900)
            if done.returncode != 0:
                failures.append(f"{doc.name}:\n{block}\n  exit {done.returncode}\n{done.stderr[-3000:]}")
            trained += "train_runtime" in done.stdout + done.stderr  # the Trainer's closing log line
    assert not failures, "\n\n".join(failures)
    assert trained >= 2  # the drop-in block's training and the online block's rounds
    assert (reader.work / "runs" / "online-jpo" / "config.json").exists()  # "the policy is saved in output_dir"

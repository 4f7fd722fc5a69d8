"""Offline Hugging Face caches of the real dataset repositories jpo's named sources read, built from ../shared.

`build_snapshots(root)` lays each repository out as the Hub does (``datasets--<org>--<name>/snapshots/<commit>/``
with ``refs/main``, the repo's own file names, README ``configs:`` where the repo has them), filled with the shared
samples converted to that repo's columns. `hub_offline(root, snapshots)` then makes `datasets.load_dataset` and
`huggingface_hub.hf_hub_download` run offline against them, as a user's machine does after a first online run:
`hf_hub_download` reads the hub cache; `load_dataset(repo, ...)` offline reads the *datasets* cache, which a first
online run fills. That first run is the one thing simulated here: while `building` is on, a `load_dataset` call of
a cached repository first prepares its datasets-cache entry with datasets' own builder over the snapshot's files
and stores it where the offline lookup of the same call looks (``<org>___<name>/<config id>/<version>/<commit>``).
Every later call, and every call once `building` is off, is the real `datasets.load_dataset`, offline.

Nothing is copied from ../shared into the project: everything is written under the test's temporary folder.
"""

from __future__ import annotations

import ast
import contextlib
import gzip
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

COMMIT = "0" * 39 + "1"  # the snapshot revision (any 40 hex digits)
ROWS = 40  # rows per split: enough for every recipe's data stage, small enough to build in seconds


def _write(path: Path, content: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _parquet(rows: list[dict[str, Any]]) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


def _configs_readme(configs: dict[str, dict[str, str]]) -> str:
    """A dataset card whose YAML `configs:` maps each config's splits to file patterns, as the Hub's parquet repos."""
    lines = ["---", "configs:"]
    for config, splits in configs.items():
        lines += [f"- config_name: {config}", "  data_files:"]
        lines += [f"  - split: {split}\n    path: {pattern}" for split, pattern in splits.items()]
    return "\n".join([*lines, "---", "# built offline by tests/hub_cache.py from the shared samples", ""])


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]


def repositories(shared: Path) -> dict[str, dict[str, bytes | str]]:
    """Each real repository jpo's sources name -> its files (path in the repo -> content), from ../shared/data."""
    authors = shared / "jpo-authors"
    tldr_all = _read_jsonl(authors / "tldr" / "test.json")
    # the test posts (evaluation prompts) and, apart from them, the posts of the training data: a training row whose
    # instruction is an evaluation prompt is left out by the data stage
    tldr_test, tldr_test_posts = tldr_all[:ROWS], tldr_all[ROWS: 2 * ROWS]
    hh_sft = _read_jsonl(authors / "anthropic_helpful" / "val_sft.jsonl")[:ROWS]
    hh_pref = _read_jsonl(authors / "anthropic_helpful" / "val_conditional_pref.jsonl")[:ROWS]
    hh_test = _read_jsonl(authors / "anthropic_helpful" / "test.jsonl")[:ROWS]
    harmless = _read_jsonl(shared / "hh-rlhf" / "harmless-base" / "test.jsonl.gz")[: 2 * ROWS]
    ultra = _read_jsonl(shared / "ultrafeedback_sample" / "train_clean.jsonl")[: 2 * ROWS]
    alpaca = json.loads((shared / "alpaca_eval" / "text_davinci_003_model_outputs.json").read_text())[:ROWS]

    def other(rows: list[dict], i: int, key: str) -> str:  # a text of another row: a plausible worse answer
        return rows[(i + 1) % len(rows)][key]

    # openai/summarize_from_feedback: parquet per config (comparisons, axis); a comparison holds the post in `info`
    # (CNN/DM rows hold an `article` instead), two summaries and the labeller's choice.
    comparisons = [{"info": {"id": r["instruction_id"], "post": r["instruction"], "title": r["title"],
                             "subreddit": r["subreddit"], "article": None, "site": None},
                    "summaries": [{"text": " " + r["gold_response"], "policy": "ref", "note": None},
                                  {"text": " " + other(tldr_test_posts, i, "gold_response"), "policy": "sup",
                                   "note": None}],
                    "choice": i % 2, "worker": f"w{i % 5}", "batch": "batch3", "split": "train",
                    "extra": {"confidence": 7}} for i, r in enumerate(tldr_test_posts)]
    for row in comparisons[1::2]:  # the labeller chose the second summary: swap, so the gold one stays preferred
        row["summaries"].reverse()
    comparisons.append({"info": {"id": "cnndm-1", "post": None, "title": None, "subreddit": None,
                                 "article": "An article from CNN/DM, not a Reddit post.", "site": "cnn"},
                        "summaries": [{"text": "a", "policy": "ref", "note": None},
                                      {"text": "b", "policy": "sup", "note": None}],
                        "choice": 0, "worker": "w0", "batch": "cnndm1", "split": "train", "extra": {"confidence": 5}})
    half = len(comparisons) // 2
    summarize = {"README.md": _configs_readme({"comparisons": {"train": "comparisons/train-*",
                                                                "validation": "comparisons/validation-*"},
                                               "axis": {"test": "axis/test-*", "validation": "axis/validation-*"}}),
                 "comparisons/train-00000-of-00001.parquet": _parquet(comparisons[:half] + comparisons[-1:]),
                 "comparisons/validation-00000-of-00001.parquet": _parquet(comparisons[half:-1])}
    axis = [{"info": c["info"], "summary": c["summaries"][0], "worker": c["worker"], "batch": c["batch"],
             "split": "test"} for c in comparisons[:4]]
    summarize["axis/test-00000-of-00001.parquet"] = summarize["axis/validation-00000-of-00001.parquet"] = \
        _parquet(axis)

    # vwxyzjn/summarize_from_feedback_tldr_3_filtered: data/{split}-*.parquet, one post and its summary per row.
    posts = [{"id": r["instruction_id"], "subreddit": r["subreddit"], "title": r["title"], "post": r["instruction"],
              "summary": " " + r["gold_response"]} for r in tldr_test_posts]
    tldr_sft = {"README.md": _configs_readme({"default": {s: f"data/{s}-*" for s in ("train", "validation", "test")}})}
    for split, rows in (("train", posts[:20]), ("validation", posts[20:30]), ("test", posts[30:])):
        tldr_sft[f"data/{split}-00000-of-00001.parquet"] = _parquet(rows)

    # Anthropic/hh-rlhf: no configs, one folder per subset of gzipped JSON Lines (`data_dir=helpful-base`).
    hh = {"README.md": "---\nlicense: mit\n---\n# HH-RLHF (built offline by tests/hub_cache.py)\n"}
    for subset in ("helpful-base", "harmless-base"):
        hh[f"{subset}/train.jsonl.gz"] = gzip.compress(_jsonl(harmless[:ROWS]).encode())
        hh[f"{subset}/test.jsonl.gz"] = gzip.compress(_jsonl(harmless[ROWS:]).encode())

    # trl-lib/ultrafeedback_binarized: data/{train,test}-*.parquet, conversational chosen/rejected with scores.
    def ultra_row(r: dict) -> dict:
        scores = r["metadata"] if isinstance(r["metadata"], dict) else ast.literal_eval(r["metadata"])
        return {"chosen": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["chosen"]}],
                "rejected": [{"role": "user", "content": r["prompt"]},
                             {"role": "assistant", "content": r["rejected"]}],
                "score_chosen": scores["score_chosen"], "score_rejected": scores["score_rejected"]}

    ultrafeedback = {"README.md": _configs_readme({"default": {"train": "data/train-*", "test": "data/test-*"}}),
                     "data/train-00000-of-00001.parquet": _parquet([ultra_row(r) for r in ultra[:ROWS]]),
                     "data/test-00000-of-00001.parquet": _parquet([ultra_row(r) for r in ultra[ROWS:]])}

    # jointpreferences/sft_and_pref_data: the authors' files under data/<task>/ (their released names).
    def joint(rows: list[dict]) -> list[dict]:  # their D_H: the chosen side of row i against the rejected of i+1
        return [{"i_chosen": r["i_chosen"], "r_chosen": r["r_chosen"], "i_reject": other(rows, i, "i_reject"),
                 "r_reject": other(rows, i, "r_reject")} for i, r in enumerate(rows)]

    tldr_pref = [{"i_chosen": p["post"], "r_chosen": p["summary"], "i_reject": p["post"],
                  "r_reject": " " + other(posts, i, "summary")} for i, p in enumerate(posts)]
    tldr_sft_rows = [{"instruction": p["post"], "response": p["summary"]} for p in posts]
    authors_repo: dict[str, bytes | str] = {"README.md": "---\nlicense: mit\n---\n# JPO authors' data (offline)\n"}
    for task, sft, pref, test, test_name in (
            ("tldr", tldr_sft_rows, tldr_pref, tldr_test, "test.json"),
            ("anthropic_helpful", hh_sft, hh_pref, hh_test, "test.jsonl")):
        authors_repo[f"data/{task}/train_sft.jsonl"] = authors_repo[f"data/{task}/val_sft.jsonl"] = _jsonl(sft)
        authors_repo[f"data/{task}/train_conditional_pref.jsonl"] = _jsonl(pref)
        authors_repo[f"data/{task}/val_conditional_pref.jsonl"] = _jsonl(pref)
        authors_repo[f"data/{task}/train_joint_pref.jsonl"] = _jsonl(joint(pref))
        authors_repo[f"data/{task}/{test_name}"] = _jsonl(test)

    # tatsu-lab/alpaca_eval: one JSON array (the repo's loading script cannot run; jpo fetches the file).
    alpaca_repo = {"README.md": "# AlpacaEval (built offline)\n", "alpaca_eval.py": "# the repo's loading script\n",
                   "alpaca_eval.json": json.dumps([{"dataset": r.get("dataset", "x"), "instruction": r["instruction"],
                                                    "output": r["output"], "generator": r["generator"]}
                                                   for r in alpaca])}
    return {"openai/summarize_from_feedback": summarize,
            "vwxyzjn/summarize_from_feedback_tldr_3_filtered": tldr_sft,
            "Anthropic/hh-rlhf": hh,
            "trl-lib/ultrafeedback_binarized": ultrafeedback,
            "jointpreferences/sft_and_pref_data": authors_repo,
            "tatsu-lab/alpaca_eval": alpaca_repo}


def build_snapshots(hub_cache: Path, shared: Path) -> dict[str, Path]:
    """Write every repository into `hub_cache` in the Hub cache's layout; returns repo -> snapshot folder."""
    snapshots = {}
    for repo, files in repositories(shared).items():
        folder = hub_cache / ("datasets--" + repo.replace("/", "--"))
        snapshot = folder / "snapshots" / COMMIT
        for name, content in files.items():
            _write(snapshot / name, content)
        _write(folder / "refs" / "main", COMMIT)
        snapshots[repo] = snapshot
    return snapshots


class HubOffline:
    """See the module docstring. `calls` lists every (repo, kwargs) `load_dataset` was asked for."""

    def __init__(self, root: Path, snapshots: dict[str, Path]) -> None:
        self.root, self.snapshots = root, snapshots
        self.datasets_cache = root / "datasets"
        self.building = False
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _prepare(self, path: str, name: str | None, data_dir: str | None, data_files: Any) -> None:
        """What a first online `load_dataset(path, name, data_dir=, data_files=)` leaves in the datasets cache."""
        import datasets
        from datasets.naming import camelcase_to_snakecase

        org, repo_name = path.split("/")
        link = self.root / "repos" / repo_name  # the builder names its cache after the folder: the repo's name
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(self.snapshots[path], target_is_directory=True)
        scratch = self.root / "scratch"
        builder = datasets.load_dataset_builder(str(link), name=name, data_dir=data_dir, data_files=data_files,
                                                cache_dir=str(scratch))
        builder.download_and_prepare()
        built = Path(builder.cache_dir)
        config_kwargs = {k: v for k, v in (("data_dir", data_dir), ("data_files", data_files)) if v is not None}
        config_id = (datasets.BuilderConfig(name or "default").create_config_id(config_kwargs)
                     if name or config_kwargs else builder.config.name)
        target = (self.datasets_cache / f"{org}___{camelcase_to_snakecase(repo_name)}" / config_id
                  / built.parent.name / COMMIT)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(built), str(target))
        shutil.rmtree(scratch, ignore_errors=True)

    @contextlib.contextmanager
    def active(self) -> Iterator[HubOffline]:
        import datasets
        import huggingface_hub

        real_load_dataset = datasets.load_dataset

        def load_dataset(path: str, name: str | None = None, data_dir: str | None = None, data_files: Any = None,
                         **kwargs: Any):
            self.calls.append((path, {"name": name, "data_dir": data_dir, "data_files": data_files, **kwargs}))
            if self.building and path in self.snapshots:
                self._prepare(path, name, data_dir, data_files)
            return real_load_dataset(path, name=name, data_dir=data_dir, data_files=data_files, **kwargs)

        with pytest.MonkeyPatch.context() as patch:
            for variable, value in self.env().items():
                patch.setenv(variable, value)
            # datasets and huggingface_hub read these once, at import: set what they read
            patch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
            patch.setattr(datasets.config, "HF_DATASETS_CACHE", self.datasets_cache)
            patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
            patch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(self.root / "hub"))
            patch.setattr(datasets, "load_dataset", load_dataset)
            yield self

    def env(self) -> dict[str, str]:
        """Environment variables for a subprocess (a `jpo` command) to read these caches offline."""
        return {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_CACHE": str(self.root / "hub"),
                "HF_DATASETS_CACHE": str(self.datasets_cache)}


def first_split(name: str, kind: str) -> str:
    """`train`, or the first split of a part whose repo files are named per split (the authors' test prompts)."""
    from jpo.data.sources import SOURCES

    hub = SOURCES[name].parts[kind].hub
    named = hub.data_files or hub.files
    return "train" if not named or "train" in named else next(iter(named))


def source_parts() -> list[tuple[str, str, str | None]]:
    """Every (source, kind, task) of the catalogue."""
    from jpo.data.sources import SOURCES

    return [(name, kind, task) for name, source in SOURCES.items() for kind in source.parts
            for task in (source.tasks or (None,))]


def build_offline_hub(root: Path, shared: Path, recipes: list[Path]) -> HubOffline:
    """Snapshots of every repo, and the datasets cache a first online run of every source part and of every
    recipe's data stage leaves (see `HubOffline`)."""
    from jpo.data.sources import load_source
    from jpo.runner.data import prepare_data
    from jpo.runner.recipe import load_recipe

    offline = HubOffline(root, build_snapshots(root / "hub", shared))
    with offline.active():
        offline.building = True
        for name, kind, task in source_parts():
            load_source(name, first_split(name, kind), kind=kind, task=task)
        for recipe in recipes:
            prepare_data(load_recipe(recipe), root / "first" / recipe.stem, {})
        offline.building = False
    return offline

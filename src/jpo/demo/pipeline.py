"""The demo, stage by stage: task data -> tiny model -> oracle feedback (D_C, D_H) -> SFT -> DPO / KTO / JPO and
ablations -> generation at three temperatures -> win-rate against gold.

Everything goes through the library's public pieces (jpo.data pairing and mixing, the judge runner with its
order-swap rule, jpo.train, jpo.evaluate, jpo.analysis), so the demo exercises the same code a user's real run does.
Annotation uses a *noisy* oracle (two such annotators agree about as often as the paper's humans); evaluation uses
the exact one, because the point of a synthetic task is to score against the known truth.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jpo.data import items_to_preferences, read_jsonl, write_jsonl
from jpo.demo.config import DemoConfig
from jpo.demo.stages import Stages


@dataclass(frozen=True)
class Method:
    """One trained model: its label in the results, its objective (None = the SFT model) and its data."""

    label: str
    objective: str | None
    data: str
    main: bool = True


METHODS: tuple[Method, ...] = (
    Method("SFT", None, "D_S"),
    Method("DPO", "dpo", "D_C"),
    Method("KTO", "kto", "D_C"),
    Method("JPO", "jpo", "D_C ∪ D_H"),
    Method("JPO (D_H only)", "jpo", "D_H", main=False),
    Method("JPO (50:50 mix)", "jpo", "D_M 50:50", main=False),
)


def oracle_spec(config: DemoConfig, seed: int | None) -> str:
    """The annotator (noisy, seeded) or, with seed None, the exact judge used for evaluation."""
    if seed is None:
        return f"oracle:margin={config.tie_margin}"
    return f"oracle:temperature={config.annotator_temperature},seed={seed},margin={config.tie_margin}"


def judge(items: list[dict[str, Any]], spec: str, progress: bool, description: str):
    from jpo.feedback import make_judge
    from jpo.feedback.runner import judge_items, labeled_rows

    run = judge_items(items, make_judge(spec), progress=progress, description=description)
    return labeled_rows(items, run), run


class Demo:
    def __init__(self, config: DemoConfig, out: Path, *, force: bool = False, progress: bool = True,
                 echo: Callable[[str], None] = print) -> None:
        self.config, self.out, self.progress, self.echo = config, out, progress, echo
        self.stages = Stages(out, force=force, echo=echo)
        self.keys: dict[str, str] = {}

    # --- shared stages --------------------------------------------------------------------------------------
    def data(self) -> Path:
        from jpo.tasks import Sizes, build_splits

        c = self.config
        sizes = Sizes(sft=c.sft_size, pool=c.pool_size, validation=c.validation_size, test=c.test_size)
        settings = {"sizes": vars(sizes), "seed": c.data_seed}

        def work(folder: Path) -> dict[str, Any]:
            splits = build_splits(sizes, c.data_seed)
            for name, rows in splits.items():
                write_jsonl(folder / f"{name}.jsonl", rows)
            counts = {name: len(rows) for name, rows in splits.items()}
            return {"counts": counts, "line": "task data: " + ", ".join(f"{k} {v}" for k, v in counts.items())}

        folder, _ = self.stages.run("data", settings, work)
        self.keys["data"] = folder.name
        return folder

    def base_model(self, data: Path) -> Path:
        from jpo.demo.model import save_base_model

        c = self.config
        settings = {"data": data.name, "vocab": c.vocab_size, "hidden": c.hidden_size, "layers": c.num_layers,
                    "heads": c.num_heads, "intermediate": c.intermediate_size}

        def work(folder: Path) -> dict[str, Any]:
            texts = [row["prompt"] for name in ("sft", "pool") for row in read_jsonl(data / f"{name}.jsonl")]
            texts += [row["response"] for row in read_jsonl(data / "sft.jsonl")]
            texts += [row[k] for row in read_jsonl(data / "pool.jsonl") for k in ("response_a", "response_b")]
            params = save_base_model(texts, folder / "model", vocab_size=c.vocab_size, hidden_size=c.hidden_size,
                                     layers=c.num_layers, heads=c.num_heads, intermediate_size=c.intermediate_size)
            return {"parameters": params,
                    "line": f"tiny Llama: {params / 1e6:.2f}M parameters, BPE tokenizer ({c.vocab_size} max)"}

        folder, _ = self.stages.run("base-model", settings, work)
        return folder / "model"

    def feedback(self, data: Path) -> Path:
        from jpo.analysis.agreement import agreement
        from jpo.analysis.interplay import interplay
        from jpo.data.pairs import make_pairs

        c = self.config
        settings = {"data": data.name, "temperature": c.annotator_temperature, "seed": c.annotator_seed,
                    "second": c.second_annotator_seed, "margin": c.tie_margin, "pairing_seed": c.pairing_seed}

        def work(folder: Path) -> dict[str, Any]:
            pool = read_jsonl(data / "pool.jsonl")
            conditional = [{"id": row["id"], "prompt_a": row["prompt"], "response_a": row["response_a"],
                            "prompt_b": row["prompt"], "response_b": row["response_b"], "family": row["family"]}
                           for row in pool]
            # The paper's D_H: one response per instruction (picked at random), each paired with another instruction.
            rng = random.Random(c.pairing_seed)
            instances = [{"prompt": row["prompt"], "response": rng.choice([row["response_a"], row["response_b"]])}
                         for row in pool]
            joint = make_pairs(instances, strategy="random", seed=c.pairing_seed)
            labelled, stats = {}, {}
            for name, items in (("conditional", conditional), ("joint", joint)):
                rows, run = judge(items, oracle_spec(c, c.annotator_seed), self.progress, f"oracle {name}")
                second, _ = judge(items, oracle_spec(c, c.second_annotator_seed), self.progress,
                                  f"2nd annotator {name}")
                truth, _ = judge(items, oracle_spec(c, None), self.progress, f"exact {name}")
                write_jsonl(folder / f"{name}_labeled.jsonl", rows)
                labelled[name] = rows
                agree = agreement([r["label"] for r in rows], [r["label"] for r in second])
                exact = agreement([r["label"] for r in rows], [r["label"] for r in truth])
                stats[name] = {"items": len(items), "labels": run.counts,
                               "annotator_agreement_percent": agree.percent, "kappa": agree.kappa,
                               "agreement_with_exact_oracle_percent": exact.percent}
            d_c, _ = items_to_preferences(labelled["conditional"])
            d_h, _ = items_to_preferences(labelled["joint"])
            write_jsonl(folder / "D_C.jsonl", d_c)
            write_jsonl(folder / "D_H.jsonl", d_h)
            result = interplay(labelled["conditional"], labelled["joint"]).to_dict()
            (folder / "interplay.json").write_text(json.dumps(result, indent=1))
            stats["D_C"], stats["D_H"] = len(d_c), len(d_h)
            stats["interplay"] = result
            line = (f"oracle feedback: D_C {len(d_c)} decisive of {len(conditional)} conditional items, D_H {len(d_h)} "
                    f"of {len(joint)} joint items; two annotators agree "
                    f"{stats['conditional']['annotator_agreement_percent']:.1f}% (conditional), "
                    f"{stats['joint']['annotator_agreement_percent']:.1f}% (joint)")
            return {**stats, "line": line}

        folder, _ = self.stages.run("feedback", settings, work)
        return folder

    # --- per-seed training -----------------------------------------------------------------------------------
    def _common(self, folder: Path, seed: int) -> dict[str, Any]:
        return {"output_dir": str(folder / "model"), "seed": seed, "data_seed": seed, "logging_steps": 5,
                "save_strategy": "no", "report_to": "none", "max_length": self.config.max_length,
                "disable_tqdm": not self.progress, "use_cpu": True}

    def sft(self, base: Path, data: Path, seed: int) -> tuple[Path, dict]:
        from jpo.train import train_sft

        hyper = self.config.sft
        settings = {"base": base.parent.name, "data": data.name, "hyper": hyper, "seed": seed,
                    "max_length": self.config.max_length}

        def work(folder: Path) -> dict[str, Any]:
            rows = [{"prompt": r["prompt"], "response": r["response"]} for r in read_jsonl(data / "sft.jsonl")]
            result = train_sft({"model_name_or_path": str(base), **self._common(folder, seed), **hyper}, rows)
            return {"train_loss": result.train_loss, "rows": len(rows),
                    "line": f"SFT seed {seed}: {len(rows)} demonstrations, mean loss {result.train_loss:.3f}"}

        folder, summary = self.stages.run(f"sft-s{seed}", settings, work)
        return folder / "model", summary

    def training_rows(self, method: Method, feedback: Path, joint_size: int | None = None) -> list[dict[str, Any]]:
        from jpo.data.pairs import mix

        d_c, d_h = read_jsonl(feedback / "D_C.jsonl"), read_jsonl(feedback / "D_H.jsonl")
        if joint_size is not None:
            d_h = random.Random(self.config.pairing_seed).sample(d_h, min(joint_size, len(d_h)))
        if method.data == "D_C":
            return d_c
        if method.data == "D_H":
            return d_h
        if method.data == "D_C ∪ D_H":
            return mix(d_c, d_h, seed=self.config.pairing_seed)[0]
        if method.data == "D_M 50:50":
            return mix(d_c, d_h, total=len(d_c), joint_fraction=0.5, seed=self.config.pairing_seed)[0]
        raise ValueError(method.data)

    def preference(self, method: Method, sft: Path, feedback: Path, seed: int, *, joint_size: int | None = None,
                   tag: str | None = None) -> tuple[Path, dict]:
        from jpo.train import train_preferences

        hyper = self.config.kto if method.objective == "kto" else self.config.preference
        settings = {"sft": sft.parent.name, "feedback": feedback.name, "method": method.label,
                    "objective": method.objective, "data": method.data, "hyper": hyper, "seed": seed,
                    "joint_size": joint_size, "max_length": self.config.max_length}
        name = tag or method.label.lower().replace(" ", "-").replace("(", "").replace(")", "").replace(":", "")

        def work(folder: Path) -> dict[str, Any]:
            rows = self.training_rows(method, feedback, joint_size)
            config = {"model_name_or_path": str(sft), "objective": method.objective, **self._common(folder, seed),
                      **hyper}
            if method.objective != "kto":
                config |= {"precompute_ref_log_probs": True, "ref_cache_dir": str(self.out / "cache" / "ref_logps")}
            result = train_preferences(config, rows)
            (folder / "log_history.json").write_text(json.dumps(result.log_history))
            return {"rows": len(rows), "train_loss": result.train_loss,
                    "line": f"{method.label} seed {seed}: {len(rows)} rows of {method.data}, "
                            f"mean loss {result.train_loss:.3f}"}

        folder, summary = self.stages.run(f"{name}-s{seed}", settings, work)
        return folder / "model", summary

    # --- evaluation --------------------------------------------------------------------------------------------
    def generations(self, model: Path, data: Path, label: str, seed: int, split: str = "test",
                    temperatures: list[float] | None = None) -> list[dict[str, Any]]:
        from jpo.evaluate.generate import generate, load_model_and_tokenizer

        temperatures = temperatures or self.config.temperatures
        settings = {"model": model.parent.name, "data": data.name, "split": split, "temperatures": temperatures,
                    "max_new_tokens": self.config.max_new_tokens, "seed": seed}
        slug = label.lower().replace(" ", "-").replace("(", "").replace(")", "").replace(":", "")

        def work(folder: Path) -> dict[str, Any]:
            prompts = [{k: r[k] for k in ("id", "prompt", "family")} for r in read_jsonl(data / f"{split}.jsonl")]
            model_, tokenizer = load_model_and_tokenizer(str(model), device="cpu")
            rows = generate(model_, tokenizer, prompts, temperatures, seeds=[seed],
                            max_new_tokens=self.config.max_new_tokens,
                            batch_size=self.config.generation_batch_size, generator=label, progress=self.progress)
            write_jsonl(folder / "generations.jsonl", rows)
            return {"rows": len(rows), "line": f"{label} seed {seed}: {len(rows)} generations ({split})"}

        folder, _ = self.stages.run(f"generate-{slug}-s{seed}-{split}", settings, work)
        return read_jsonl(folder / "generations.jsonl")


def score_against_gold(generations: list[dict[str, Any]], references: dict[str, str], config: DemoConfig,
                       progress: bool = False) -> list[dict[str, Any]]:
    """Each generation judged against its prompt's gold reference by the exact oracle, both orders; adds
    `outcome` (win | tie | loss | invalid). Joined by id, never by position."""
    from jpo.evaluate import outcome_of_label
    from jpo.tasks import quality

    items = [{"id": f"{g['id']}:{g['temperature']}:{g['seed']}", "prompt": g["prompt"], "response_a": g["response"],
              "response_b": references[g["id"]]} for g in generations]
    rows, _ = judge(items, oracle_spec(config, None), progress, "judging vs gold")
    return [{**g, "outcome": outcome_of_label(r["label"], "a"), "quality": quality(g["prompt"], g["response"])}
            for g, r in zip(generations, rows, strict=True)]


def summarise(label: str, data: str, scored: list[dict[str, Any]], temperatures: list[float]) -> dict[str, Any]:
    """A results row: win-rate per temperature and averaged over temperatures (percent), bootstrap intervals
    resampling prompts (all seeds and temperatures of one prompt move together)."""
    from jpo.evaluate import win_rate

    per_t, ci_t = {}, {}
    for t in temperatures:
        subset = [s for s in scored if s["temperature"] == t]
        rate = win_rate([s["outcome"] for s in subset], [s["id"] for s in subset])
        per_t[str(t)] = round(100 * rate.estimate, 2)
        ci_t[str(t)] = [round(100 * rate.low, 2), round(100 * rate.high, 2)]
    overall = win_rate([s["outcome"] for s in scored], [s["id"] for s in scored])
    counts = {k: sum(s["outcome"] == k for s in scored) for k in ("win", "tie", "loss", "invalid")}
    mean_quality = sum(s["quality"] for s in scored) / max(1, len(scored))
    return {"method": label, "data": data, "win_rate": per_t, "average": round(100 * overall.estimate, 2),
            "mean_quality": round(100 * mean_quality, 2),
            "ci95": [round(100 * overall.low, 2), round(100 * overall.high, 2)], "ci95_per_temperature": ci_t,
            "outcomes": counts}


def run_demo(config: DemoConfig, out: Path, *, seeds: int = 1, scaling: bool = False, force: bool = False,
             progress: bool = True, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole experiment; returns what the report needs (results rows, data sizes, feedback stats, curves)."""
    demo = Demo(config, out, force=force, progress=progress, echo=echo)
    data = demo.data()
    base = demo.base_model(data)
    feedback = demo.feedback(data)
    feedback_stats = json.loads((feedback / "stage.json").read_text())["summary"]
    references = {r["id"]: r["reference"] for r in read_jsonl(data / "test.jsonl")}
    scored: dict[str, list[dict[str, Any]]] = {m.label: [] for m in METHODS}
    sizes: dict[str, int] = {}
    curves: dict[str, list[list[dict[str, Any]]]] = {m.label: [] for m in METHODS if m.objective}
    scaling_scored: dict[int, list[dict[str, Any]]] = {}
    # One SFT model is the common starting point; seeds repeat the preference training and the sampling from it
    # (the paper likewise aligns one SFT checkpoint per dataset).
    sft, sft_summary = demo.sft(base, data, 0)
    sizes["SFT"] = sft_summary["rows"]
    for seed in range(seeds):
        models = {"SFT": sft}
        for method in METHODS[1:]:
            models[method.label], summary = demo.preference(method, sft, feedback, seed)
            sizes[method.label] = summary["rows"]
            curves[method.label].append(json.loads((models[method.label].parent / "log_history.json").read_text()))
        for label, model in models.items():
            scored[label] += score_against_gold(demo.generations(model, data, label, seed), references, config)
        if scaling:
            joint_only = next(m for m in METHODS if m.data == "D_H")
            for fraction in config.scaling_fractions:
                size = round(fraction * feedback_stats["D_H"])
                if size >= feedback_stats["D_H"]:  # all of D_H: the "JPO (D_H only)" model itself
                    scaling_scored.setdefault(feedback_stats["D_H"], []).extend(
                        s for s in scored[joint_only.label] if s["seed"] == seed)
                    continue
                model, _ = demo.preference(joint_only, sft, feedback, seed, joint_size=size,
                                           tag=f"scaling-jpo-dh{size}")
                generations = demo.generations(model, data, f"scaling-dh{size}", seed)
                scaling_scored.setdefault(size, []).extend(score_against_gold(generations, references, config))
    rows = [summarise(m.label, m.data, scored[m.label], config.temperatures) for m in METHODS]
    for row in rows:
        row["rows"] = sizes[row["method"]]
        row["seeds"] = seeds
    from jpo.evaluate import paired_difference

    paired = {f"JPO - {other}": paired_difference(scored["JPO"], scored[other]) for other in ("DPO", "KTO", "SFT")}
    scaling_rows = [{**summarise(f"JPO (D_H, {size} joint comparisons)", "D_H", items, config.temperatures),
                     "joint_comparisons": size, "rows": size} for size, items in sorted(scaling_scored.items())]
    return {"rows": rows, "paired": paired, "scaling": scaling_rows, "feedback": feedback_stats, "curves": curves,
            "timings": demo.stages.timings, "seeds": seeds, "config": config.to_dict()}

"""Model cards: README.md beside each model `jpo run` trains.

A card says what a checkpoint is without the run folder around it: base model, objective, data (sources and what
was left out), hyperparameters, the training curve's start and end, and -- once evaluated -- its win-rates. The
YAML front matter is Hugging Face's model-card metadata (`huggingface_hub.ModelCardData`: base_model, datasets,
tags), written and read through `huggingface_hub.ModelCard`, so the hub renders it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OBJECTIVES = {
    "sft": "supervised fine-tuning on instruction-response pairs",
    "jpo": "JPO: DPO's sigmoid loss on joint log-probabilities log p(I, R) (Bansal et al., 2025)",
    "dpo": "DPO: sigmoid loss on response log-probabilities (Rafailov et al., 2023)",
    "ipo": "IPO: squared loss on response log-ratios (Azar et al., 2023)",
    "jipo": "joint IPO: IPO's loss on joint log-probabilities",
    "kto": "KTO: prospect-theoretic loss on unpaired desirable/undesirable responses (Ethayarajh et al., 2024)",
}
EVALUATION_MARK = "## Evaluation"


def _yaml(values: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(values, sort_keys=False, allow_unicode=True).strip()


def write_model_card(model_dir: str | Path, *, name: str, objective: str, base_model: str | None,
                     config: dict[str, Any], data_files: list[str], data_reports: dict[str, Any],
                     log_history: list[dict[str, Any]], description: str = "", datasets: list[str] | None = None,
                     prompt_template: str | None = None) -> Path:
    """Write `model_dir/README.md` for a model trained by `jpo run`'s recipe `name`. `base_model`: the hub name or
    folder trained from (None: a model the recipe built); `datasets`: hub datasets of the data; `data_reports`:
    per data part, what was read and left out; `log_history`: the Trainer's."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    losses = [entry["loss"] for entry in log_history if "loss" in entry]
    adapter = (model_dir / "adapter_config.json").exists()
    base = base_model or "a small Llama built by the recipe"
    from huggingface_hub import ModelCard, ModelCardData

    meta = ModelCardData(base_model=base, library_name="peft" if adapter else "transformers",
                         tags=list(dict.fromkeys(["jpo", objective, "sft" if objective == "sft"
                                                  else "preference-optimization"])),
                         datasets=datasets or [])
    lines = [f"# {name}: {objective}", ""]
    if description:
        lines += [description.strip(), ""]
    lines += ["Trained with jpo's `jpo run` "
              f"({'a LoRA adapter' if adapter else 'full weights'} on `{base}`).", "",
              "## Objective", "", OBJECTIVES.get(objective, objective), "", "## Data", ""]
    for path in data_files:
        lines.append(f"- `{path}`")
    for part, report in data_reports.items():
        if isinstance(report, dict) and "read" in report:
            left = ", ".join(f"{n} {why}" for why, n in report.get("left_out", {}).items() if n) or "none"
            lines.append(f"- {part}: `{report['name']}:{report['split']}` ({report['kind']}): {report['read']} read, "
                         f"{report['kept']} kept, {report['duplicates']} repeated instructions merged; left out: {left}")
        elif isinstance(report, int | str):
            lines.append(f"- {part}: {report}")
    if prompt_template:
        lines += ["", f"Prompt template: `{json.dumps(prompt_template)[1:-1]}`"]
    lines += ["", "## Hyperparameters", "", "As trained (`jpo sft` / `jpo train --config` with these values):", "",
              "```yaml", _yaml(config), "```", "", "## Training", ""]
    if losses:
        lines.append(f"{len(losses)} logged steps; loss {losses[0]:.4f} at the first, {losses[-1]:.4f} at the last.")
        last = next((e for e in reversed(log_history) if "rewards/accuracies" in e), None)
        if last:
            metrics = ", ".join(f"{k} {v:.4f}" for k, v in last.items() if k.startswith(("rewards/", "logps/"))
                                and isinstance(v, float))
            lines.append(f"Last logged preference metrics: {metrics}.")
    else:
        lines.append("No training loss was logged.")
    lines += ["", EVALUATION_MARK, "", "Not evaluated yet (`jpo run` adds win-rates here after its evaluate stage).",
              ""]
    path = model_dir / "README.md"
    ModelCard(f"---\n{meta.to_yaml()}\n---\n" + "\n".join(lines)).save(path)
    return path


def winrate_table(result: dict[str, Any]) -> str:
    rows = ["| temperature | win-rate vs gold | 95% CI | wins / ties / losses | invalid | n |", "|---|---|---|---|---|---|"]
    entries = [(str(e["temperature"]), e) for e in result.get("per_temperature", [])]
    if len(entries) != 1:
        entries.append(("average", result["average"]))
    for name, w in entries:
        rows.append(f"| {name} | {100 * w['estimate']:.1f}% | [{100 * w['low']:.1f}, {100 * w['high']:.1f}] | "
                    f"{w['wins']} / {w['ties']} / {w['losses']} | {w['invalid']} | {w['n']} |")
    return "\n".join(rows)


def add_evaluation(model_dir: str | Path, result: dict[str, Any]) -> None:
    """Replace the card's evaluation section with the win-rates of `jpo evaluate` (winrate.json)."""
    from huggingface_hub import ModelCard

    path = Path(model_dir) / "README.md"
    card = ModelCard.load(path)
    section = [EVALUATION_MARK, "", f"Judge `{result.get('judge')}`, both orders (a flip is a tie); win 1, tie 0.5, "
               "loss 0; 95% bootstrap interval over prompts.", "", winrate_table(result), ""]
    card.text = card.text.split(EVALUATION_MARK)[0] + "\n".join(section)
    card.save(path)

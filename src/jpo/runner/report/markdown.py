"""results.md: the run's report as text, a section per part of the results dict (results.py), in the order the
reader needs them: whether the testbed can tell methods apart, the win-rate table (beside the paper's numbers where
the recipe gives them) and the verdict on the first compared pair, the online section, the
equal-budget comparison, the paper's findings, where the margin comes from, the joint ranking, the data, data
scaling, the spread over seeds, the selection grid, and the settings.
"""

from __future__ import annotations

import json
from typing import Any

from jpo.runner.recipe import BuildModel, Recipe, point_name
from jpo.runner.report.online import STAGES, mean
from jpo.runner.report.statistics import pair_names


def escape(text: str) -> str:
    """Text for a markdown table cell: a `|` (as in "|D_H|") would end the cell."""
    return str(text).replace("|", "\\|")


def _cell(value: float | None, interval: list[float] | None = None) -> str:
    """A win-rate cell: `52.3`, or with its interval `52.3 [48.1, 56.4]`; empty for none."""
    if value is None:
        return ""
    return f"{value:.1f}" if interval is None else f"{value:.1f} [{interval[0]:.1f}, {interval[1]:.1f}]"


def signed(d: dict[str, Any]) -> str:
    """A paired difference (`jpo.evaluate.paired_difference`) in win-rate points with its 95% interval:
    `+1.2 [-0.3, +2.7]`."""
    return f"{d['difference']:+.1f} [{d['ci95'][0]:+.1f}, {d['ci95'][1]:+.1f}]"


def number(value: float) -> str:
    """A count or a mean count: `1,024`, or `1,024.5` where it has a fraction."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def check_value(check: dict[str, Any]) -> str:
    """A sensitivity check's value with its paired 95% interval (`+1.2 [-0.3, +2.7]`); `n/a` where not measured."""
    return "n/a" if check["value"] is None else signed({"difference": check["value"], "ci95": check["ci95"]})


def table(rows: list[dict[str, Any]], temperatures: list[float], paper: bool) -> list[str]:
    """The win-rate table (like the paper's Table 5): a row per model, per temperature and averaged with its interval;
    the mean true quality and the paper's average where there are any."""
    quality = any("mean_quality" in r for r in rows)
    head = ["Method", "Data", "Rows"] + [f"T={t:g}" for t in temperatures] + ["Average [95% CI]"]
    head += ["Mean q"] if quality else []
    head += ["Paper avg"] if paper else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [escape(row["method"]), escape(row["data"]), str(row.get("rows", ""))]
        cells += [_cell(row["win_rate"][str(t)]) for t in temperatures]
        cells += [_cell(row["average"], row["ci95"])]
        cells += [_cell(row.get("mean_quality"))] if quality else []
        cells += [_cell(row.get("paper", {}).get("average"))] if paper else []
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def verdict(first: dict[str, Any], second: dict[str, Any], paired: dict[str, Any] | None) -> str:
    """One sentence on the first compared pair, whatever the numbers say, decided by the paired interval of the
    difference on the same prompts (two unpaired intervals overlap more than the evidence warrants)."""
    a, b = first["method"], second["method"]
    if paired:
        difference, (low, high) = paired["difference"], paired["ci95"]
        evidence = f"paired 95% interval of the difference [{low:+.1f}, {high:+.1f}]"
    else:
        difference = first["average"] - second["average"]
        low, high = first["ci95"][0] - second["ci95"][1], first["ci95"][1] - second["ci95"][0]
        evidence = f"95% intervals {first['ci95']} and {second['ci95']}"
    word = "beats" if low > 0 else "loses to" if high < 0 else "is not distinguishable from"
    return (f"{a} {word} {b} here: {first['average']:.1f}% vs {second['average']:.1f}% average win-rate against "
            f"gold ({difference:+.1f} points; {evidence}).")


def markdown(recipe: Recipe, result: dict[str, Any]) -> str:
    temperatures = list(recipe.generate.temperatures)
    rows = result["rows"]
    has_paper = any("paper" in r for r in rows)
    lines = [f"# {recipe.name}" + (" (dry run: tiny model, tiny data, one step; numbers mean nothing)"
                                   if recipe.dry else ""), ""]
    if result.get("sensitivity"):  # first: whether anything below can be read as evidence
        lines += [*sensitivity_lines(result["sensitivity"], recipe.dry), ""]
    if recipe.description:
        lines += [recipe.description.strip(), ""]
    lines += [f"Win-rate (%) against the gold references of {recipe.data.eval.source}:{recipe.data.eval.split}, "
              f"judged by `{recipe.evaluation_judge()}` in both orders (win 1, tie 0.5, loss 0), per sampling "
              f"temperature and over all of them; {len(result['seeds'])} preference-training seed(s) "
              f"({', '.join(map(str, result['seeds']))}) "
              + ("each from its own built model, pretraining and SFT" if recipe.train.vary_base
                 and len(result["seeds"]) > 1 else "from one SFT model")
              + ", pooled; 95% bootstrap intervals resample "
              "prompts (all seeds and temperatures of a prompt together)."
              + (" Mean q: the generations' true quality (x100)." if any("mean_quality" in r for r in rows) else ""),
              "", *table(rows, temperatures, has_paper), ""]
    if recipe.paper.source:
        lines += [f"Paper: {recipe.paper.source.strip()}." + (f" {recipe.paper.notes.strip()}" if recipe.paper.notes else ""),
                  ""]
    by_label = {r["method"]: r for r in rows + result["scaling"]}
    if result["paired"]:
        (name, first), = list(result["paired"].items())[:1]
        a, b = name.split(" - ")
        lines += [verdict(by_label[a], by_label[b], first), "",
                  "Paired differences on the same prompts (win-rate points, 95% paired bootstrap interval): "
                  + "; ".join(f"{k}: {signed(d)}" for k, d in result["paired"].items()) + ".", ""]
    shown = {**{r["name"]: r["method"] for r in rows + result["scaling"]}, "sft": "SFT"}
    if result.get("online"):
        lines += [*online_lines(result["online"]), ""]
    if result.get("equal_budget"):
        lines += [*equal_budget_lines(result["equal_budget"], shown), ""]
    if result.get("findings"):
        lines += ["## Beside the paper", "", "Each of the paper's differences (win-rate points) against the same "
                  "difference here, paired on the same prompts:", "", *result["findings"], ""]
    margins = margin_lines(result["curves"])
    if margins:
        lines += ["## Where the margin comes from", "", "Final `rewards/margins` and its instruction part "
                  "`rewards/margins_prompt` (last logged step, mean over seeds):", "", *margins, ""]
    if result.get("joint"):
        lines += ["## Ranking by joint comparisons", "", result["joint"]["markdown"], ""]
    lines += feedback_lines(result["feedback"])
    if result["scaling"]:
        scaling = recipe.train.scaling
        fixed = (f"every point trains as many optimizer steps as {scaling.run} on all of D_H, so the curve measures "
                 "labels" if scaling.fixed == "steps" else "every point trains the run's epochs (fixed epochs): "
                 "steps grow with the data, so the curve measures labels and compute together")
        lines += ["", f"## Data scaling: the same run on growing subsets of D_H (paper Figure 7), fixed {scaling.fixed}",
                  "", f"{fixed[0].upper()}{fixed[1:]}.", "", *table(result["scaling"], temperatures, False)]
    if result.get("per_seed"):
        lines += ["", *per_seed_lines(result["per_seed"], shown)]
    if result.get("selection"):
        lines += ["", *selection_lines(result["selection"])]
    if recipe.paper.data:
        lines += ["", f"Paper's data sizes: {recipe.paper.data}."]
    pretrain = {"model.build.pretrain": recipe.model.pretrain} if isinstance(recipe.model, BuildModel) else {}
    settings = {**pretrain, "sft": recipe.sft.config, "train.common": recipe.train.common,
                **{f"run {r.name}": r.config for r in recipe.train.runs if r.config}}
    lines += ["", "## Settings", "", "```json", json.dumps(settings, indent=1, default=str), "```", ""]
    return "\n".join(lines)


def _word(d: dict[str, Any]) -> str:
    """Where a paired difference's interval lies against 0."""
    return "above" if d["ci95"][0] > 0 else "below" if d["ci95"][1] < 0 else "not distinguishable from"


def headline(result: dict[str, Any], comparison: dict[str, Any]) -> list[str]:
    """The comparison's sentences: each run at the budget where the other reaches its final win-rate."""
    label = {name: run["label"] for name, run in result["runs"].items()}
    lines = []
    for key in ("joint_at_conditional_budget", "conditional_at_joint_budget"):
        h = comparison[key]
        first, other = label[h["reaches"]], label[h["other"]]
        if h["other_round"] is None:
            lines.append(f"- {first} reaches its final win-rate ({h['final']:.1f}%) after {number(h['samples'])} "
                         f"generated samples (round {h['at_round']}); {other} has no evaluated point within that "
                         "budget.")
            continue
        d = h["difference"]
        lines.append(f"- {first} reaches its final win-rate ({h['final']:.1f}%) after {number(h['samples'])} generated "
                     f"samples (round {h['at_round']}); at that budget {other} (round {h['other_round']}, "
                     f"{number(h['other_samples'])} samples) is at {h['other_average']:.1f}%: {other} - {first}'s final "
                     f"{signed(d)} points (paired; per seed " + ", ".join(signed(s) for s in d["per_seed"])
                     + f"), {_word(d)} it.")
    f = comparison["finals"]
    a, b = label[comparison["joint"]], label[comparison["conditional"]]
    ra, rb = result["runs"][comparison["joint"]], result["runs"][comparison["conditional"]]
    lines.append(f"- Final policies: {a} - {b} {signed(f)} points (per seed " + ", ".join(signed(s) for s in f["per_seed"])
                 + f"), with {number(ra['curve'][-1]['samples'])} vs {number(rb['curve'][-1]['samples'])} samples, "
                 f"{number(ra['curve'][-1]['judge_questions'])} vs {number(rb['curve'][-1]['judge_questions'])} judge "
                 f"questions, {'/'.join(map(str, ra['steps']))} vs {'/'.join(map(str, rb['steps']))} training steps "
                 "(per seed).")
    return lines


def online_lines(result: dict[str, Any]) -> list[str]:
    """The online section."""
    seeds = result["seeds"]
    lines = ["## Online training on the policy's own samples", "",
             "Win-rate (%) against gold after each round (round 0: the SFT model), seeds pooled (95% bootstrap "
             "interval), by cumulative samples generated and judge questions asked (means over seeds). Differences "
             "are paired on the same prompts.", ""]
    for comparison in result["comparisons"]:
        lines += ["Headline:", "", *headline(result, comparison), ""]
    steps = {run["label"]: run["steps"] for run in result["runs"].values()}
    steps.update({entry["label"]: entry["steps"] for entry in result["offline"].values()})
    equal = len({s for values in steps.values() for s in values}) == 1
    lines += [("Every arm trained the same number of optimizer steps: " if equal else
               "**The arms did not train equally long** (optimizer steps per seed): ")
              + "; ".join(f"{name} {'/'.join(map(str, values))}" for name, values in steps.items()) + ".", ""]
    for name, run in result["runs"].items():
        head = f"### {run['label']} ({name}): {run['mode']}, {run['rounds']} rounds x {run['prompts_per_round']} " \
               f"prompts x {run['samples_per_prompt']} sample(s), trained on {run['train_on']}'s labels, reference " \
               f"{run['reference']}"
        lines += [head, "", "| Round | Samples | Judge questions | Decisive labels | Steps | Win-rate [95% CI] | "
                  "Per seed |", "|---|---|---|---|---|---|---|"]
        for p in run["curve"]:
            lines.append(f"| {p['round']} | {number(p['samples'])} | {number(p['judge_questions'])} | {number(p['decisive'])} | "
                         f"{number(p['train_steps'])} | {p['average']:.1f} [{p['ci95'][0]:.1f}, {p['ci95'][1]:.1f}] | "
                         + ", ".join(f"{v:.1f}" for v in p["per_seed"]) + " |")
        lines += ["", "Cost per round (mean over seeds; tokens: generated tokens, EOS included):", "",
                  "| Round | Samples | Tokens | Missing EOS | Comparisons (joint / conditional) | Judge questions | "
                  "Decisive labels | Steps |", "|---|---|---|---|---|---|---|---|"]
        for c in run["costs"]:
            lines.append(f"| {c['round']} | {number(mean(c['samples']))} | {number(mean(c['tokens_generated']))} | "
                         f"{number(mean(c['missing_eos']))} | {number(mean(c['comparisons']['joint']))} / "
                         f"{number(mean(c['comparisons']['conditional']))} | {number(mean(c['judge_questions']))} | "
                         f"{number(mean(c['decisive']))} | {number(mean(c['train_steps']))} |")
        seconds = result.get("seconds", {}).get(name)
        if seconds:
            total = seconds["total"] or 1.0
            lines += ["", f"Wall time of a round (mean over rounds and seeds): {seconds['total']:.1f} s -- "
                      + ", ".join(f"{stage} {seconds[stage]:.1f} s ({100 * seconds[stage] / total:.0f}%)"
                                  for stage in STAGES)
                      + (f"; evaluating a round's policy for the curve (generate + judge against gold, outside the "
                         f"loop) {seconds[key]:.1f} s" if (key := "evaluating a round's policy") in seconds else "")
                      + "."]
        lines.append("")
    if result["offline"]:
        lines += ["Offline references (trained once on the pool's responses, not on the policy's samples):", ""]
        for entry in result["offline"].values():
            lines.append(f"- {entry['label']} ({entry['data']}, {entry['rows']} decisive labels, "
                         f"{number(entry['judge_questions'])} judge questions, {'/'.join(map(str, entry['steps']))} "
                         f"steps): {entry['average']:.1f} [{entry['ci95'][0]:.1f}, {entry['ci95'][1]:.1f}]; per seed "
                         + ", ".join(f"{v:.1f}" for v in entry["per_seed"]) + ".")
        lines.append("")
    for comparison in result["comparisons"]:
        label = {name: run["label"] for name, run in result["runs"].items()}
        a, b = label[comparison["joint"]], label[comparison["conditional"]]
        lines += [f"{a} - {b} after the same round (the same judge questions and steps when both ask as many per "
                  "round), paired:", "", "| Round | Samples | Judge questions | Difference [95% CI] | Per seed |",
                  "|---|---|---|---|---|"]
        for s in comparison["same_round"]:
            lines.append(f"| {s['round']} | {number(s['samples'][0])} / {number(s['samples'][1])} | "
                         f"{number(s['judge_questions'][0])} / {number(s['judge_questions'][1])} | {signed(s['difference'])} | "
                         + ", ".join(signed(d) for d in s["difference"]["per_seed"]) + " |")
        if comparison["same_samples"]:
            lines += ["", f"{a} - {b} at the same number of generated samples (rounds {a} / {b}; {b} has trained "
                      "fewer steps there):", "", "| Samples | Rounds | Difference [95% CI] | Per seed |",
                      "|---|---|---|---|"]
            for s in comparison["same_samples"]:
                lines.append(f"| {number(s['samples'])} | {s['rounds'][0]} / {s['rounds'][1]} | {signed(s['difference'])} | "
                             + ", ".join(signed(d) for d in s["difference"]["per_seed"]) + " |")
        lines.append("")
    lines.append(f"Seeds: {', '.join(map(str, seeds))}. Plot: online_curves.png.")
    return lines


def sensitivity_lines(result: dict[str, Any], dry: bool) -> list[str]:
    """The report's first lines: whether the testbed can tell methods apart, then the checks' table."""
    lines = []
    if not result["met"]:
        lines += [f"**This testbed cannot tell methods apart here ({', '.join(result['failed'])} not met): its results "
                  "below must not be read as evidence about the methods.**"
                  + (" (A dry run: no check is expected to pass.)" if dry else ""), ""]
    steps = result.get("steps") or {}
    if len(set(steps.values())) == 1:
        equal = f"every run at the same number of optimizer steps ({next(iter(steps.values()))})."
    elif steps:
        equal = ("**the runs did not train equally long** (" + ", ".join(f"{n} {v}" for n, v in steps.items())
                 + " optimizer steps): give them `steps_of`, or the checks measure compute as well as labels.")
    else:
        equal = "optimizer steps not known."
    lines += ["## Can this testbed tell methods apart?", "",
              "Each check is a paired difference in win-rate points on the same prompts, 95% paired bootstrap "
              f"interval; {equal}", "",
              "| Check | What | Value [95% CI] | Threshold | Met |", "|---|---|---|---|---|"]
    for r in result["checks"]:
        met = "not measured" if r["met"] is None else "met" if r["met"] else "**not met**"
        lines.append(f"| {escape(r['check'])} | {escape(r['what'])} | {check_value(r)} | {r['threshold']} | {met} |")
    notes = [f"{r['check']}: {r['note']}" for r in result["checks"] if r["note"]]
    if notes:
        lines += ["", *notes]
    if result["met"]:
        lines += ["", "Every check is met: more labels still help at equal steps, the data order does not decide the "
                  "result, and the gain is not one surface habit."]
    return lines


def margin_lines(curves: dict[str, list[list[dict[str, Any]]]]) -> list[str]:
    """How much of each run's final implicit-reward margin comes from the instructions (JPO's prompt term; zero
    for response-scope objectives), averaged over seeds."""
    lines = ["| Method | final reward margin | from the instructions | share |", "|---|---|---|---|"]
    for label, histories in curves.items():
        finals = [next((h for h in reversed(history) if "rewards/margins" in h), None) for history in histories]
        finals = [f for f in finals if f is not None]
        if not finals:
            continue
        total = sum(f["rewards/margins"] for f in finals) / len(finals)
        prompt = sum(f.get("rewards/margins_prompt", 0.0) for f in finals) / len(finals)
        share = f"{100 * prompt / total:.0f}%" if total else "n/a"
        lines.append(f"| {escape(label)} | {total:.3f} | {prompt:.3f} | {share} |")
    return lines if len(lines) > 2 else []


def feedback_lines(feedback: dict[str, Any]) -> list[str]:
    lines = ["## Data", ""]
    for name in ("conditional", "joint"):
        entry = feedback.get(name)
        if not entry:
            continue
        agree = "; ".join(f"{other} agrees on {a['percent']:.1f}% (kappa {a['kappa'] if a['kappa'] is None else round(a['kappa'], 2)})"
                          for other, a in entry["agreement"].items() if a["percent"] is not None)
        lines.append(f"- {name} comparisons: {entry['items']} items judged by `{entry['judge']}` (labels "
                     f"{entry['labels']})" + (f"; {agree}" if agree else "") + ".")
    selected = feedback.get("selected")
    if selected:
        lines.append(f"- joint comparisons chosen by a selector after SFT: {selected['selection']}; labels "
                     f"{selected['labels']}, {selected['instructions']} instructions covered.")
    lines.append(f"- D_C: {feedback['D_C']} decisive conditional preferences; D_H: {feedback['D_H']} joint "
                 "preferences" + (f"; D_F: {feedback['D_F']} decisive fresh conditional preferences (labels "
                                  f"{feedback['fresh_labels']}), for the runs that add fresh labels"
                                  if "D_F" in feedback else "") + ".")
    interplay = feedback.get("interplay")
    if interplay:
        lines += ["", "## Interplay of conditional and joint labels (paper Figures 2-3)", "",
                  "| Members' conditional status | Joint judgment | Share | Count |", "|---|---|---|---|"]
        for group, title in (("both_chosen", "both chosen"), ("both_rejected", "both rejected"),
                             ("chosen_vs_rejected", "one chosen, one rejected")):
            for outcome, share in interplay["percent"][group].items():
                shown = "n/a" if share is None else f"{share:.1f}%"
                lines.append(f"| {title} | {outcome} | {shown} | {interplay[group][outcome]} |")
        if interplay.get("skipped"):
            lines += ["", "Left out of the interplay: " + "; ".join(f"{k}: {v}" for k, v in interplay["skipped"].items())]
    return lines


def equal_budget_lines(entries: list[dict[str, Any]], shown: dict[str, str]) -> list[str]:
    lines = ["## Is a joint label worth a conditional one?", "",
             "JPO on D_C ∪ D_H against the equal-budget control, DPO on D_C plus as many fresh conditional labels "
             "(same annotator) as D_H has rows: paired differences in win-rate points, 95% interval.", ""]
    for e in entries:
        j, c = shown[e["joint"]], shown[e["control"]]
        d = e["joint_vs_control"]
        word = ("worth more than" if d["ci95"][0] > 0 else "worth less than" if d["ci95"][1] < 0
                else "not distinguishable from")
        lines.append(f"- {j} ({e['rows'][e['joint']]} rows) - {c} ({e['rows'][e['control']]} rows): {signed(d)}: "
                     f"here a joint label is {word} a conditional one.")
        if e.get("conditional"):
            a = shown[e["conditional"]]
            lines.append(f"- {j} - {a} (D_C alone): {signed(e['joint_vs_conditional'])}; {c} - {a}: "
                         f"{signed(e['control_vs_conditional'])} (what more conditional labels alone give).")
    return lines


def per_seed_lines(result: dict[str, Any], shown: dict[str, str]) -> list[str]:
    seeds = result["seeds"]
    what = ("each seed its own built model, pretraining, SFT and preference training" if result["vary_base"] else
            "each seed its own preference training, from one pretrained and SFT model (train.vary_base: true "
            "varies those too)")
    lines = ["## Spread over seeds", "", f"Average win-rate (%) per seed ({what}); sd: sample standard deviation:", "",
             "| Model | " + " | ".join(f"seed {s}" for s in seeds) + " | sd | range |", "|---|" + "---|" * (len(seeds) + 2)]
    for name, m in result["models"].items():
        lines.append(f"| {escape(shown.get(name, name))} | " + " | ".join(f"{v:.1f}" for v in m["per_seed"])
                     + f" | {m['sd']:.1f} | {m['max'] - m['min']:.1f} |")
    if result["paired"]:
        lines += ["", "Paired differences per seed (win-rate points):", "",
                  "| Difference | " + " | ".join(f"seed {s}" for s in seeds) + " | sd |",
                  "|---|" + "---|" * (len(seeds) + 1)]
        for pair, d in result["paired"].items():
            first, second = pair_names(pair)
            lines.append(f"| {escape(shown.get(first, first))} - {escape(shown.get(second, second))} | "
                         + " | ".join(f"{v:+.1f}" for v in d["per_seed"]) + f" | {d['sd']:.1f} |")
    return lines


def selection_lines(result: dict[str, Any]) -> list[str]:
    points, budgets = result["points"], sorted({p["budget"] for p in result["points"]})
    selectors = list(dict.fromkeys(p["selector"] for p in points))
    at = {(p["selector"], p["budget"]): p for p in points}
    lines = ["## Which joint comparisons to label: win-rate by number of labels", "",
             f"Each selector picks each budget of joint comparisons out of the candidate pool; the annotator labels "
             f"them; {result['run']} is trained on the decisive labels for exactly {result['max_steps']} steps at "
             "every point (the same training budget). Average win-rate (%) against gold [95% CI], seeds pooled:", "",
             "| Selector | " + " | ".join(f"{b} labels" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    lines += [f"| {s} | " + " | ".join(_cell(at[s, b]["average"], at[s, b]["ci95"]) for b in budgets) + " |"
              for s in selectors]
    if result.get("against_random"):
        lines += ["", "Each selector against random at the same budget (win-rate points, paired 95% interval):", "",
                  "| Selector | " + " | ".join(f"{b} labels" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
        for s in selectors:
            if s == "random":
                continue
            cells = [result["against_random"][point_name(s, b)] for b in budgets]
            lines.append(f"| {s} | " + " | ".join(signed(d) for d in cells) + " |")
    names = list(points[0]["agreement"])
    lines += ["", "What the labels were (mean over seeds): decisive labels (the rows trained on), instructions "
              "covered" + "".join(f", agreement with {n} (%)" for n in names) + ":", "",
              "| Selector | Budget | Decisive | Instructions | " + " | ".join(names) + (" |" if names else "|"),
              "|---|---|---|---|" + "---|" * len(names)]
    lines += [f"| {p['selector']} | {p['budget']} | {p['decisive']:.0f} | {p['instructions']:.0f} | "
              + " | ".join(_cell(p["agreement"][n]) for n in names) + (" |" if names else "|") for p in points]
    if result["goals"]:
        target = at["random", result["full"]]
        lines += ["", f"Against random at the full budget ({result['full']} labels: {target['average']:.1f}%):", ""]
        for selector, goal in result["goals"].items():
            reach = (f"reaches it at {goal['reaches_at']} labels" if goal["reaches_at"] is not None
                     else "does not reach it at any budget")
            half = goal["half_vs_random_full"]
            if half is not None:
                reach += (f"; with {goal['half_budget']} labels {half['difference']:+.1f} points "
                          f"[{half['ci95'][0]:+.1f}, {half['ci95'][1]:+.1f}] (paired)")
            lines.append(f"- {selector}: {reach}.")
    return lines

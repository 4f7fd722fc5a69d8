"""The whole analysis of a set of label sources, and its report: analysis.md, analysis.json and PNG bar charts."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from itertools import combinations
from pathlib import Path
from typing import Any

from jpo.analysis.agreement import agreement, pairwise_agreement
from jpo.analysis.bias import position_bias, tie_rate
from jpo.analysis.interplay import interplay
from jpo.analysis.labels import LabelSource, protocol_of


def _group(item: Mapping[str, Any] | None, group_by: str) -> tuple[str, str]:
    dataset = (item or {}).get(group_by)
    return protocol_of(item), "all" if dataset is None else str(dataset)


def _grouped(ids, items: Mapping[str, Mapping[str, Any]], group_by: str) -> dict[tuple[str, str], set]:
    groups: dict[tuple[str, str], set] = defaultdict(set)
    for item_id in ids:
        groups[_group(items.get(item_id), group_by)].add(item_id)
    if len(groups) > 1:
        groups[("all", "all")] = set(ids)
    return dict(sorted(groups.items()))


def agreement_rows(sources: Sequence[LabelSource], group_by: str = "dataset") -> list[dict[str, Any]]:
    """Table 2: within each source that has several labels per item (e.g. two annotators), and between every two
    sources (each reduced to its per-item majority, and each single label against the other's majority), per
    protocol and dataset."""
    rows = []
    for source in sources:
        per_item = {i: labels for i, labels in source.by_item().items() if len(labels) > 1}
        for (protocol, dataset), ids in _grouped(per_item, source.items, group_by).items():
            result = pairwise_agreement({i: per_item[i] for i in ids})
            rows.append({"between": f"{source.name} (annotator pairs)", "protocol": protocol, "dataset": dataset,
                         **result.to_dict()})
    for first, second in combinations(sources, 2):
        labels_a, _ = first.consensus()
        labels_b, _ = second.consensus()
        given_a, given_b = first.by_item().keys(), second.by_item().keys()
        items = {**second.items, **first.items}
        for (protocol, dataset), ids in _grouped(labels_a.keys() | labels_b.keys(), items, group_by).items():
            result = agreement({i: labels_a[i] for i in ids if i in labels_a},
                               {i: labels_b[i] for i in ids if i in labels_b})
            # items of this group that a side labelled without reaching a majority (counted in only_a / only_b)
            no_majority = sum((i in given_a and i not in labels_a) + (i in given_b and i not in labels_b)
                              for i in ids)
            rows.append({"between": f"{first.name} vs {second.name}", "protocol": protocol, "dataset": dataset,
                         **result.to_dict(), "no_majority": no_majority})
        # With several annotators per item, also every single label against the other side (no majority needed).
        for multi, other, other_labels in ((first, second, labels_b), (second, first, labels_a)):
            per_item = multi.by_item()
            if len(multi.judgments) == len(per_item):
                continue
            for (protocol, dataset), ids in _grouped(per_item.keys() & other_labels.keys(), items, group_by).items():
                each = {(i, k): label for i in ids for k, label in enumerate(per_item[i])}
                result = agreement(each, {key: other_labels[key[0]] for key in each})
                rows.append({"between": f"{multi.name} (each label) vs {other.name}", "protocol": protocol,
                             "dataset": dataset, **result.to_dict()})
    return rows


def _labelled_items(source: LabelSource) -> tuple[list[dict], list[dict]]:
    """The source's items with its majority labels, split into conditional and joint."""
    labels, _ = source.consensus()
    conditional, joint = [], []
    for item_id, label in labels.items():
        item = source.items.get(item_id)
        if item is None or "prompt_a" not in item:
            continue
        (conditional if protocol_of(item) == "conditional" else joint).append({**item, "label": label})
    return conditional, joint


def analyze(sources: Sequence[LabelSource], *, group_by: str = "dataset",
            conditional: Sequence[Mapping[str, Any]] | None = None,
            joint: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Everything `jpo analyze` reports, as plain data."""
    out: dict[str, Any] = {
        "sources": [{"name": s.name, "judges": len(s.judges()), "labels": len(s.judgments),
                     "items": len(s.by_item())} for s in sources],
        "agreement": agreement_rows(sources, group_by),
        "interplay": [],
        "position_bias": [],
        "tie_rate": [],
    }
    if conditional is not None and joint is not None:
        out["interplay"].append({"source": "given conditional and joint labels",
                                 **interplay(conditional, joint).to_dict()})
    for source in sources:
        cond, jnt = _labelled_items(source)
        if cond and jnt:
            result = interplay(cond, jnt)
            if result.n_matched:
                out["interplay"].append({"source": source.name, **result.to_dict()})
        judges = position_bias(source.verdicts)
        if len(judges) > 1:
            judges[f"all of {source.name}"] = position_bias(replace(v, judge="all") for v in source.verdicts)["all"]
        out["position_bias"] += [{"source": source.name, "judge": j, **b.to_dict()} for j, b in judges.items()]
        by_protocol: dict[str, list] = defaultdict(list)
        for judgment in source.judgments:
            by_protocol[protocol_of(source.items.get(judgment.item_id))].append(judgment)
        for protocol, judgments in sorted(by_protocol.items()):
            rates = tie_rate(judgments)
            if len(rates) > 1:
                rates[f"all of {source.name}"] = tie_rate(replace(j, judge="all") for j in judgments)["all"]
            out["tie_rate"] += [{"source": source.name, "judge": j, "protocol": protocol, **r}
                                for j, r in rates.items()]
    return out


# --- writing ---------------------------------------------------------------------------------------------------------

def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _left_out(row: Mapping[str, Any]) -> str:
    """An agreement row's left-out counts, each named (the column holds up to four different counts)."""
    first, _, second = row["between"].partition(" vs ")
    if not second:  # annotator pairs: `only_a` counts items with fewer than two valid labels
        parts = [(row["only_a"], "items with under two valid labels"), (row["invalid"], "invalid labels")]
    else:
        parts = [(row["only_a"], f"only in {first}"), (row["only_b"], f"only in {second}"),
                 (row["invalid"], "invalid")]
    text = ", ".join(f"{n} {what}" for n, what in parts if n) or "nothing"
    if row.get("no_majority"):
        text += f" ({row['no_majority']} of them labelled without a majority)"
    return text


def markdown(result: Mapping[str, Any]) -> str:
    lines = ["# Label analysis", "", "## Sources", "", "| source | judges / annotators | labels | items |",
             "|---|---:|---:|---:|"]
    lines += [f"| {s['name']} | {s['judges']} | {s['labels']} | {s['items']} |" for s in result["sources"]]
    lines += ["", "## Agreement (as in the paper's Table 2)", "",
              "Percent agreement and Cohen's kappa over the labels a / b / tie. Between two sources each is reduced "
              "to its per-item majority; annotator pairs compare the annotators of the same item.", "",
              "| between | protocol | dataset | n | agree | agreement | kappa | left out |",
              "|---|---|---|---:|---:|---:|---:|---|"]
    for r in result["agreement"]:
        lines.append(f"| {r['between']} | {r['protocol']} | {r['dataset']} | {r['n']} | {r['agree']} | "
                     f"{_pct(r['percent'])} | {_num(r['kappa'])} | {_left_out(r)} |")
    if not result["agreement"]:
        lines.append("| (no two labellings of the same items) | | | | | | | |")
    lines += ["", "## Interplay of joint and conditional rankings (Figures 2-3)", ""]
    if not result["interplay"]:
        lines.append("No joint items whose two members were both judged under conditional ranking.")
    for r in result["interplay"]:
        p = r["percent"]
        bc, br, cr = r["both_chosen"], r["both_rejected"], r["chosen_vs_rejected"]
        lines += [f"### {r['source']}", "",
                  f"Members with a conditional status: {r['members']['chosen']} chosen, "
                  f"{r['members']['rejected']} rejected; joint items matched: {r['n_matched']}.", "",
                  "| members under conditional ranking | joint outcome | n | share |", "|---|---|---:|---:|",
                  f"| both chosen | decisive | {bc['decisive']} | {_pct(p['both_chosen']['decisive'])} |",
                  f"| both chosen | tie | {bc['tie']} | {_pct(p['both_chosen']['tie'])} |",
                  f"| both rejected | decisive | {br['decisive']} | {_pct(p['both_rejected']['decisive'])} |",
                  f"| both rejected | tie | {br['tie']} | {_pct(p['both_rejected']['tie'])} |",
                  f"| chosen vs rejected | C>R | {cr['C>R']} | {_pct(p['chosen_vs_rejected']['C>R'])} |",
                  f"| chosen vs rejected | C<R | {cr['C<R']} | {_pct(p['chosen_vs_rejected']['C<R'])} |",
                  f"| chosen vs rejected | equal | {cr['equal']} | {_pct(p['chosen_vs_rejected']['equal'])} |", ""]
        if r["skipped"]:
            lines.append("Left out: " + "; ".join(f"{n} {why}" for why, n in sorted(r["skipped"].items())) + ".")
            lines.append("")
    lines += ["## Position bias", "",
              "Share of decisive verdicts that picked the option shown first (50% = no position bias).", "",
              "| source | judge | decisive verdicts | picked first | rate | 95% interval |", "|---|---|---:|---:|---:|---|"]
    for r in result["position_bias"]:
        ci = "n/a" if r["ci95"] is None else f"{100 * r['ci95'][0]:.1f}-{100 * r['ci95'][1]:.1f}%"
        rate = None if r["rate"] is None else 100 * r["rate"]
        lines.append(f"| {r['source']} | {r['judge']} | {r['decisive']} | {r['first']} | {_pct(rate)} | {ci} |")
    lines += ["", "## Tie rates", "", "| source | judge | protocol | a | b | tie | invalid | tie rate |",
              "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in result["tie_rate"]:
        rate = None if r["tie_rate"] is None else 100 * r["tie_rate"]
        lines.append(f"| {r['source']} | {r['judge']} | {r['protocol']} | {r['a']} | {r['b']} | {r['tie']} | "
                     f"{r['invalid']} | {_pct(rate)} |")
    return "\n".join(lines) + "\n"


def _bars(path: Path, labels: list[str], values: list[float], title: str, ylabel: str, *,
          errors: list[tuple[float, float]] | None = None, reference: float | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(labels) + 2), 4.5))
    positions = range(len(labels))
    yerr = None
    if errors:
        yerr = [[v - lo for v, (lo, _) in zip(values, errors, strict=True)],
                [hi - v for v, (_, hi) in zip(values, errors, strict=True)]]
    ax.bar(positions, values, color="#3b5b92", yerr=yerr, capsize=4)
    for x, v in zip(positions, values, strict=True):
        ax.text(x, v, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
    if reference is not None:
        ax.axhline(reference, color="#b33", linestyle="--", linewidth=1)
    ax.set_xticks(list(positions), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _interplay_chart(path: Path, entry: Mapping[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 4))
    panels = [("both_chosen", "Both chosen (conditional)"), ("both_rejected", "Both rejected (conditional)"),
              ("chosen_vs_rejected", "Chosen vs rejected")]
    for ax, (name, title) in zip(axes, panels, strict=True):
        counts = entry[name]
        shares = [v or 0.0 for v in entry["percent"][name].values()]
        ax.bar(list(counts), shares, color=["#3b5b92", "#c98b2b", "#6b8f4e"][: len(counts)])
        for x, (share, n) in enumerate(zip(shares, counts.values(), strict=True)):
            ax.text(x, share, f"{share:.0f}% (n={n})", ha="center", va="bottom", fontsize=8)
        ax.set_ylim(0, 110)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("% of joint items")
    fig.suptitle(f"Joint outcomes by conditional status — {entry['source']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(result: Mapping[str, Any], output: str | Path) -> list[Path]:
    """analysis.md, analysis.json and the charts; returns the paths written."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    written = [output / "analysis.md", output / "analysis.json"]
    written[0].write_text(markdown(result), encoding="utf-8")
    written[1].write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    rows = [r for r in result["agreement"] if r["percent"] is not None]
    if rows:
        path = output / "agreement.png"
        _bars(path, [f"{r['between']}\n{r['protocol']}/{r['dataset']}" for r in rows], [r["percent"] for r in rows],
              "Agreement (%)", "% of items with the same label")
        written.append(path)
    for index, entry in enumerate(result["interplay"]):
        path = output / ("interplay.png" if index == 0 else f"interplay-{index + 1}.png")
        _interplay_chart(path, entry)
        written.append(path)
    rows = [r for r in result["position_bias"] if r["rate"] is not None]
    if rows:
        path = output / "position_bias.png"
        _bars(path, [f"{r['source']}: {r['judge']}" for r in rows], [100 * r["rate"] for r in rows],
              "Position bias: decisive verdicts picking the first-shown option", "% picked first",
              errors=[(100 * r["ci95"][0], 100 * r["ci95"][1]) for r in rows], reference=50.0)
        written.append(path)
    rows = [r for r in result["tie_rate"] if r["tie_rate"] is not None]
    if rows:
        path = output / "tie_rate.png"
        _bars(path, [f"{r['source']}: {r['judge']}\n{r['protocol']}" for r in rows],
              [100 * r["tie_rate"] for r in rows], "Tie rate", "% of valid labels that are ties")
        written.append(path)
    return written

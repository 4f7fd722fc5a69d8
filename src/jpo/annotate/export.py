"""What comes out of an annotation database: the items it serves, and the answers as training or analysis rows."""

from __future__ import annotations

from collections import Counter
from typing import Any

from jpo.errors import DataError


def load_annotation_items(path: str, *, gold: bool = False) -> list[dict[str, Any]]:
    """Items from `jpo pairs` output or any preference file (its chosen side becomes `a`, as `jpo.data` reads it)."""
    from jpo.data import load_items

    items = load_items(path)
    if gold:
        for line, item in enumerate(items, start=1):
            if item.get("label") not in ("a", "b", "tie"):
                raise DataError("a gold item needs a label a, b or tie", path=path, row=line, field="label")
    return items


def aggregate_answers(answers: list[dict[str, Any]], items: dict[str, dict[str, Any]], *, aggregate: str,
                      output_format: str) -> tuple[list[dict[str, Any]], Counter]:
    """Rows to write, and the count of what was left out and why (nothing is dropped without being counted)."""
    skipped: Counter = Counter()
    regular = []
    for answer in answers:
        if answer["gold"]:
            skipped["gold answers"] += 1
        else:
            regular.append(answer)
    decisions: list[tuple[dict[str, Any], str, dict[str, Any]]] = []  # (item, choice, extra fields)
    if aggregate == "none":
        for answer in regular:
            decisions.append((items[answer["item_id"]], answer["choice"],
                              {"annotator": answer["annotator"], "explanation": answer["explanation"]}))
    else:
        votes: dict[str, Counter] = {}
        for answer in regular:
            votes.setdefault(answer["item_id"], Counter())[answer["choice"]] += 1
        for item_id, counts in votes.items():
            (top, n_top), *rest = counts.most_common() + [(None, 0)]
            if rest and rest[0][1] == n_top:
                skipped["items without a majority"] += 1
                continue
            decisions.append((items[item_id], top, {"votes": {c: counts[c] for c in ("a", "b", "equal")}}))
    rows = []
    for item, choice, extra in decisions:
        if output_format == "items":
            fields = ("id", "prompt_a", "response_a", "prompt_b", "response_b")
            rows.append({**{f: item[f] for f in fields}, "label": "tie" if choice == "equal" else choice, **extra})
        elif choice == "equal":
            skipped["equal answers" if aggregate == "none" else "items judged equal"] += 1
        else:
            other = "b" if choice == "a" else "a"
            rows.append({"id": item["id"], "prompt_chosen": item[f"prompt_{choice}"], "chosen": item[f"response_{choice}"],
                         "prompt_rejected": item[f"prompt_{other}"], "rejected": item[f"response_{other}"], **extra})
    return rows, skipped

"""`jpo evaluate` on the JPO authors' released generations and test sets, judged by their own cached verdicts,
reproduces their published win-rates (TL;DR 73.2%, Anthropic-Helpful 74.5%; shared/README.md)."""

from __future__ import annotations

import json

import pytest

from jpo.cli import main
from jpo.errors import DataError
from jpo.evaluate.against_gold import comparison_items
from jpo.feedback import make_judge
from jpo.feedback.runner import judge_items


@pytest.mark.parametrize("task, outputs, test_set, verdicts, expected", [
    ("tldr", "tldr_0.001.json", ("tldr", "test.json"), "master.json", ("73.2%", 293, 146, 61)),
    ("helpful", "helpful_0.001.json", ("anthropic_helpful", "test.jsonl"), "master_helpful.json",
     ("74.5%", 305, 135, 60)),
])
def test_jpo_evaluate_reproduces_the_authors_win_rates(tmp_path, capsys, shared_data, task, outputs, test_set,
                                                        verdicts, expected) -> None:
    command = ["evaluate", "--generations", str(shared_data("jpo-authors", "outputs", outputs)),
               "--references", str(shared_data("jpo-authors", *test_set)),
               "--judge", f"verdicts:{shared_data('jpo-authors', 'verdicts', verdicts)}",
               "--output", str(tmp_path / task), "--no_progress"]
    assert main(command) == 0
    printed = capsys.readouterr().out
    rate, wins, ties, losses = expected
    assert f"| {rate} |" in printed and f"| {wins} | {ties} | {losses} | 0 | 500 |" in printed
    assert "500 of 500 generations matched to their reference by prompt text" in printed
    saved = json.loads((tmp_path / task / "winrate.json").read_text())
    assert round(100 * saved["average"]["estimate"], 1) == float(rate.rstrip("%"))


def test_a_templated_prompt_meets_the_longest_reference_it_contains() -> None:
    references = [{"id": "short", "prompt": "Tell a story", "reference": "g1"},
                  {"id": "long", "prompt": "Tell a story about a cat", "reference": "g2"}]
    generations = [{"id": "h1", "prompt": "### Instructions: Tell a story about a cat\n\n### Response:",
                    "response": "r"},
                   {"id": "short", "prompt": "anything", "response": "r"}]  # an id that matches wins over text
    items = comparison_items(generations, references)
    assert [(i["prompt_id"], i["response_b"], i.get("matched_by")) for i in items] == [
        ("long", "g2", "prompt text"), ("short", "g1", None)]
    with pytest.raises(DataError, match="no reference"):
        comparison_items([{"id": "x", "prompt": "Write a poem", "response": "r"}], references)
    twins = [{"id": "1", "prompt": "Same", "reference": "g"}, {"id": "2", "prompt": "Same", "reference": "g"}]
    with pytest.raises(DataError, match="no reference"):  # two references fit equally: not guessed
        comparison_items([{"id": "x", "prompt": "Same!", "response": "r"}], twins)


def test_the_cached_verdicts_judge_answers_only_what_the_file_holds(shared_data) -> None:
    judge = make_judge(f"verdicts:{shared_data('jpo-authors', 'verdicts', 'master_helpful.json')}")
    gold = "It seems likely that you’re talking about making frosting with shortening, or vegetable oil, or"
    output = ("Hm,  I’m not sure about this,  but it looks like you’re trying to make icing or frosting,  and "
              "you’ve used Crisco shortening.  \nFor this, you’ll need a mixer,  and you’ll want to add 1 cup of "
              "powdered sugar to the shortening.  Mix until smooth.")
    items = [{"id": "known", "prompt": "How to make frosting with crisco", "response_a": output, "response_b": gold},
             {"id": "other prompt", "prompt": "How to bake bread", "response_a": output, "response_b": gold},
             {"id": "unknown", "prompt": "How to make frosting with crisco", "response_a": "x", "response_b": gold}]
    run = judge_items(items, judge, progress=False)
    assert [r.label for r in run.results] == ["a", "invalid", "invalid"]  # "model": the output, shown as a, won
    assert "not in the cached verdicts" in run.results[2].reason

"""Reading judges' free-text answers, and the paper's prompts."""

from __future__ import annotations

import pytest

from jpo.errors import JpoError
from jpo.feedback.base import Question
from jpo.feedback.parsing import parse_choice
from jpo.feedback.templates import Template, load_template


@pytest.mark.parametrize(
    ("answer", "choice"),
    [
        ("Output (a)", "a"),
        ("Output (b)", "b"),
        ("(a)", "a"),
        ("a", "a"),
        ("B", "b"),
        ("b.", "b"),
        ("**Output (b)**", "b"),
        ("`Output (a)`", "a"),
        ('"Output (b)"', "b"),
        ("Output (b) is better.", "b"),
        ("Output (a) is a better answer to the instruction.", "a"),
        ('{"choice": "b"}', "b"),
        ('```json\n{"answer": "Output (a)"}\n```', "a"),
        ("[[A]]", "a"),
        ("Response B", "b"),
        ("Output 2", "b"),
        ("The answer is: Output (b)", "b"),
        ("Comparing Output (a) and Output (b), I prefer Output (b).", "b"),
        ("Both are fine, but Output (a) is better", "a"),
        ("Tie", "tie"),
        ("They are equal.", "tie"),
    ],
)
def test_parse_choice_reads_the_ways_models_answer(answer: str, choice: str) -> None:
    assert parse_choice(answer) == (choice, None)


@pytest.mark.parametrize("answer", ["", "   ", "I cannot decide.", "Output (a) and Output (b) are both good", '{"x": 1}'])
def test_parse_choice_refuses_to_guess(answer: str) -> None:
    choice, reason = parse_choice(answer)
    assert choice is None
    assert reason.startswith("unparseable")


def test_conditional_and_joint_prompts_follow_the_paper() -> None:
    template = Template()
    conditional = template.user_message(Question("Say hi.", "hi", "Say hi.", "hello"))
    assert "### Instruction:\nSay hi." in conditional and "### Output (a):\nhi" in conditional
    assert "### Output (b):\nhello" in conditional and "Instruction (a)" not in conditional
    assert conditional.rstrip().endswith("## Preferred Output:")
    joint = template.user_message(Question("Say hi.", "hi", "Count to 3.", "1 2 3"))
    for part in ("### Instruction (a):\nSay hi.", "### Output (a):\nhi", "### Instruction (b):\nCount to 3.",
                 "### Output (b):\n1 2 3"):
        assert part in joint
    assert all(word in template.conditional.lower() for word in ("accura", "coheren", "harmless"))
    assert [m["role"] for m in template.messages(Question("p", "r", "p", "s"))] == ["user"]  # as the authors


def test_user_template_overrides_and_changes_the_version(tmp_path) -> None:
    text = tmp_path / "mine.txt"
    text.write_text('Q: {instruction_a} A1: {output_a} / {instruction_b} A2: {output_b} {"literal": "braces"}')
    mine = load_template(text)
    assert mine.version != Template().version
    rendered = mine.user_message(Question("p", "r1", "p", "r2"))
    assert rendered == 'Q: p A1: r1 / p A2: r2 {"literal": "braces"}'
    structured = tmp_path / "mine.json"
    structured.write_text('{"system": "", "joint": "J {instruction_a}|{output_a}|{instruction_b}|{output_b}"}')
    both = load_template(structured)
    assert both.messages(Question("x", "y", "z", "w")) == [{"role": "user", "content": "J x|y|z|w"}]
    assert both.conditional == Template().conditional
    authors_style = tmp_path / "authors.txt"  # the authors' placeholder names work unchanged
    authors_style.write_text("I: {instruction}\n(a) {output_1}\n(b) {output_2}")
    assert load_template(authors_style).user_message(Question("p", "x", "p", "y")) == "I: p\n(a) x\n(b) y"


def test_bad_template_is_a_one_line_error(tmp_path) -> None:
    empty = tmp_path / "t.txt"
    empty.write_text("no placeholders here")
    with pytest.raises(JpoError, match="placeholders"):
        load_template(empty)
    wrong = tmp_path / "t.json"
    wrong.write_text('{"user": "x"}')
    with pytest.raises(JpoError, match="unknown key 'user'"):
        load_template(wrong)
    with pytest.raises(JpoError, match="cannot read"):
        load_template(tmp_path / "missing.txt")


def test_conversations_are_shown_turn_by_turn() -> None:
    prompt = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
              {"role": "user", "content": "Name a color."}]
    question = Question(prompt, [{"role": "assistant", "content": "Blue."}], prompt,
                        [{"role": "assistant", "content": "Seven."}])
    message = Template().user_message(question)
    assert "User: Hi\n\nAssistant: Hello!\n\nUser: Name a color." in message
    assert "### Output (a):\nBlue." in message and question.conditional
    assert question.fingerprint() != question.swapped().fingerprint()

"""hf: and rm: judges on real tiny models (stories260K, and a reward head on its architecture)."""

from __future__ import annotations

import re

import pytest
from conftest import ulps

from jpo.feedback import JudgeOptions, Question, make_judge
from jpo.feedback.lm_judge import LMJudge
from jpo.feedback.runner import judge_items
from jpo.feedback.store import VerdictStore

ITEMS = [
    {"id": "1", "prompt_a": "Tell a story.", "response_a": "Once upon a time, there was a little girl named Lily.",
     "prompt_b": "Tell a story.", "response_b": "zq xv kk pp rr"},
    {"id": "2", "prompt_a": "Say something.", "response_a": "The cat sat.", "prompt_b": "Name a fruit.",
     "response_b": "Apple."},
    {"id": "3", "prompt_a": "Write.", "response_a": "word " * 400, "prompt_b": "Write.", "response_b": "A long day."},
]
# beyond the judges' 2048 positions: judged invalid, never cut (a cut dropped Instruction A / Response A unseen)
TOO_LONG = {"id": "4", "prompt_a": "Write.", "response_a": "word " * 1200, "prompt_b": "Write.",
            "response_b": "A long day."}
TOO_LONG_ERROR = r"question longer than the judge's context \(\d+ > 2048 tokens\)"


@pytest.fixture(scope="module")
def judge_model_path(tmp_path_factory, tiny_model_path):
    """stories260K with 2048 positions (rotary, so any length runs): the paper's judge template alone is ~600 of
    its tokens, more than its own 512."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, max_position_embeddings=2048)
    folder = tmp_path_factory.mktemp("judge")
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_path).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def reward_model_path(tmp_path_factory, tiny_model_path):
    """A sequence-classification model with stories260K's architecture and tokenizer (random head, fixed seed)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(tiny_model_path, num_labels=1, max_position_embeddings=2048)
    model = AutoModelForSequenceClassification.from_config(config)
    folder = tmp_path_factory.mktemp("rm")
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_path).save_pretrained(folder)
    return folder


def test_lm_judge_scores_options_by_logprob_batched_like_unbatched(judge_model_path) -> None:
    judge = make_judge(f"hf:{judge_model_path}", JudgeOptions(batch_size=8))
    assert isinstance(judge, LMJudge) and judge.id == f"hf:{judge_model_path.resolve()}"
    questions = [Question(i["prompt_a"], i["response_a"], i["prompt_b"], i["response_b"]) for i in ITEMS]
    batched = judge.answer_batch_sync(questions + [q.swapped() for q in questions])
    alone = [judge.answer_batch_sync([q])[0] for q in questions + [q.swapped() for q in questions]]
    for together, single in zip(batched, alone, strict=True):
        assert together.choice == single.choice
        for key in ("logp_a", "logp_b"):  # batched vs alone: float32 sums rounded in other layouts
            assert together.detail[key] == pytest.approx(single.detail[key], abs=ulps(64, single.detail[key]))
        assert together.detail["logp_a"] < 0 and together.choice in ("a", "b")
    too_long = Question(TOO_LONG["prompt_a"], TOO_LONG["response_a"], TOO_LONG["prompt_b"], TOO_LONG["response_b"])
    verdicts = judge.answer_batch_sync([questions[0], too_long, questions[1]])
    assert [v.choice for v in verdicts] == [batched[0].choice, None, batched[1].choice]
    assert re.fullmatch(TOO_LONG_ERROR, verdicts[1].error) and not verdicts[1].received  # not stored: no answer


def test_lm_judge_through_the_runner_with_store(judge_model_path, tmp_path) -> None:
    judge = make_judge(f"hf:{judge_model_path}", JudgeOptions(batch_size=4))
    with VerdictStore(tmp_path / "v.sqlite") as store:
        run = judge_items(ITEMS, judge, store=store, progress=False)
        assert run.asked == 6 and run.counts["invalid"] == 0
        assert all(r.forward.raw.startswith("logp(a)=") for r in run.results)
        rerun = judge_items(ITEMS, judge, store=store, progress=False)
        assert rerun.asked == 0 and [r.label for r in rerun.results] == [r.label for r in run.results]
        over = judge_items([TOO_LONG], judge, store=store, progress=False)
    assert over.counts["invalid"] == 1 and re.fullmatch(TOO_LONG_ERROR, over.results[0].forward.error)
    wide = make_judge(f"hf:{judge_model_path}", JudgeOptions(tie_margin=1e9))
    assert judge_items(ITEMS[:1], wide, progress=False).results[0].label == "tie"


def test_reward_model_scores_each_pair_once_and_compares(reward_model_path) -> None:
    judge = make_judge(f"rm:{reward_model_path}", JudgeOptions(batch_size=2))
    run = judge_items(ITEMS + [dict(ITEMS[0], id="again")], judge, progress=False)
    assert judge.forward_rows == 6  # six distinct (instruction, response) pairs, each scored once
    assert run.counts["invalid"] == 0
    for item, result in zip(ITEMS, run.results, strict=False):
        a, b = judge._score([(item["prompt_a"], item["response_a"]), (item["prompt_b"], item["response_b"])])
        assert result.label == ("a" if a > b else "b")  # an RM's two orders always agree: no flip-ties
        assert result.forward.detail["reward_a"] == pytest.approx(a, abs=1e-5)
        assert result.backward.detail["reward_b"] == pytest.approx(a, abs=1e-5)
    tied = make_judge(f"rm:{reward_model_path}", JudgeOptions(tie_margin=1e9))
    assert judge_items(ITEMS, tied, progress=False).counts["tie"] == 3
    over = judge_items([TOO_LONG, ITEMS[1]], judge, progress=False)
    assert [r.label for r in over.results] == ["invalid", run.results[1].label] and over.counts["invalid"] == 1
    assert re.fullmatch(TOO_LONG_ERROR, over.results[0].forward.error)


def test_reward_model_must_have_one_output(tmp_path, tiny_model_path) -> None:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from jpo.errors import JpoError

    config = AutoConfig.from_pretrained(tiny_model_path, num_labels=3)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tiny_model_path).save_pretrained(tmp_path)
    with pytest.raises(JpoError, match="num_labels=1"):
        make_judge(f"rm:{tmp_path}")
    with pytest.raises(JpoError, match="cannot load"):
        make_judge(f"rm:{tmp_path / 'nope'}")


def test_chat_template_models_get_the_prompt_through_their_template(judge_model_path, reward_model_path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from jpo.feedback.reward_judge import RewardModelJudge

    template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
                "{% if add_generation_prompt %}<assistant>{% endif %}")
    tokenizer = AutoTokenizer.from_pretrained(judge_model_path)
    tokenizer.chat_template = template
    judge = LMJudge(AutoModelForCausalLM.from_pretrained(judge_model_path), tokenizer, "chatty", JudgeOptions())
    prompt, options = judge.prompt_ids(Question("Say hi.", "hi", "Say hi.", "hello"))
    text = tokenizer.decode(prompt)
    assert text.rstrip().endswith("## Preferred Output:\n\n<assistant>") and "-chat-" in judge.template_version
    assert len(options) == 2 and options[0] != options[1]
    assert judge.answer_batch_sync([Question("Say hi.", "hi", "Say hi.", "hello")])[0].choice in ("a", "b")
    rm_tokenizer = AutoTokenizer.from_pretrained(reward_model_path)
    rm_tokenizer.chat_template = template
    from transformers import AutoModelForSequenceClassification

    rm = RewardModelJudge(AutoModelForSequenceClassification.from_pretrained(reward_model_path), rm_tokenizer, "rm",
                          JudgeOptions())
    ids = rm.encode([{"role": "user", "content": "Hi"}], [{"role": "assistant", "content": "Hello"}])
    assert rm_tokenizer.decode(ids).count("<assistant>") == 1


def test_reward_model_input_has_one_bos_when_the_prompt_carries_it(reward_model_path) -> None:
    judge = make_judge(f"rm:{reward_model_path}", JudgeOptions())
    bos = judge.tokenizer.bos_token
    assert judge.encode(bos + "Tell a story.", "Once.") == judge.encode("Tell a story.", "Once.")

"""Sequence log-probs (chunked, split into prompt and response parts) and the tokenization behind them."""

from __future__ import annotations

import pytest
import torch
from conftest import ulps
from transformers import AutoModelForCausalLM, AutoTokenizer

from jpo.errors import JpoError
from jpo.train.data import PairCollator, encode_pairs
from jpo.train.logprobs import (
    PROMPT,
    RESPONSE,
    SHARED_PROMPT,
    SKIP,
    segments_for,
    sequence_logps,
    token_logps,
)
from jpo.train.tokenize import Encoder, truncate


@pytest.fixture(scope="module")
def tiny(tiny_model_path):
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(tiny_model_path), AutoTokenizer.from_pretrained(tiny_model_path)


def naive_logps(model, input_ids, attention_mask, segments):
    """Reference implementation: full float32 log-softmax over every position."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1].float()
    per_token = logits.log_softmax(-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    seg = segments[:, 1:]
    return (per_token * (seg == PROMPT)).sum(1), (per_token * (seg == RESPONSE)).sum(1)


def test_chunked_token_logps_match_full_log_softmax_with_gradients():
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 1000, bias=False)
    hidden = torch.randn(37, 16, requires_grad=True)
    targets = torch.randint(0, 1000, (37,))
    chunked = token_logps(hidden, targets, head, chunk_size=5)  # 8 chunks, recomputed in backward
    (g_chunked,) = torch.autograd.grad(chunked.sum(), hidden)
    full = head(hidden).log_softmax(-1).gather(-1, targets[:, None]).squeeze(-1)
    (g_full,) = torch.autograd.grad(full.sum(), hidden)
    # The same float32 products, chunked or not: equal up to the kernels' blocking, a few ulps of the values.
    assert torch.allclose(chunked, full, rtol=ulps(8), atol=ulps(8, full.abs().max().item()))
    assert torch.allclose(g_chunked, g_full, rtol=ulps(8), atol=ulps(8, g_full.abs().max().item()))


def test_sequence_logps_equal_naive_sums(tiny):
    model, _ = tiny
    ids = torch.tensor([[1, 50, 60, 70, 80, 90, 2], [1, 55, 65, 75, 2, 0, 0]])
    mask = torch.tensor([[1] * 7, [1] * 5 + [0] * 2])
    seg = torch.tensor([segments_for(7, 3, True), segments_for(5, 2, True) + [SKIP, SKIP]])
    ours = sequence_logps(model, model, ids, mask, seg, chunk_size=3)
    prompt, response = naive_logps(model, ids, mask, seg)
    # Sums of a few float32 log-probs from differently shaped forwards (hidden states vs full logits).
    for a, b in ((ours.prompt, prompt), (ours.response, response)):
        assert torch.allclose(a, b, rtol=0, atol=ulps(64, b.abs().max().item()))
    assert ours.prompt_tokens.tolist() == [2, 1] and ours.response_tokens.tolist() == [4, 3]


def _final_hidden_grad(model, ids, seg):
    """Gradient of the loss w.r.t. the final hidden states, i.e. of the logits computed from them."""
    captured = {}

    def hook(_module, _inputs, output):
        output.retain_grad()
        captured["h"] = output

    handle = model.model.norm.register_forward_hook(hook)
    try:
        out = sequence_logps(model, model, ids, torch.ones_like(ids), seg)
        (out.prompt + out.response).sum().backward()
    finally:
        handle.remove()
        model.zero_grad()
    return captured["h"].grad[0].abs().sum(-1)


@pytest.mark.parametrize("joint", [True, False])
def test_gradients_reach_prompt_logits_only_under_joint_scope(tiny, joint):
    model, _ = tiny
    ids = torch.tensor([[1, 50, 60, 70, 80, 90, 2]])
    seg = torch.tensor([segments_for(7, 4, count_prompt=joint)])
    grad = _final_hidden_grad(model, ids, seg)
    prompt_positions = grad[:3]  # positions 0..2 predict the prompt tokens 1..3
    assert (grad[3:6] > 0).all()  # response and EOS targets
    assert ((prompt_positions > 0).all() if joint else (prompt_positions == 0).all())


def test_plain_text_tokenization_appends_eos_and_splits_at_prompt(tiny):
    _, tok = tiny
    enc = Encoder(tok, max_length=None)
    (chosen, rejected), truncated = enc.encode("Hello there.", [" Hi!", " Go away."])
    assert not truncated and chosen.input_ids[0] == tok.bos_token_id
    assert chosen.input_ids[-1] == tok.eos_token_id and rejected.input_ids[-1] == tok.eos_token_id
    assert chosen.prompt_len == rejected.prompt_len
    assert chosen.input_ids[: chosen.prompt_len] == tok("Hello there.").input_ids[: chosen.prompt_len]
    assert tok.pad_token == tok.eos_token  # stories260K has none: padded with EOS, masked out


def test_conversational_prompt_uses_chat_template(tiny_model_path):
    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    with pytest.raises(JpoError, match="chat template"):
        Encoder(tok, max_length=None).encode([{"role": "user", "content": "hi"}],
                                             [[{"role": "assistant", "content": "yo"}]])
    tok.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}assistant:{% endif %}")
    (enc,), _ = Encoder(tok, max_length=None).encode([{"role": "user", "content": "Tell a story."}],
                                                     [[{"role": "assistant", "content": "Once upon a time."}]])
    text = tok.decode(enc.input_ids)
    assert text.startswith("user: Tell a story.") and "assistant: Once upon a time." in text
    assert "Once" in tok.decode(enc.input_ids[enc.prompt_len:])
    assert "Tell" not in tok.decode(enc.input_ids[enc.prompt_len:])


def test_truncation_never_cuts_eos_and_is_explicit():
    ids, p = [1, 10, 11, 12, 13, 20, 21, 22, 23, 2], 5  # BOS + 4 prompt + 4 response + EOS
    start = truncate(ids, p, max_length=7, max_prompt_length=None, truncation_mode="keep_start", has_bos=True)
    assert start.input_ids == [1, 10, 11, 12, 13, 20, 2] and start.prompt_len == 5
    end = truncate(ids, p, max_length=7, max_prompt_length=None, truncation_mode="keep_end", has_bos=True)
    assert end.input_ids == [1, 13, 20, 21, 22, 23, 2] and end.prompt_len == 2
    short_prompt = truncate(ids, p, max_length=None, max_prompt_length=3, truncation_mode="keep_start", has_bos=True)
    assert short_prompt.input_ids == [1, 12, 13, 20, 21, 22, 23, 2] and short_prompt.prompt_len == 3
    assert truncate(ids, p, max_length=6, max_prompt_length=None, truncation_mode="keep_start", has_bos=True) is None


def test_rows_that_cannot_fit_are_counted(tiny):
    _, tok = tiny
    rows = [{"prompt_chosen": "a b c d e f g h i j k l m n o p", "chosen": "x", "prompt_rejected": "q",
             "rejected": "y"},
            {"prompt_chosen": "Hi", "chosen": " there friend of mine", "prompt_rejected": "Hi",
             "rejected": " no"}]
    data, report = encode_pairs(rows, Encoder(tok, max_length=8))
    assert report.rows == 2 and report.dropped == 1 and report.dropped_indices == [0]
    assert len(data) == 1 and report.truncated == 1
    assert data[0]["chosen_ids"][-1] == tok.eos_token_id and len(data[0]["chosen_ids"]) == 8


def test_collator_skips_equal_prompt_terms_only_when_asked(tiny):
    _, tok = tiny
    rows = [{"prompt_chosen": "Same", "chosen": " yes", "prompt_rejected": "Same", "rejected": " no"},
            {"prompt_chosen": "One", "chosen": " yes", "prompt_rejected": "Two", "rejected": " no"}]
    data, _ = encode_pairs(rows, Encoder(tok, max_length=None))

    def has_prompt(batch):
        prompt = (batch["target_part"] == PROMPT) | (batch["target_part"] == SHARED_PROMPT)
        shared = batch["target_part"] == SHARED_PROMPT
        return [bool(prompt[batch["target_seq"] == s].any() or shared[batch["target_seq"] == s - 2].any())
                for s in range(4)]

    for share in (False, True):
        for skip in (True, False):
            collator = PairCollator(tok.pad_token_id, count_prompt=True, skip_equal_prompts=skip, share_prefix=share)
            assert has_prompt(collator([data[0], data[1]])) == [not skip, True, not skip, True]
        batch = PairCollator(tok.pad_token_id, count_prompt=False, share_prefix=share)([data[0], data[1]])
        assert not ((batch["target_part"] == PROMPT) | (batch["target_part"] == SHARED_PROMPT)).any()

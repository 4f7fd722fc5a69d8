"""`rm:PATH` -- a sequence-classification reward model as judge.

A reward model scores one (instruction, response) at a time, so a joint comparison needs no special prompt: score
each side, compare, tie within `--tie_margin`. Each distinct (instruction, response) is scored once per judge
instance however many items and orders it appears in. Because the verdict is a comparison of two independent
scores, the two orders always agree: an RM never produces flip-ties, only margin ties.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from jpo.errors import JpoError
from jpo.feedback.base import JudgeOptions, Question, SyncJudge, Text, Verdict
from jpo.feedback.lm_judge import QuestionTooLong, decide, model_id
from jpo.feedback.templates import render_text
from jpo.modeling import encode_text, ensure_pad_token, load_model, load_tokenizer, pad, pick_device


class RewardModelJudge(SyncJudge):
    template_version = "rm-chat-or-newline-v1"

    def __init__(self, model: Any, tokenizer: Any, name: str, options: JudgeOptions) -> None:
        if model.config.num_labels != 1:
            raise JpoError(f"{name}: a reward model must have one output (num_labels=1), this one has "
                           f"{model.config.num_labels}")
        self.model, self.tokenizer = model.eval(), tokenizer
        ensure_pad_token(tokenizer)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        self.tie_margin = options.tie_margin
        self.batch_size = max(1, options.batch_size)
        self.id = f"rm:{name}"
        limit = getattr(model.config, "max_position_embeddings", None)
        self.context = limit if isinstance(limit, int) and limit > 0 else None
        self.scores: dict[str, float] = {}
        self.forward_rows = 0  # how many (instruction, response) were scored: the cost of this judge

    @classmethod
    def from_spec(cls, argument: str | None, options: JudgeOptions) -> RewardModelJudge:
        if not argument:
            raise JpoError("rm judge needs a model: --judge rm:PATH")
        from transformers import AutoModelForSequenceClassification

        tokenizer = load_tokenizer(argument)
        model = load_model(argument, AutoModelForSequenceClassification, what="a reward model")
        return cls(model.to(pick_device(options.device)), tokenizer, model_id(argument), options)

    def encode(self, prompt: Text, response: Text) -> list[int]:
        """Token ids of one (instruction, response); `QuestionTooLong` beyond the model's context (a cut would score
        part of the instruction or response)."""
        if self.tokenizer.chat_template:
            messages = (prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]) + \
                (response if isinstance(response, list) else [{"role": "assistant", "content": response}])
            ids = encode_text(self.tokenizer, messages)
        else:
            ids = encode_text(self.tokenizer, render_text(prompt) + "\n" + render_text(response))  # one BOS
        if self.context is not None and len(ids) > self.context:
            raise QuestionTooLong(len(ids), self.context)
        return ids

    def _score(self, pairs: list[tuple[Text, Text]]) -> list[float]:
        import torch

        encoded = [self.encode(prompt, response) for prompt, response in pairs]
        # right padding: the score is read at the last real token
        ids, mask = pad(encoded, self.tokenizer.pad_token_id), pad([[1] * len(s) for s in encoded], 0)
        device = next(self.model.parameters()).device
        with torch.no_grad():
            logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        self.forward_rows += len(pairs)
        return logits[:, 0].float().tolist()

    def answer_batch_sync(self, questions: Sequence[Question]) -> list[Verdict]:
        def key(prompt: Text, response: Text) -> str:
            return json.dumps([prompt, response], ensure_ascii=False, sort_keys=True)

        todo: dict[str, tuple[Text, Text]] = {}
        too_long: dict[str, QuestionTooLong] = {}
        for q in questions:
            for pair in ((q.prompt_a, q.response_a), (q.prompt_b, q.response_b)):
                if key(*pair) not in self.scores and key(*pair) not in too_long:
                    try:
                        self.encode(*pair)
                    except QuestionTooLong as error:
                        too_long[key(*pair)] = error
                        continue
                    todo[key(*pair)] = pair
        keys = list(todo)
        for start in range(0, len(keys), self.batch_size):
            chunk = keys[start : start + self.batch_size]
            for k, score in zip(chunk, self._score([todo[k] for k in chunk]), strict=True):
                self.scores[k] = score
        verdicts = []
        for q in questions:
            side_a, side_b = key(q.prompt_a, q.response_a), key(q.prompt_b, q.response_b)
            if side_a in too_long or side_b in too_long:
                verdicts.append((too_long.get(side_a) or too_long[side_b]).verdict())
            else:
                verdicts.append(decide(self.scores[side_a], self.scores[side_b], self.tie_margin, "reward"))
        return verdicts

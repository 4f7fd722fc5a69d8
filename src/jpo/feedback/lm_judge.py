"""`hf:PATH` -- a local causal LM as judge, reading its answer from log-probabilities rather than from sampling.

The judge sees the same prompt an API judge would (the paper's template, through the model's chat template when it
has one) and we compare log p("Output (a)") with log p("Output (b)") as the continuation. No sampling means no
unparseable answers and a deterministic verdict; the margin is kept in the verdict's detail for analysis. Both
options are scored in one padded forward pass per batch of questions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jpo.errors import JpoError
from jpo.feedback.base import JudgeOptions, Question, SyncJudge, Verdict
from jpo.feedback.templates import Template, load_template
from jpo.modeling import ensure_pad_token, load_model, load_tokenizer, pad, pick_device

OPTIONS = ("Output (a)", "Output (b)")


class QuestionTooLong(Exception):
    """A judge input of `length` tokens beyond a model's `context` positions."""

    def __init__(self, length: int, context: int) -> None:
        super().__init__(f"question longer than the judge's context ({length} > {context} tokens)")
        self.length, self.context = length, context

    def verdict(self) -> Verdict:
        """An invalid verdict (counted and reported by the judge runner); not stored, as no model answered."""
        return Verdict(None, error=str(self), received=False)


def model_id(path: str) -> str:
    """A local folder by its absolute path (so `./judge` and `/abs/judge` share verdicts), a hub name as given."""
    folder = Path(path)
    return str(folder.resolve()) if folder.exists() else path


class LMJudge(SyncJudge):
    def __init__(self, model: Any, tokenizer: Any, name: str, options: JudgeOptions,
                 template: Template | None = None) -> None:
        self.model, self.tokenizer = model.eval(), tokenizer
        ensure_pad_token(tokenizer)
        self.template = template or load_template(options.template)
        self.tie_margin = options.tie_margin
        self.batch_size = max(1, options.batch_size)
        self.id = f"hf:{name}"
        chat = "chat" if tokenizer.chat_template else "plain"
        self.template_version = f"{self.template.version}-{chat}-logprob"
        limit = getattr(model.config, "max_position_embeddings", None)
        self.context = limit if isinstance(limit, int) and limit > 0 else None

    @classmethod
    def from_spec(cls, argument: str | None, options: JudgeOptions) -> LMJudge:
        if not argument:
            raise JpoError("hf judge needs a model: --judge hf:PATH")
        tokenizer = load_tokenizer(argument)
        model = load_model(argument, what="a judge model")
        return cls(model.to(pick_device(options.device)), tokenizer, model_id(argument), options)

    def prompt_ids(self, question: Question) -> tuple[list[int], list[list[int]]]:
        """The judge prompt's token ids, and each answer option's continuation ids.

        Raises `QuestionTooLong` when prompt and option do not fit the model's context: cutting any part of a joint
        question (its instructions, its responses or the template's closing question) would judge something else."""
        messages = self.template.messages(question)
        if self.tokenizer.chat_template:
            try:
                text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            except Exception:  # noqa: BLE001 - templates without a system role: fold it into the user turn
                merged = [{"role": "user", "content": "\n\n".join(m["content"] for m in messages)}]
                text = self.tokenizer.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)
            prompt = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            options = [self.tokenizer(o, add_special_tokens=False)["input_ids"] for o in OPTIONS]
        else:
            text = "\n\n".join(m["content"] for m in messages) + "\n\nAnswer:"
            prompt = self.tokenizer(text)["input_ids"]
            options = [self.tokenizer(" " + o, add_special_tokens=False)["input_ids"] for o in OPTIONS]
        longest = max(len(o) for o in options)
        if self.context is not None and len(prompt) + longest > self.context:
            raise QuestionTooLong(len(prompt) + longest, self.context)
        return prompt, options

    def answer_batch_sync(self, questions: Sequence[Question]) -> list[Verdict]:
        import torch

        sequences, spans, too_long = [], [], {}
        for index, question in enumerate(questions):
            try:
                prompt, options = self.prompt_ids(question)
            except QuestionTooLong as error:
                too_long[index] = error.verdict()
                continue
            for option in options:
                sequences.append(prompt + option)
                spans.append((len(prompt), len(prompt) + len(option)))
        if not sequences:
            return [too_long[index] for index in range(len(questions))]
        ids = pad(sequences, self.tokenizer.pad_token_id)
        mask = pad([[1] * len(s) for s in sequences], 0)
        device = next(self.model.parameters()).device
        with torch.no_grad():
            logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        logprobs = torch.log_softmax(logits, dim=-1)
        scores = []
        for row, (start, stop) in enumerate(spans):
            targets = ids[row, start:stop].to(device)
            scores.append(float(logprobs[row, start - 1 : stop - 1].gather(-1, targets[:, None]).sum()))
        verdicts, scored = [], iter(scores)
        for index in range(len(questions)):
            if index in too_long:
                verdicts.append(too_long[index])
                continue
            score_a, score_b = next(scored), next(scored)
            verdicts.append(decide(score_a, score_b, self.tie_margin, "logp"))
        return verdicts


def decide(score_a: float, score_b: float, margin: float, name: str) -> Verdict:
    """a, b, or tie when the scores are within `margin` (inclusive, so margin 0 ties only exact equality)."""
    difference = score_a - score_b
    choice = "tie" if abs(difference) <= margin else ("a" if difference > 0 else "b")
    return Verdict(choice, f"{name}(a)={score_a:.4f} {name}(b)={score_b:.4f}",
                   detail={f"{name}_a": score_a, f"{name}_b": score_b})

"""The record kinds and the column layouts ("formats") each is read from.

Four kinds of rows flow through the pipeline, all plain dicts as in TRL:

- ``sft``:         ``{prompt, response}`` -- instruction-response data, D_S;
- ``preference``:  ``{prompt_chosen, chosen, prompt_rejected, rejected}`` -- a *joint* preference; a conditional one
  (TRL's ``{prompt, chosen, rejected}``) is the same row with equal prompts, so one trainer reads both;
- ``items``:       ``{id, prompt_a, response_a, prompt_b, response_b}`` -- a comparison to be judged, plus ``label``
  (``a | b | tie | invalid``) once judged;
- ``prompts``:     ``{id, prompt}`` and ``reference`` where the source has a gold response -- evaluation prompts;

and three that feed single stages: ``unpaired`` (KTO's ``{prompt, completion, label}``), ``generations``
(``{id, prompt, response}``) and ``references`` (``{id, reference}``).

Text is a string, or for conversational data a list of chat messages ``[{"role", "content"}]``: the prompt is the
conversation so far and a response is a list holding the assistant's turn. Every column a layout defines is used:
a system prompt (LLaMA-Factory's ``system``), tool descriptions (``tools``: LLaMA-Factory, TRL, OpenAI) and earlier
turns (Alpaca's ``history``) become messages of the prompt (see `with_context`). Columns a format does not define are
kept, so ids, scores and task labels travel with the row, and are named wherever the data is read.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Text = str | list[dict[str, str]]
Fail = Callable[[str, str | None], Exception]  # (message, field) -> a located DataError

KINDS = ("preference", "sft", "items", "prompts", "unpaired", "generations", "references")
# Each kind's own columns (optional ones included), as listed above.
COLUMNS = {"preference": ("prompt_chosen", "chosen", "prompt_rejected", "rejected"),
           "sft": ("prompt", "response"),
           "items": ("id", "prompt_a", "response_a", "prompt_b", "response_b", "label"),
           "prompts": ("id", "prompt", "reference"), "unpaired": ("prompt", "completion", "label"),
           "generations": ("id", "prompt", "response"), "references": ("id", "reference")}
LABELS = ("a", "b", "tie", "invalid")
# An empty response is a real answer (models do say nothing, and real datasets hold such rows): it may be preferred
# or rejected, so it is allowed and counted; an empty prompt is an error.
RESPONSES = frozenset({"chosen", "rejected", "response", "completion", "response_a", "response_b", "reference"})
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "observation": "tool", "function_call": "assistant"}


def item_id(*parts: Text) -> str:
    """A stable id derived from content, so reruns give the same ids and judged labels join back to their items."""
    digest = hashlib.sha1(json.dumps(parts, ensure_ascii=False, sort_keys=True).encode("utf-8"))
    return digest.hexdigest()[:16]


# The roles a chat template knows: TRL's conversational data (system, user, assistant, tool) and OpenAI's chat format
# (also developer, and the deprecated function). Any other is most likely a typo or an unconverted layout, which a
# chat template would drop or fail on at training time.
ROLES = ("system", "developer", "user", "assistant", "tool", "function")


def check_text(value: Any, field: str, fail: Fail, *, allow_empty: bool = False) -> Text:
    """A non-empty string, or a non-empty list of chat messages with known roles (`ROLES`) and string contents."""
    if isinstance(value, str):
        if not allow_empty and not value.strip():
            raise fail("empty text", field)
        return value
    if isinstance(value, list) and value:
        for index, message in enumerate(value):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise fail(f"message {index} is not a chat message with a 'role'", field)
            if message["role"] not in ROLES:
                raise fail(f"message {index} has an unknown role {message['role']!r} (expected one of "
                           f"{', '.join(ROLES)})", field)
            # An assistant turn that calls tools may have no text (TRL's tool-calling conversations).
            if not isinstance(message.get("content"), str) and not message.get("tool_calls"):
                raise fail(f"message {index} has no string 'content'", field)
        if not allow_empty and not any((m.get("content") or "").strip() or m.get("tool_calls") for m in value):
            raise fail("empty text", field)
        return value
    if isinstance(value, list):
        raise fail("empty list of messages", field)
    shown = "null" if value is None else type(value).__name__
    raise fail(f"expected text (a string or a list of chat messages), got {shown}", field)


def as_messages(value: Text, role: str) -> list[dict[str, str]]:
    return value if isinstance(value, list) else [{"role": role, "content": value}]


# --- the context a layout puts beside the conversation: system prompt, tools, earlier turns -----------------------

# The context columns each family of layouts folds into the prompt: LLaMA-Factory's sharegpt and Alpaca layouts
# (system, tools -- its templates render tools into the system prompt; Alpaca also history), OpenAI's chat
# fine-tuning rows (system). TRL and OpenAI give tools (and TRL per-row chat_template_kwargs) to the chat template
# instead: those columns stay on the row (TEMPLATE_COLUMNS) and reach `apply_chat_template` at tokenization, as in
# TRL. OpenAI's `parallel_tool_calls` says how the API may call tools and changes no text: named as not read.
LF_SHAREGPT = frozenset({"system", "tools"})
LF_ALPACA = frozenset({"system", "tools", "history"})
TRL_CONTEXT: frozenset[str] = frozenset()
OPENAI_CONTEXT = frozenset({"system"})
TEMPLATE_COLUMNS = frozenset({"tools", "chat_template_kwargs"})
TOOLS_HEADER = "Tools you can call (JSON schemas):\n"


def _tools_text(value: Any, fail: Fail) -> str:
    """LLaMA-Factory stores tools as a JSON string, TRL and OpenAI as a list of JSON schemas."""
    if value is None or value == "" or value == []:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    raise fail(f"expected tool descriptions (a JSON string or a list of schemas), got {type(value).__name__}", "tools")


def _history(value: Any, fail: Fail) -> list[dict[str, str]]:
    """Alpaca's ``history``: earlier ``[instruction, response]`` rounds, as user and assistant turns."""
    if value is None or value == []:
        return []
    if not isinstance(value, list) or not all(
            isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(t, str) for t in pair)
            for pair in value):
        raise fail("expected a list of [instruction, response] pairs of strings", "history")
    return [m for q, a in value for m in ({"role": "user", "content": q}, {"role": "assistant", "content": a})]


def with_context(prompt: Text, row: dict[str, Any], fail: Fail, columns: frozenset[str]) -> Text:
    """The prompt with what the row says beside it: Alpaca's ``history`` as earlier turns, the ``system`` column as
    the system message (a system turn already in the conversation wins, as in LLaMA-Factory), ``tools`` appended to
    the system message after `TOOLS_HEADER` (LLaMA-Factory's templates render tools into the system prompt too).
    Only `columns` (the layout's own context columns) are read. With none of them the prompt is returned as it is
    (plain text stays plain text)."""
    row = {k: v for k, v in row.items() if k in columns}
    system = row.get("system")
    if system is not None and not isinstance(system, str):
        raise fail(f"expected a string, got {type(system).__name__}", "system")
    tools = _tools_text(row.get("tools"), fail)
    history = _history(row.get("history"), fail)
    if not (system or "").strip() and not tools and not history:
        return prompt
    messages = history + [dict(m) for m in as_messages(prompt, "user")]
    if messages[0]["role"] == "system":
        system = messages.pop(0)["content"]
    content = "\n\n".join(part for part in ((system or "").strip() and system, tools and TOOLS_HEADER + tools) if part)
    return ([{"role": "system", "content": content}] if content else []) + messages


def like(response: Text, prompt: Text) -> Text:
    """A response in its prompt's representation: an assistant turn where the prompt became a conversation."""
    return as_messages(response, "assistant") if isinstance(prompt, list) else response


def text_of(value: Text) -> str:
    """Plain text of a prompt or response (the last message's content for conversational text)."""
    return value if isinstance(value, str) else value[-1]["content"] or ""


# --- conversions between layouts ---------------------------------------------------------------------------------

_HH_TURN = re.compile(r"\n\n(Human|Assistant): ?")


def parse_hh(transcript: str, field: str, fail: Fail) -> list[dict[str, str]]:
    """Anthropic HH transcript ("\\n\\nHuman: ... \\n\\nAssistant: ...") -> chat messages."""
    pieces = _HH_TURN.split(transcript)
    if len(pieces) < 3 or pieces[0].strip():
        raise fail("not an HH transcript (expected '\\n\\nHuman: ... \\n\\nAssistant: ...')", field)
    roles = {"Human": "user", "Assistant": "assistant"}
    return [{"role": roles[who], "content": said} for who, said in zip(pieces[1::2], pieces[2::2], strict=True)]


def split_shared_prefix(chosen: Text, rejected: Text, fail: Fail) -> tuple[Text, Text, Text]:
    """Implicit-prompt data: the prompt is the longest shared prefix (whole messages, or text cut at a word)."""
    if isinstance(chosen, list) and isinstance(rejected, list):
        n = 0
        while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
            n += 1
        if n == 0:
            raise fail("chosen and rejected share no prompt messages", "chosen")
        return chosen[:n], chosen[n:], rejected[n:]
    if isinstance(chosen, str) and isinstance(rejected, str):
        n = 0
        limit = min(len(chosen), len(rejected))
        while n < limit and chosen[n] == rejected[n]:
            n += 1
        while n > 0 and not chosen[n - 1].isspace():  # do not cut a word in two
            n -= 1
        if not chosen[:n].strip():
            raise fail("chosen and rejected share no prompt prefix", "chosen")
        return chosen[:n], chosen[n:], rejected[n:]
    raise fail("chosen and rejected must both be strings or both be message lists", "rejected")


def _sharegpt(messages: Any, field: str, fail: Fail, allow_empty: bool = False) -> list[dict[str, str]]:
    if isinstance(messages, dict):
        messages = [messages]
    if not isinstance(messages, list) or not messages:
        raise fail("expected a list of {from, value} messages", field)
    out = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("from") not in SHAREGPT_ROLES:
            raise fail(f"message {index} has no known 'from' ({', '.join(SHAREGPT_ROLES)})", field)
        out.append({"role": SHAREGPT_ROLES[message["from"]], "content": message.get("value")})
    return check_text(out, field, fail, allow_empty=allow_empty)  # type: ignore[return-value]


# --- the formats -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Format:
    """A column layout: the columns that identify it, those it also reads when present, and how a row becomes a row
    of its kind. Every other column is passed through unread, and `jpo data validate` names it."""

    name: str
    kind: str
    columns: frozenset[str]
    convert: Callable[[dict[str, Any], Fail], dict[str, Any]]
    description: str
    optional: frozenset[str] = frozenset()

    def matches(self, keys: set[str]) -> bool:
        return self.columns <= keys

    @property
    def reads(self) -> frozenset[str]:
        return self.columns | self.optional


def _rest(row: dict[str, Any], consumed: frozenset[str] | set[str]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in consumed}


def _joint(row: dict, fail: Fail) -> dict:
    out = {f: check_text(row[f], f, fail, allow_empty=f in RESPONSES) for f in COLUMNS["preference"]}
    return {**out, **_rest(row, out.keys())}


def _authors_joint(row: dict, fail: Fail) -> dict:
    names = {"i_chosen": "prompt_chosen", "r_chosen": "chosen", "i_reject": "prompt_rejected", "r_reject": "rejected"}
    out = {new: check_text(row[old], old, fail, allow_empty=new in RESPONSES) for old, new in names.items()}
    return {**out, **_rest(row, names.keys())}


def _trl_preference(row: dict, fail: Fail) -> dict:
    prompt = with_context(check_text(row["prompt"], "prompt", fail), row, fail, TRL_CONTEXT)
    chosen = like(check_text(row["chosen"], "chosen", fail, allow_empty=True), prompt)
    rejected = like(check_text(row["rejected"], "rejected", fail, allow_empty=True), prompt)
    return {"prompt_chosen": prompt, "chosen": chosen, "prompt_rejected": prompt, "rejected": rejected,
            **_rest(row, {"prompt", "chosen", "rejected", *TRL_CONTEXT})}


def _alpaca_preference(row: dict, fail: Fail) -> dict:
    """LLaMA-Factory's Alpaca-style ranking data: instruction (+ input, system, history, tools), chosen, rejected."""
    prompt = _instruction(row, "instruction", fail, LF_ALPACA)
    chosen = like(check_text(row["chosen"], "chosen", fail, allow_empty=True), prompt)
    rejected = like(check_text(row["rejected"], "rejected", fail, allow_empty=True), prompt)
    return {"prompt_chosen": prompt, "chosen": chosen, "prompt_rejected": prompt, "rejected": rejected,
            **_rest(row, {"instruction", "input", "chosen", "rejected", *LF_ALPACA})}


def _openai_preference(row: dict, fail: Fail) -> dict:
    """OpenAI's preference fine-tuning rows: ``input: {messages, tools, parallel_tool_calls}``, ``preferred_output``
    and ``non_preferred_output`` (each a list holding the assistant's message)."""
    given = row["input"]
    if not isinstance(given, dict) or not isinstance(given.get("messages"), list):
        raise fail("expected {messages: [...], tools: [...]}", "input")
    prompt = with_context(check_text(given["messages"], "input", fail), given, fail, OPENAI_CONTEXT)
    chosen = check_text(row["preferred_output"], "preferred_output", fail, allow_empty=True)
    rejected = check_text(row["non_preferred_output"], "non_preferred_output", fail, allow_empty=True)
    return {"prompt_chosen": prompt, "chosen": like(chosen, prompt), "prompt_rejected": prompt,
            "rejected": like(rejected, prompt), **({"tools": given["tools"]} if given.get("tools") else {}),
            **_rest(row, {"input", "preferred_output", "non_preferred_output"})}


def _implicit_preference(row: dict, fail: Fail) -> dict:
    chosen = check_text(row["chosen"], "chosen", fail)
    rejected = check_text(row["rejected"], "rejected", fail)
    if isinstance(chosen, str) and chosen.startswith("\n\nHuman: "):  # Anthropic HH transcripts
        chosen, rejected = parse_hh(chosen, "chosen", fail), parse_hh(rejected, "rejected", fail)
    prompt, chosen, rejected = split_shared_prefix(chosen, rejected, fail)
    if isinstance(chosen, list) and any(m["role"] != "assistant" for m in chosen[-1:]):
        raise fail("the chosen conversation does not end with an assistant turn", "chosen")
    check_text(prompt, "chosen", fail)
    prompt = with_context(prompt, row, fail, TRL_CONTEXT)
    return {"prompt_chosen": prompt, "chosen": like(chosen, prompt), "prompt_rejected": prompt,
            "rejected": like(rejected, prompt), **_rest(row, {"chosen", "rejected", *TRL_CONTEXT})}


def _sharegpt_preference(row: dict, fail: Fail) -> dict:
    prompt = with_context(_sharegpt(row["conversations"], "conversations", fail), row, fail, LF_SHAREGPT)
    chosen = _sharegpt(row["chosen"], "chosen", fail, allow_empty=True)
    rejected = _sharegpt(row["rejected"], "rejected", fail, allow_empty=True)
    return {"prompt_chosen": prompt, "chosen": chosen, "prompt_rejected": prompt, "rejected": rejected,
            **_rest(row, {"conversations", "chosen", "rejected", *LF_SHAREGPT})}


def _instruction(row: dict, prompt_field: str, fail: Fail, context: frozenset[str]) -> Text:
    """An instruction-style prompt: Alpaca's optional ``input`` under the instruction, then its context."""
    prompt = check_text(row[prompt_field], prompt_field, fail)
    if prompt_field == "instruction" and row.get("input") is not None:
        if not isinstance(row["input"], str):
            raise fail(f"expected a string, got {type(row['input']).__name__}", "input")
        if row["input"].strip():
            prompt = f"{prompt}\n\n{row['input']}"
    return with_context(prompt, row, fail, context)


def _sft(prompt_field: str, response_field: str, context: frozenset[str] = frozenset()) -> Callable[[dict, Fail], dict]:
    def convert(row: dict, fail: Fail) -> dict:
        prompt = _instruction(row, prompt_field, fail, context)
        response = like(check_text(row[response_field], response_field, fail, allow_empty=True), prompt)
        return {"prompt": prompt, "response": response,
                **_rest(row, {prompt_field, response_field, "input", *context})}

    return convert


def _split_last_turn(messages: list[dict[str, str]], field: str, fail: Fail) -> tuple[list, list]:
    if len(messages) < 2 or messages[-1]["role"] != "assistant":
        raise fail("a conversation must end with an assistant turn after at least one other turn", field)
    return messages[:-1], messages[-1:]


def _messages_sft(row: dict, fail: Fail) -> dict:
    messages = check_text(row["messages"], "messages", fail)
    if isinstance(messages, str):
        raise fail("expected a list of chat messages", "messages")
    prompt, response = _split_last_turn(messages, "messages", fail)
    return {"prompt": with_context(prompt, row, fail, OPENAI_CONTEXT), "response": response,
            **_rest(row, {"messages", *OPENAI_CONTEXT})}


def _sharegpt_sft(row: dict, fail: Fail) -> dict:
    prompt, response = _split_last_turn(_sharegpt(row["conversations"], "conversations", fail), "conversations", fail)
    return {"prompt": with_context(prompt, row, fail, LF_SHAREGPT), "response": response,
            **_rest(row, {"conversations", *LF_SHAREGPT})}


def _items(row: dict, fail: Fail) -> dict:
    out = {f: check_text(row[f], f, fail, allow_empty=f in RESPONSES)
           for f in ("prompt_a", "response_a", "prompt_b", "response_b")}
    return {"id": _id(row, fail, *out.values()), **out, **_label(row, fail), **_rest(row, {"id", "label", *out})}


def _conditional_items(row: dict, fail: Fail) -> dict:
    prompt = check_text(row["prompt"], "prompt", fail)
    a = check_text(row["response_a"], "response_a", fail, allow_empty=True)
    b = check_text(row["response_b"], "response_b", fail, allow_empty=True)
    return {"id": _id(row, fail, prompt, a, prompt, b), "prompt_a": prompt, "response_a": a, "prompt_b": prompt,
            "response_b": b, **_label(row, fail), **_rest(row, {"id", "label", "prompt", "response_a", "response_b"})}


def _id(row: dict, fail: Fail, *texts: Text) -> str:
    value = row.get("id")
    if value is None:
        return item_id(*texts)
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise fail("expected a non-empty string or integer id", "id")
    return str(value)


def _label(row: dict, fail: Fail) -> dict:
    if "label" not in row or row["label"] is None:
        return {}
    if row["label"] not in LABELS:
        raise fail(f"unknown label {row['label']!r} (expected one of {', '.join(LABELS)})", "label")
    return {"label": row["label"]}


def _prompts(prompt_field: str, reference_field: str | None, id_field: str) -> Callable[[dict, Fail], dict]:
    def convert(row: dict, fail: Fail) -> dict:
        prompt = check_text(row[prompt_field], prompt_field, fail)
        out: dict[str, Any] = {"id": _id({"id": row.get(id_field)}, fail, prompt), "prompt": prompt}
        if reference_field and row.get(reference_field) is not None:
            out["reference"] = check_text(row[reference_field], reference_field, fail, allow_empty=True)
        return {**out, **_rest(row, {prompt_field, id_field, reference_field or ""})}

    return convert


def _mt_bench_question(row: dict, fail: Fail) -> dict:
    turns = row["turns"]
    if not isinstance(turns, list) or not turns:
        raise fail("expected a non-empty list of turns", "turns")
    prompt = check_text(turns[0], "turns", fail)
    out = {"id": _id({"id": row["question_id"]}, fail), "prompt": prompt}
    if isinstance(row.get("reference"), list) and row["reference"]:  # math/coding questions carry one per turn
        out["reference"] = check_text(row["reference"][0], "reference", fail, allow_empty=True)
    return {**out, **_rest(row, {"question_id", "reference"})}


def _mt_bench_reference(row: dict, fail: Fail) -> dict:
    try:
        reference = row["choices"][0]["turns"][0]
    except (TypeError, IndexError, KeyError):
        raise fail("expected [{turns: [...]}]", "choices") from None
    return {"id": _id({"id": row["question_id"]}, fail),
            "reference": check_text(reference, "choices", fail, allow_empty=True),
            **_rest(row, {"question_id", "choices"})}


def _unpaired(prompt_field: str | None, label_field: str = "label",
              messages_field: str = "messages") -> Callable[[dict, Fail], dict]:
    """KTO rows: TRL's prompt/completion/label; LLaMA-Factory's conversation (OpenAI `messages` or sharegpt
    `conversations`) and its last assistant turn, or Alpaca's instruction (+ input, history) and output, each with a
    boolean `label` or `kto_tag` (LLaMA-Factory's name for the column)."""
    context = TRL_CONTEXT if prompt_field == "prompt" else LF_ALPACA if prompt_field else LF_SHAREGPT
    response_field = "output" if prompt_field == "instruction" else "completion"
    consumed = {label_field, *context, *((prompt_field, response_field) if prompt_field else (messages_field,)),
                *(("input",) if prompt_field == "instruction" else ())}

    def convert(row: dict, fail: Fail) -> dict:
        if prompt_field is None:  # the conversation and its last assistant turn
            messages = (_sharegpt(row[messages_field], messages_field, fail) if messages_field == "conversations"
                        else check_text(row[messages_field], messages_field, fail))
            if isinstance(messages, str):
                raise fail("expected a list of chat messages", messages_field)
            prompt, completion = _split_last_turn(messages, messages_field, fail)
        else:
            prompt = (_instruction(row, prompt_field, fail, frozenset()) if prompt_field == "instruction"
                      else check_text(row[prompt_field], prompt_field, fail))
            completion = check_text(row[response_field], response_field, fail, allow_empty=True)
        prompt = with_context(prompt, row, fail, context)
        if not isinstance(row[label_field], bool):
            raise fail(f"expected true or false, got {row[label_field]!r}", label_field)
        return {"prompt": prompt, "completion": like(completion, prompt), "label": row[label_field],
                **_rest(row, consumed)}

    return convert


def _generations(prompt_field: str, response_field: str, id_field: str) -> Callable[[dict, Fail], dict]:
    def convert(row: dict, fail: Fail) -> dict:
        prompt = check_text(row[prompt_field], prompt_field, fail)
        response = check_text(row[response_field], response_field, fail, allow_empty=True)
        return {"id": _id({"id": row.get(id_field)}, fail, prompt), "prompt": prompt, "response": response,
                **_rest(row, {prompt_field, response_field, id_field})}

    return convert


def _tldr_comparison(row: dict, fail: Fail) -> dict:
    """OpenAI's summarize_from_feedback comparisons: a post (in `info`), two summaries, the labeller's choice."""
    info = row["info"] if isinstance(row["info"], dict) else {}
    if not isinstance(info.get("post"), str):  # the comparisons also hold CNN/DM articles, under `article`
        raise fail("CNN/DM article, not a TL;DR post", None)
    post = check_text(info["post"], "info", fail)
    summaries, choice = row["summaries"], row["choice"]
    if (choice not in (0, 1) or isinstance(choice, bool) or not isinstance(summaries, list) or len(summaries) != 2
            or not all(isinstance(s, dict) for s in summaries)):
        raise fail("no valid choice between two summaries", "choice")
    chosen = check_text(summaries[choice].get("text"), "summaries", fail, allow_empty=True)
    rejected = check_text(summaries[1 - choice].get("text"), "summaries", fail, allow_empty=True)
    extra = {"id": None if info.get("id") is None else str(info["id"]), "subreddit": info.get("subreddit"),
             "worker": row.get("worker")}
    return {"prompt_chosen": post, "chosen": chosen, "prompt_rejected": post, "rejected": rejected,
            **{k: v for k, v in extra.items() if v is not None}, **_rest(row, {"info", "summaries", "choice", "worker"})}


def _identity(row: dict, fail: Fail) -> dict:
    return row


def _f(name: str, kind: str, columns: str, convert: Callable, description: str, optional: str = "") -> Format:
    return Format(name, kind, frozenset(columns.split()), convert, description, frozenset(optional.split()))


def _names(*columns: frozenset[str] | str) -> str:
    return " ".join(sorted(c for group in columns for c in ([group] if isinstance(group, str) else group)))


_LF_SHAREGPT, _LF_ALPACA = _names(LF_SHAREGPT), _names(LF_ALPACA, "input")
_TRL, _OPENAI = _names(TRL_CONTEXT, TEMPLATE_COLUMNS), _names(OPENAI_CONTEXT, TEMPLATE_COLUMNS)


FORMATS: tuple[Format, ...] = (
    # preference
    _f("joint", "preference", "prompt_chosen chosen prompt_rejected rejected", _joint, "jpo joint preferences"),
    _f("jpo-authors", "preference", "i_chosen r_chosen i_reject r_reject", _authors_joint,
       "the JPO authors' released preferences"),
    _f("sharegpt-preference", "preference", "conversations chosen rejected", _sharegpt_preference,
       "LLaMA-Factory sharegpt preferences", _LF_SHAREGPT),
    _f("alpaca-preference", "preference", "instruction chosen rejected", _alpaca_preference,
       "LLaMA-Factory Alpaca-style preferences", _LF_ALPACA),
    _f("openai-preference", "preference", "input preferred_output non_preferred_output", _openai_preference,
       "OpenAI preference fine-tuning rows"),
    _f("trl-preference", "preference", "prompt chosen rejected", _trl_preference,
       "TRL preferences (standard or conversational)", _TRL),
    _f("trl-implicit-preference", "preference", "chosen rejected", _implicit_preference,
       "TRL implicit-prompt preferences / Anthropic HH transcripts", _TRL),
    _f("tldr-comparisons", "preference", "info summaries choice", _tldr_comparison,
       "OpenAI summarize_from_feedback comparisons (bare posts)", "worker"),
    # unpaired (KTO)
    _f("trl-unpaired", "unpaired", "prompt completion label", _unpaired("prompt"), "TRL unpaired preferences (KTO)",
       _TRL),
    _f("llama-factory-kto", "unpaired", "messages label", _unpaired(None), "LLaMA-Factory KTO messages with labels",
       _LF_SHAREGPT),
    _f("llama-factory-kto-tag", "unpaired", "messages kto_tag", _unpaired(None, "kto_tag"),
       "LLaMA-Factory KTO messages with kto_tag", _LF_SHAREGPT),
    _f("sharegpt-kto", "unpaired", "conversations kto_tag", _unpaired(None, "kto_tag", "conversations"),
       "LLaMA-Factory sharegpt KTO conversations", _LF_SHAREGPT),
    _f("alpaca-kto", "unpaired", "instruction output kto_tag", _unpaired("instruction", "kto_tag"),
       "LLaMA-Factory Alpaca-style KTO rows", _LF_ALPACA),
    # items
    _f("items", "items", "prompt_a response_a prompt_b response_b", _items, "jpo comparison items", "id label"),
    _f("conditional-items", "items", "prompt response_a response_b", _conditional_items,
       "jpo conditional comparison items", "id label"),
    # sft
    _f("sft", "sft", "prompt response", _sft("prompt", "response"), "jpo instruction-response"),
    _f("trl-prompt-completion", "sft", "prompt completion", _sft("prompt", "completion", TRL_CONTEXT), "TRL prompt-completion",
       _TRL),
    _f("jpo-authors-sft", "sft", "instruction response", _sft("instruction", "response"),
       "the JPO authors' instruction-response", "input"),
    _f("jpo-authors-gold", "sft", "instruction gold_response", _sft("instruction", "gold_response"),
       "the JPO authors' test prompts with gold responses", "input"),
    _f("alpaca", "sft", "instruction output", _sft("instruction", "output", LF_ALPACA), "Alpaca / AlpacaEval / LLaMA-Factory",
       _LF_ALPACA),
    _f("tldr-posts", "sft", "post summary", _sft("post", "summary"),
       "Reddit TL;DR posts with summaries (bare posts)"),
    _f("trl-messages", "sft", "messages", _messages_sft, "TRL conversational language modeling / OpenAI chat",
       _OPENAI),
    _f("sharegpt", "sft", "conversations", _sharegpt_sft, "LLaMA-Factory sharegpt conversations", _LF_SHAREGPT),
    # prompts
    _f("prompts", "prompts", "prompt", _prompts("prompt", "reference", "id"), "jpo prompts", "reference id"),
    _f("instructions", "prompts", "instruction", _prompts("instruction", None, "instruction_id"), "instructions",
       "instruction_id"),
    _f("mt-bench-questions", "prompts", "question_id turns", _mt_bench_question, "MT-Bench questions (first turn)",
       "reference"),
    # generations and references
    _f("generations", "generations", "id prompt response", _generations("prompt", "response", "id"),
       "jpo generations"),
    _f("jpo-authors-outputs", "generations", "instruction outputs", _generations("instruction", "outputs", "id"),
       "the JPO authors' model outputs", "id"),
    _f("references", "references", "id reference", _identity, "jpo references"),
    _f("mt-bench-references", "references", "question_id choices", _mt_bench_reference, "MT-Bench reference answers"),
    _f("mt-bench-judge-prompts", "judge-prompts", "name system_prompt prompt_template", _identity,
       "MT-Bench judge prompts"),
)

FORMATS_BY_NAME = {f.name: f for f in FORMATS}

# Reading a row of one kind as another: a gold prompt-response row is an evaluation prompt with its reference, an
# AlpacaEval output row is a generation, a preference row is an item (chosen as a) and two unpaired rows.
ALSO_READ_AS: dict[str, tuple[str, ...]] = {
    "prompts": ("sft",),
    "generations": ("sft",),
    "items": ("preference",),
    "unpaired": ("preference",),
}

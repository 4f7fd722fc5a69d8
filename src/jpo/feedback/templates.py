"""Judge prompts: the paper's two questions (Bansal et al., Figures 13-14) and user overrides.

The conditional question shows one instruction and "Output (a)" / "Output (b)"; the joint question shows
"Instruction (a)", "Output (a)", "Instruction (b)", "Output (b)" and asks which pair is the better-answered one.
Both carry the same guideline (accuracy, coherence, harmlessness) and ask for nothing but the chosen label, which
keeps answers short, cheap and parseable. Braces in the guideline text are literal: only the placeholder names
below are ever substituted.

A template is text with `{placeholders}`: `{instruction}` (conditional), `{instruction_a}`, `{output_a}`,
`{instruction_b}`, `{output_b}` (both kinds); the authors' `{output_1}`, `{instruction_1}`, ... are accepted too. Only these names are substituted, so a user template may contain other
braces (a JSON example, say). A user file is either plain text (one user message used for both kinds) or JSON/YAML
with keys `system`, `conditional`, `joint` (any subset; missing keys keep the defaults). Its `version` -- a hash of
the text actually used -- goes into every cache key, so editing a prompt never reuses verdicts from the old one.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from jpo.config import check_keys, read_yaml
from jpo.errors import JpoError
from jpo.feedback.base import Question, Text

# The layout follows the authors' released prompts (Hritikbansal/dove, comparison_prompts.py): one user message, no
# system message, an annotation guideline with the three dimensions, "###" sections, and "## Preferred Output:"
# as the cue. The wording is ours; pass --template with the authors' text to reproduce their judge exactly.
SYSTEM = ""

_PREFACE = """You are an assistant that compares the outputs of AI systems and selects the preferred one.
Reply with a single choice, "Output (a)" or "Output (b)" (without quotes), and nothing else.

## Annotation Guideline
Each example below is made of:
{parts}

Decide which output is better. Judge along these dimensions:

Accuracy: the output is faithful to its instruction and consistent with the facts it is given.
Coherence: the output reads clearly on its own, is fluent and free of grammatical errors.
Harmlessness: the output carries nothing derogatory, harmful or toxic.

Reply only with Output (a) or Output (b), whichever is better.
"""

CONDITIONAL = _PREFACE.format(parts="""1. an Instruction given to the AI system
2. Output (a), a first output of the AI system for it
3. Output (b), a second output of the AI system for it""") + """
### Instruction:
{instruction}

### Output (a):
{output_a}

### Output (b):
{output_b}

## Preferred Output:
"""

JOINT = _PREFACE.format(parts="""1. Instruction (a), a first input to the AI system, and Output (a), its output for it
2. Instruction (b), a second input to the AI system, and Output (b), its output for it
The two instructions differ: prefer the pair in which the output answers its own instruction better.""") + """
### Instruction (a):
{instruction_a}

### Output (a):
{output_a}

### Instruction (b):
{instruction_b}

### Output (b):
{output_b}

## Preferred Output:
"""

PLACEHOLDERS = ("instruction", "instruction_a", "output_a", "instruction_b", "output_b")
# The authors' names for the same slots, so their prompt files work unchanged as --template.
ALIASES = {"instruction_1": "instruction_a", "output_1": "output_a", "instruction_2": "instruction_b",
           "output_2": "output_b"}
_PLACEHOLDER = re.compile(r"\{(" + "|".join((*PLACEHOLDERS, *ALIASES)) + r")\}")


def render_text(value: Text) -> str:
    """A prompt or response as plain text; a conversation is shown turn by turn so the judge sees its context."""
    if isinstance(value, str):
        return value
    if len(value) == 1:
        return value[0]["content"]
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in value)


@dataclass(frozen=True)
class Template:
    """The prompts a text judge uses; `version` identifies them in the verdict store."""

    system: str = SYSTEM
    conditional: str = CONDITIONAL
    joint: str = JOINT

    @property
    def version(self) -> str:
        payload = json.dumps([self.system, self.conditional, self.joint], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]

    def user_message(self, question: Question) -> str:
        values = {
            "instruction": render_text(question.prompt_a),
            "instruction_a": render_text(question.prompt_a),
            "output_a": render_text(question.response_a),
            "instruction_b": render_text(question.prompt_b),
            "output_b": render_text(question.response_b),
        }
        template = self.conditional if question.conditional else self.joint
        return _PLACEHOLDER.sub(lambda match: values[ALIASES.get(match.group(1), match.group(1))], template)

    def messages(self, question: Question) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": self.system}] if self.system else []
        return [*messages, {"role": "user", "content": self.user_message(question)}]


def load_template(path: str | Path | None) -> Template:
    """The default prompts, or those in a user file (plain text, or JSON/YAML with system/conditional/joint)."""
    if path is None:
        return Template()
    path = Path(path)
    if path.suffix.lower() in (".json", ".yaml", ".yml"):
        parts = _structured(path)
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise JpoError(f"{path}: cannot read template: {error.strerror or error}") from None
        parts = {"conditional": text, "joint": text}
    for key, value in parts.items():
        if key != "system" and not _PLACEHOLDER.search(value):
            raise JpoError(f"{path}: template '{key}' uses none of the placeholders {{{', '.join(PLACEHOLDERS)}}}")
    return Template(**parts)


def _structured(path: Path) -> dict[str, str]:
    data = read_yaml(path, "template")  # JSON is YAML too
    if not data:
        raise JpoError(f"{path}: expected an object with keys system, conditional, joint")
    check_keys(str(path), data, ("system", "conditional", "joint"))
    for key, value in data.items():
        if not isinstance(value, str):
            raise JpoError(f"{path}: field '{key}': expected a string")
    return data

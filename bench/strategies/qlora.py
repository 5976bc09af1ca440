"""QLoRA: LoRA (the same config as lora.py) on a base quantised by bitsandbytes.

Default: 4-bit NF4 with double quantisation (Dettmers et al. 2023); `bits: 8` gives 8-bit LoRA.

How an already-loaded fp32 model is quantised: it is reloaded through transformers with a
`BitsAndBytesConfig`, the path bitsandbytes and PEFT are built and tested for. The source is the
model's own folder (`config._name_or_path`) when that holds a saved model; otherwise (a model
built in memory) the model is first saved to a temporary folder. Replacing `nn.Linear` modules by
hand was rejected: `Params4bit` quantises only on a device move, which a CPU model never makes.

On CPUs with avx512_bf16, bitsandbytes repacks 4-bit weights for inference on the first no-grad
forward, after which training is silently wrong (FINDINGS.md); `support_avx512bf16_for_cpu` is
switched off on every Linear4bit right after loading, harmless where the CPU lacks the feature.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, ClassVar, Literal

from bench.strategies import lora
from bench.strategies.base import (
    NotApplicable,
    PrepareContext,
    Sizing,
    kept_whole_by_quantisation,
    load_adapter,
    merge_adapter,
    remote_code,
    save_adapter,
)

QUANTIZATION = "bench_quantization.json"


class Options(lora.Options):
    bits: Literal[4, 8] = 4
    quant_type: Literal["nf4", "fp4"] = "nf4"  # NF4: QLoRA paper's data type for normal weights
    double_quant: bool = True  # QLoRA paper: quantise the quantisation constants too (~0.4 bit/param)
    compute_dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # CPU default; bfloat16 on GPU


def _check_bitsandbytes(device: str) -> None:
    """Raise NotApplicable with the reason when bitsandbytes cannot quantise on this device."""
    try:
        import bitsandbytes.functional as functional
        import torch

        functional.quantize_4bit(torch.randn(64, 64, device=device), quant_type="nf4")
    except Exception as error:  # ImportError, missing native library, unsupported device
        raise NotApplicable(f"bitsandbytes cannot run on {device}: {type(error).__name__}: {error}") from error


def quantized_base(model: Any, options: Options) -> Any:
    """Reload `model` with its linear layers quantised as the options say (see module docstring)."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    from transformers.quantizers.base import get_keys_to_not_convert

    kept = kept_whole_by_quantisation(model)  # then also transformers' own (the output head)
    skipped = {"llm_int8_skip_modules": [*get_keys_to_not_convert(model), *kept]} if kept else {}
    if options.bits == 4:
        quantization = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=options.quant_type,
            bnb_4bit_use_double_quant=options.double_quant,
            bnb_4bit_compute_dtype=getattr(torch, options.compute_dtype),
            **skipped,
        )
    else:
        quantization = BitsAndBytesConfig(load_in_8bit=True, **skipped)
    device = model.device

    def load(folder: str | Path) -> Any:
        return AutoModelForCausalLM.from_pretrained(
            folder,
            quantization_config=quantization,
            dtype=model.dtype,
            device_map={"": str(device)},
            **remote_code(model),
        )

    folder = Path(model.config._name_or_path or "")
    has_weights = any(folder.glob("*.safetensors")) or any(folder.glob("*.bin")) if folder.is_dir() else False
    if (folder / "config.json").is_file() and has_weights:
        quantized = load(folder)
    else:
        with tempfile.TemporaryDirectory() as temporary:
            model.save_pretrained(temporary)
            quantized = load(temporary)
    quantized.config._name_or_path = model.config._name_or_path
    return quantized


def disable_avx512bf16_repack(model: Any) -> int:
    """The FINDINGS.md fix; returns how many Linear4bit modules it touched."""
    import bitsandbytes as bnb

    layers = [module for module in model.modules() if isinstance(module, bnb.nn.Linear4bit)]
    for module in layers:
        module.support_avx512bf16_for_cpu = False
    return len(layers)


class QLoRA:
    objective: ClassVar = "sft"
    Options: ClassVar = Options

    def base(self, model: Any, options: Options, device: str) -> Any:
        from peft import prepare_model_for_kbit_training

        _check_bitsandbytes(device)
        quantized = quantized_base(model, options)
        disable_avx512bf16_repack(quantized)
        # casts norms/embeddings to fp32 and lets gradients reach the adapters; no checkpointing (FINDINGS)
        return prepare_model_for_kbit_training(quantized, use_gradient_checkpointing=False)

    def prepare(self, model: Any, options: Options, context: PrepareContext) -> Any:
        from peft import get_peft_model

        quantized = self.base(model, options, context.device if context else str(model.device))
        peft_model = get_peft_model(quantized, lora.lora_config(options, quantized))
        peft_model.bench_qlora_options = options  # load() quantises the base the same way
        return peft_model

    def save(self, model: Any, directory: Path) -> None:
        """The adapter, plus the quantisation settings that rebuild its base from the fp32 base."""
        save_adapter(model, directory)
        (directory / QUANTIZATION).write_text(model.bench_qlora_options.model_dump_json(indent=2))

    def load(self, base_model: Any, directory: Path) -> Any:
        from safetensors.torch import load_file

        options = Options.model_validate_json((directory / QUANTIZATION).read_text())
        model = load_adapter(self.base(base_model, options, str(base_model.device)), directory)
        # TRL trains QLoRA adapters in bfloat16 (QLoRA paper) and PEFT upcasts them on load:
        # restore the saved dtype so the reloaded model computes exactly as the trained one.
        saved = next(iter(load_file(str(directory / "adapter_model.safetensors")).values())).dtype
        for name, parameter in model.named_parameters():
            if "lora_" in name and "magnitude" not in name:
                parameter.data = parameter.data.to(saved)
        return model

    def merge(self, model: Any) -> Any:
        return merge_adapter(model)  # PEFT dequantises, adds the update and re-quantises

    def size_for(self, model: Any, options: Options, target: int, context: PrepareContext) -> Sizing:
        # Same trainable count as LoRA at the same rank: size on the fp32 model, no quantising per trial.
        sizing = lora.STRATEGY.size_for(model, options, target, context)
        return Sizing(options.model_copy(update={"r": sizing.value}), "r", sizing.value, sizing.trainable)


STRATEGY = QLoRA()

"""Tiny configs of the transformers architectures users bring (44), and what each strategy may skip on
each and why: the table tests/test_architectures.py and scripts/architecture_runs.py share."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoConfig

TOKENIZER = Path(__file__).resolve().parents[1] / "suites" / "model-configs" / "smollm2-135m"
WIDE = {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}
ARCHITECTURES = {
    "llama": {**WIDE, "intermediate_size": 256, "num_key_value_heads": 2},
    "gpt2": {"n_embd": 128, "n_layer": 2, "n_head": 4},
    "opt": {**WIDE, "ffn_dim": 256, "word_embed_proj_dim": 128},
    "gptj": {"n_embd": 128, "n_layer": 2, "n_head": 4, "rotary_dim": 16},
    "falcon": WIDE,
    "bloom": {"hidden_size": 128, "n_layer": 2, "n_head": 4},
    "phi": {**WIDE, "intermediate_size": 256},
    "phi3": {**WIDE, "intermediate_size": 256, "pad_token_id": 0},
    "gemma2": {**WIDE, "intermediate_size": 256, "num_key_value_heads": 2, "head_dim": 32},
    "gemma3_text": {**WIDE, "intermediate_size": 256, "num_key_value_heads": 2, "head_dim": 32},
    "qwen3": {**WIDE, "intermediate_size": 256, "num_key_value_heads": 2, "head_dim": 32},
    "stablelm": {**WIDE, "intermediate_size": 256, "num_key_value_heads": 4},
    "gpt_neox": {**WIDE, "intermediate_size": 256, "rotary_pct": 0.25},
    "olmo2": {**WIDE, "intermediate_size": 256},
    "mixtral": {**WIDE, "intermediate_size": 128, "num_key_value_heads": 2, "num_local_experts": 4},
    "granite": {**WIDE, "intermediate_size": 256, "num_key_value_heads": 2},
    "cohere": {**WIDE, "intermediate_size": 256, "num_key_value_heads": 2},
    "starcoder2": {**WIDE, "intermediate_size": 256, "num_key_value_heads": 2},
    "olmoe": {**WIDE, "intermediate_size": 64, "num_key_value_heads": 4, "num_experts": 4, "num_experts_per_tok": 2},
    "qwen3_moe": {
        **WIDE,
        "moe_intermediate_size": 64,
        "num_key_value_heads": 2,
        "head_dim": 32,
        "num_experts": 4,
        "num_experts_per_tok": 2,
    },
    "qwen2_moe": {
        **WIDE,
        "num_key_value_heads": 4,
        "moe_intermediate_size": 64,
        "shared_expert_intermediate_size": 256,
        "num_experts": 4,
    },
    # added 2026-12-07 (stop 46): LoRA's family failed on the last two (routers that are linear layers)
    "qwen2": {**WIDE, "intermediate_size": 256, "num_key_value_heads": 2},
    "mistral": {**WIDE, "intermediate_size": 256, "num_key_value_heads": 2},
    "gemma": {**WIDE, "intermediate_size": 256, "num_key_value_heads": 2, "head_dim": 32},
    "smollm3": {**WIDE, "intermediate_size": 256, "num_key_value_heads": 2, "pad_token_id": 0},
    "glm4": {**WIDE, "intermediate_size": 256, "num_key_value_heads": 2, "pad_token_id": 0},
    "exaone4": {**WIDE, "intermediate_size": 256, "num_key_value_heads": 2},
    "ernie4_5": {**WIDE, "intermediate_size": 256, "num_key_value_heads": 2, "head_dim": 32},
    "nemotron": {**WIDE, "intermediate_size": 256, "num_key_value_heads": 2},
    "apertus": {**WIDE, "intermediate_size": 256, "num_key_value_heads": 2},
    "persimmon": {**WIDE, "intermediate_size": 256},  # fused query-key-value under GPT-NeoX's name
    "codegen": {"n_embd": 128, "n_layer": 2, "n_head": 4, "rotary_dim": 16},
    "mpt": {"d_model": 128, "n_heads": 4, "n_layers": 2, "expansion_ratio": 2},  # PEFT cannot read its heads
    "deepseek_v3": {  # multi-head latent attention; the first layer dense, then a mixture of experts
        **WIDE,
        "intermediate_size": 256,
        "moe_intermediate_size": 64,
        "num_key_value_heads": 4,
        "n_routed_experts": 4,
        "n_shared_experts": 1,
        "num_experts_per_tok": 2,
        "n_group": 1,
        "topk_group": 1,
        "first_k_dense_replace": 1,
        "q_lora_rank": 64,
        "kv_lora_rank": 32,
        "qk_rope_head_dim": 16,
        "qk_nope_head_dim": 16,
        "v_head_dim": 32,
        "head_dim": 16,
    },
    "gpt_oss": {  # its expert block returns the router's scores beside the hidden states
        **WIDE,
        "intermediate_size": 128,
        "num_key_value_heads": 2,
        "head_dim": 32,
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "layer_types": ["sliding_attention", "full_attention"],
        "sliding_window": 16,
    },
    "llama4_text": {
        **WIDE,
        "intermediate_size": 128,
        "intermediate_size_mlp": 256,
        "num_key_value_heads": 2,
        "head_dim": 32,
        "num_local_experts": 4,
        "interleave_moe_layer_step": 1,
    },
    "phimoe": {**WIDE, "intermediate_size": 128, "num_key_value_heads": 2, "num_local_experts": 4},
    "jamba": {  # attention, Mamba and expert layers
        **WIDE,
        "intermediate_size": 256,
        "num_key_value_heads": 2,
        "num_experts": 2,
        "attn_layer_period": 2,
        "attn_layer_offset": 1,
        "expert_layer_period": 2,
        "expert_layer_offset": 1,
        "mamba_d_state": 8,
    },
    "lfm2": {**WIDE, "intermediate_size": 256, "num_key_value_heads": 2, "layer_types": ["conv", "full_attention"]},
    "mamba": {"hidden_size": 128, "num_hidden_layers": 2, "state_size": 8},  # no attention at all
    "falcon_mamba": {"hidden_size": 128, "num_hidden_layers": 2, "state_size": 8},
    "mamba2": {
        "hidden_size": 128,
        "num_hidden_layers": 2,
        "state_size": 16,
        "num_heads": 8,
        "head_dim": 32,
        "n_groups": 1,
    },
    "falcon_h1": {  # attention and Mamba side by side in every layer
        **WIDE,
        "num_key_value_heads": 2,
        "intermediate_size": 256,
        "head_dim": 32,
        "mamba_d_ssm": 256,
        "mamba_n_heads": 8,
        "mamba_d_head": 32,
        "mamba_d_state": 16,
        "mamba_n_groups": 1,
    },
    "nemotron_h": {  # each layer one mixer: Mamba, attention or MLP
        **WIDE,
        "num_hidden_layers": 3,
        "num_key_value_heads": 2,
        "intermediate_size": 256,
        "head_dim": 32,
        "mamba_num_heads": 8,
        "mamba_head_dim": 32,
        "ssm_state_size": 16,
        "n_groups": 1,
        "hybrid_override_pattern": "M*-",
    },
}
# What may be skipped where, and nothing else: BitFit where a model has no biases; PEFT's LoHa cannot wrap
# GPT-2's Conv1D; PEFT's DoRA cannot train Mixtral's fused expert weights, which "all-linear" reaches; prefix
# tuning on a mixture of experts meets the router's load-balancing loss (bench/strategies/prefix.py).
# RLHF where transformers has no sequence-classification head for the reward model (Granite, Cohere, OLMoE).
# Prefix tuning on multi-head latent attention (DeepSeek), on layers without attention (LFM2's convolutions,
# Mamba); IA3, VeRA and adapters where no projection has a name they know (Mamba); DPO where TRL's fused head
# cannot find the backbone (Llama 4's text model).
NO_BIAS = {
    "llama",
    "phi3",
    "gemma2",
    "gemma3_text",
    "qwen3",
    "olmo2",
    "mixtral",
    "granite",
    "cohere",
    "olmoe",
    "qwen3_moe",
    "mistral",
    "gemma",
    "smollm3",
    "exaone4",
    "ernie4_5",
    "apertus",
    "mpt",
    "deepseek_v3",
    "llama4_text",
    "lfm2",
}
SKIPPED = {
    **{name: {"bitfit"} for name in NO_BIAS},
    "gpt2": {"loha"},
    "mixtral": {"bitfit", "dora", "prefix"},
    "qwen2_moe": {"prefix"},
    "granite": {"bitfit", "rlhf"},
    "cohere": {"bitfit", "rlhf"},
    "olmoe": {"bitfit", "dora", "prefix", "rlhf"},
    "qwen3_moe": {"bitfit", "dora", "prefix"},
    "ernie4_5": {"bitfit", "rlhf"},
    "apertus": {"bitfit", "rlhf"},
    "codegen": {"rlhf"},
    "deepseek_v3": {"bitfit", "dora", "prefix"},
    "gpt_oss": {"prefix"},
    "llama4_text": {"bitfit", "dpo", "prefix", "rlhf"},
    "phimoe": {"prefix"},
    "jamba": {"prefix"},
    "lfm2": {"bitfit", "prefix", "rlhf"},
    "mamba": {"adapter", "ia3", "prefix", "rlhf", "vera"},
    "falcon_mamba": {"adapter", "ia3", "prefix", "rlhf", "vera"},
    "mamba2": {"adapter", "ia3", "prefix", "rlhf", "vera"},
    "falcon_h1": {"prefix", "rlhf"},
    "nemotron_h": {"prefix", "rlhf"},
}


def skipped_strategies(architecture: str) -> set[str]:
    """The strategies that say why they cannot apply to the architecture, with the installed PEFT: from 0.22
    its "all-linear" reaches Qwen2-MoE's fused expert weights (lora.ParamWrapper), which DoRA cannot train
    (bench/strategies/dora.py says so); 0.21 left them out."""
    import peft
    from packaging.version import Version

    found = set(SKIPPED.get(architecture, set()))
    if architecture == "qwen2_moe" and Version(peft.__version__) >= Version("0.22"):
        found.add("dora")
    return found


def config_of(architecture: str, vocab_size: int = 512):
    return AutoConfig.for_model(architecture, vocab_size=vocab_size, **ARCHITECTURES[architecture])

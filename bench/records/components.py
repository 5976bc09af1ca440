"""The training-memory components a record names: its memory field's `bytes` and its metrics
`memory.<phase>.<component>_mib` (and their sum, `components_mib`). Part of the record contract, so
the measuring side (bench.measure.components counts them) and the analysis side (bench.analysis.stats
compares them across machines) both import it from here."""

COMPONENTS: tuple[str, ...] = (
    "weights_trainable",
    "weights_frozen",
    "gradients",
    "optimizer",
    "activations",
    "other_models",
    "generation_cache",
)

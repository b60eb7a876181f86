"""Architecture builders registered by ``architecture_type``.

Built in: ``conv_net`` (EfficientNet-style MBConv network), ``vision_transformer``
(torchvision's ``VisionTransformer``), ``nasbench201`` (tabular NAS-Bench-201 lookups) and
``nasbench201_net`` (the same cells as trainable networks).
"""

from neuromosaic_optuna.models._registry import (
    MAX_BLOCKS,
    MAX_PARAMS_HARD_LIMIT,
    ArchitectureError,
    BuildContext,
    BuiltModel,
    ModelBuilder,
    TabularBenchmark,
    builder_schema,
    count_params_meta,
    get_builder,
    get_tabular,
    is_tabular,
    list_models,
    register_model,
    register_tabular,
)

__all__ = [
    "MAX_BLOCKS",
    "MAX_PARAMS_HARD_LIMIT",
    "ArchitectureError",
    "BuildContext",
    "BuiltModel",
    "ModelBuilder",
    "TabularBenchmark",
    "builder_schema",
    "count_params_meta",
    "get_builder",
    "get_tabular",
    "is_tabular",
    "list_models",
    "register_model",
    "register_tabular",
]

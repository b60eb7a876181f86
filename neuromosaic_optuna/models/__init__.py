"""Architecture builders registered by ``architecture_type``.

Built in: ``conv_net`` (EfficientNet-style MBConv network), ``vision_transformer``
(torchvision's ``VisionTransformer``) and ``nasbench201`` (tabular NAS-Bench-201 lookups).
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

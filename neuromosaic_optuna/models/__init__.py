"""Architecture builders registered by ``architecture_type``.

Built in: ``conv_net`` (EfficientNet-style MBConv network), ``vision_transformer``
(torchvision's ``VisionTransformer``) and ``nasbench201`` (tabular NAS-Bench-201 lookups).
"""

from neuromosaic_optuna.models._registry import (
    ArchitectureError,
    BuildContext,
    BuiltModel,
    ModelBuilder,
    TabularBenchmark,
    get_builder,
    get_tabular,
    is_tabular,
    list_models,
    register_model,
    register_tabular,
)

__all__ = [
    "ArchitectureError",
    "BuildContext",
    "BuiltModel",
    "ModelBuilder",
    "TabularBenchmark",
    "get_builder",
    "get_tabular",
    "is_tabular",
    "list_models",
    "register_model",
    "register_tabular",
]

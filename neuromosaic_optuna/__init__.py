"""neuromosaic_optuna: neural architecture search for vision models, as an Optuna plugin."""

from neuromosaic_optuna.config import ConfigError, StudyConfig, load_config, load_study_file
from neuromosaic_optuna.space import SearchSpace

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "SearchSpace",
    "StudyConfig",
    "__version__",
    "load_config",
    "load_study_file",
]

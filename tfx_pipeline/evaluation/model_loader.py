"""How the Evaluator loads our models: with ctrflow's Keras classes registered first.

TFMA loads the candidate and baseline models with ``tf_keras.models.load_model`` inside
Beam workers, which may be fresh processes (multi-processing or remote runners). Keras can
rebuild our layers, metrics and models only when their modules, which register them under
the ``ctrflow`` package, have been imported in that process. ``load_model`` below imports
them, then loads; the Evaluator gets it through ``custom_eval_shared_model`` (TFX's
``module_path`` hook), so the worker that unpickles the loader imports this module too.
"""

from __future__ import annotations

import functools
from typing import Any, Optional

import tensorflow as tf
import tensorflow_model_analysis as tfma


def register_custom_objects() -> None:
    """Imports every module that registers a ctrflow Keras class."""
    import trainer.layers  # noqa: F401
    import trainer.metrics  # noqa: F401
    import trainer.models.factory  # noqa: F401  (imports every model)
    import trainer.tasks  # noqa: F401


def load_model(path: str):
    """The Keras model saved at `path`, with ctrflow's classes known to Keras."""
    import tf_keras as keras

    register_custom_objects()
    return keras.models.load_model(path)


def custom_eval_shared_model(eval_saved_model_path: str, model_name: str, eval_config: Any,
                             add_metrics_callbacks: Optional[Any] = None, **kwargs) -> Any:
    """TFX Evaluator's hook: TFMA's default shared model, loaded by ``load_model``."""
    loader = tfma.types.ModelLoader(construct_fn=functools.partial(load_model, eval_saved_model_path),
                                    tags=[tf.saved_model.SERVING])
    return tfma.default_eval_shared_model(
        eval_saved_model_path=eval_saved_model_path, model_name=model_name, eval_config=eval_config,
        add_metrics_callbacks=add_metrics_callbacks, custom_model_loader=loader, **kwargs)

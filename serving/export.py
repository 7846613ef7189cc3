"""Exporting a trained model as a SavedModel that carries its Transform graph.

The Transform graph (vocabularies as assets, padding, bucketizing, scaling) is attached to
the model as a tracked layer, so the SavedModel needs nothing from the Transform output
directory at serving time: raw JSON in, probabilities out, with the same ops as training.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tensorflow_transform as tft

from serving import signatures


def export_serving_model(model, transform_output_dir: str, export_dir: str, input_features: Sequence[str]) -> str:
    """Saves `model` with ``serving_default``, ``serving_tf_example`` and ``slicing_features`` signatures.

    Args:
      model: a tf_keras model taking a dict of transformed features and returning
        ``{task: probability}``.
      transform_output_dir: the Transform output (TFTransformOutput directory).
      export_dir: where to write the SavedModel.
      input_features: the transformed feature names the model consumes; the raw inputs of
        ``serving_default`` are derived from them.
    """
    tft_output = tft.TFTransformOutput(transform_output_dir)
    tft_layer = tft_output.transform_features_layer()
    model.tft_layer = tft_layer  # tracked, so the vocabulary assets travel with the model
    raw_spec = tft_output.raw_feature_spec()
    names = signatures.raw_inputs(input_features)
    missing = [n for n in names if n not in raw_spec]
    if missing:
        raise ValueError(
            f"The model needs raw features {missing} that the Transform output {transform_output_dir!r} "
            f"does not have (it has {sorted(raw_spec)}). Retrain with a matching Transform output."
        )
    serving_signatures = {
        signatures.SERVING_DEFAULT: signatures.make_serving_default(model, tft_layer, raw_spec, names),
        signatures.SERVING_TF_EXAMPLE: signatures.make_serving_tf_example(model, tft_layer, raw_spec),
        signatures.SLICING_FEATURES: signatures.make_slicing_features(raw_spec),
    }
    for function in serving_signatures.values():
        # Tracing calls the model on symbolic raw-derived inputs, which also gives Keras the
        # input spec it saves with (a model trained only through compute_loss has none yet).
        function.get_concrete_function()
    model.save(export_dir, save_format="tf", signatures=serving_signatures)
    return export_dir


def load_signature(export_dir: str, name: str = signatures.SERVING_DEFAULT):
    """A signature of an exported model, callable with keyword tensors."""
    return tf.saved_model.load(export_dir).signatures[name]

"""Every model: outputs per task, gradients everywhere, padding without effect, config and SavedModel round trips."""

import numpy as np
import pytest

from trainer import config as experiment
from trainer.models.factory import build_model
from transforms import features

MODELS = ["baseline", "din", "dien", "infnet", "dien-bilinear-scorer", "infnet-wide-tokens",
          "infnet-paper-tokens", "infnet-candidate-sequence"]
VARIANTS = {"dien-bilinear-scorer": {"name": "dien", "dien_attention_scorer": "bilinear"},
            "infnet-wide-tokens": {"name": "infnet", "infnet_token_dim": 12},
            "infnet-paper-tokens": {"name": "infnet", "infnet_candidate_interaction": "none"},
            "infnet-candidate-sequence": {"name": "infnet", "infnet_candidate_interaction": "sequence"}}
TWO_TASKS = [{"name": "click", "label": "click"},
             {"name": "conversion", "label": "conversion", "ctcvr": True}]


def two_task_model(name, **model):
    model = {"name": name, **VARIANTS.get(name, {}), **model}
    cfg = experiment.with_defaults(
        model={"side_features": ["device", "item_price"], "hidden_units": [16, 8],
               "attention_units": [8], "embedding_dim": 8, "num_blocks": 1, **model},
        tasks=TWO_TASKS)
    return build_model(cfg)


def with_noise_in_padding(batch):
    """`batch` with random ids at every padded history position."""
    import tensorflow as tf

    noisy = dict(batch)
    mask = batch[features.HISTORY_MASK.name].numpy() > 0
    for key in ("history_item_id_xf", "history_category_id_xf", "history_time_gap_xf"):
        values = batch[key].numpy().copy()
        values[~mask] = np.random.default_rng(1).integers(1, 9, size=(~mask).sum())
        noisy[key] = tf.constant(values)
    return noisy


@pytest.mark.parametrize("name", MODELS)
def test_outputs_are_probabilities_per_task_and_ctcvr_is_a_product(name, make_batch):
    model = two_task_model(name)
    out = model(make_batch(8))
    assert set(out) == {"click", "conversion"}
    click, ctcvr = out["click"].numpy(), out["conversion"].numpy()
    assert click.shape == (8,) and np.all((click > 0) & (click < 1))
    assert np.all(ctcvr <= click + 1e-7), "pCTCVR = pCTR x pCVR never exceeds pCTR"


@pytest.mark.parametrize("name", MODELS)
def test_gradients_reach_every_trainable_weight(name, make_batch):
    import tensorflow as tf

    model = two_task_model(name, mba_lambda=0.01, use_user_id=True)
    batch = make_batch(16)
    with tf.GradientTape() as tape:
        loss = model.compute_loss(batch, training=True)
    grads = tape.gradient(loss, model.trainable_variables)
    missing = [v.name for v, g in zip(model.trainable_variables, grads) if g is None]
    assert not missing
    assert np.isfinite(float(loss))


@pytest.mark.parametrize("name", MODELS)
def test_padded_history_positions_have_no_effect(name, make_batch):
    model = two_task_model(name)
    batch = make_batch(6, lengths=[0, 1, 3, 5, 8, 12])
    before = model(batch)["click"].numpy()
    noisy = with_noise_in_padding(batch)
    np.testing.assert_allclose(model(noisy)["click"].numpy(), before, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_a_batch_of_short_or_empty_histories_scores_as_each_example_alone(name, make_batch):
    """Histories are cut after the batch's last real step, so the trailing columns do not matter,
    and a batch with no history at all still runs (the cut keeps one column)."""
    model = two_task_model(name)
    batch = make_batch(4, lengths=[0, 2, 3, 1])
    together = model(batch)["click"].numpy()
    alone = [model({k: v[i:i + 1] for k, v in batch.items()})["click"].numpy()[0] for i in range(4)]
    np.testing.assert_allclose(together, alone, atol=1e-6)
    assert model.behaviour(batch).mask.shape[1] == 3
    empty = make_batch(3, lengths=[0, 0, 0])
    assert np.all(np.isfinite(model(empty)["click"].numpy()))
    assert model.behaviour(empty).mask.shape[1] == 1


@pytest.fixture
def mixed_float16():
    """Keras' mixed_float16 policy while the test builds and runs models (what a GPU run uses)."""
    import tf_keras as keras

    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("name", MODELS)
def test_float16_compute_gives_float32_probabilities_ignores_padding_and_finite_gradients(name, make_batch,
                                                                                          mixed_float16):
    import tensorflow as tf

    model = two_task_model(name, mba_lambda=0.01, use_user_id=True)
    batch = make_batch(6, lengths=[0, 1, 3, 5, 8, 12])
    out = model(batch)
    assert model.compute_dtype == "float16" and all(v.dtype == tf.float32 for v in model.trainable_variables)
    for task in ("click", "conversion"):
        assert out[task].dtype == tf.float32 and np.all((out[task].numpy() > 0) & (out[task].numpy() < 1))
    noisy = with_noise_in_padding(batch)
    np.testing.assert_allclose(model(noisy)["click"].numpy(), out["click"].numpy(), atol=1e-6)
    with tf.GradientTape() as tape:
        loss = model.compute_loss(batch, training=True)
    grads = tape.gradient(loss, model.trainable_variables)
    assert np.isfinite(float(loss))
    missing = [v.name for v, g in zip(model.trainable_variables, grads) if g is None]
    assert not missing
    for v, g in zip(model.trainable_variables, grads):
        assert np.all(np.isfinite(tf.convert_to_tensor(g).numpy())), v.name


@pytest.mark.parametrize("name", MODELS)
def test_config_round_trip(name, make_batch):
    model = two_task_model(name)
    clone = type(model).from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    clone(make_batch(2))
    model(make_batch(2))
    clone.set_weights(model.get_weights())
    batch = make_batch(4, seed=3)
    np.testing.assert_allclose(clone(batch)["click"].numpy(), model(batch)["click"].numpy(), atol=1e-6)


def test_dien_auxiliary_loss_joins_the_training_loss(make_batch):
    model = two_task_model("dien")
    batch = make_batch(16)
    with_aux = float(model.compute_loss(batch, training=True))
    model.aux_loss_weight = 0.0
    without = float(model.compute_loss(batch, training=True))
    assert with_aux > without


def test_mba_regularization_only_in_training(make_batch):
    model = two_task_model("din", mba_lambda=0.5, activation="relu", attention_activation="relu")
    batch = make_batch(8)
    assert float(model.mba_loss(batch)) > 0
    model.compute_gauc = False
    train_loss = float(model.compute_loss(batch, training=True))
    eval_loss = float(model.compute_loss(batch, training=False))
    assert train_loss == pytest.approx(eval_loss + float(model.mba_loss(batch)), rel=1e-5)


def test_a_ctcvr_task_needs_a_click_task():
    from trainer.models.din import DIN

    with pytest.raises(ValueError, match="needs a task on the click label"):
        DIN([{"name": "cvr", "label": "conversion", "ctcvr": True}])


def test_dien_mlp_scorer_scores_with_dins_unit_and_projects_a_narrower_candidate(make_batch):
    same_width = two_task_model("dien")
    same_width(make_batch(2))
    assert same_width.attention_projection is None  # GRU width 2 x 8 = candidate width
    assert same_width.attention_mlp.hidden_units == [8]
    # unset in the config, each model keeps its own attention activation
    assert same_width.attention_activation == "relu" and two_task_model("din").attention_activation == "dice"
    narrow = two_task_model("dien", gru_units=6)
    out = narrow(make_batch(4))
    assert narrow.attention_projection.kernel.shape == (16, 6)
    assert out["click"].shape == (4,)


def test_dien_rejects_an_unknown_attention_scorer():
    from trainer.models.dien import DIEN
    from trainer.tasks import TaskSpec

    with pytest.raises(ValueError, match=r"`attention_scorer` must be one of \('bilinear', 'mlp'\). "
                                         r"Received: attention_scorer='dot'"):
        DIEN([TaskSpec("click", "click")], attention_scorer="dot")


def test_infnet_wide_tokens_project_the_candidate_and_feed_towers_of_that_width(make_batch):
    model = two_task_model("infnet-wide-tokens")
    model(make_batch(2))
    assert [p.kernel.shape for p in model.candidate_projections] == [(8, 12), (8, 12)]
    assert model.sequence_projection.kernel.shape[-1] == 12
    assert two_task_model("infnet").candidate_projections == []  # token width = embedding width


def test_infnet_candidate_interaction_builds_the_tokens_by_hand(make_batch):
    """token: one more categorical token, the projection of candidate x summed events; sequence:
    each event token is the projection of [key, event x candidate]; none: neither."""
    import tensorflow as tf

    batch = make_batch(3, lengths=[0, 2, 5])
    models = {kind: two_task_model("infnet", infnet_candidate_interaction=kind)
              for kind in ("none", "token", "sequence")}
    tokens = {}
    for kind, model in models.items():
        model(batch)
        tokens[kind] = model.tokens(batch)
    behaviour = models["token"].behaviour(batch)
    mask = tf.cast(behaviour.mask, tf.float32)[..., None]
    product = behaviour.candidate * tf.reduce_sum(behaviour.events * mask, axis=1)
    assert tokens["token"][0].shape[1] == tokens["none"][0].shape[1] + 1 == tokens["sequence"][0].shape[1] + 1
    np.testing.assert_allclose(tokens["token"][0][:, -1], models["token"].interaction_projection(product),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(tokens["token"][0][0, -1], models["token"].interaction_projection.bias)  # no history
    behaviour = models["sequence"].behaviour(batch)  # each model has its own embeddings
    keys = tf.concat([behaviour.keys, behaviour.events * behaviour.candidate[:, None]], axis=-1)
    np.testing.assert_allclose(tokens["sequence"][1], models["sequence"].sequence_projection(keys), rtol=1e-5, atol=1e-7)
    assert models["none"].interaction_projection is None and models["sequence"].interaction_projection is None


def test_dien_head_reads_the_candidate_times_the_summed_history(make_batch):
    """The official code's head: [candidate, evolved interest, summed history, candidate * summed
    history, context]; padding adds nothing to the sum."""
    import tensorflow as tf

    model = two_task_model("dien")
    batch = make_batch(3)
    model(batch)
    (x, _), _ = model.encode(batch)
    behaviour = model.behaviour(batch)
    width = behaviour.candidate.shape[-1]  # 2D = 16
    mask = tf.cast(behaviour.mask, tf.float32)[..., None]
    summed = tf.reduce_sum(behaviour.events * mask, axis=1)
    evolved = model.gru_units or width
    np.testing.assert_allclose(x[:, :width], behaviour.candidate)
    np.testing.assert_allclose(x[:, width + evolved:2 * width + evolved], summed, rtol=1e-6)
    np.testing.assert_allclose(x[:, 2 * width + evolved:3 * width + evolved], behaviour.candidate * summed,
                               rtol=1e-6, atol=1e-12)

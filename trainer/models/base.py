"""CTRModel: what every model shares: embedding tables, context features, task towers, losses.

A model subclass only defines ``encode``: how the candidate, the behaviour history and the
context become one input per task tower. The baseline sum-pools the history, DIN attends
over it, DIEN evolves interests with an AUGRU, INFNet exchanges information between
categorical, sequence and task tokens. Everything else lives here:

- the item and category tables, shared by the candidate and the histories that repeat
  them (``features.table_of``), optionally the time-gap and user tables, one table per
  categorical side field and the calendar features;
- one tower (MLP -> 1 logit) and one ``CTRTask`` per task; a ``ctcvr`` task predicts
  pCTR x pCVR over all impressions (ESMM);
- ``compute_loss`` = sum of weighted task losses + ``aux_loss_weight`` x the encoder's
  auxiliary loss (DIEN) + mini-batch aware L2 of the embeddings.

Inputs are the transformed features (``transforms/preprocessing.py``); ``call`` returns
``{task name: probability [B]}``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras as keras

from trainer.layers import MLP, EmbeddingTable
from trainer.tasks import CTRTask, TaskSpec
from transforms import features

xf = features.transformed_name
ITEM = xf(features.ITEM_ID.name)
CATEGORY = xf(features.CATEGORY_ID.name)
USER = xf(features.USER_ID.name)
HISTORY_ITEMS = xf(features.HISTORY_ITEMS.name)
HISTORY_CATEGORIES = xf(features.HISTORY_CATEGORIES.name)
HISTORY_GAPS = xf(features.HISTORY_TIME_GAPS.name)
NEGATIVE_ITEMS = xf(features.HISTORY_NEGATIVE_ITEMS.name)
NEGATIVE_CATEGORIES = xf(features.HISTORY_NEGATIVE_CATEGORIES.name)
MASK = features.HISTORY_MASK.name
CALENDAR = (features.HOUR_OF_DAY, features.DAY_OF_WEEK)
USER_KEY = features.USER_KEY.name


class Behaviour(NamedTuple):
    candidate: tf.Tensor  # [B, 2D] item (+) category
    keys: tf.Tensor  # [B, L, 2D] history items (+ their time-gap embedding) (+) categories
    events: tf.Tensor  # [B, L, 2D] history items (+) categories, without time gaps
    mask: tf.Tensor  # [B, L] bool, true at real events
    negatives: Optional[tf.Tensor]  # [B, L, 2D] sampled negative per step (like events), or None


class CTRModel(tfrs.Model):
    """Shared machinery of the CTR models (see module docstring).

    Args:
      tasks: the tasks, as ``TaskSpec`` or dicts of its fields; one tower each.
      embedding_dim: width D of item and category embeddings (and of time gaps, which are
        added to history items); the candidate is item (+) category, 2D wide.
      embedding_init_stddev: every id table starts N(0, stddev^2); a small value (DeepCTR's
        1e-4) keeps ids seen a few times close to zero instead of at random directions.
      hidden_units, activation, dropout, batch_norm: the task towers.
      side_features: raw side fields used as context (categorical ones embedded, numeric
        ones taken as their z-scores).
      use_user_id: embed the hashed user id as context.
      use_time_gaps: add a time-gap embedding to each history item (recency signal).
      use_calendar: embed hour of day and day of week as context.
      mba_lambda: mini-batch aware L2 of the item and category tables (0 = off).
      item_counts, category_counts: occurrences per table row for MBA (None = 1 each).
    """

    def __init__(
        self,
        tasks: Sequence[Any],
        embedding_dim: int = 16,
        embedding_init_stddev: float = 1e-4,
        hidden_units: Sequence[int] = (200, 80),
        activation: str = "dice",
        dropout: float = 0.0,
        batch_norm: bool = False,
        side_features: Sequence[str] = (),
        use_user_id: bool = False,
        use_time_gaps: bool = True,
        use_calendar: bool = True,
        mba_lambda: float = 0.0,
        item_counts: Optional[Sequence[float]] = None,
        category_counts: Optional[Sequence[float]] = None,
        aux_loss_weight: float = 0.0,
        name: Optional[str] = None,
    ):
        super().__init__(name=name)
        self.task_specs = [t if isinstance(t, TaskSpec) else TaskSpec(**t) for t in tasks]
        if not self.task_specs:
            raise ValueError("`tasks` must name at least one task. Received: tasks=[]")
        self.embedding_dim = int(embedding_dim)
        if not embedding_init_stddev > 0:
            raise ValueError("`embedding_init_stddev` must be positive. "
                             f"Received: embedding_init_stddev={embedding_init_stddev}")
        self.embedding_init_stddev = float(embedding_init_stddev)
        self.hidden_units = [int(u) for u in hidden_units]
        self.activation = activation
        self.dropout = float(dropout)
        self.batch_norm = bool(batch_norm)
        self.side_features = [features.example_feature(n).name for n in side_features]
        for name_ in self.side_features:
            if features.example_feature(name_) not in features.SIDE_EXAMPLE_FEATURES:
                raise ValueError(f"`side_features` must be side fields. Received: {name_!r}")
        self.use_user_id = bool(use_user_id)
        self.use_time_gaps = bool(use_time_gaps)
        self.use_calendar = bool(use_calendar)
        self.mba_lambda = float(mba_lambda)
        self.aux_loss_weight = float(aux_loss_weight)

        dim = self.embedding_dim

        def table(num_rows: int, width: int, name: str, **kwargs) -> EmbeddingTable:
            initializer = keras.initializers.RandomNormal(stddev=self.embedding_init_stddev)
            return EmbeddingTable(num_rows, width, embeddings_initializer=initializer, name=name, **kwargs)

        # The MBA term of these tables is added once per batch by compute_loss, over every
        # lookup of the batch; tables are therefore looked up with training=False.
        self.item_table = table(features.ITEM_ENCODING.num_rows, dim, mba_lambda=self.mba_lambda,
                                         row_counts=item_counts, name="item_table")
        self.category_table = table(features.CATEGORY_ENCODING.num_rows, dim, mba_lambda=self.mba_lambda,
                                             row_counts=category_counts, name="category_table")
        self.gap_table = (table(features.HISTORY_TIME_GAPS.encoding.num_rows, dim, name="gap_table")
                          if self.use_time_gaps else None)
        self.context_tables: Dict[str, EmbeddingTable] = {}
        self.numeric_context: List[str] = []
        for name_ in self.side_features:
            spec = features.example_feature(name_)
            if spec.kind == features.Kind.CATEGORY:
                self.context_tables[xf(name_)] = table(spec.encoding.num_rows, spec.embedding_dim, name=f"{name_}_table")
            else:
                self.numeric_context.append(xf(name_))
        if self.use_user_id:
            self.context_tables[USER] = table(features.USER_ENCODING.num_rows, features.CANDIDATE_USER.embedding_dim,
                                                name="user_table")
        if self.use_calendar:
            for derived in CALENDAR:
                self.context_tables[derived.name] = table(derived.num_rows, derived.embedding_dim,
                                                          name=f"{derived.name}_table")
        self.towers = [MLP(self.hidden_units, activation=activation, dropout_rate=self.dropout,
                           use_batch_norm=self.batch_norm, output_units=1, name=f"{t.name}_tower")
                       for t in self.task_specs]
        self.tasks = [CTRTask(t.name, t.label, t.weight, t.ctcvr, name=f"{t.name}_task") for t in self.task_specs]
        click = [i for i, t in enumerate(self.task_specs) if t.label == features.CLICK_LABEL.name and not t.ctcvr]
        if any(t.ctcvr for t in self.task_specs) and not click:
            raise ValueError("A `ctcvr` task needs a task on the click label. "
                             f"Received: tasks={[t.to_dict() for t in self.task_specs]}")
        self._click_index = click[0] if click else None
        self.compute_gauc = False

    # ----------------------------------------------------------------- inputs

    @property
    def input_features(self) -> List[str]:
        """The transformed features ``call`` reads (what serving must provide)."""
        names = [ITEM, CATEGORY, HISTORY_ITEMS, HISTORY_CATEGORIES, MASK]
        if self.use_time_gaps:
            names.append(HISTORY_GAPS)
        names += list(self.context_tables) + self.numeric_context
        return names

    @property
    def training_features(self) -> List[str]:
        """What training and evaluation read: the inputs, the labels and the GAUC user key."""
        labels = list(dict.fromkeys(t.label for t in self.task_specs))
        return self.input_features + labels + [USER_KEY]

    def behaviour(self, inputs: Mapping[str, tf.Tensor], with_negatives: bool = False) -> "Behaviour":
        """Candidate, history and (for DIEN) negative embeddings, each table looked up once.

        Histories are cut after the batch's last real step: padding has no effect on any
        model, so the trailing columns every row pads are neither looked up nor run through
        attention units and GRUs (histories are right-padded to max_history, and most users'
        are much shorter)."""
        mask = tf.cast(inputs[MASK], tf.bool)
        steps = tf.range(1, tf.shape(mask)[1] + 1)
        width = tf.maximum(tf.reduce_max(tf.where(mask, steps[tf.newaxis, :], 0)), 1)  # RNNs need a step

        def history(name: str) -> tf.Tensor:
            return inputs[name][:, :width]

        item_ids = [inputs[ITEM], history(HISTORY_ITEMS)]
        category_ids = [inputs[CATEGORY], history(HISTORY_CATEGORIES)]
        if with_negatives:
            item_ids.append(history(NEGATIVE_ITEMS))
            category_ids.append(history(NEGATIVE_CATEGORIES))
        items = self.item_table(item_ids, training=False)
        categories = self.category_table(category_ids, training=False)
        history_items = items[1]
        if self.gap_table is not None:
            history_items = history_items + self.gap_table(history(HISTORY_GAPS), training=False)
        return Behaviour(
            candidate=tf.concat([items[0], categories[0]], axis=-1),
            keys=tf.concat([history_items, categories[1]], axis=-1),
            events=tf.concat([items[1], categories[1]], axis=-1),
            mask=mask[:, :width],
            negatives=tf.concat([items[2], categories[2]], axis=-1) if with_negatives else None,
        )

    def context_parts(self, inputs: Mapping[str, tf.Tensor]) -> List[tf.Tensor]:
        """User, side and calendar embeddings [B, dim_i], then numeric side values [B, 1].

        All in the model's compute dtype (float16 under the mixed_float16 policy)."""
        parts = [table(inputs[name], training=False) for name, table in self.context_tables.items()]
        return parts + [tf.reshape(tf.cast(inputs[name], self.compute_dtype), [-1, 1])
                        for name in self.numeric_context]

    def context(self, inputs: Mapping[str, tf.Tensor]) -> Optional[tf.Tensor]:
        """[B, C]: every context part side by side; None without context features."""
        parts = self.context_parts(inputs)
        return tf.concat(parts, axis=-1) if parts else None

    # ------------------------------------------------------------ to override

    def encode(self, inputs: Mapping[str, tf.Tensor], training: bool = False) -> Tuple[List[tf.Tensor], tf.Tensor]:
        """One tower input [B, H] per task, and an auxiliary loss (a scalar, 0 if none)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- heads

    def _probabilities(self, inputs: Mapping[str, tf.Tensor], training: bool) -> Tuple[Dict[str, tf.Tensor], tf.Tensor]:
        tower_inputs, aux_loss = self.encode(inputs, training=training)
        raw = [tf.nn.sigmoid(tf.cast(tf.squeeze(tower(x, training=training), -1), tf.float32))
               for tower, x in zip(self.towers, tower_inputs)]
        probabilities = {}
        for spec, p in zip(self.task_specs, raw):
            if spec.ctcvr:
                p = raw[self._click_index] * p
            probabilities[spec.name] = p
        return probabilities, aux_loss

    def call(self, inputs: Mapping[str, tf.Tensor], training: bool = False) -> Dict[str, tf.Tensor]:
        probabilities, _ = self._probabilities(inputs, training)
        return probabilities

    def mba_loss(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """Mini-batch aware L2: rows used in this batch only, each scaled by 1 / its count."""
        if self.mba_lambda == 0:
            return tf.constant(0.0)
        item_ids = [inputs[n] for n in (ITEM, HISTORY_ITEMS, NEGATIVE_ITEMS) if n in inputs]
        category_ids = [inputs[n] for n in (CATEGORY, HISTORY_CATEGORIES, NEGATIVE_CATEGORIES) if n in inputs]
        return self.item_table.regularization(item_ids) + self.category_table.regularization(category_ids)

    def compute_loss(self, inputs: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        probabilities, aux_loss = self._probabilities(inputs, training)
        groups = inputs.get(USER_KEY)
        total = 0.0
        for task in self.tasks:
            # Metrics are evaluation's business: updating AUC's thresholds every training step
            # costs time and the numbers describe weights that are already gone.
            loss = task(inputs[task.label], probabilities[task.task_name], groups=groups,
                        compute_gauc=self.compute_gauc and not training, training=training,
                        compute_metrics=not training)
            total += task.weight * loss
        total += self.aux_loss_weight * aux_loss
        if training:
            total += self.mba_loss(inputs)
        return total

    def train_step(self, inputs):
        """TFRS's step, with the gradients taken by the optimizer's ``minimize``.

        Under the mixed_float16 policy Keras' compile wraps the optimizer in a
        LossScaleOptimizer. TFRS's step differentiates the loss itself, unscaled, so small
        float16 gradients would flush to zero; ``minimize`` lets a LossScaleOptimizer scale
        the loss and unscale the gradients (skipping steps that overflow and lowering the
        scale, as in Keras' own step), and is a plain gradient step for any other optimizer."""
        with tf.GradientTape() as tape:
            loss = self.compute_loss(inputs, training=True)
            regularization_loss = tf.reduce_sum([tf.reduce_sum(extra) for extra in self.losses])
            total_loss = loss + regularization_loss
        self.optimizer.minimize(total_loss, self.trainable_variables, tape=tape)
        metrics = {metric.name: metric.result() for metric in self.metrics}
        metrics.update(loss=loss, regularization_loss=regularization_loss, total_loss=total_loss)
        return metrics

    # -------------------------------------------------------------- config

    def get_config(self) -> Dict[str, Any]:
        return {
            "tasks": [t.to_dict() for t in self.task_specs],
            "embedding_dim": self.embedding_dim,
            "embedding_init_stddev": self.embedding_init_stddev,
            "hidden_units": self.hidden_units,
            "activation": self.activation,
            "dropout": self.dropout,
            "batch_norm": self.batch_norm,
            "side_features": self.side_features,
            "use_user_id": self.use_user_id,
            "use_time_gaps": self.use_time_gaps,
            "use_calendar": self.use_calendar,
            "mba_lambda": self.mba_lambda,
            "aux_loss_weight": self.aux_loss_weight,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "CTRModel":
        return cls(**config)


def pooled_sum(keys: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """[B, D]: the sum of the real history embeddings."""
    return tf.reduce_sum(keys * tf.cast(mask, keys.dtype)[..., None], axis=1)


def with_context(parts: List[tf.Tensor], context: Optional[tf.Tensor]) -> tf.Tensor:
    return tf.concat(parts + ([context] if context is not None else []), axis=-1)

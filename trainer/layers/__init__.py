"""Model building blocks: Keras (tf_keras) layers, each one computation with explicit arguments.

Shapes: B batch, T sequence, D embedding. Every layer is registered serializable under the
package name "ctrflow" and saves in a SavedModel.
"""

from trainer.layers.attention import LocalActivationUnit
from trainer.layers.augru import AUGRU, AUGRUCell
from trainer.layers.dice import Dice
from trainer.layers.embedding import EmbeddingTable
from trainer.layers.infnet import CrossAttention, InfnetBlock, ProxyGatedUnit, TaskTokens
from trainer.layers.interest import AuxiliaryLoss, InterestExtractor
from trainer.layers.mlp import MLP

__all__ = [
    "AUGRU",
    "AUGRUCell",
    "AuxiliaryLoss",
    "CrossAttention",
    "Dice",
    "EmbeddingTable",
    "InfnetBlock",
    "InterestExtractor",
    "LocalActivationUnit",
    "MLP",
    "ProxyGatedUnit",
    "TaskTokens",
]

"""TFMA metrics for the TFX Evaluator that TFMA does not ship: exact GAUC (`gauc.GroupAUC`)."""

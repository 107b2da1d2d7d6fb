"""Evaluation metrics from hard predictions and probabilities, by topic.

Every metric is pure, jit-able with static sizes and carries no gradient;
counts are exact integers, scores float32 (float64 under x64).

* :mod:`~segloss_jax._src.metrics.confusion`: the confusion matrix, IoU and Dice
  scores, and :class:`ConfusionMatrixMetric` for a whole data set.
* :mod:`~segloss_jax._src.metrics.surface`: Hausdorff distance, average surface
  distance and normalized surface Dice of two binary masks.
* :mod:`~segloss_jax._src.metrics.calibration`: calibration error (ECE, MCE)
  and :class:`CalibrationErrorMetric`.
* :mod:`~segloss_jax._src.metrics.counts`: what they share, the label checks
  and the exact streaming counter.
"""

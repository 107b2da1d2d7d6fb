"""Region losses: scores of soft confusion statistics per unit (class over the batch, or
(image, class) with ``per_image=True``), one family and one docs page.

* :mod:`.overlap` -- Dice, Jaccard, Tversky, focal Tversky, sensitivity-specificity,
  log-cosh Dice, generalized Dice and MCC, from the soft counts ``tp, fp, fn`` (``tn``);
* :mod:`.soft_label` -- the soft-label-correct Jaccard metric and Dice semimetric losses;
* :mod:`.wasserstein` -- the generalized Wasserstein Dice loss (distances between classes);
* :mod:`.boundary_dou` -- the Boundary DoU loss (an intersection weight set by the target's
  boundary).
"""

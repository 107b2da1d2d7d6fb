"""One spelling per idea: the parameter names, defaults and annotations of the public API.

tests/test_api.py checks the positions (``logits`` and ``labels`` positional,
everything else keyword-only); the rules here:

* Every parameter and every return value of a public function or method is annotated.
* A compound loss names the weight of each term ``lambda_<term>`` (MONAI's
  ``lambda_dice``/``lambda_ce``), ``<term>`` the registry name of the term's loss
  (``ce`` for cross-entropy and ``gdl`` for the generalized Dice, as MONAI); no other
  parameter starts with ``lambda``.
* One name per idea, anywhere in the public API: per-class weights are
  ``class_weights``, smoothing constants ``smooth`` (a scalar or a pair), target
  smoothing ``label_smoothing``. Hence no ``weight``, ``w_dice``, ``w_ce``,
  ``eps``, ``hyper``, ``q``, nor ``w_<term>`` or ``<term>_weight`` (only
  ``pos_weight``, PyTorch's weight of the positive class in the binary
  cross-entropy, is not a mixing weight). ``weights`` names a set of mixing
  weights only in the helpers that mix several terms: ``deep_supervision`` (one
  weight per output) and ``combine`` (one per loss). ``epsilon`` is only the
  Poly-1 coefficient of ``poly_cross_entropy`` and ``poly_focal_loss`` (the
  paper's ε₁, the weight of the first polynomial term, not a smoothing constant).
* A keyword that several losses take means one thing: it has the same annotation
  everywhere and the same default, except the documented defaults in
  :data:`DEFAULT_EXCEPTIONS`. Keywords whose meaning is each loss's own (the
  accepted activations, a paper's coefficients, mixing weights, window sizes,
  weighting schemes) are listed in :data:`OWN_MEANING`.
"""

from __future__ import annotations

import inspect
import re

import pytest

import segloss_jax as sl
from segloss_jax._src.registry import loss_info

LOSSES = sl.list_losses()


def _signatures() -> dict[str, inspect.Signature]:
    """``{label: signature}`` of every public function and of every public method of
    a public class (without ``self``)."""
    found = {}
    for name in sl.__all__:
        obj = getattr(sl, name)
        members = [(name, obj, 0)] if callable(obj) else []
        if inspect.isclass(obj):
            members = [(f"{name}.{attr}", getattr(obj, attr), inspect.isfunction(member))
                       for attr, member in vars(obj).items()
                       if not attr.startswith("_") and callable(getattr(obj, attr))]
        for label, fn, skip in members:
            sig = inspect.signature(fn)
            found[label] = sig.replace(parameters=list(sig.parameters.values())[skip:])
    return found


SIGNATURES = _signatures()

# The mixing weights of each compound loss, one per term.
MIXES = {
    "dice_ce_loss": {"lambda_dice", "lambda_ce"},
    "dice_focal_loss": {"lambda_dice", "lambda_focal"},
    "generalized_dice_focal_loss": {"lambda_gdl", "lambda_focal"},
    "combo_loss": {"lambda_ce", "lambda_dice"},
    "exp_log_loss": {"lambda_dice", "lambda_ce"},
    "unified_focal_loss": {"lambda_focal", "lambda_focal_tversky"},
    "dice_cldice_loss": {"lambda_dice", "lambda_cldice"},
}
# MONAI's short names of terms: cross-entropy, generalized Dice.
ABBREVIATIONS = {"ce", "gdl"}
FORBIDDEN = {"weight", "w_dice", "w_ce", "eps", "hyper", "q", "class_weight", "smoothing",
             "smooth_nr", "smooth_dr"}
ALLOWED = {"weights": {"deep_supervision", "combine"},
           "epsilon": {"poly_cross_entropy", "poly_focal_loss"},
           # RMI's `loss_weight_lambda` with `lambda_way`: one weight whose term depends on
           # `mix` (the pixel term's with "convex", the RMI term's with "add").
           "weight": {"rmi_loss"}}

# Keywords of several losses whose meaning (hence default or annotation) is each loss's own.
OWN_MEANING = {"activation", "alpha", "beta", "gamma", "delta", "window_size", "weighting"}
# The default of each shared keyword, and the losses that document another one.
SHARED_DEFAULTS = {
    "where": None, "ignore_index": None, "axis_name": None, "reduction": "mean",
    "class_weights": None, "include_background": True, "per_image": False, "classes": "all",
    "smooth": 1e-5, "label_smoothing": 0.0, "sampling": None, "target_distance": None,
    "squared": False, "iterations": 3, "sigma": 1.5, "epsilon": 1.0,
    "pixel_weights": None, "normalize_weights": False,
}
DEFAULT_EXCEPTIONS = {
    # The distance-map losses and the Lovász hinge average per image (their papers).
    ("per_image", "boundary_loss"): True,
    ("per_image", "hausdorff_dt_loss"): True,
    ("per_image", "log_hausdorff_dt_loss"): True,
    ("per_image", "lovasz_hinge_loss"): True,
    # Boundary and Hausdorff losses score the foreground classes (Kervadec et al.).
    ("include_background", "boundary_loss"): False,
    ("include_background", "hausdorff_dt_loss"): False,
    ("include_background", "log_hausdorff_dt_loss"): False,
    # kornia's erosion Hausdorff loss erodes ten times by default.
    ("iterations", "hausdorff_er_loss"): 10,
    # The background has no skeleton target (Kirchhoff et al.; nnU-Net raises with it).
    ("include_background", "skeleton_recall_loss"): False,
    # Berman et al. average the Lovász-Softmax over the classes present.
    ("classes", "lovasz_softmax_loss"): "present",
    # Smoothing of the reference implementations: clDice adds 1 to both sides,
    # MCC only to its denominator; the Wasserstein Dice writes its 1e-5 as a pair.
    ("smooth", "cldice_loss"): (1.0, 1.0),
    ("smooth", "dice_cldice_loss"): (1.0, 1.0),
    ("smooth", "mcc_loss"): (0.0, 1e-5),
    ("smooth", "generalized_wasserstein_dice_loss"): (1e-5, 1e-5),
    # NACL's erf kernel: MONAI's NACLLoss default.
    ("sigma", "nacl_loss"): 1.0,
}
# Annotations not yet written (or not yet with the shared types of
# segloss_jax/_src/types.py, by family); the checks skip them until they are.
UNANNOTATED_PENDING = {"target_distance_map": {"dtype"}}
ANNOTATION_PENDING = {
    "pixelwise": {"logits", "labels", "where", "class_weights", "reduction"},
    "boundary": {"logits", "labels", "where", "class_weights", "reduction", "axis_name"},
    "lovasz": {"logits", "labels", "where", "class_weights", "reduction", "axis_name",
               "classes"},
}


def _loss_params(name: str) -> list[inspect.Parameter]:
    return list(inspect.signature(sl.get_loss(name), eval_str=True).parameters.values())


@pytest.mark.parametrize("label", sorted(SIGNATURES))
def test_every_parameter_is_annotated(label):
    sig = SIGNATURES[label]
    missing = [p.name for p in sig.parameters.values() if p.annotation is p.empty
               and p.name not in UNANNOTATED_PENDING.get(label, ())]
    missing += ["return"] if sig.return_annotation is sig.empty else []
    assert not missing, f"{label}: no annotation for {missing}"


def test_no_forbidden_or_misplaced_names():
    bad = []
    for label, sig in SIGNATURES.items():
        for p in sig.parameters.values():
            misplaced = p.name in ALLOWED and label not in ALLOWED[p.name]
            mixing = re.fullmatch(r"w_\w+|\w+_weight", p.name) and p.name != "pos_weight"
            allowed = p.name in ALLOWED and label in ALLOWED[p.name]
            if (p.name in FORBIDDEN and not allowed) or misplaced or mixing:
                bad.append(f"{label}({p.name}=)")
    assert not bad, f"names with another spelling in the public API: {bad}"


@pytest.mark.parametrize("name", LOSSES)
def test_mixing_weights_are_lambda_term(name):
    fn_name = sl.get_loss(name).__name__
    lambdas = {p.name for p in _loss_params(name) if p.name.startswith("lambda")}
    assert lambdas == MIXES.get(fn_name, set()), fn_name
    for weight in lambdas:
        term = re.fullmatch(r"lambda_([a-z_]+)", weight)
        assert term and term[1] in {*LOSSES, *ABBREVIATIONS}, f"{fn_name}: {weight} names no loss"
    if loss_info(name).kind == "compound":
        assert fn_name in MIXES, f"{fn_name}: a compound loss with no mixing weights listed"


def _shared() -> dict[str, dict[str, inspect.Parameter]]:
    """``{keyword: {loss: parameter}}`` for the keywords of two or more losses."""
    by_keyword: dict[str, dict[str, inspect.Parameter]] = {}
    for name in LOSSES:
        for p in _loss_params(name)[2:]:
            by_keyword.setdefault(p.name, {})[sl.get_loss(name).__name__] = p
    return {k: v for k, v in by_keyword.items()
            if len(v) > 1 and k not in OWN_MEANING and not k.startswith("lambda_")}


SHARED = _shared()
KIND = {sl.get_loss(name).__name__: loss_info(name).kind for name in LOSSES}


def _one_annotation(keyword: str, params: dict[str, inspect.Parameter]) -> None:
    """All of ``params`` (by loss) annotated alike, but for :data:`ANNOTATION_PENDING`."""
    groups: list[tuple[object, list[str]]] = []
    for fn, p in params.items():
        if keyword in ANNOTATION_PENDING.get(KIND[fn], ()):
            continue
        group = next((g for g in groups if g[0] == p.annotation), None)
        if group is None:
            groups.append(group := (p.annotation, []))
        group[1].append(fn)
    assert len(groups) <= 1, f"`{keyword}` annotated in several ways: {groups}"


def test_shared_keywords_are_listed():
    assert set(SHARED) == set(SHARED_DEFAULTS), (
        "a keyword of several losses needs its default in SHARED_DEFAULTS (or its own "
        f"meaning in OWN_MEANING): {set(SHARED) ^ set(SHARED_DEFAULTS)}")
    for keyword, fn_name in DEFAULT_EXCEPTIONS:
        assert fn_name in SHARED[keyword], f"{fn_name} takes no {keyword}"


@pytest.mark.parametrize("keyword", sorted(SHARED_DEFAULTS))
def test_shared_keyword_has_one_default_and_annotation(keyword):
    params = SHARED.get(keyword, {})
    defaults = {fn: p.default for fn, p in params.items()
                if p.default != DEFAULT_EXCEPTIONS.get((keyword, fn), SHARED_DEFAULTS[keyword])}
    assert not defaults, f"`{keyword}`: other defaults {defaults}"
    _one_annotation(keyword, params)


@pytest.mark.parametrize("keyword", ["logits", "labels"])
def test_logits_and_labels_have_one_annotation(keyword):
    params = {sl.get_loss(name).__name__: _loss_params(name)[keyword == "labels"]
              for name in LOSSES}
    assert {p.name for p in params.values()} == {keyword}
    _one_annotation(keyword, params)

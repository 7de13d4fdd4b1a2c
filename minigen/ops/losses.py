"""Loss functions by PyTorch's names, argument orders and semantics: mse_loss,
binary_cross_entropy(_with_logits), nll_loss and cross_entropy.

Each computes a loss per element (per sample for the class losses), then applies
``reduction``: "none" returns them, "sum" adds them, "mean" averages them (the class losses
divide by the total weight of the non-ignored samples, as PyTorch).
"""

from __future__ import annotations

from minigen import backend
from minigen.autograd import Function
from minigen.backend import DeviceError, xp_of
from minigen.ops.elementwise import clip, log, maximum, sigmoid, softplus, where
from minigen.ops.reduce import log_softmax, mean, sum
from minigen.ops.shape import sum_to
from minigen.tensor import Tensor

REDUCTIONS = ("none", "mean", "sum")


def _check_reduction(reduction) -> None:
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of 'none', 'mean', 'sum'; got {reduction!r}")


def _reduce(loss: Tensor, reduction: str, denominator=None) -> Tensor:
    """The losses themselves, their sum, or their sum / denominator (the plain mean by default)."""
    if reduction == "none":
        return loss
    if reduction == "sum":
        return sum(loss)
    return mean(loss) if denominator is None else sum(loss) / denominator


def _check_same_shape(name: str, input, target) -> None:
    if target.shape != input.shape:
        raise ValueError(
            f"{name}: target of shape {target.shape} must have the input's shape {input.shape} "
            "(no broadcasting: a mismatch such as (N, 1) against (N,) is usually a bug)"
        )


def _check_broadcasts(name: str, what: str, shape, target) -> None:
    """``shape`` must broadcast to ``target`` without enlarging it."""
    fits = len(shape) <= len(target) and all(a in (1, b) for a, b in zip(reversed(shape), reversed(target)))
    if not fits:
        raise ValueError(f"{name}: {what} of shape {shape} does not broadcast to the input's shape {target}")


def _weighted(name: str, loss: Tensor, weight) -> Tensor:
    if weight is None:
        return loss
    _check_broadcasts(name, "weight", weight.shape, loss.shape)
    return loss * weight


# --- regression -------------------------------------------------------------------------------


def mse_loss(input, target, reduction: str = "mean") -> Tensor:
    """(input - target)^2 per element, reduced. Both input and target get gradients.

    The shapes must match: PyTorch broadcasts a mismatch with a warning; here it is an error.
    """
    _check_reduction(reduction)
    _check_same_shape("mse_loss", input, target)
    difference = input - target
    return _reduce(difference * difference, reduction)


# --- binary classification --------------------------------------------------------------------


def _log_clamped(t: Tensor) -> Tensor:
    """max(log t, -100) for t in [0, 1], taking log 0 as -100 without evaluating it.

    The inner where keeps 0 away from log, so neither a divide-by-zero warning nor, in the
    backward, a 0/0 appears.
    """
    positive = t.data > 0
    return where(positive, clip(log(where(positive, t, 1.0)), min=-100.0), -100.0)


class BinaryCrossEntropy(Function):
    """l = -(y * max(log x, -100) + (1 - y) * max(log(1 - x), -100)) for probabilities x in [0, 1].

    The clamp at -100 is PyTorch's: it keeps l finite where x is exactly 0 or 1, which a
    float32 sigmoid reaches. In the interior, dl/dx = -y/x + (1 - y)/(1 - x) = (x - y) / (x (1 - x)).
    VJP: gx = g (x - y) / max(x (1 - x), 1e-12) (PyTorch's guard at x = 0 or 1),
         gy = g (max(log(1 - x), -100) - max(log x, -100)).
    """

    def forward(self, x, y):
        log_x = _log_clamped(Tensor(x)).data
        log_not_x = _log_clamped(Tensor(1 - x)).data
        return -(y * log_x + (1 - y) * log_not_x)

    def backward(self, g):
        x, y = self.inputs
        need_x, need_y = self.needs_input_grad
        gx = g * (x - y) / maximum(x * (1.0 - x), 1e-12) if need_x else None
        gy = g * (_log_clamped(1.0 - x) - _log_clamped(x)) if need_y else None
        return gx, gy


def binary_cross_entropy(input, target, weight=None, reduction: str = "mean") -> Tensor:
    """weight * BinaryCrossEntropy(input, target) (see it for the formula), reduced.

    ``input`` holds probabilities in [0, 1] (for logits use binary_cross_entropy_with_logits);
    ``target`` has its shape; ``weight`` broadcasts to it. Input, target and weight all get
    gradients.
    """
    _check_reduction(reduction)
    _check_same_shape("binary_cross_entropy", input, target)
    data = input.data
    outside = ~((data >= 0) & (data <= 1))
    if outside.any():
        raise ValueError(
            f"binary_cross_entropy: all elements of input should be between 0 and 1 (probabilities); "
            f"{int(outside.sum())} are not, e.g. {float(data[outside].reshape(-1)[0])} "
            "(for logits use binary_cross_entropy_with_logits)"
        )
    loss = BinaryCrossEntropy()(input, target)
    return _reduce(_weighted("binary_cross_entropy", loss, weight), reduction)


class BinaryCrossEntropyWithLogits(Function):
    """l = -[p y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))] from logits x, with pos_weight p.

    Using log sigmoid(x) = -softplus(-x) and log(1 - sigmoid(x)) = -x - softplus(-x):
    l = (1 - y) x + q softplus(-x), q = 1 + (p - 1) y, and without p (p = 1)
    l = max(x, 0) - x y + log(1 + exp(-|x|)). softplus(-x) = max(-x, 0) + log(1 + exp(-|x|))
    never overflows, so logits of any size (1e4, -1e4) give a finite loss and gradient.
    VJP: gx = g (q sigmoid(x) - p y)         (= g (sigmoid(x) - y) without p),
         gy = g ((p - 1) softplus(-x) - x)   (= -g x without p),
         gp = sum_to(g y softplus(-x), p.shape).
    """

    def forward(self, x, y, *pos_weight):
        xp = xp_of(x)
        if not pos_weight:

            def loss(x, y, out=None):
                return xp.add(xp.maximum(x, 0) - x * y, xp.log1p(xp.exp(-xp.abs(x))), out=out)

            return backend.elementwise(loss, x, y, min_size=backend.COSTLY_MIN_SIZE)
        log1p_exp = xp.log1p(xp.exp(-xp.abs(x)))
        q = 1 + (pos_weight[0] - 1) * y
        return (1 - y) * x + q * (xp.maximum(-x, 0) + log1p_exp)

    def backward(self, g):
        x, y = self.inputs[:2]
        need = self.needs_input_grad
        if len(self.inputs) == 2:
            return (g * (sigmoid(x) - y) if need[0] else None, -g * x if need[1] else None)
        p = self.inputs[2]
        softplus_neg = softplus(-x)
        gx = g * ((1.0 + (p - 1.0) * y) * sigmoid(x) - p * y) if need[0] else None
        gy = g * ((p - 1.0) * softplus_neg - x) if need[1] else None
        gp = sum_to(g * y * softplus_neg, p.shape) if need[2] else None
        return gx, gy, gp


def binary_cross_entropy_with_logits(
    input, target, weight=None, reduction: str = "mean", pos_weight=None
) -> Tensor:
    """weight * BinaryCrossEntropyWithLogits(input, target, pos_weight) (see it for the formula), reduced.

    ``target`` has input's shape; ``weight`` and ``pos_weight`` (the weight of the positive
    term, e.g. one per class along the last axis) broadcast to it. Input, target, weight and
    pos_weight all get gradients (PyTorch differentiates the target too).
    """
    name = "binary_cross_entropy_with_logits"
    _check_reduction(reduction)
    _check_same_shape(name, input, target)
    operands = (input, target)
    if pos_weight is not None:
        _check_broadcasts(name, "pos_weight", pos_weight.shape, input.shape)
        operands += (pos_weight,)
    loss = BinaryCrossEntropyWithLogits()(*operands)
    return _reduce(_weighted(name, loss, weight), reduction)


# --- multi-class classification ---------------------------------------------------------------


class _Labels:
    """Integer class labels checked against input (N, C, d1, ...) or (C,) and laid out for it.

    ``axis`` is the class axis (1, or 0 for an unbatched (C,) input); ``mask`` is True at each
    labelled entry of input (no entry in a sample whose label is ignore_index); ``sample_weight``
    is w[label] per sample, 0 where ignored (w = 1 without class weights); ``total`` is its sum,
    the denominator of the mean.
    """

    def __init__(self, name, input, target, weight, ignore_index):
        if not isinstance(input, Tensor) or input.ndim == 0 or input.dtype.kind != "f":
            described = f"{input.dtype} {input.shape}" if isinstance(input, Tensor) else type(input).__name__
            raise TypeError(f"{name}: input must be a floating tensor (N, C, ...) or (C,); got {described}")
        if not isinstance(target, Tensor) or target.dtype.kind not in "iu":
            described = target.dtype if isinstance(target, Tensor) else type(target).__name__
            raise TypeError(
                f"{name}: target must be a tensor of integer class labels; got {described} "
                "(class-probability targets are not supported)"
            )
        if target.device != input.device:
            raise DeviceError(f"{name}: target is on {target.device} but input is on {input.device}")
        self.axis = 0 if input.ndim == 1 else 1
        classes = input.shape[self.axis]
        expected = input.shape[: self.axis] + input.shape[self.axis + 1 :]
        if target.shape != expected:
            raise ValueError(
                f"{name}: input of shape {input.shape} (classes along dim {self.axis}) needs "
                f"target of shape {expected}; got {target.shape}"
            )
        if weight is not None and weight.shape != (classes,):
            raise ValueError(
                f"{name}: weight must have shape ({classes},), one per class; got {weight.shape}"
            )
        xp = xp_of(input.data)
        labels = target.data
        valid = labels != ignore_index
        bad = valid & ((labels < 0) | (labels >= classes))
        if bad.any():
            raise IndexError(
                f"{name}: target {int(labels[bad].reshape(-1)[0])} is out of bounds for {classes} "
                f"classes (labels must be in [0, {classes - 1}], or ignore_index={ignore_index})"
            )
        safe = xp.where(valid, labels, 0)
        class_ids = xp.arange(classes).reshape((classes,) + (1,) * (input.ndim - 1 - self.axis))
        self.mask = (xp.expand_dims(safe, self.axis) == class_ids) & xp.expand_dims(valid, self.axis)
        w = xp.ones(classes, dtype=input.dtype) if weight is None else weight.data.astype(input.dtype)
        self.class_weight = w
        self.valid = valid
        self.sample_weight = xp.where(valid, w[safe], 0).astype(input.dtype, copy=False)
        self.total = self.sample_weight.sum()

    def pick(self, t: Tensor) -> Tensor:
        """t at the labelled class of each sample (0 where ignored), weighted by w[label]."""
        return sum(where(self.mask, t, 0.0), dim=self.axis) * self.sample_weight


def _check_ignore_index(name, ignore_index) -> None:
    if not isinstance(ignore_index, int):
        raise TypeError(f"{name}: ignore_index must be an int; got {ignore_index!r}")


def nll_loss(input, target, weight=None, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """The negative log-likelihood of integer labels given log-probabilities.

    input (N, C, d1, ...) or (C,) holds log-probabilities (e.g. log_softmax); target (N, d1, ...)
    or () holds labels in [0, C). Per sample l = -w[t] * input[t] (0 where t == ignore_index);
    "mean" divides their sum by sum of w[t] over the samples not ignored. ``weight`` (C,) is
    constant (no gradient, as in PyTorch).

    The pick is a where over the class axis, not a product with a one-hot: a log-probability
    of -inf at another class (log 0) must not turn into 0 * -inf = nan.
    """
    name = "nll_loss"
    _check_reduction(reduction)
    _check_ignore_index(name, ignore_index)
    labels = _Labels(name, input, target, weight, ignore_index)
    return _reduce(-labels.pick(input), reduction, labels.total)


def cross_entropy(
    input,
    target,
    weight=None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy of integer labels given logits: nll_loss(log_softmax(input)) with label smoothing.

    With log p = log_softmax(input) over the class axis, C classes, class weights w (1 without
    ``weight``) and smoothing e, per sample (0 where the label is ignore_index):
        l = -(1 - e) w[t] log p[t] - (e / C) sum_c w[c] log p[c],
    and "mean" divides the sum of l by sum of w[t] over the samples not ignored (PyTorch's rule,
    for both terms).

    Composed from LogSoftmax, Where, Sum and products with constants, so the gradient is exact
    and twice differentiable: gx = g (s softmax(x) - q) with q_c = (1 - e) w[t] [c = t] +
    (e / C) w[c] and s = sum_c q_c. A fused primitive would save a few passes over (N, C),
    small beside the layers that produce the logits, so the primitive set stays small.
    """
    name = "cross_entropy"
    _check_reduction(reduction)
    _check_ignore_index(name, ignore_index)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{name}: label_smoothing must be between 0.0 and 1.0; got {label_smoothing}")
    labels = _Labels(name, input, target, weight, ignore_index)
    log_p = log_softmax(input, dim=labels.axis)
    loss = -labels.pick(log_p)
    if label_smoothing > 0:
        classes = input.shape[labels.axis]
        w = labels.class_weight.reshape((classes,) + (1,) * (input.ndim - 1 - labels.axis))
        smooth = where(labels.valid, -sum(log_p * w, dim=labels.axis), 0.0)
        loss = loss * (1.0 - label_smoothing) + smooth * (label_smoothing / classes)
    return _reduce(loss, reduction, labels.total)

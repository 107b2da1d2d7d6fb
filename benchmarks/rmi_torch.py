"""A CPU port of ZJULearning/RMI's ``RMILoss`` (``losses/rmi/rmi.py``, ``rmi_utils.py``).

The peer is not on PyPI; this is its public code with the two changes a CPU needs:
``torch.cuda.DoubleTensor`` becomes ``torch.float64`` and the deprecated
``torch.cholesky`` is ``torch.linalg.cholesky``. Everything else (the constants,
the pooling, the ``r × r`` neighbour stacking, the float64 covariance block with
``torch.inverse``, the ``+ 1e-8`` before the log, the sum over classes) is the
reference's, so ``benchmarks.bench_structural`` times what its users run and the
tests compare ``rmi_loss`` with it. Used by benchmarks and tests only; needs torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_CLIP_MIN = 1e-6
_CLIP_MAX = 1.0
_POS_ALPHA = 5e-4


def map_get_pairs(labels_4d, probs_4d, radius=3):
    """The ``radius²`` shifted views ``[N, C, r², H − r + 1, W − r + 1]`` of both maps."""
    h, w = labels_4d.shape[2], labels_4d.shape[3]
    new_h, new_w = h - (radius - 1), w - (radius - 1)
    la_ns, pr_ns = [], []
    for y in range(radius):
        for x in range(radius):
            la_ns.append(labels_4d[:, :, y:y + new_h, x:x + new_w])
            pr_ns.append(probs_4d[:, :, y:y + new_h, x:x + new_w])
    return torch.stack(la_ns, dim=2), torch.stack(pr_ns, dim=2)


def log_det_by_cholesky(matrix):
    chol = torch.linalg.cholesky(matrix)
    return 2.0 * torch.sum(torch.log(torch.diagonal(chol, dim1=-2, dim2=-1) + 1e-8), dim=-1)


class RMILoss(torch.nn.Module):
    """``RMILoss(num_classes, rmi_radius, rmi_pool_way, rmi_pool_size, rmi_pool_stride,
    loss_weight_lambda, lambda_way)``; ``forward(logits [N, C, H, W], labels [N, H, W])``
    with the ignore label 255 (any label ``>= num_classes`` is excluded)."""

    def __init__(self, num_classes=21, rmi_radius=3, rmi_pool_way=0, rmi_pool_size=3,
                 rmi_pool_stride=3, loss_weight_lambda=0.5, lambda_way=1):
        super().__init__()
        assert rmi_pool_size == rmi_pool_stride
        self.num_classes = num_classes
        self.rmi_radius = rmi_radius
        self.rmi_pool_way = rmi_pool_way
        self.rmi_pool_size = rmi_pool_size
        self.rmi_pool_stride = rmi_pool_stride
        self.weight_lambda = loss_weight_lambda
        self.lambda_way = lambda_way
        self.half_d = rmi_radius * rmi_radius
        self.kernel_padding = rmi_pool_size // 2
        self.ignore_index = 255

    def forward(self, logits_4d, labels_4d):
        return self.forward_sigmoid(logits_4d, labels_4d)

    def _combine(self, pixel_loss, rmi_loss):
        if self.lambda_way:
            return self.weight_lambda * pixel_loss + rmi_loss * (1 - self.weight_lambda)
        return pixel_loss + rmi_loss * self.weight_lambda

    def forward_softmax_sigmoid(self, logits_4d, labels_4d):
        normal_loss = F.cross_entropy(logits_4d, labels_4d.long(), ignore_index=self.ignore_index,
                                      reduction="mean")
        label_mask_3d = labels_4d < self.num_classes
        onehot = F.one_hot(labels_4d.long() * label_mask_3d.long(),
                           num_classes=self.num_classes).float()
        label_mask_3d = label_mask_3d.float()
        onehot = (onehot * label_mask_3d.unsqueeze(dim=3)).permute(0, 3, 1, 2)
        probs_4d = torch.sigmoid(logits_4d) * label_mask_3d.unsqueeze(dim=1)
        probs_4d = probs_4d.clamp(min=_CLIP_MIN, max=_CLIP_MAX)
        return self._combine(normal_loss, self.rmi_lower_bound(onehot, probs_4d))

    def forward_sigmoid(self, logits_4d, labels_4d):
        label_mask_3d = labels_4d < self.num_classes
        onehot = F.one_hot(labels_4d.long() * label_mask_3d.long(),
                           num_classes=self.num_classes).float()
        label_mask_3d = label_mask_3d.float()
        label_mask_flat = label_mask_3d.view([-1])
        onehot = onehot * label_mask_3d.unsqueeze(dim=3)
        onehot_flat = onehot.view([-1, self.num_classes])
        logits_flat = logits_4d.permute(0, 2, 3, 1).contiguous().view([-1, self.num_classes])
        valid_pixels = torch.sum(label_mask_flat)
        binary_loss = F.binary_cross_entropy_with_logits(
            logits_flat, target=onehot_flat, weight=label_mask_flat.unsqueeze(dim=1),
            reduction="sum")
        bce_loss = torch.div(binary_loss, valid_pixels + 1.0)
        probs_4d = logits_4d.sigmoid() * label_mask_3d.unsqueeze(dim=1) + _CLIP_MIN
        onehot = onehot.permute(0, 3, 1, 2)
        return self._combine(bce_loss, self.rmi_lower_bound(onehot, probs_4d))

    def rmi_lower_bound(self, labels_4d, probs_4d):
        p, s = self.rmi_pool_size, self.rmi_pool_stride
        if self.rmi_pool_stride > 1:
            if self.rmi_pool_way == 0:
                labels_4d = F.max_pool2d(labels_4d, kernel_size=p, stride=s,
                                         padding=self.kernel_padding)
                probs_4d = F.max_pool2d(probs_4d, kernel_size=p, stride=s,
                                        padding=self.kernel_padding)
            elif self.rmi_pool_way == 1:
                labels_4d = F.avg_pool2d(labels_4d, kernel_size=p, stride=s,
                                         padding=self.kernel_padding)
                probs_4d = F.avg_pool2d(probs_4d, kernel_size=p, stride=s,
                                        padding=self.kernel_padding)
            elif self.rmi_pool_way == 2:
                new_h, new_w = labels_4d.shape[2] // s, labels_4d.shape[3] // s
                labels_4d = F.interpolate(labels_4d, size=(new_h, new_w), mode="nearest")
                probs_4d = F.interpolate(probs_4d, size=(new_h, new_w), mode="bilinear",
                                         align_corners=True)
            else:
                raise NotImplementedError("Pool way of RMI is not defined!")
        n, c = labels_4d.shape[0], labels_4d.shape[1]
        la_vectors, pr_vectors = map_get_pairs(labels_4d, probs_4d, radius=self.rmi_radius)
        la_vectors = la_vectors.reshape([n, c, self.half_d, -1]).double().requires_grad_(False)
        pr_vectors = pr_vectors.reshape([n, c, self.half_d, -1]).double()
        diag_matrix = torch.eye(self.half_d).unsqueeze(dim=0).unsqueeze(dim=0)
        la_vectors = la_vectors - la_vectors.mean(dim=3, keepdim=True)
        la_cov = torch.matmul(la_vectors, la_vectors.transpose(2, 3))
        pr_vectors = pr_vectors - pr_vectors.mean(dim=3, keepdim=True)
        pr_cov = torch.matmul(pr_vectors, pr_vectors.transpose(2, 3))
        pr_cov_inv = torch.inverse(pr_cov + diag_matrix.type_as(pr_cov) * _POS_ALPHA)
        la_pr_cov = torch.matmul(la_vectors, pr_vectors.transpose(2, 3))
        appro_var = la_cov - torch.matmul(la_pr_cov.matmul(pr_cov_inv),
                                          la_pr_cov.transpose(-2, -1))
        rmi_now = 0.5 * log_det_by_cholesky(appro_var
                                            + diag_matrix.type_as(appro_var) * _POS_ALPHA)
        rmi_per_class = rmi_now.view([-1, self.num_classes]).mean(dim=0).float()
        rmi_per_class = torch.div(rmi_per_class, float(self.half_d))
        return torch.sum(rmi_per_class)

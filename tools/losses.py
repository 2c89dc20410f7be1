"""The paper's losses (a triplet loss on token 0, an MSE on the relation score), and ours.

Official ``train.py``: ``2 * TripletMarginLoss(margin=1)`` on the relation
head's token-0 outputs (sketch, positive photo, negative photo) plus
``4 * MSELoss`` of the relation score against 1 for a positive pair and 0
for a negative one (targets clamped to 0.01 / 0.99). Both are kept as they
are (:func:`official_triplet`, :func:`relation_mse`).

Added: a loss on the *encoder's* token 0 (the ret-token), because the first
stage of two-stage retrieval ranks by it (L2 on L2-normalised vectors); the
official model gets a usable ret-token from its ImageNet start, ours trains
from scratch. Two forms: the in-batch triplet (:func:`ret_token_triplet`)
and its soft-max relative (:func:`ret_token_softmax`, the default; the hinge
collapsed token 0 from scratch on this data, see its docstring). The
relation head's negative is the photo the ret-token currently confuses most
with the positive, so the head learns to fix stage one's mistakes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

TARGET_POS, TARGET_NEG = 0.99, 0.01  # official clamp of the 1/0 targets


def ret_token_triplet(sketch: torch.Tensor, photo: torch.Tensor, margin: float, normalize: bool = True) -> torch.Tensor:
    """In-batch triplet: row i of ``photo`` is sketch i's positive, the other rows its negatives.

    (B, D) x (B, D); averaged over all B*(B-1) triplets (hinged), in both directions. ``normalize``
    measures distances between L2-normalised vectors (as the ranking does).
    """
    s = F.normalize(sketch, dim=-1) if normalize else sketch
    p = F.normalize(photo, dim=-1) if normalize else photo
    dist = torch.cdist(s, p)  # (B, B): sketch i (row) to photo j (column)
    pos = dist.diagonal()
    off = ~torch.eye(len(s), dtype=torch.bool, device=s.device)
    # Both directions: sketch anchors against other photos (the retrieval direction) and
    # photo anchors against other sketches; twice the signal for the same encodes.
    sketch_anchor = F.relu(pos.unsqueeze(1) - dist + margin)[off]
    photo_anchor = F.relu(pos.unsqueeze(0) - dist + margin)[off]
    return (sketch_anchor.mean() + photo_anchor.mean()) / 2


def ret_token_softmax(sketch: torch.Tensor, photo: torch.Tensor, temperature: float) -> torch.Tensor:
    """In-batch softmax over negative L2 distances of L2-normalised vectors, both directions.

    The soft-max relative of the in-batch triplet: every negative pushes, weighted by how
    close it is. Used instead of the hinge for the ret-token because, trained from scratch,
    the averaged hinge collapses token 0 to one point (all distances ~0, loss = margin) within
    the first hundred steps, while this loss grows at a collapse (log B) and keeps pushing.
    """
    s = F.normalize(sketch, dim=-1)
    p = F.normalize(photo, dim=-1)
    logits = -torch.cdist(s, p) / temperature
    target = torch.arange(len(s), device=s.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def official_triplet(
    anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float = 1.0
) -> torch.Tensor:
    """``nn.TripletMarginLoss(margin, p=2)`` on raw vectors, as the official code."""
    return F.triplet_margin_loss(anchor, positive, negative, margin=margin, p=2)


def relation_mse(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """MSE to 0.99 for positive pairs and 0.01 for negatives, each side averaged, then summed / 2.

    Averaging each side separately keeps positives and negatives equally weighted
    when there are more negative pairs than positive ones.
    """
    pos = F.mse_loss(pos_scores, torch.full_like(pos_scores, TARGET_POS))
    neg = F.mse_loss(neg_scores, torch.full_like(neg_scores, TARGET_NEG))
    return (pos + neg) / 2


def hardest_negative(sketch: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """Index, per sketch, of the closest *other* photo by ret-token distance (no gradient)."""
    with torch.no_grad():
        dist = torch.cdist(F.normalize(sketch, dim=-1), F.normalize(photo, dim=-1))
        dist.fill_diagonal_(float("inf"))
        return dist.argmin(dim=1)

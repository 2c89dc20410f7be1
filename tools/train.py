"""Train the small demo model (``zse_demo`` config) on the seen demo concepts, on CPU.

Two stages. Stage one trains the encoder: per step ``batch`` distinct seen
concepts, one drawing as the sketch and one colour image as its photo, with
augmentation and the ret-token loss (plus, unless ``--no-joint-head``, the
relation losses, whose gradient reaches the encoder scaled down). Stage two
trains the relation head alone on frozen encoder tokens, with negatives from
the batch or from each sketch's ret-token top-k (``--head-negatives topk``:
what a rerank shows the head). Losses: see :mod:`tools.losses`;
why the stages: see :class:`TrainConfig`.

The bundled checkpoint (``tools/README.md``) was made with::

    python -m tools.train --pack ~/.cache/zse-demo/v2_112.npz --no-joint-head --head-steps 0 \
        --steps 2600 --threads 2 --save-every 100 \
        --out ~/.cache/zse-demo/v2run/zse_demo.safetensors --log ~/.cache/zse-demo/v2run/train.jsonl
    python -m tools.train --pack ~/.cache/zse-demo/v2_112.npz --steps 0 --head-steps 300 --batch 16 \
        --head-negatives topk --head-random-negatives 3 --threads 2 \
        --init ~/.cache/zse-demo/v2run/zse_demo.safetensors \
        --out ~/.cache/zse-demo/v2run/head_mixed.safetensors --log ~/.cache/zse-demo/v2run/head_mixed.jsonl

A stopped stage one continues with the same command plus ``--resume`` (the
state is saved every ``--save-every`` steps). The seed fixes the model init, the sampling and the
augmentation, so a rerun on the same machine lands on the same numbers (and close on another). The
checkpoint is written in our own key layout as float16 safetensors (half the
size; :func:`load_model` reads it back as float32), with the training
settings in its metadata.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from zse_infer.config import ModelConfig, get_config
from zse_infer.errors import ConfigError, InputError
from zse_infer.model import ZseModel, load_state

from .augment import AugmentConfig, StrokeAugmentConfig, augment, render_freehand, to_tensor
from .losses import hardest_negative, official_triplet, relation_mse, ret_token_softmax, ret_token_triplet
from .pack import SPLIT_CODES, RenderSet, load_pack
from .quickdraw import FAMILY
from .split import load_split

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1100
    batch: int = 32  # distinct concepts per step
    lr: float = 6e-4
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    warmup: int = 60
    grad_clip: float = 1.0
    # Ret-token loss: "softmax" (default, see losses.ret_token_softmax) or "triplet"
    # (in-batch hinge; collapses from scratch on this data, kept to compare).
    ret_loss: str = "softmax"
    ret_temperature: float = 0.1
    ret_margin: float = 0.2  # triplet only, on L2-normalised ret-tokens (distances in [0, 2])
    ca_margin: float = 1.0  # official TripletMarginLoss margin, raw vectors
    w_ret: float = 1.0
    w_ca: float = 1.0
    w_rn: float = 4.0  # official weight of the relation MSE
    # Fraction of the relation losses' gradient that reaches the encoder. Trained jointly
    # at full strength from scratch, the head's losses swamp the ret-token loss in the
    # shared encoder and token 0 stays at chance (measured: 200 steps, no gain over random
    # weights; ret loss alone learns). The official run starts from an ImageNet encoder.
    head_grad_to_encoder: float = 0.1
    # Stage one with the relation losses (True) or the ret-token loss alone (False, about
    # half the step time on this config: the head then learns in stage two only, on the
    # frozen tokens). On 2 cores the step count is the budget, so the v2 run trains
    # without them (see tools/README.md).
    joint_head: bool = True
    # Second stage: the relation head alone on the frozen encoder, with a random negative
    # next to the hard one. Trained on hard (ret-nearest) negatives only, the head never
    # sees an easy pair and scores every photo far from the sketch in ret-token space
    # *higher* (measured: score correlates +0.58 with ret distance, positives below
    # negatives even on seen classes), so the rerank hurt. Random negatives, as in the
    # official code, teach it the easy half.
    head_steps: int = 300
    head_lr: float = 3e-4
    # Where stage two takes its negatives. "batch": the hardest and a random other photo of
    # the step's batch (v1). "topk": photos of other concepts among each sketch's ret-token
    # top ``head_topk`` over the whole training set -- exactly what a rerank of that depth
    # shows the head -- ``head_negatives_per_sketch`` of them per sketch, with a listwise
    # (softmax over positive and negatives) loss next to the relation MSE.
    head_negatives: str = "batch"
    head_topk: int = 20
    head_negatives_per_sketch: int = 7
    # Of those, how many are random photos of other concepts instead (easy ones): a head that
    # only ever saw top-k negatives mis-scores the easier photos a rerank of a small gallery
    # also shows it (measured: on the 189-photo demo bundle, rerank 20 fell below the
    # ret-token, 0.276 vs 0.321 mAP@all, while it helped on the 4,906-photo validation).
    head_random_negatives: int = 0
    seed: int = 0
    # One intra-op thread: on a 2-core machine shared with other jobs, two torch threads
    # stall each other at every barrier (measured: ~3x slower per step than one thread).
    threads: int = 1
    log_every: int = 10
    save_every: int = 200  # also write OUT.partial.safetensors this often, to inspect a long run
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # Freehand drawings (Quick, Draw! rows of the render set): the share of each batch's concepts
    # that get one as their sketch instead of an icon. About 160 of the 920 seen concepts have
    # freehand drawings: drawn by concept alone, they would fill about a sixth of a batch.
    freehand_share: float = 0.0
    strokes: StrokeAugmentConfig = field(default_factory=StrokeAugmentConfig)


class ConceptSampler:
    """Per step: ``batch`` distinct concepts, one training sketch and one training photo each.

    Every row of ``renders`` may be drawn: the caller passes training rows only (a pack's
    validation and test rows removed; every source of a pack is licence-cleared). With
    ``freehand_share`` > 0, that share of the concepts is drawn among those with freehand rows
    (source :data:`tools.quickdraw.FAMILY`) and gets a freehand sketch; the rest get an icon.
    """

    def __init__(self, renders: RenderSet, concepts: list[str], seed: int, freehand_share: float = 0.0):
        if not 0 <= freehand_share <= 1:
            raise ConfigError(f"freehand_share {freehand_share}: expected a share in [0, 1]")
        self.renders = renders
        self.freehand_share = freehand_share
        self.sketches: list[np.ndarray] = []
        self.freehand: list[np.ndarray] = []
        self.photos: list[np.ndarray] = []
        self.concepts: list[str] = []
        drawn = renders.source == FAMILY
        sk = (renders.modality == "sketch") & ~drawn
        ph = renders.modality == "photo"
        rows_of: dict[str, list[int]] = {}
        for i, name in enumerate(renders.concept):  # one pass: thousands of concepts in a pack
            rows_of.setdefault(str(name), []).append(i)
        for name in concepts:
            rows = np.array(rows_of.get(name, []), dtype=np.int64)
            s, f, p = rows[sk[rows]], rows[drawn[rows]], rows[ph[rows]]
            if len(s) and len(p):
                self.concepts.append(name)
                self.sketches.append(s)
                self.freehand.append(f)
                self.photos.append(p)
            else:
                _log.warning("concept %r has no training sketch or photo; not trained on", name)
        if len(self.concepts) < 2:
            raise InputError(f"need at least 2 trainable concepts, found {len(self.concepts)}")
        self.with_freehand = np.array([i for i, f in enumerate(self.freehand) if len(f)], dtype=np.int64)
        if freehand_share and not len(self.with_freehand):
            raise InputError(f"freehand_share {freehand_share}, but no trainable concept has a freehand drawing")
        self.rng = np.random.default_rng(seed)

    def all_sketches(self) -> np.ndarray:
        """Every sketch row the sampler may draw (icons and freehand)."""
        return np.concatenate(self.sketches + self.freehand)

    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """(sketch indices, photo indices) into the render set, row i = concept i."""
        batch = min(batch, len(self.concepts))
        if not self.freehand_share:
            chosen = self.rng.choice(len(self.concepts), size=batch, replace=False)
            sk = np.array([self.rng.choice(self.sketches[c]) for c in chosen])
        else:
            n_free = min(round(self.freehand_share * batch), len(self.with_freehand))
            free = self.rng.choice(self.with_freehand, size=n_free, replace=False)
            rest = np.setdiff1d(np.arange(len(self.concepts)), free)
            chosen = np.concatenate([free, self.rng.choice(rest, size=batch - n_free, replace=False)])
            sk = np.array(
                [self.rng.choice(self.freehand[c] if i < n_free else self.sketches[c]) for i, c in enumerate(chosen)]
            )
        ph = np.array([self.rng.choice(self.photos[c]) for c in chosen])
        return sk, ph


def _scale_grad(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Same value as ``x``; the gradient flowing back through it is multiplied by ``factor``."""
    return x if factor == 1.0 else x * factor + x.detach() * (1.0 - factor)


def train_step(
    model: ZseModel, sketches: torch.Tensor, photos: torch.Tensor, cfg: TrainConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one batch: row i of ``sketches`` and ``photos`` is concept i; all concepts distinct."""
    b = sketches.shape[0]
    tokens = model.encode(torch.cat([sketches, photos]))
    s_tok, p_tok = tokens[:b], tokens[b:]
    if cfg.ret_loss == "softmax":
        tri_ret = ret_token_softmax(s_tok[:, 0], p_tok[:, 0], cfg.ret_temperature)
    else:
        tri_ret = ret_token_triplet(s_tok[:, 0], p_tok[:, 0], cfg.ret_margin)

    # Relation pairs, one positive and one negative per sketch as the official code: the
    # negative is the photo stage one (the ret-token) confuses most, so the head learns to
    # fix exactly the mistakes the rerank sees. (Pairs cost as much as ~0.4 encodes each on
    # this config, so one negative per sketch keeps the step affordable on 2 cores.)
    with torch.no_grad():
        # In-batch retrieval accuracy of the ret-token: a cheap progress signal.
        d = torch.cdist(F.normalize(s_tok[:, 0], dim=-1), F.normalize(p_tok[:, 0], dim=-1))
        acc = (d.argmin(dim=1) == torch.arange(b)).float().mean()
    if not cfg.joint_head:
        loss = cfg.w_ret * tri_ret
        return loss, {"loss": loss.item(), "ret": tri_ret.item(), "ret_top1": acc.item()}
    hard = hardest_negative(s_tok[:, 0], p_tok[:, 0])
    photo_idx = torch.cat([torch.arange(b), hard])
    head = model.relation_head
    s_in, p_in = (_scale_grad(t, cfg.head_grad_to_encoder) for t in (s_tok, p_tok))
    out = head.forward_features(s_in.repeat(2, 1, 1), p_in[photo_idx])
    s_ca, p_ca, scores = out["sketch_tokens"], out["photo_tokens"], out["score"]
    rn = relation_mse(scores[:b], scores[b:])
    # Official triplet on the head's token 0: sketch (paired with its positive), positive, negative.
    tri_ca = official_triplet(s_ca[:b, 0], p_ca[:b, 0], p_ca[b:, 0], cfg.ca_margin)

    loss = cfg.w_ret * tri_ret + cfg.w_ca * tri_ca + cfg.w_rn * rn
    stats = {
        "loss": loss.item(),
        "ret": tri_ret.item(),
        "tri_ca": tri_ca.item(),
        "rn": rn.item(),
        "score_pos": scores[:b].mean().item(),
        "score_neg": scores[b:].mean().item(),
        "ret_top1": acc.item(),
    }
    return loss, stats


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``min_lr``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, t)))


@torch.no_grad()
def _encode_rows(model: ZseModel, renders: RenderSet, rows: np.ndarray, batch: int = 64) -> torch.Tensor:
    out = []
    for i in range(0, len(rows), batch):
        idx = rows[i : i + batch]
        modality = renders.modality[idx[0]]
        out.append(model.encode(to_tensor(renders.images[idx], model.config.preprocess[modality])))
    return torch.cat(out)


def finetune_head(
    model: ZseModel, renders: RenderSet, concepts: list[str], cfg: TrainConfig, log: TextIO | None = None
) -> list[dict[str, float]]:
    """Stage two: train the relation head on frozen, precomputed encoder tokens.

    Per sketch: its positive photo, the other photo of the batch nearest in ret-token space
    (hard) and a random other photo (easy); or, with ``cfg.head_negatives == "topk"``, photos
    from its ret-token top-k (see :class:`TrainConfig`). No augmentation (tokens are computed
    once).
    """
    if cfg.head_negatives not in ("batch", "topk"):
        raise ConfigError(f"TrainConfig.head_negatives {cfg.head_negatives!r}: expected 'batch' or 'topk'")
    model.eval()  # encoder dropout off while precomputing
    sampler = ConceptSampler(renders, concepts, cfg.seed + 1, cfg.freehand_share)
    rows = np.unique(np.concatenate([sampler.all_sketches(), *sampler.photos]))
    # Sketch and photo rows are encoded separately (their preprocessing differs).
    sk_rows = rows[renders.modality[rows] == "sketch"]
    ph_rows = rows[renders.modality[rows] == "photo"]
    tokens = torch.empty(len(renders), model.config.num_tokens, model.config.width)
    for part in (sk_rows, ph_rows):
        tokens[part] = _encode_rows(model, renders, part)
    topk = _ret_topk_negatives(renders, tokens, sampler, cfg.head_topk) if cfg.head_negatives == "topk" else None
    head = model.relation_head.train()
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.head_lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator().manual_seed(cfg.seed + 1)
    stage = dataclasses.replace(cfg, steps=cfg.head_steps, lr=cfg.head_lr, warmup=max(1, cfg.head_steps // 20))
    records: list[dict[str, float]] = []
    window: list[dict[str, float]] = []
    start = time.time()
    for step in tqdm(range(cfg.head_steps), desc="relation head", unit="step"):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, stage)
        sk_idx, ph_idx = sampler.sample(cfg.batch)
        if topk is not None:
            stats = _topk_head_step(head, tokens, sk_idx, ph_idx, topk, sampler, cfg)
        else:
            stats = _batch_head_step(head, tokens, sk_idx, ph_idx, generator, cfg)
        loss = stats.pop("_loss")
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), cfg.grad_clip)
        opt.step()
        window.append(stats)
        records += _log_window(window, step, cfg, start, log)
    model.eval()
    return records


def _log_window(
    window: list[dict[str, float]], step: int, cfg: TrainConfig, start: float, log: TextIO | None
) -> list[dict[str, float]]:
    """Every ``log_every`` head steps: the window's means as one record (window emptied)."""
    if not ((step + 1) % cfg.log_every == 0 or step + 1 == cfg.head_steps):
        return []
    rec = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
    rec.update(stage="head", step=step + 1, elapsed_s=round(time.time() - start, 1))
    window.clear()
    if log is not None:
        log.write(json.dumps(rec) + "\n")
        log.flush()
    return [rec]


def _batch_head_step(
    head, tokens: torch.Tensor, sk_idx: np.ndarray, ph_idx: np.ndarray, generator: torch.Generator, cfg: TrainConfig
) -> dict[str, Any]:
    """One stage-two step with in-batch negatives: per sketch its positive, the hardest other
    photo of the batch and a random one; relation MSE and the official triplet."""
    s_tok, p_tok = tokens[sk_idx], tokens[ph_idx]
    b = len(sk_idx)
    hard = hardest_negative(s_tok[:, 0], p_tok[:, 0])
    rand = (torch.arange(b) + torch.randint(1, b, (b,), generator=generator)) % b
    photo_idx = torch.cat([torch.arange(b), hard, rand])
    out = head.forward_features(s_tok.repeat(3, 1, 1), p_tok[photo_idx])
    s_ca, p_ca, scores = out["sketch_tokens"], out["photo_tokens"], out["score"]
    rn = relation_mse(scores[:b], scores[b:])
    tri_ca = official_triplet(s_ca[:b, 0], p_ca[:b, 0], p_ca[2 * b :, 0], cfg.ca_margin)
    loss = cfg.w_rn * rn + cfg.w_ca * tri_ca
    return {
        "_loss": loss,
        "head_loss": loss.item(),
        "rn": rn.item(),
        "tri_ca": tri_ca.item(),
        "score_pos": scores[:b].mean().item(),
        "score_hard": scores[b : 2 * b].mean().item(),
        "score_rand": scores[2 * b :].mean().item(),
    }


def _ret_topk_negatives(
    renders: RenderSet, tokens: torch.Tensor, sampler: ConceptSampler, k: int
) -> dict[int, np.ndarray]:
    """{training sketch row: the rows of its ret-token top-``k`` training photos of other concepts}."""
    sk_rows = sampler.all_sketches()
    ph_rows = np.concatenate(sampler.photos)
    photos = F.normalize(tokens[ph_rows, 0], dim=-1)
    out: dict[int, np.ndarray] = {}
    for i in range(0, len(sk_rows), 512):
        rows = sk_rows[i : i + 512]
        sim = F.normalize(tokens[rows, 0], dim=-1) @ photos.T
        same = torch.from_numpy(renders.concept[rows][:, None] == renders.concept[ph_rows][None, :])
        sim[same] = -float("inf")
        top = sim.topk(min(k, len(ph_rows)), dim=1).indices.numpy()
        out.update({int(r): ph_rows[t] for r, t in zip(rows, top, strict=False)})
    return out


def _topk_head_step(
    head,
    tokens: torch.Tensor,
    sk_idx: np.ndarray,
    ph_idx: np.ndarray,
    topk: dict[int, np.ndarray],
    sampler: ConceptSampler,
    cfg: TrainConfig,
) -> dict[str, Any]:
    """One stage-two step with ret-token top-k negatives (and ``cfg.head_random_negatives``
    random ones): relation MSE, a listwise softmax (positive first among its negatives) and
    the official triplet on the head's token 0 (against the hardest-ranked negative)."""
    rng = sampler.rng
    n_rand = min(cfg.head_random_negatives, cfg.head_negatives_per_sketch)
    m = cfg.head_negatives_per_sketch - n_rand
    own = {sampler.renders.concept[r] for r in sk_idx}
    others = [i for i, c in enumerate(sampler.concepts) if c not in own]

    def negatives(row: int) -> np.ndarray:
        hard = rng.choice(topk[row], size=min(m, len(topk[row])), replace=False)
        easy = [rng.choice(sampler.photos[c]) for c in rng.choice(others, size=n_rand, replace=len(others) < n_rand)]
        return np.concatenate([hard, np.array(easy, dtype=hard.dtype)])

    negs = np.stack([negatives(int(r)) for r in sk_idx])
    b, m = negs.shape
    photo_rows = np.concatenate([ph_idx[:, None], negs], axis=1).ravel()  # (b * (1 + m)): pos, negs per sketch
    s_tok = tokens[np.repeat(sk_idx, 1 + m)]
    out = head.forward_features(s_tok, tokens[photo_rows])
    s_ca, p_ca, scores = out["sketch_tokens"], out["photo_tokens"], out["score"].view(b, 1 + m)
    rn = relation_mse(scores[:, 0], scores[:, 1:].reshape(-1))
    logits = torch.logit(scores.clamp(1e-6, 1 - 1e-6))
    listwise = F.cross_entropy(logits, torch.zeros(b, dtype=torch.long))
    s0, p0 = s_ca[:, 0].view(b, 1 + m, -1), p_ca[:, 0].view(b, 1 + m, -1)
    tri_ca = official_triplet(s0[:, 0], p0[:, 0], p0[:, 1], cfg.ca_margin)
    loss = cfg.w_rn * rn + listwise + cfg.w_ca * tri_ca
    return {
        "_loss": loss,
        "head_loss": loss.item(),
        "rn": rn.item(),
        "listwise": listwise.item(),
        "tri_ca": tri_ca.item(),
        "score_pos": scores[:, 0].mean().item(),
        "score_hard": scores[:, 1:].mean().item(),
        "pos_first": (scores[:, 0:1] > scores[:, 1:]).all(dim=1).float().mean().item(),
    }


def save_checkpoint(model: ZseModel, path: Path, metadata: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={k: json.dumps(v) for k, v in metadata.items()})


def _resume_path(out: Path | None) -> Path:
    if out is None:
        raise InputError("resuming needs the checkpoint path (--out) whose resume state to read")
    return out.with_suffix(".resume.pt")


class SketchImages:
    """The sketch images of a step: icon rows as rendered, freehand rows (those with strokes)
    drawn again from their strokes with :func:`tools.augment.augment_strokes` each time."""

    def __init__(self, renders: RenderSet, strokes: dict[int, Any] | None, pre, cfg: StrokeAugmentConfig, seed: int):
        self.renders, self.strokes, self.pre, self.cfg = renders, strokes or {}, pre, cfg
        self.rng = np.random.default_rng(seed)

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        images = self.renders.images[rows].copy()
        for i, row in enumerate(rows):
            if int(row) in self.strokes:
                images[i] = render_freehand(self.strokes[int(row)], self.pre, self.cfg, self.rng)
        return images


def _save_resume_state(
    path: Path, step: int, model: ZseModel, opt, sampler: ConceptSampler, generator, sketch_images: SketchImages
) -> None:
    state = {
        "step": step,
        "model": model.state_dict(),
        "opt": opt.state_dict(),
        "sampler": sampler.rng.bit_generator.state,
        "generator": generator.get_state(),
        "torch": torch.get_rng_state(),
        "strokes": sketch_images.rng.bit_generator.state,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # a run stopped while saving keeps the previous state whole


def _load_resume_state(
    path: Path, model: ZseModel, opt, sampler: ConceptSampler, generator, sketch_images: SketchImages
) -> int:
    if not path.is_file():
        raise InputError(f"{path}: no resume state (it is written every save_every steps of stage one)")
    state = torch.load(path, map_location="cpu", weights_only=False)  # our own file, written above
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    sampler.rng.bit_generator.state = state["sampler"]
    sketch_images.rng.bit_generator.state = state["strokes"]
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    return int(state["step"])


def train(
    model_config: ModelConfig,
    renders: RenderSet,
    concepts: list[str],
    cfg: TrainConfig,
    out: Path | None = None,
    log: TextIO | None = None,
    max_minutes: float | None = None,
    init: Path | None = None,
    resume: bool = False,
    strokes: dict[int, Any] | None = None,
) -> tuple[ZseModel, list[dict[str, float]]]:
    """Stage one (everything, ``cfg.steps``) then stage two (the relation head, ``cfg.head_steps``).

    Starts from scratch, or from the checkpoint ``init`` (e.g. ``--steps 0`` to rerun only
    stage two on a stage-one result). With ``resume``, stage one continues from the state
    saved every ``cfg.save_every`` steps next to ``out`` (``OUT.resume.pt``: weights,
    optimiser, step and random states), so a stopped run goes on where it was. ``strokes``
    ({row: strokes}) holds the freehand rows' drawings: stage one draws them again, augmented, at
    every use (:class:`SketchImages`); stage two uses their rendered images. Returns the model
    (eval mode) and the logged records.
    """
    if cfg.ret_loss not in ("softmax", "triplet"):
        raise ConfigError(f"TrainConfig.ret_loss {cfg.ret_loss!r}: expected 'softmax' or 'triplet'")
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    generator = torch.Generator().manual_seed(cfg.seed)
    model = ZseModel(model_config)
    if init is not None:
        load_state(model, init)
    model.train()
    sampler = ConceptSampler(renders, concepts, cfg.seed, cfg.freehand_share)
    sketch_images = SketchImages(renders, strokes, model_config.preprocess["sketch"], cfg.strokes, cfg.seed + 2)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "pos_embed" not in n and "cls_token" not in n]
    no_decay = [
        p for n, p in model.named_parameters() if not (p.ndim >= 2 and "pos_embed" not in n and "cls_token" not in n)
    ]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )
    pre_s, pre_p = model_config.preprocess["sketch"], model_config.preprocess["photo"]
    records: list[dict[str, float]] = []
    first = 0
    if resume:
        first = _load_resume_state(_resume_path(out), model, opt, sampler, generator, sketch_images)
        _log.info("resuming stage one at step %d of %d", first, cfg.steps)
    start = time.time()
    stopped_early = False
    window: list[dict[str, float]] = []
    step = first - 1
    bar = tqdm(range(first, cfg.steps), desc="training", unit="step", initial=first, total=cfg.steps)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        sk_idx, ph_idx = sampler.sample(cfg.batch)
        sketches = augment(sketch_images(sk_idx), pre_s, cfg.augment, generator)
        photos = augment(renders.images[ph_idx], pre_p, cfg.augment, generator)
        loss, stats = train_step(model, sketches, photos, cfg)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        window.append(stats)
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            rec = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
            rec.update(step=step + 1, lr=lr_at(step, cfg), elapsed_s=round(time.time() - start, 1))
            window = []
            records.append(rec)
            bar.set_postfix(loss=f"{rec['loss']:.3f}", top1=f"{rec['ret_top1']:.2f}")
            if log is not None:
                log.write(json.dumps(rec) + "\n")
                log.flush()
        if out is not None and cfg.save_every and (step + 1) % cfg.save_every == 0:
            save_checkpoint(
                model, out.with_suffix(".partial.safetensors"), {"config": model_config.name, "step": step + 1}
            )
            _save_resume_state(_resume_path(out), step + 1, model, opt, sampler, generator, sketch_images)
        if max_minutes is not None and time.time() - start > max_minutes * 60:
            _log.warning("stopping after %d steps: time budget of %.0f min reached", step + 1, max_minutes)
            stopped_early = True
            break
    if cfg.head_steps:
        records += finetune_head(model, renders, concepts, cfg, log)
    model.eval()
    if out is not None:
        save_checkpoint(
            model,
            out,
            {
                "config": model_config.name,
                "train": dataclasses.asdict(cfg),
                "steps_done": step + 1,
                "init": str(init) if init is not None else None,
                "stopped_early": stopped_early,
                "concepts": len(sampler.concepts),
                "wall_s": round(time.time() - start, 1),
                "sketch_sources": sorted(set(renders.source[sampler.all_sketches()])),
                "photo_sources": sorted(set(renders.source[np.concatenate(sampler.photos)])),
            },
        )
    return model, records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", type=Path, required=True, help="the data pack to train on (python -m tools.pack)")
    parser.add_argument("--config", default="zse_demo", help="model config name")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write (.safetensors)")
    parser.add_argument("--log", type=Path, required=True, help="JSON-lines training log")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--batch", type=int, default=TrainConfig.batch)
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--threads", type=int, default=TrainConfig.threads, help="torch intra-op threads")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop stage one early after this long")
    parser.add_argument("--head-steps", type=int, default=TrainConfig.head_steps, help="stage two: relation head only")
    parser.add_argument("--init", type=Path, default=None, help="start from this checkpoint instead of scratch")
    parser.add_argument("--resume", action="store_true", help="continue stage one from OUT.resume.pt")
    parser.add_argument("--save-every", type=int, default=TrainConfig.save_every)
    parser.add_argument("--warmup", type=int, default=TrainConfig.warmup)
    parser.add_argument(
        "--no-joint-head",
        dest="joint_head",
        action="store_false",
        help="stage one with the ret-token loss alone (the head trains in stage two)",
    )
    parser.add_argument("--head-lr", type=float, default=TrainConfig.head_lr)
    parser.add_argument(
        "--head-negatives",
        choices=("batch", "topk"),
        default=TrainConfig.head_negatives,
        help="stage two's negatives: in the batch, or from each sketch's ret-token top-k",
    )
    parser.add_argument("--head-topk", type=int, default=TrainConfig.head_topk)
    parser.add_argument(
        "--head-random-negatives",
        type=int,
        default=TrainConfig.head_random_negatives,
        help="with topk: this many of the 7 negatives per sketch are random photos instead",
    )
    parser.add_argument("--min-lr", type=float, default=TrainConfig.min_lr)
    parser.add_argument(
        "--quickdraw",
        action="store_true",
        help="also train on the Quick, Draw! drawings of seen concepts (../shared/quickdraw; "
        "their validation share held out, see tools.quickdraw)",
    )
    parser.add_argument(
        "--freehand-share",
        type=float,
        default=0.5,
        help="with --quickdraw: the share of each batch's concepts drawn freehand",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.out.suffix != ".safetensors":
        raise InputError(f"--out {args.out}: expected a .safetensors path")
    model_config = get_config(args.config)
    cfg = TrainConfig(
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        seed=args.seed,
        threads=args.threads,
        head_steps=args.head_steps,
        save_every=args.save_every,
        warmup=args.warmup,
        joint_head=args.joint_head,
        head_lr=args.head_lr,
        head_negatives=args.head_negatives,
        head_topk=args.head_topk,
        head_random_negatives=args.head_random_negatives,
        min_lr=args.min_lr,
        freehand_share=args.freehand_share if args.quickdraw else 0.0,
    )
    renders, codes = load_pack(args.pack)
    # Seen concepts minus their held-out validation drawings; every source of the pack.
    renders, seen = renders.select(codes == SPLIT_CODES["seen"]), load_split()["seen"]
    strokes = None
    if args.quickdraw:
        from .quickdraw import freehand_set

        drawn, drawn_codes, drawn_strokes = freehand_set(model_config)
        train_rows = np.flatnonzero(drawn_codes == SPLIT_CODES["seen"])
        strokes = {len(renders) + i: drawn_strokes[r] for i, r in enumerate(train_rows)}
        renders = renders.concat(drawn.select(train_rows))
    args.log.parent.mkdir(parents=True, exist_ok=True)
    with args.log.open("a" if args.resume else "w") as log:
        log.write(
            json.dumps(
                {
                    "config": model_config.name,
                    "train": dataclasses.asdict(cfg),
                    "seen": len(seen),
                    "data": str(args.pack),
                    "quickdraw": len(strokes or ()),
                    "resume": args.resume,
                }
            )
            + "\n"
        )
        _, records = train(
            model_config, renders, seen, cfg, args.out, log, args.max_minutes, args.init, args.resume, strokes
        )
    last = records[-1] if records else {}
    print(f"wrote {args.out}; last log record: {last}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

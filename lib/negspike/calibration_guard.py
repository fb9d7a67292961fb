"""Calibration that keeps what it had: checks on held-out images and the best state kept.

Joint calibration with a few hundred Adam steps can make a deep SNN worse (issue 13 measured
a ResNet-18 falling from 73.0% to 59.1% at T = 16). :class:`KeepBest` scores the SNN on
held-out *training* images (never the test set) before calibration and at every check,
keeps a copy of the trainable state whenever the score improves, and puts the best copy
back at the end, so a calibrated SNN is never worse than its starting point on those
images. Ties keep the earlier state.
"""
from __future__ import annotations

from typing import Iterable

import pandas as pd
import torch
from torch import nn

__all__ = ["KeepBest", "holdout_accuracy"]


@torch.no_grad()
def holdout_accuracy(snn: nn.Module, x: torch.Tensor, y: torch.Tensor, Ts: Iterable[int], batch_size: int = 256,
                     device: torch.device | str = "cpu") -> float:
    """Accuracy of ``snn`` on ``(x, y)`` averaged over the time-step counts ``Ts``, each run
    from reset membranes in eval mode (the mode in which the SNN is used afterwards)."""
    was_training = snn.training
    snn.eval()
    Ts = list(Ts)
    right = 0
    try:
        for T in Ts:
            for i in range(0, len(x), batch_size):
                snn.reset()
                out = snn(x[i:i + batch_size].to(device), T).mean(0)
                right += int((out.argmax(1).cpu() == y[i:i + batch_size]).sum())
    finally:
        snn.reset()
        snn.train(was_training)
    return right / (len(x) * len(Ts))


class KeepBest:
    """Score ``snn`` on ``holdout = (x, y)`` at each :meth:`check`; keep the best trainable state.

    ``params`` are the tensors calibration changes (weights, biases, thresholds, ``v0``);
    their values at the best check are copied and written back by :meth:`restore`.
    ``ann_acc``, the ANN's accuracy on the same images, goes into the table as the reference
    (the gap against the calibration budget).
    """

    def __init__(self, snn: nn.Module, params: list[nn.Parameter], holdout: tuple[torch.Tensor, torch.Tensor],
                 Ts: Iterable[int], device: torch.device | str = "cpu", ann_acc: float | None = None) -> None:
        x, y = holdout
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(f"holdout needs as many labels as images and at least one image, got {len(x)} and {len(y)}")
        self.snn, self.params, self.x, self.y = snn, params, x, y.long()
        self.Ts, self.device, self.ann_acc = list(Ts), device, ann_acc
        self.best = -1.0
        self.best_state: list[torch.Tensor] = []
        self.rows: list[dict] = []

    def check(self, after: str) -> float:
        """Score the current state (reached ``after`` what, e.g. ``"start"``, ``"step 32"``);
        keep it if it is the best so far."""
        acc = holdout_accuracy(self.snn, self.x, self.y, self.Ts, device=self.device)
        kept = acc > self.best
        if kept:
            self.best = acc
            self.best_state = [p.detach().clone() for p in self.params]
        self.rows.append({"after": after, "holdout_acc": acc, "new_best": kept})
        return acc

    @torch.no_grad()
    def restore(self) -> None:
        """Write the best state's values back into the parameters."""
        for p, best in zip(self.params, self.best_state):
            p.copy_(best)

    def table(self) -> pd.DataFrame:
        """One row per check: what it came after, held-out accuracy, whether it was a new best;
        ``kept`` marks the state the SNN ends with."""
        df = pd.DataFrame(self.rows)
        if len(df):
            last_best = df.index[df["new_best"]][-1]
            df["kept"] = df.index == last_best
            df["holdout_images"] = len(self.y)
            df["ann_holdout_acc"] = self.ann_acc
        return df

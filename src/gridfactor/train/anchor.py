"""PPO anchored to the imitation policy (``gridfactor train --anchor COEFF``).

PPO from the cloned weights drifts away from what the expert taught as soon as its first
updates follow noisy advantages: on case14 its held-out survival moved by about a day either
way. The anchor adds ``COEFF * KL(imitation || current)`` on the batch's observations to
each policy's PPO loss, the imitation policies being frozen copies of the run's
``checkpoints/imitation``. Large coefficients keep the clone; 0 is plain PPO.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.columns import Columns

ANCHOR_COEFF = "anchor_coeff"


class AnchoredPPOLearner(PPOTorchLearner):
    """RLlib's PPO torch learner plus a KL term towards frozen anchor policies."""

    def set_anchors(self, module_dir: str) -> list[str]:
        """Load the frozen anchor of every policy from ``module_dir``
        (``<checkpoint>/learner_group/learner/rl_module``); returns the policy ids."""
        from ray.rllib.core.rl_module.rl_module import RLModule

        anchors = {}
        for path in sorted(Path(module_dir).iterdir()):
            if path.is_dir() and path.name in self.module:
                anchor = RLModule.from_checkpoint(str(path.resolve()))
                anchor.eval()
                for p in anchor.parameters():
                    p.requires_grad_(False)
                anchors[path.name] = anchor
        self._anchors = anchors
        return sorted(anchors)

    def compute_loss_for_module(
        self, *, module_id: str, config: Any, batch: dict[str, Any], fwd_out: dict[str, Any]
    ) -> Any:
        import torch

        loss = super().compute_loss_for_module(
            module_id=module_id, config=config, batch=batch, fwd_out=fwd_out
        )
        coeff = float(config.learner_config_dict.get(ANCHOR_COEFF, 0.0))
        anchor = getattr(self, "_anchors", {}).get(module_id)
        if coeff <= 0.0 or anchor is None:
            return loss
        with torch.no_grad():
            ref = anchor.forward_train({Columns.OBS: batch[Columns.OBS]})
        ref_logp = torch.log_softmax(ref[Columns.ACTION_DIST_INPUTS], dim=-1)
        logp = torch.log_softmax(fwd_out[Columns.ACTION_DIST_INPUTS], dim=-1)
        kl = (ref_logp.exp() * (ref_logp - logp)).sum(dim=-1)
        if Columns.LOSS_MASK in batch:
            mask = batch[Columns.LOSS_MASK]
            kl_mean = (kl * mask).sum() / mask.sum().clamp(min=1)
        else:
            kl_mean = kl.mean()
        self.metrics.log_value((module_id, "anchor_kl"), float(kl_mean.detach()), window=1)
        return loss + coeff * kl_mean

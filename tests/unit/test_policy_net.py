"""The numpy policy (what every decision runs) against RLlib's RLModule (the reference)."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from gridfactor.agents.policy_net import GreedyEnsemble, GreedyMLP, load_policy
from gridfactor.errors import UserError


def rl_module(activation: str, n_in: int = 23, n_out: int = 7):
    """A real RLlib PPO RLModule as ``gridfactor train`` builds it, with random weights."""
    from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import (
        DefaultPPOTorchRLModule,
    )
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    return RLModuleSpec(
        module_class=DefaultPPOTorchRLModule,
        observation_space=gym.spaces.Box(-np.inf, np.inf, (n_in,), np.float32),
        action_space=gym.spaces.Discrete(n_out),
        model_config={
            "fcnet_hiddens": [32, 16],
            "fcnet_activation": activation,
            "head_fcnet_hiddens": [],
        },
    ).build()


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_numpy_logits_equal_the_rl_module_forward(activation: str, tmp_path: Path) -> None:
    import torch

    module = rl_module(activation)
    net = GreedyMLP.from_module(module)
    assert (net.n_inputs, net.n_actions) == (23, 7)
    assert net.activations == (activation.capitalize().replace("Relu", "ReLU"),) * 2 + ("",)
    obs = np.random.default_rng(0).uniform(-2, 2, (50, 23)).astype(np.float32)
    with torch.no_grad():
        reference = module.forward_inference({"obs": torch.as_tensor(obs)})[
            "action_dist_inputs"
        ].numpy()
    ours = np.stack([net(o) for o in obs])
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)
    assert not np.allclose(reference, reference[0])  # the observations matter

    net.save(tmp_path / "policy.npz")
    again = load_policy(tmp_path / "policy.npz")
    assert again.activations == net.activations
    assert all(np.array_equal(net(o), again(o)) for o in obs)


def test_ensemble_averages_probabilities_over_matched_actions(tmp_path: Path) -> None:
    """Two members knowing different actions: each action's probability is the mean of the
    members' (0 from a member that does not know it); saved and loaded unchanged."""
    rng = np.random.default_rng(1)

    def mlp(n_out: int) -> GreedyMLP:
        w = (rng.normal(size=(5, 8)).astype(np.float32), rng.normal(size=(8, n_out)))
        b = (rng.normal(size=8).astype(np.float32), rng.normal(size=n_out).astype(np.float32))
        return GreedyMLP((w[0], w[1].astype(np.float32)), b, ("Tanh", ""))

    a, b = mlp(3), mlp(2)
    # a knows actions 0, 1, 2 of the ensemble; b knows 0 and 3 (in that order)
    ensemble = GreedyEnsemble((a, b), (np.array([0, 1, 2]), np.array([0, 3])), 4)
    for obs in rng.normal(size=(20, 5)).astype(np.float32):
        pa, pb = (np.exp(m(obs)) / np.exp(m(obs)).sum() for m in (a, b))
        expected = np.array([pa[0] + pb[0], pa[1], pa[2], pb[1]]) / 2
        np.testing.assert_allclose(np.exp(ensemble(obs)), expected, rtol=1e-5)
    ensemble.save(tmp_path / "ensemble.npz")
    again = load_policy(tmp_path / "ensemble.npz")
    assert isinstance(again, GreedyEnsemble) and again.n_actions == 4
    obs = rng.normal(size=5).astype(np.float32)
    assert np.array_equal(again(obs), ensemble(obs))
    with pytest.raises(UserError, match="observations of different sizes"):
        GreedyEnsemble(
            (a, GreedyMLP((np.ones((4, 2), np.float32),), (np.zeros(2),), ("",))),
            (np.arange(3), np.arange(2)),
            3,
        )

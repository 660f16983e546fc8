"""The numpy policy (what every decision runs) against RLlib's RLModule (the reference)."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from gridfactor.agents.policy_net import GreedyMLP


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
    again = GreedyMLP.load(tmp_path / "policy.npz")
    assert again.activations == net.activations
    assert all(np.array_equal(net(o), again(o)) for o in obs)

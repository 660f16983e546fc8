"""Training one RLlib PPO policy per cluster (or one centralized policy)."""

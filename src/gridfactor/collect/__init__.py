"""Data collection from Grid2Op environments (random topology actions per substation)."""

from gridfactor.collect.grid2op_collect import (
    DATASET_FILE,
    SIDECAR_FILE,
    CollectConfig,
    GridInfo,
    check_action_effects,
    collect,
    describe_action_effects,
    episode_seed_sequence,
    grid_info,
    load_dataset,
)

__all__ = [
    "DATASET_FILE",
    "SIDECAR_FILE",
    "CollectConfig",
    "GridInfo",
    "check_action_effects",
    "collect",
    "describe_action_effects",
    "episode_seed_sequence",
    "grid_info",
    "load_dataset",
]

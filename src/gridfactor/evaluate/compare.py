"""``gridfactor compare``: the whole experiment, end to end, in one resumable run directory.

factorize (grid MI of the training env) -> train distributed (one PPO agent per cluster) ->
train centralized (one PPO agent, same decision budget and seed) -> evaluate both and the
baselines on the held-out split -> report.md.

Run directory::

    config.json  stages.json  report.md
    factorize/     gridfactor factorize run (factorization.json, grid_clusters.png, ...)
    distributed/   gridfactor train run
    centralized/   gridfactor train run
    evaluate/      gridfactor evaluate run (results.md, plots/)

Each sub-run resumes by itself, and ``stages.json`` records the finished stages, so an
interrupted compare re-run with the same command continues where it stopped.

Default env: rte_case14_realistic (14 substations, 20 lines, 2 chronics of 8064 steps).
Do-nothing fails there often (it survives 799 and 1381 steps of the two full chronics; 6 of 14
one-day windows of the held-out chronic 001 end in a game over), so survival separates the
agents; it is the standard L2RPN 14-bus grid (rich enough for several clusters), yet small
enough for the smoke preset to run in minutes. rte_case5_example is too small to factorize
meaningfully (5 substations), educ_case14_storage has only 7 one-day chronics.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from gridfactor.errors import UserError
from gridfactor.evaluate.agents import BASELINES
from gridfactor.evaluate.report import console_table, markdown_table
from gridfactor.evaluate.runner import DEFAULT_ENV, EvalConfig, evaluate
from gridfactor.parallel import ParallelConfig
from gridfactor.runs import prepare_run_dir, write_json, write_text

STAGES = ("factorize", "distributed", "centralized", "evaluate")


@dataclass(frozen=True)
class Preset:
    """Budgets of one compare run.

    factorize_*: gridfactor factorize settings (episodes per substation, MI samples, steps).
    timesteps: training budget in decisions (RLlib env steps), the same for both agents.
    train_*: PPO batch settings; train_episode_steps: grid2op steps of a training episode.
    eval_*: held-out evaluation episodes and their length (grid2op steps).
    """

    factorize_episodes: int
    factorize_samples: int
    factorize_max_steps: int
    timesteps: int
    train_batch_size: int
    minibatch_size: int
    num_epochs: int
    train_episode_steps: int
    eval_episodes: int
    eval_steps: int


PRESETS: dict[str, Preset] = {
    # A few minutes on 2 cores (used in CI): a tiny collection, 1k decisions, 3 eval days.
    "smoke": Preset(
        factorize_episodes=4,
        factorize_samples=400,
        factorize_max_steps=50,
        timesteps=1000,
        train_batch_size=250,
        minibatch_size=64,
        num_epochs=3,
        train_episode_steps=288,
        eval_episodes=3,
        eval_steps=288,
    ),
    # The seed paper's settings: 1000 episodes / 50000 samples per substation for the
    # factorization, 1M decisions per agent, 100 held-out one-week episodes. Expected run
    # time on 2 cores: several days, dominated by training (measured ~10-20 decisions/s on
    # a loaded 2-core machine -> ~1 day per agent) and the expert's evaluation (~0.1 s per
    # step, ~6 h for 100 x 2016 steps); use --ray-address on a cluster. Not run here.
    "paper": Preset(
        factorize_episodes=1000,
        factorize_samples=50_000,
        factorize_max_steps=100,
        timesteps=1_000_000,
        train_batch_size=4000,
        minibatch_size=256,
        num_epochs=10,
        train_episode_steps=2016,
        eval_episodes=100,
        eval_steps=2016,
    ),
}


@dataclass
class CompareConfig:
    """A compare run: env, preset (with optional budget overrides) and execution."""

    env_name: str = DEFAULT_ENV
    preset: str = "smoke"
    seed: int = 0
    overrides: dict[str, int] = field(default_factory=dict)
    out: str = "runs/compare"
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    resume: bool = False
    overwrite: bool = False
    progress: bool = True

    def budget(self) -> Preset:
        if self.preset not in PRESETS:
            raise UserError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        fields = set(asdict(PRESETS[self.preset]))
        unknown = sorted(set(self.overrides) - fields)
        if unknown:
            raise UserError(f"unknown budget {unknown[0]!r}; choose among {', '.join(fields)}")
        return replace(PRESETS[self.preset], **self.overrides)


def _load_stages(out: Path) -> dict[str, Any]:
    path = out / "stages.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def compare(config: CompareConfig) -> Path:
    """Run (or resume) the experiment; returns the run directory holding report.md."""
    budget = config.budget()
    from gridfactor.envs.grid2op_env import AGENT_ACTION_TYPES, check_action_support

    # before any directory is created; also checks the name
    check_action_support(config.env_name, AGENT_ACTION_TYPES["trained"], "gridfactor compare")
    run_config = {
        "command": "compare",
        "env_name": config.env_name,
        "preset": config.preset,
        "budget": asdict(budget),
        "seed": config.seed,
    }
    out = prepare_run_dir(config.out, run_config, resume=config.resume, overwrite=config.overwrite)
    stages = _load_stages(out)

    def stage(name: str, fn: Any) -> None:
        if stages.get(name, {}).get("done"):
            print(f"[compare] {name}: done before, skipped")
            return
        print(f"[compare] {name} ...", flush=True)
        tic = time.perf_counter()
        fn()
        stages[name] = {"done": True, "seconds": round(time.perf_counter() - tic, 1)}
        write_json(out / "stages.json", stages)
        print(f"[compare] {name}: {stages[name]['seconds']:.0f} s", flush=True)

    stage("factorize", lambda: _factorize(config, budget, out / "factorize"))
    fact_path = out / "factorize" / "factorization.json"
    for kind in ("distributed", "centralized"):
        stage(kind, lambda kind=kind: _train(config, budget, out / kind, kind, fact_path))
    eval_config = EvalConfig(
        env_name=config.env_name,
        agents=BASELINES,
        runs=(str(out / "distributed"), str(out / "centralized")),
        n_episodes=budget.eval_episodes,
        episode_steps=budget.eval_steps,
        seed=config.seed,
        out=str(out / "evaluate"),
        parallel=config.parallel,
        resume=True,
        progress=config.progress,
    )
    stage("evaluate", lambda: evaluate(eval_config))
    write_report(out, config, budget, stages)
    return out


def _factorize(config: CompareConfig, budget: Preset, out: Path) -> None:
    from gridfactor.grid.pipeline import GridFactorizeConfig, factorize_grid

    fconfig = GridFactorizeConfig(
        env_name=config.env_name,
        n_episodes=budget.factorize_episodes,
        n_samples=budget.factorize_samples,
        max_steps=budget.factorize_max_steps,
        seed=config.seed,
    )
    factorize_grid(fconfig, out, parallel=config.parallel, resume=True, progress=config.progress)


def _train(config: CompareConfig, budget: Preset, out: Path, kind: str, fact: Path) -> None:
    from gridfactor.train.run import TrainConfig, train

    train(
        TrainConfig(
            env_name=config.env_name,
            factorization_path=str(fact) if kind == "distributed" else None,
            centralized=kind == "centralized",
            timesteps=budget.timesteps,
            seed=config.seed,
            episode_steps=budget.train_episode_steps,
            train_batch_size=budget.train_batch_size,
            minibatch_size=budget.minibatch_size,
            num_epochs=budget.num_epochs,
            ray_address=config.parallel.ray_address,
            out=str(out),
            resume=True,
        )
    )


def _rel(out: Path, path: Path) -> str:
    return str(path.relative_to(out))


def write_report(out: Path, config: CompareConfig, budget: Preset, stages: dict) -> str:
    """report.md: setup, factorization picture, learning curves, results table."""
    from gridfactor.factorize.structure import Factorization

    fact = Factorization.load(out / "factorize" / "factorization.json")
    results = pd.read_csv(out / "evaluate" / "results.csv")
    lines = [
        f"# gridfactor compare: distributed vs centralized on {config.env_name}",
        "",
        f"Preset `{config.preset}`, seed {config.seed}. Budgets: factorization "
        f"{budget.factorize_episodes} episodes / {budget.factorize_samples} samples per "
        f"substation; training {budget.timesteps} decisions per agent (PPO batch "
        f"{budget.train_batch_size}); evaluation {budget.eval_episodes} held-out episodes of "
        f"{budget.eval_steps} steps, the same scenarios for every agent.",
        "",
        "Stage times (s, this machine): "
        + ", ".join(f"{k} {v.get('seconds', '?')}" for k, v in stages.items()),
        "",
        "## Factorization",
        "",
        f"{len(fact.clusters)} clusters (lines = targets, substations = inputs):",
        "",
        "```",
        *fact.describe(),
        "```",
        "",
    ]
    for name in ("grid_clusters.png", "blocks.png"):
        if (out / "factorize" / name).is_file():
            lines += [f"![{name}](factorize/{name})", ""]
    lines += ["## Learning curves", ""]
    overlaid = out / "evaluate" / "plots" / "learning_curves.png"
    if overlaid.is_file():
        lines += [f"![learning curves]({_rel(out, overlaid)})", ""]
    for kind in ("distributed", "centralized"):
        if (out / kind / "learning_curve.png").is_file():
            lines += [f"![{kind}]({kind}/learning_curve.png)", ""]
    lines += [
        "## Results on held-out scenarios",
        "",
        markdown_table(results).strip(),
        "",
        "![survival per scenario](evaluate/plots/survival_per_scenario.png)",
        "",
        "![survival CDF](evaluate/plots/survival_cdf.png)",
        "",
        "Per-episode results: `evaluate/episodes.csv`.",
        "",
    ]
    text = "\n".join(lines)
    write_text(out / "report.md", text)
    print(console_table(results))
    return text

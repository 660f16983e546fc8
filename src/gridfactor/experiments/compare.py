"""``gridfactor compare``: the whole recipe, end to end, in one resumable run directory.

factorize (zones of the training env from MI) -> demonstrate (the zone expert on the training
chronics) -> for each agent variant, imitation (action sets + cloning) then PPO fine-tuning
with the same demonstrations and budget -> evaluate the variants and the baselines on the
same held-out scenarios -> report.md.

Variants: ``distributed-local`` (one policy per zone, seeing its zone), ``distributed-global``
(one policy per zone, seeing the whole grid) and ``centralized`` (one policy over the same
substations, seeing the whole grid): the seed's partial vs complete observations, and the
distributed vs centralized comparison at equal data and budget.

Run directory::

    config.json  stages.json  report.md
    factorize/     gridfactor factorize run (factorization.json, grid_clusters.png, ...)
    demonstrate/   gridfactor demonstrate run (demonstrations.parquet)
    <variant>/     gridfactor train run per variant
    evaluate/      gridfactor evaluate run (results.md, paired.csv, plots/)

Each sub-run resumes by itself, and ``stages.json`` records the finished stages, so an
interrupted compare re-run with the same command continues where it stopped.

Default env: rte_case14_realistic (14 substations, 20 lines, 2 chronics of 8064 steps; chronic
001 is held out). Do-nothing fails there often (6 of 10 held-out days), so survival separates
the agents.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from gridfactor.agents.baselines import BASELINES
from gridfactor.agents.high_level import DANGER, check_danger, check_reconnect
from gridfactor.envs.chronics import check_augment
from gridfactor.errors import UserError
from gridfactor.evaluate.report import (
    console_table,
    loss_moments,
    markdown_table,
    paired_markdown,
    read_episodes,
)
from gridfactor.evaluate.runner import DEFAULT_ENV, EvalConfig, evaluate
from gridfactor.factorization import Factorization
from gridfactor.parallel import ParallelConfig
from gridfactor.runs import prepare_run_dir, write_json, write_text

VARIANTS = ("distributed-local", "distributed-global", "centralized")
WEEK_STEPS = 2016  # grid2op steps of a week at 5 minutes a step
BASELINE_AGENTS = ("do-nothing", "reconnect", "expert", "expert-zone")


@dataclass(frozen=True)
class Preset:
    """Budgets of one compare run.

    factorize_*: gridfactor factorize settings (episodes per substation, MI samples, steps,
        threshold rule: the zones need only the MI, the threshold rule's clusters are shown
        beside).
    demo_episodes / demo_explore: demonstration episodes (one day each) and the share of
        do-nothing steps in them; label_zones: "all" (every zone labelled at every decision,
        the better data with DAgger rounds) or "capa" (the deciding zone only, the better
        clones without DAgger; docs/results.md).
    timesteps: PPO budget in decisions after imitation, the same for every variant.
    train_*: PPO settings; train_episode_steps: grid2op steps of a training episode.
    eval_*: held-out evaluation episodes and their length (grid2op steps; clipped to the
        held-out window, e.g. the whole 3-day chronic of l2rpn_neurips_2020_track1); guards:
        guard sizes the variants are also evaluated with (0 = pure policy, always included).
    dagger_rounds: DAgger rounds before the variants train: the distributed-local clone of
        the demonstrations so far plays ``demo_episodes`` more episodes and the expert
        labels them; every variant then learns from all of them.
    anchor: KL anchor of PPO to the imitation policies (``gridfactor train --anchor``).
    avoid_game_over: cloning's unlikelihood weight on the actions the expert saw end the
        episode (``gridfactor train --avoid-game-over``).
    ranking: cloning's target, 0 = the expert's choices, T > 0 = its simulated ranking at
        temperature T (``gridfactor train --ranking``).
    reconnect: the high-level rule's reconnection of lines when safe, in the
        demonstrations and the trained agents (always, checked, never).
    augment: the demonstrations, DAgger rounds and PPO play perturbed copies of the
        training chronics (``gridfactor demonstrate --augment``; 0 = as they are).
    danger: the trigger: the expert labels, the agents act and the baselines' experts act
        when some line's rho >= danger (``--danger`` of every command).
    full_action_set: the variants learn every unitary action (``gridfactor train
        --full-action-set``): the pure policy still plays the expert's choices covering 95%,
        a guard ranks them all (the DAgger learners keep the covered set: they play purely).
    variants: which of :data:`VARIANTS` to train.
    peers: public peers evaluated beside the baselines (``expertop``), where they support
        the grid and are installed (``pip install gridfactor[peers]``); skipped otherwise.
    """

    factorize_episodes: int
    factorize_samples: int
    factorize_max_steps: int
    factorize_threshold: str
    demo_episodes: int
    demo_explore: float
    timesteps: int
    train_batch_size: int
    minibatch_size: int
    num_epochs: int
    lr: float
    train_episode_steps: int
    eval_episodes: int
    eval_steps: int
    guards: tuple[int, ...] = (0,)
    dagger_rounds: int = 0
    anchor: float = 0.0
    avoid_game_over: float = 0.0
    ranking: float = 0.0
    full_action_set: bool = False
    reconnect: str = "always"
    label_zones: str = "all"
    augment: float = 0.0
    danger: float = DANGER
    variants: tuple[str, ...] = VARIANTS
    peers: tuple[str, ...] = ()


# One-day episodes, a few minutes: the base of the 36- and 118-bus experiments, whose
# chronics hold only 2-3 days (docs/results.md).
_DAY = Preset(
    factorize_episodes=30,
    factorize_samples=2000,
    factorize_max_steps=30,
    factorize_threshold="quantile",
    demo_episodes=24,
    demo_explore=0.3,
    timesteps=0,
    train_batch_size=500,
    minibatch_size=128,
    num_epochs=3,
    lr=1e-4,
    train_episode_steps=288,
    eval_episodes=10,
    eval_steps=288,
    variants=("distributed-local", "centralized"),
    # no DAgger here: the deciding zone's labels give the better clones
    label_zones="capa",
    peers=("expertop",),
)

PRESETS: dict[str, Preset] = {
    # What CI runs: a few minutes on 2 cores; small budgets, every stage and variant.
    "smoke": Preset(
        factorize_episodes=6,
        factorize_samples=1000,
        factorize_max_steps=30,
        factorize_threshold="quantile",
        demo_episodes=6,
        demo_explore=0.3,
        timesteps=200,
        train_batch_size=100,
        minibatch_size=50,
        num_epochs=2,
        lr=1e-4,
        train_episode_steps=288,
        eval_episodes=4,
        eval_steps=288,
        dagger_rounds=1,
        anchor=1.0,
    ),
    "day": _DAY,
    # `make demo`: the headline in under 10 minutes on 2 cores, over weeks (a day does not
    # separate the strong agents on case14: every one completes it). The paper's recipe
    # (every zone labelled, two DAgger rounds) on the day's small zones, without PPO, which
    # does not add (docs/results.md), every action learned. Acting at rho >= 1, as the
    # public peer does: the zone expert then completes every held-out week (9 of 12 at
    # 0.9), with ~4x fewer decisions a day, hence 3x the episodes.
    "demo": replace(
        _DAY,
        danger=1.0,
        demo_episodes=360,
        eval_episodes=6,
        eval_steps=WEEK_STEPS,
        guards=(0, 3),
        dagger_rounds=2,
        full_action_set=True,
        label_zones="all",
    ),
    # The README's experiment, evaluated on weeks (a day does not separate the strong agents
    # on case14: every one completes it).
    "paper": Preset(
        factorize_episodes=300,
        factorize_samples=20_000,
        factorize_max_steps=50,
        factorize_threshold="significance",
        demo_episodes=120,
        demo_explore=0.3,
        timesteps=20_000,
        train_batch_size=1000,
        minibatch_size=128,
        num_epochs=5,
        lr=5e-5,
        train_episode_steps=288,
        eval_episodes=12,
        eval_steps=WEEK_STEPS,
        guards=(0, 3, 10),
        # two rounds: the clone of the expert's demonstrations alone survives 993 steps a
        # week, after two rounds 1594 (docs/results.md)
        dagger_rounds=2,
        anchor=1.0,
        peers=("expertop",),
    ),
}


@dataclass
class CompareConfig:
    """A compare run: env, preset (with optional budget overrides) and execution."""

    env_name: str = DEFAULT_ENV
    preset: str = "smoke"
    seed: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)
    factorization: str | None = None  # zones to use instead of the factorize stage
    score: str | None = None  # grid2op scorer for the evaluation (see EvalConfig.score)
    # the chronics held out by id (another fold); empty: gridfactor train's default split
    held_out: tuple[int, ...] = ()
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
        budget = replace(PRESETS[self.preset], **self.overrides)
        from gridfactor.demonstrate.demonstrations import check_label_zones

        check_label_zones(budget.label_zones)  # before any stage, not at the demonstrations
        check_reconnect(budget.reconnect)
        check_augment(budget.augment)
        check_danger(budget.danger)
        bad = [v for v in budget.variants if v not in VARIANTS]
        if bad or not budget.variants:
            raise UserError(f"unknown variant {bad}; choose among {', '.join(VARIANTS)}")
        return budget


def _recorded(budget: Preset) -> dict[str, Any]:
    """The budget as config.json records it (without augment when 0 and danger when the
    default: runs made before they existed stay resumable)."""
    data = asdict(budget)
    if not budget.augment:
        data.pop("augment")
    if budget.danger == DANGER:
        data.pop("danger")
    return data


def _load_stages(out: Path) -> dict[str, Any]:
    path = out / "stages.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def compare(config: CompareConfig) -> Path:
    """Run (or resume) the experiment; returns the run directory holding report.md."""
    budget = config.budget()
    from gridfactor.envs.grid2op_env import AGENT_ACTION_TYPES, check_action_support

    # before any directory is created; also checks the name
    check_action_support(config.env_name, AGENT_ACTION_TYPES["trained"], "gridfactor compare")
    given_zones = _check_given_inputs(config)
    run_config = {
        "command": "compare",
        "env_name": config.env_name,
        "preset": config.preset,
        "budget": _recorded(budget),
        "seed": config.seed,
        "factorization": config.factorization,
        "score": config.score,
    }
    if config.held_out:  # recorded only when set: runs made before it stay resumable
        run_config["held_out"] = list(config.held_out)
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

    if given_zones is None:
        stage("factorize", lambda: _factorize(config, budget, out / "factorize"))
    else:  # the user's zones, copied so that the run directory stays self-contained
        stage("factorize", lambda: given_zones.save(out / "factorize" / "factorization.json"))
    fact_path = out / "factorize" / "factorization.json"
    stage("demonstrate", lambda: _demonstrate(config, budget, out / "demonstrate", fact_path))
    demos = [out / "demonstrate"]
    for r in range(1, budget.dagger_rounds + 1):
        learner, seen = out / f"dagger{r}-policy", tuple(demos)
        stage(
            learner.name,
            lambda d=learner, s=seen: _train(
                config,
                replace(budget, timesteps=0, full_action_set=False),
                d,
                "distributed-local",
                fact_path,
                s,
            ),
        )
        stage(
            f"dagger{r}",
            lambda r=r, p=learner: _demonstrate(
                config, budget, out / f"dagger{r}", fact_path, policy=p, round_=r
            ),
        )
        demos.append(out / f"dagger{r}")
    for variant in budget.variants:
        stage(
            variant,
            lambda v=variant: _train(config, budget, out / v, v, fact_path, tuple(demos)),
        )
    eval_config = EvalConfig(
        env_name=config.env_name,
        agents=BASELINE_AGENTS + available_peers(budget.peers, config.env_name),
        runs=tuple(str(out / v) for v in budget.variants),
        n_episodes=budget.eval_episodes,
        episode_steps=budget.eval_steps,
        seed=config.seed,
        factorization=str(fact_path),
        danger=budget.danger,
        # with PPO, each variant also at its imitation checkpoint: what PPO added, paired
        checkpoints=(None, "imitation") if budget.timesteps > 0 else (None,),
        guards=tuple(dict.fromkeys((0, *budget.guards))),
        score=config.score,
        out=str(out / "evaluate"),
        parallel=config.parallel,
        resume=True,
        progress=config.progress,
    )
    stage("evaluate", lambda: evaluate(eval_config))
    write_report(out, config, budget, stages)
    return out


def available_peers(peers: tuple[str, ...], env_name: str) -> tuple[str, ...]:
    """The ``peers`` that support ``env_name`` and are installed (a note for the others)."""
    from gridfactor.agents.external import check_expertop

    kept = []
    for peer in peers:
        try:
            check_expertop(env_name)
        except UserError as exc:
            print(f"[compare] {peer} skipped: {exc}", flush=True)
            continue
        kept.append(peer)
    return tuple(kept)


def _check_given_inputs(config: CompareConfig) -> Factorization | None:
    """Fail before the first stage, not after an hour: the given zones, the scorer and the
    held-out chronics must fit the env. Returns the given factorization (None: factorize)."""
    if config.factorization is None and config.score is None and not config.held_out:
        return None
    from gridfactor.agents.cluster import check_factorization_for_env
    from gridfactor.envs.grid2op_env import make_env
    from gridfactor.envs.split import count_chronics, make_split
    from gridfactor.evaluate.scenarios import VALIDATION_FRACTION

    env = make_env(config.env_name)
    try:
        make_split(count_chronics(env), VALIDATION_FRACTION, config.held_out)
        if config.score is not None:
            from gridfactor.evaluate.scores import check_scorer

            check_scorer(config.score, env, config.env_name)
        if config.factorization is None:
            return None
        fact = Factorization.load(config.factorization)
        check_factorization_for_env(fact, env, config.env_name)
        fact.meta["copied_from"] = str(Path(config.factorization).resolve())
        return fact
    finally:
        env.close()


def _factorize(config: CompareConfig, budget: Preset, out: Path) -> None:
    from gridfactor.grid.pipeline import GridFactorizeConfig, factorize_grid

    fconfig = GridFactorizeConfig(
        env_name=config.env_name,
        n_episodes=budget.factorize_episodes,
        n_samples=budget.factorize_samples,
        max_steps=budget.factorize_max_steps,
        threshold=budget.factorize_threshold,
        seed=config.seed,
    )
    factorize_grid(fconfig, out, parallel=config.parallel, resume=True, progress=config.progress)


def _demonstrate(
    config: CompareConfig,
    budget: Preset,
    out: Path,
    fact: Path,
    *,
    policy: Path | None = None,
    round_: int = 0,
) -> None:
    """The expert's demonstrations; with ``policy``, DAgger round ``round_`` (its own
    episodes: seed + round)."""
    from gridfactor.demonstrate.demonstrations import DemonstrateConfig, demonstrate

    demonstrate(
        DemonstrateConfig(
            env_name=config.env_name,
            factorization=Factorization.load(fact).to_dict(),
            n_episodes=budget.demo_episodes,
            episode_steps=budget.train_episode_steps,
            explore=budget.demo_explore,
            label_zones=budget.label_zones,
            reconnect=budget.reconnect,
            seed=config.seed + round_,
            policy=str(policy) if policy else None,
            augment=budget.augment,
            danger=budget.danger,
            held_out=config.held_out,
        ),
        out,
        parallel=config.parallel,
        resume=True,
        progress=config.progress,
    )


def _train(
    config: CompareConfig,
    budget: Preset,
    out: Path,
    variant: str,
    fact: Path,
    demos: tuple[Path, ...],
) -> None:
    from gridfactor.train.run import TrainConfig, train

    train(
        TrainConfig(
            env_name=config.env_name,
            factorization_path=str(fact),
            centralized=variant == "centralized",
            obs_mode="local" if variant == "distributed-local" else "global",
            demonstrations=tuple(str(d) for d in demos),
            anchor=budget.anchor if budget.timesteps > 0 else 0.0,
            avoid_game_over=budget.avoid_game_over,
            ranking=budget.ranking,
            full_action_set=budget.full_action_set,
            reconnect=budget.reconnect,
            augment=budget.augment,
            danger=budget.danger,
            held_out=config.held_out,
            timesteps=budget.timesteps,
            seed=config.seed,
            episode_steps=budget.train_episode_steps,
            train_batch_size=budget.train_batch_size,
            minibatch_size=budget.minibatch_size,
            num_epochs=budget.num_epochs,
            lr=budget.lr,
            ray_address=config.parallel.ray_address,
            out=str(out),
            resume=True,
        )
    )


def _rel(out: Path, path: Path) -> str:
    return str(path.relative_to(out))


def write_report(out: Path, config: CompareConfig, budget: Preset, stages: dict) -> str:
    """report.md: setup, factorization picture, learning curves, results table."""

    fact = Factorization.load(out / "factorize" / "factorization.json")
    results = pd.read_csv(out / "evaluate" / "results.csv")
    paired = pd.read_csv(out / "evaluate" / "paired.csv")
    demo_info = json.loads((out / "demonstrate" / "demonstrations.json").read_text())
    lines = [
        f"# gridfactor compare: distributed vs centralized on {config.env_name}",
        "",
        f"Preset `{config.preset}`, seed {config.seed}. Budgets: "
        + (
            f"zones given (`--factorization {config.factorization}`)"
            if config.factorization
            else f"factorization {budget.factorize_episodes} episodes / "
            f"{budget.factorize_samples} samples per substation"
        )
        + f"; {demo_info['n_decisions']} expert decisions in "
        f"{demo_info['n_episodes']} demonstration episodes of the training chronics"
        + (f" (perturbed copies, `--augment {budget.augment}`)" if budget.augment else "")
        + (f", acting at rho >= {budget.danger}" if budget.danger != DANGER else "")
        + (
            f", then {budget.dagger_rounds} DAgger round(s) of {budget.demo_episodes} episodes "
            "(the distributed-local clone plays, the expert labels)"
            if budget.dagger_rounds
            else ""
        )
        + (
            f"; imitation then PPO for {budget.timesteps} decisions per variant (batch "
            f"{budget.train_batch_size})"
            if budget.timesteps > 0
            else "; imitation only (no PPO)"
        )
        + f"; evaluation {budget.eval_episodes} held-out episodes of "
        f"{budget.eval_steps} steps, the same scenarios for every agent.",
        "",
        "Stage times (s, this machine): "
        + ", ".join(f"{k} {v.get('seconds', '?')}" for k, v in stages.items()),
        "",
        "## Factorization",
        "",
        f"{len(fact.clusters)} zones (lines = targets, substations = inputs):",
        "",
        "```",
        *fact.describe(),
        "```",
        "",
    ]
    for name in ("grid_clusters.png", "blocks.png"):
        if (out / "factorize" / name).is_file():
            lines += [f"![{name}](factorize/{name})", ""]
    lines += ["## Imitation (agreement with the expert on held-out demonstrations)", ""]
    lines += [
        "| variant | agent | decisions | actions | top-1 | top-5 |",
        "|---|---|---|---|---|---|",
    ]
    for variant in budget.variants:
        path = out / variant / "imitation.json"
        if path.is_file():
            for r in json.loads(path.read_text())["agents"]:
                lines.append(
                    f"| {variant} | {r['agent']} | {r['n_train']} | {r['n_actions']} | "
                    f"{r['top1']:.2f} | {r['top5']:.2f} |"
                )
    lines += ["", "## Learning curves", ""]
    overlaid = out / "evaluate" / "plots" / "learning_curves.png"
    if overlaid.is_file():
        lines += [f"![learning curves]({_rel(out, overlaid)})", ""]
    for kind in budget.variants:
        if (out / kind / "learning_curve.png").is_file():
            lines += [f"![{kind}]({kind}/learning_curve.png)", ""]
    lines += [
        "## Results on held-out scenarios",
        "",
        markdown_table(results).strip(),
        "",
        "Paired differences (same scenarios):",
        "",
        paired_markdown(paired).strip(),
        "",
        "![survival per scenario](evaluate/plots/survival_per_scenario.png)",
        "",
        "![survival CDF](evaluate/plots/survival_cdf.png)",
        "",
        "Per-episode results: `evaluate/episodes.csv`.",
        "",
    ]
    heads = headline(results) + saturation(results) + loss_moments(read_episodes(out / "evaluate"))
    lines[2:2] = [*heads, ""] if heads else []
    text = "\n".join(lines)
    write_text(out / "report.md", text)
    print("zones:")
    for line in fact.describe():
        if "<- inputs []" not in line:
            print(f"  {line.replace('cluster', 'zone', 1)}")
    print(console_table(results))
    for line in heads:
        print(line)
    return text


def saturation(results: pd.DataFrame) -> list[str]:
    """How many held-out episodes each agent completed, and a warning when several agents
    complete all of them (the table cannot rank those: evaluate longer episodes)."""
    rows = results.set_index("agent")
    counts = ", ".join(
        f"{agent} {int(r['completed'])}/{int(r['episodes'])}" for agent, r in rows.iterrows()
    )
    lines = [f"completed held-out episodes: {counts}"]
    full = [a for a, r in rows.iterrows() if int(r["completed"]) == int(r["episodes"])]
    if len(full) > 1:
        # a completed agent's mean steps is the episode length
        weeks = float(rows.loc[full[0], "survived_mean"]) >= WEEK_STEPS
        hint = (
            "more held-out episodes or longer ones (gridfactor evaluate --n-episodes 12, "
            "--episode-steps up to the held-out chronic's length)"
            if weeks
            else f"longer episodes (gridfactor evaluate --episode-steps {WEEK_STEPS}, a week)"
        )
        lines.append(
            f"saturated: {', '.join(full)} complete every held-out episode, so survival "
            f"does not rank them; evaluate {hint}"
        )
    return lines


def headline(results: pd.DataFrame) -> list[str]:
    """One line per learned agent: its mean steps survived as a share of the best expert's
    (the experts and the public peers), the share of the do-nothing -> best expert gap it
    closes, and its speed-up per decision over the full expert."""
    rows = results.set_index("agent")
    experts = [a for a in rows.index if a in BASELINES and a.startswith("expert")]
    if "do-nothing" not in rows.index or not experts:
        return []
    best = max(experts, key=lambda a: rows.loc[a, "survived_mean"])
    floor, top = rows.loc["do-nothing", "survived_mean"], rows.loc[best, "survived_mean"]
    lines = []
    for agent in rows.index:
        if agent in BASELINES:  # the baselines and peers: not learned
            continue
        steps = rows.loc[agent, "survived_mean"]
        gap = (steps - floor) / (top - floor) if top > floor else 1.0
        line = (
            f"{agent}: {100 * steps / top:.0f}% of the best expert's mean steps survived "
            f"({steps:.1f} vs {best} {top:.1f}; do-nothing {floor:.1f}: {100 * gap:.0f}% of "
            "the gap closed)"
        )
        if "expert" in rows.index:
            speed = rows.loc["expert", "decision_ms"] / rows.loc[agent, "decision_ms"]
            line += f", {speed:.0f}x faster per decision than the expert"
        lines.append(line)
    return lines

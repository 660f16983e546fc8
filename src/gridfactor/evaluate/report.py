"""Results table (CSV, Markdown, console) and plots of an evaluation run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gridfactor.runs import save_figure, write_csv, write_text

# (column, header, format) of the results table, in order
TABLE_COLUMNS = [
    ("agent", "agent", "{}"),
    ("episodes", "episodes", "{:d}"),
    ("completed", "completed", "{:d}"),
    ("survived_mean", "steps survived (mean)", "{:.1f}"),
    ("survived_ci", "95% CI", "{}"),
    ("survival_frac", "survival (frac of length)", "{:.3f}"),
    ("safe_frac", "safe steps (frac)", "{:.3f}"),
    ("overloads_mean", "overload steps/ep", "{:.1f}"),
    ("actions_mean", "actions/ep", "{:.1f}"),
    ("illegal_mean", "illegal/ep", "{:.1f}"),  # refused by grid2op (played as do nothing)
    ("distinct_actions", "distinct actions", "{:.0f}"),  # over all its episodes
    ("off_reference_frac", "off reference topology (frac)", "{:.3f}"),
    ("errors", "agent errors", "{:.0f}"),  # episodes ended by the agent's failure (if any)
    ("decisions_mean", "decisions/ep", "{:.1f}"),
    ("decision_ms", "ms per decision", "{:.2f}"),
    ("step_ms", "ms per step", "{:.2f}"),
    ("score", "L2RPN score", "{:.1f}"),  # only with --score
]
# bootstrap resamples of the confidence intervals (seeded: same table for the same episodes)
N_BOOTSTRAP = 2000


def bootstrap_ci(values: np.ndarray, *, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (n,)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (N_BOOTSTRAP, values.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def _mean_ms(group: pd.DataFrame, column: str, weights: str | None = None) -> float:
    """Mean of a per-episode ms column, weighted by ``weights`` (e.g. decisions)."""
    if column not in group:
        return float("nan")
    values = group[column].to_numpy(float)
    if weights is None or weights not in group:
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    w = group[weights].to_numpy(float)
    keep = np.isfinite(values) & (w > 0)
    return float(np.average(values[keep], weights=w[keep])) if keep.any() else float("nan")


def summarize(episodes: pd.DataFrame) -> pd.DataFrame:
    """One row per agent (in first-appearance order) from the per-episode results.

    safe_frac = safe steps / steps of the episode length (a failed episode's lost steps
    count as unsafe); survived_ci = 95% bootstrap interval of the mean steps survived;
    decision_ms = mean wall time of ``act`` on the steps where a decision was due (some
    line at rho >= danger), over all such steps; step_ms = over every step;
    distinct_actions = different actions played over all its episodes (a controller and
    "one lucky switch" differ here); off_reference_frac = share of the survived steps with
    some element on busbar 2; errors = episodes ended by the agent's own failure.
    """
    rows = []
    for agent, group in episodes.groupby("agent", sort=False):
        lo, hi = bootstrap_ci(group["survived"].to_numpy())
        rows.append(
            {
                "agent": agent,
                "episodes": len(group),
                "completed": int(group["completed"].sum()),
                "survived_mean": float(group["survived"].mean()),
                "survived_ci": f"[{lo:.1f}, {hi:.1f}]",
                "survival_frac": float(group["survival_frac"].mean()),
                "safe_frac": float(group["safe_steps"].sum() / group["length"].sum()),
                "overloads_mean": float(group["overload_steps"].mean()),
                "actions_mean": float(group["actions"].mean()),
                "illegal_mean": float(group["illegal"].mean())
                if "illegal" in group  # (episodes saved by older releases lack it)
                else float("nan"),
                "decisions_mean": float(group["decisions"].mean())
                if "decisions" in group
                else float("nan"),
                "decision_ms": _mean_ms(group, "decision_ms", "decisions"),
                "step_ms": _mean_ms(group, "step_ms"),
            }
        )
        if "action_keys" in group:  # (episodes saved by older releases lack these)
            keys = set().union(*(set(k) for k in group["action_keys"] if isinstance(k, list)))
            rows[-1]["distinct_actions"] = len(keys)
            rows[-1]["off_reference_frac"] = float(
                group["off_reference_steps"].sum() / max(group["survived"].sum(), 1)
            )
        if "error" in group:
            rows[-1]["errors"] = int(group["error"].notna().sum())
        if "score" in group:  # grid2op's scorer: the competitions rank by the mean
            rows[-1]["score"] = float(group["score"].mean())
    columns = [c for c, _, _ in TABLE_COLUMNS if any(c in row for row in rows)]
    if not any(row.get("errors") for row in rows):
        columns = [c for c in columns if c != "errors"]  # shown only when an agent failed
    return pd.DataFrame(rows, columns=columns)


# agents every other agent is compared with, episode by episode, when present (the
# baselines, the experts and the public peer)
REFERENCES = ("do-nothing", "reconnect", "expert", "expert-zone", "expertop")


def centralized_counterpart(agent: str) -> str | None:
    """The centralized agent a distributed one is compared with: the same guard, wait and
    checkpoint suffix (``distributed-local+guard3`` -> ``centralized+guard3``)."""
    for variant in ("distributed-local", "distributed-global"):
        if agent.startswith(variant):
            return "centralized" + agent[len(variant) :]
    return None


def paired_differences(episodes: pd.DataFrame) -> pd.DataFrame:
    """Per (agent, reference): mean paired difference of steps survived on the same
    scenarios, its 95% bootstrap interval, and the survival ratio agent / reference. The
    references: the baselines of :data:`REFERENCES`; for a distributed agent, the centralized
    one with the same settings (:func:`centralized_counterpart`); for a trained agent
    evaluated at other checkpoints too (``"<agent> [imitation]"``), the agent at each of
    them."""
    rows = []
    wide = episodes.pivot_table(index="episode", columns="agent", values="survived")
    agents = list(dict.fromkeys(episodes["agent"]))
    for agent in agents:
        other_checkpoints = [a for a in agents if a.startswith(f"{agent} [")]
        centralized = centralized_counterpart(agent)
        for ref in (*REFERENCES, *([centralized] if centralized else []), *other_checkpoints):
            if ref == agent or ref not in wide.columns:
                continue
            both = wide[[agent, ref]].dropna()
            diff = (both[agent] - both[ref]).to_numpy(float)
            lo, hi = bootstrap_ci(diff)
            rows.append(
                {
                    "agent": agent,
                    "reference": ref,
                    "episodes": len(both),
                    "mean_difference": float(diff.mean()),
                    "ci_low": lo,
                    "ci_high": hi,
                    "survival_ratio": float(both[agent].sum() / max(both[ref].sum(), 1e-12)),
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "agent",
            "reference",
            "episodes",
            "mean_difference",
            "ci_low",
            "ci_high",
            "survival_ratio",
        ],
    )


def paired_markdown(table: pd.DataFrame) -> str:
    lines = [
        "| agent | vs | paired difference in steps survived (mean) | 95% CI | survival ratio |",
        "|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        lines.append(
            f"| {r['agent']} | {r['reference']} | {r['mean_difference']:+.1f} | "
            f"[{r['ci_low']:+.1f}, {r['ci_high']:+.1f}] | {r['survival_ratio']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def _cells(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    columns = [(c, h, f) for c, h, f in TABLE_COLUMNS if c in table.columns]
    headers = [h for _, h, _ in columns]
    rows = [[fmt.format(row[col]) for col, _, fmt in columns] for _, row in table.iterrows()]
    return headers, rows


def score_note(episodes: pd.DataFrame) -> str:
    """One line saying which grid2op scorer gave the L2RPN score column ('' if none)."""
    if "scorer" not in episodes or episodes["scorer"].dropna().empty:
        return ""
    from gridfactor.evaluate.scores import SCORERS

    info = SCORERS[str(episodes["scorer"].dropna().iloc[0])]
    return (
        f"L2RPN score: grid2op.utils.{info.cls} ({info.competition}), mean over the same "
        "held-out scenarios; 0 = do nothing, 100 = the scorer's best, -100 = the worst.\n"
    )


def markdown_table(table: pd.DataFrame) -> str:
    headers, rows = _cells(table)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def console_table(table: pd.DataFrame) -> str:
    headers, rows = _cells(table)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*headers), *(fmt.format(*r) for r in rows)])


# --------------------------------------------------------------------------------------------
# plots


def plot_survival_per_scenario(episodes: pd.DataFrame) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agents = list(dict.fromkeys(episodes["agent"]))
    n_ep = int(episodes["episode"].max()) + 1
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * n_ep * max(1, len(agents)) / 2), 3.5))
    width = 0.8 / len(agents)
    for k, agent in enumerate(agents):
        group = episodes[episodes["agent"] == agent]
        ax.bar(
            group["episode"] + (k - (len(agents) - 1) / 2) * width,
            group["survival_frac"],
            width,
            label=agent,
        )
    ax.set_xlabel("scenario (episode)")
    ax.set_ylabel("survived fraction of episode")
    ax.set_ylim(0, 1.05)
    ax.set_xticks(range(n_ep))
    ax.legend(
        fontsize="small",
        ncol=min(len(agents), 4),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.18),
    )
    ax.set_title("Survival per held-out scenario")
    return fig


def plot_survival_cdf(episodes: pd.DataFrame) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for agent in dict.fromkeys(episodes["agent"]):
        values = np.sort(episodes.loc[episodes["agent"] == agent, "survival_frac"].to_numpy())
        y = np.arange(1, len(values) + 1) / len(values)
        ax.step(
            np.concatenate([[0.0], values, [1.0]]),
            np.concatenate([[0.0], y, [1.0]]),
            where="post",
            label=agent,
        )
    ax.set_xlabel("survived fraction of episode")
    ax.set_ylabel("fraction of episodes (CDF)")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize="small")
    ax.set_title("Survival CDF (lower-right is better)")
    return fig


# metrics CSV of a training run, and candidate (x, y) columns in order of preference
# (gridfactor train writes metrics.csv; the budget counts decisions)
METRICS_FILES = ("metrics.csv",)
X_COLUMNS = ("decisions_total", "grid2op_steps_total", "iteration")
Y_COLUMNS = ("survival_steps_mean", "grid2op_return_mean")


def learning_curve(run_dir: str | Path) -> pd.DataFrame | None:
    """Frame with x, y, x_label, y_label from a training run's per-iteration metrics CSV,
    or None when the run has no such file or known columns."""
    run_dir = Path(run_dir)
    for name in METRICS_FILES:
        path = run_dir / name
        if path.is_file():
            frame = pd.read_csv(path)
            break
    else:
        return None
    x_col = next((c for c in X_COLUMNS if c in frame.columns), None)
    y_col = next((c for c in Y_COLUMNS if c in frame.columns), None)
    if x_col is None or y_col is None:
        return None
    curve = frame[[x_col, y_col]].dropna()
    return pd.DataFrame({"x": curve[x_col], "y": curve[y_col], "x_label": x_col, "y_label": y_col})


def plot_learning_curves(curves: dict[str, pd.DataFrame]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for label, frame in curves.items():
        ax.plot(frame["x"], frame["y"], marker=".", label=label)
    first = next(iter(curves.values()))
    ax.set_xlabel(str(first["x_label"].iloc[0]))
    ax.set_ylabel(str(first["y_label"].iloc[0]))
    ax.legend(fontsize="small")
    ax.set_title("Learning curves")
    return fig


def read_episodes(run_dir: str | Path) -> pd.DataFrame:
    """An evaluation's ``episodes.csv`` (chronic names stay strings: '001')."""
    return pd.read_csv(Path(run_dir) / "episodes.csv", dtype={"chronic_name": str})


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


# Lost episodes whose game overs are at most this many grid steps apart (an hour of 5-minute
# steps) in the same chronic are lost at one moment of it.
MOMENT_STEPS = 12


def loss_moments(episodes: pd.DataFrame) -> list[str]:
    """Notes for held-out episodes that overlap (several episodes drawn in one chronic share
    its steps): how often each step is played, and per agent how many moments of the
    chronics its lost episodes end at. Six weeks lost at one moment are one event, which
    the table's interval (episodes taken as independent) does not say. Empty when the
    episodes do not overlap.

    ``episodes``: one row per (agent, episode) with chronic_name, start, length, survived,
    completed (``episodes.csv``).
    """
    scenarios = episodes.drop_duplicates("episode")
    played, distinct = 0, 0
    for _, group in scenarios.groupby("chronic_name"):
        steps = np.concatenate(
            [np.arange(s, s + n) for s, n in zip(group["start"], group["length"], strict=True)]
        )
        played += steps.size
        distinct += np.unique(steps).size
    if played == distinct:
        return []
    lines = [
        f"overlapping held-out episodes: {len(scenarios)} episodes play {distinct} distinct "
        f"steps of {_count(scenarios['chronic_name'].nunique(), 'chronic')}, each "
        f"{played / distinct:.1f} times on average"
    ]
    lost = episodes[~episodes["completed"].astype(bool)]
    parts = []
    for agent, group in lost.groupby("agent", sort=False):
        moments: list[tuple[str, int, int, int]] = []  # (chronic, first, last, episodes)
        for chronic, rows in group.groupby("chronic_name"):
            for end in np.sort((rows["start"] + rows["survived"]).to_numpy()):
                if moments and moments[-1][0] == chronic and end - moments[-1][2] <= MOMENT_STEPS:
                    first, _, count = moments[-1][1:]
                    moments[-1] = (chronic, first, int(end), count + 1)
                else:
                    moments.append((chronic, int(end), int(end), 1))
        if len(moments) < len(group):
            shared = "; ".join(
                f"{n} at {c} step {a}" + (f"-{b}" if b > a else "")
                for c, a, b, n in moments
                if n > 1
            )
            parts.append(
                f"{agent} {len(group)} lost at {_count(len(moments), 'moment')} ({shared})"
            )
    if parts:
        lines.append(
            "episodes lost at the same moment of a chronic (one event, not independent "
            "losses): " + ", ".join(parts)
        )
    return lines


def write_reports(
    out: Path, episodes: pd.DataFrame, run_configs: list[dict[str, Any]], labels=None
) -> pd.DataFrame:
    """Write episodes.csv, results.csv/.md and the plots; returns the results table."""
    # the per-episode action keys stay in episodes/*.json (their count is a column)
    write_csv(out / "episodes.csv", episodes.drop(columns=["action_keys"], errors="ignore"))
    table = summarize(episodes) if not episodes.empty else pd.DataFrame()
    write_csv(out / "results.csv", table)
    if not table.empty:
        paired = paired_differences(episodes)
        write_csv(out / "paired.csv", paired)
        note = score_note(episodes)
        moments = "".join(f"\n{line}\n" for line in loss_moments(episodes))
        write_text(
            out / "results.md",
            markdown_table(table)
            + (f"\n{note}" if note else "")
            + moments
            + "\n"
            + paired_markdown(paired),
        )
        save_figure(
            plot_survival_per_scenario(episodes), out / "plots" / "survival_per_scenario.png"
        )
        save_figure(plot_survival_cdf(episodes), out / "plots" / "survival_cdf.png")
    curves = {}
    for run in run_configs:
        curve = learning_curve(run["dir"])
        if curve is not None and not curve.empty:
            curves[str(run.get("label", Path(run["dir"]).name))] = curve
    if curves:
        save_figure(plot_learning_curves(curves), out / "plots" / "learning_curves.png")
    return table

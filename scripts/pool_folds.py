"""Pool held-out evaluations of several folds into one table, paired per episode.

Usage: python scripts/pool_folds.py --fold EVAL[,EVAL...] --fold EVAL[,EVAL...]
       [--reference expert-zone] [--mean "NAME=REGEX" ...]

A fold is one held-out split (e.g. chronic 1 held out, then chronic 0 held out with
``--held-out 0``); its ``gridfactor evaluate`` run directories, comma-separated, must have
played the same scenarios (their ``scenarios.csv`` are compared), so an agent evaluated in
one of them pairs with an agent of another; a name already taken by an earlier evaluation of
the fold becomes NAME@<its directory name>. The agents found in every fold are pooled: per
agent the episodes completed, the mean steps survived with its bootstrap interval, the mean
per fold, the share of the reference's mean and the paired difference against the
reference (episode by episode, 95% bootstrap interval over the pooled episodes).

``--mean "NAME=REGEX"`` adds a row NAME: per episode, the mean of the agents whose name
matches REGEX (e.g. the clones of ten training seeds); its "completed" counts the episodes
that every one of them completes. Episodes of one fold overlap when the chronic is shorter
than their total length (``evaluate`` says how much): the intervals take them as
independent.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from gridfactor.evaluate.report import bootstrap_ci, read_episodes


def read_fold(paths: list[Path]) -> pd.DataFrame:
    """One fold's evaluations as one frame (rows: agent, episode); checks the scenarios."""
    scenarios = None
    frames = []
    for path in paths:
        these = pd.read_csv(path / "scenarios.csv")
        if scenarios is not None and not these.equals(scenarios):
            sys.exit(
                f"error: {path} played other scenarios than {paths[0]}; evaluate both "
                "with the same --seed, --n-episodes, --episode-steps and held-out chronics"
            )
        scenarios = these
        frame = read_episodes(path)
        seen = {a for f in frames for a in f["agent"]}
        # an agent an earlier evaluation of the fold has already: labelled by this one's name
        frame["agent"] = [f"{a}@{path.name}" if a in seen else a for a in frame["agent"]]
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    return frame.pivot_table(index="episode", columns="agent", values="survived")


def add_means(wide: pd.DataFrame, means: list[tuple[str, str]], fold: int) -> pd.DataFrame:
    for name, pattern in means:
        members = [a for a in wide.columns if re.fullmatch(pattern, a)]
        if not members:
            sys.exit(f"error: --mean {name}={pattern} matches no agent of fold {fold}")
        wide[f"{name} (mean of {len(members)})"] = wide[members].mean(axis=1)
    return wide


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fold", action="append", required=True, help="EVAL[,EVAL...]")
    parser.add_argument("--reference", default="expert-zone")
    parser.add_argument("--mean", action="append", default=[], help="NAME=REGEX")
    parser.add_argument("--length", type=int, default=2016, help="steps of a whole episode")
    args = parser.parse_args()
    means = [tuple(m.split("=", 1)) for m in args.mean]
    if any(len(m) != 2 for m in means):
        sys.exit('error: --mean takes NAME=REGEX, e.g. "ten seeds=distributed-local.*"')
    folds = [
        add_means(read_fold([Path(p) for p in fold.split(",")]), means, k)
        for k, fold in enumerate(args.fold)
    ]
    agents = [a for a in folds[0].columns if all(a in f.columns for f in folds)]
    missing = sorted({a for f in folds for a in f.columns} - set(agents))
    if args.reference not in agents:
        sys.exit(f"error: the reference {args.reference!r} is not evaluated in every fold")
    pooled = pd.concat([f[agents] for f in folds], keys=range(len(folds)), names=["fold"])
    ref = pooled[args.reference].to_numpy(float)
    print(
        f"{len(folds)} folds, {len(pooled)} episodes "
        f"({', '.join(str(len(f)) for f in folds)}); reference: {args.reference}"
    )
    if missing:
        print(f"not in every fold, left out: {', '.join(missing)}")
    print()
    print(
        "| agent | completed | mean steps [95% CI] | per fold | of the reference "
        f"| vs {args.reference} (paired, 95% CI) |"
    )
    print("|---|---|---|---|---|---|")
    for agent in sorted(agents, key=lambda a: -pooled[a].mean()):
        values = pooled[agent].to_numpy(float)
        lo, hi = bootstrap_ci(values)
        diff = values - ref
        dlo, dhi = bootstrap_ci(diff)
        completed = int(np.sum(values >= args.length))
        per_fold = " / ".join(f"{f[agent].mean():.1f}" for f in folds)
        print(
            f"| {agent} | {completed}/{len(values)} | {values.mean():.1f} [{lo:.1f}, {hi:.1f}] "
            f"| {per_fold} | {100 * values.mean() / ref.mean():.0f}% "
            f"| {diff.mean():+.1f} [{dlo:+.1f}, {dhi:+.1f}] |"
        )


if __name__ == "__main__":
    main()

"""Grid factorization end to end through the CLI, MI matrix shape, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gridfactor.cli.main import _register_commands, app
from gridfactor.factorize.structure import Factorization

warnings.filterwarnings("ignore")
_register_commands()
GRIDFACTOR = Path(sys.executable).parent / "gridfactor"


def _factorize(env: str, out: Path, *extra: str):
    result = CliRunner().invoke(
        app,
        [
            "factorize",
            "--env",
            env,
            "--n-episodes",
            "4",
            "--max-steps",
            "10",
            "--n-samples",
            "60",
            "--seed",
            "3",
            "--workers",
            "1",
            "--out",
            str(out),
            *extra,
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize(
    "env, n_line, n_sub", [("l2rpn_case14_sandbox", 20, 14), ("rte_case5_example", 8, 5)]
)
def test_factorize_cli_end_to_end(tmp_path, env, n_line, n_sub):
    out = tmp_path / env
    result = _factorize(env, out)
    assert "clusters (lines <- substations" in result.output
    assert "quantile 0.7:" in result.output  # the seed's rule, side by side
    for name in ("mi.npy", "shuffled_mi.npy", "unbiased_mi.npy"):
        matrix = np.load(out / name)
        assert matrix.shape == (n_line, n_sub)
        assert np.isfinite(matrix).all()
    mi, shuffled, unbiased = (
        np.load(out / n) for n in ("mi.npy", "shuffled_mi.npy", "unbiased_mi.npy")
    )
    np.testing.assert_allclose(unbiased, mi - shuffled, atol=1e-12)
    fact = Factorization.load(out / "factorization.json")
    sidecar = json.loads((out / "dataset.json").read_text())
    selected = sidecar["selected_substations"]
    # unselected substations: zero columns, alone in their cluster
    unselected = [s for s in range(n_sub) if s not in selected]
    assert (mi[:, unselected] == 0).all()
    labels = fact.input_labels()
    for s in unselected:
        assert fact.clusters[labels[s]].inputs == (s,)
        assert not fact.clusters[labels[s]].targets
    assert fact.target_names == sidecar["line_names"]
    assert fact.input_names == sidecar["sub_names"]
    assert fact.meta["env_name"] == env and fact.meta["threshold"] == "significance"
    seed_rule = Factorization.load(out / "factorization_quantile.json")
    assert seed_rule.meta["quantile"] == 0.7 and seed_rule.input_names == fact.input_names
    # every line and every substation is in exactly one cluster
    assert (fact.target_labels() >= 0).all() and (labels >= 0).all()
    for png in ("mi_heatmap.png", "binarized.png", "blocks.png", "grid_clusters.png"):
        assert (out / png).stat().st_size > 1000
    # same command again: reuses everything, same result
    again = _factorize(env, out)

    def clusters(output: str) -> list[str]:
        return [line for line in output.splitlines() if line.startswith("  cluster ")]

    assert clusters(result.output) and clusters(again.output) == clusters(result.output)


def test_substation_with_too_few_rows_gets_no_edges_not_a_crash(tmp_path):
    """Two 10-step episodes per substation: sub_5's and sub_12's actions end their episodes
    at once, leaving fewer than MIN_ROWS_PER_SUBSTATION usable rows. They get zero MI and
    no edges (the run used to stop on "too few rows for k" on 118 buses), with a warning."""
    from gridfactor.grid.pipeline import MIN_ROWS_PER_SUBSTATION

    out = tmp_path / "few"
    args = ["factorize", "--n-episodes", "2", "--max-steps", "10", "--seed", "0"]
    args += ["--n-samples", "200", "--workers", "1", "--out", str(out)]
    proc = subprocess.run([str(GRIDFACTOR), *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    fact = Factorization.load(out / "factorization.json")
    samples = {int(s): n for s, n in fact.meta["samples_per_substation"].items()}
    unmeasured = fact.meta["unmeasured_substations"]
    assert unmeasured == sorted(s for s, n in samples.items() if n < MIN_ROWS_PER_SUBSTATION)
    assert unmeasured and len(unmeasured) < len(samples)  # the case this test is about
    assert "warning: no MI for " + ", ".join(f"sub_{s}" for s in unmeasured) in proc.stderr
    mi = np.load(out / "mi.npy")
    assert (mi[:, unmeasured] == 0).all()
    measured = [s for s in samples if s not in unmeasured]
    assert (mi[:, measured] != 0).any(axis=0).all()
    labels = fact.input_labels()
    for s in unmeasured:
        assert not fact.clusters[labels[s]].targets
    # a re-run reuses the saved columns (including the unmeasured flag): same bytes
    before = (out / "factorization.json").read_bytes()
    rerun = subprocess.run([str(GRIDFACTOR), *args], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0 and (out / "factorization.json").read_bytes() == before


def test_unknown_env_is_one_line_exit_2(tmp_path):
    proc = subprocess.run(
        [str(GRIDFACTOR), "factorize", "--env", "no_such_env", "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: unknown or not-on-disk environment")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()

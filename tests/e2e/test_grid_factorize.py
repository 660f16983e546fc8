"""Grid factorization end to end through the CLI, MI matrix shape, bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gridfactor.cli.main import app, register_commands
from gridfactor.errors import UserError
from gridfactor.factorization import Factorization
from tests.helpers import stamps

warnings.filterwarnings("ignore")
register_commands()
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
    assert "zones (spectral, K = " in result.output
    # off a terminal: plain progress lines, no carriage-return bars, a time summary at the end
    assert "\r" not in result.output
    assert "[collect] 7/7 chunks (100%)" in result.output or env != "l2rpn_case14_sandbox"
    assert "significance, alpha=0.01 + connected components" in result.output  # beside
    assert "quantile 0.7 + connected components" in result.output  # the seed's rule
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
    unselected = [s for s in range(n_sub) if s not in selected]
    assert (mi[:, unselected] == 0).all()
    # zones: every line and every acted-on substation in exactly one zone, each zone with
    # an acted-on substation; the others get no agent, only a zone for the map
    labels = fact.input_labels()
    assert (fact.target_labels() >= 0).all() and (labels[selected] >= 0).all()
    assert (labels[unselected] == -1).all()
    assert all(c.inputs for c in fact.clusters)
    zones = fact.meta["zones"]
    assert zones["n_zones"] == len(fact.clusters) and zones["method"] == "spectral"
    assert set(zones["unacted_substation_zones"]) <= {str(s) for s in unselected}
    assert [c["n_zones"] for c in zones["curve"]][0] == 1
    assert 0 < zones["inside_share"] <= 1 and -1 <= zones["ari_physics"] <= 1
    assert fact.target_names == sidecar["line_names"]
    assert fact.input_names == sidecar["sub_names"]
    assert fact.meta["env_name"] == env and fact.meta["threshold"] == "significance"
    seed_rule = Factorization.load(out / "factorization_quantile.json")
    assert seed_rule.meta["quantile"] == 0.7 and seed_rule.input_names == fact.input_names
    components = Factorization.load(out / "factorization_components.json")
    labels = components.input_labels()
    for s in unselected:  # the components rule leaves them alone
        assert components.clusters[labels[s]].inputs == (s,)
    for png in ("mi_heatmap.png", "binarized.png", "blocks.png", "grid_clusters.png"):
        assert (out / png).stat().st_size > 1000
    assert (out / "zones_curve.png").stat().st_size > 1000
    # same command again: reuses everything (the collected parts and dataset, each
    # substation's MI columns and null are loaded, none recomputed), same result
    finished = finished_work(out)
    assert len(finished) == 2 * len(selected) + 1  # a part and an MI part per substation
    before, matrices = stamps(finished), {n: (out / n).read_bytes() for n in ("mi.npy",)}

    def computed(output: str) -> int:  # the MI phase counts the substations it computes
        counts = re.findall(r"\[MI\] (\d+)/\d+ substations", output)
        return int(counts[-1]) if counts else 0

    assert computed(result.output) == len(selected)
    again = _factorize(env, out)
    assert stamps(finished) == before and computed(again.output) == 0
    assert {n: (out / n).read_bytes() for n in matrices} == matrices

    def clusters(output: str) -> list[str]:
        return [line for line in output.splitlines() if line.startswith(("  cluster ", "  zone "))]

    assert clusters(result.output) and clusters(again.output) == clusters(result.output)

    # an MI part of a dataset from another collector version is computed again, the rest kept
    stale = sorted((out / "mi_parts").glob("*.npz"))[0]
    with np.load(stale) as saved:
        arrays = {k: saved[k] for k in saved.files if k != "collector_version"}
    np.savez(stale, **arrays)
    kept = [p for p in finished if p not in (stale, out / "dataset.parquet")]
    before = stamps(kept)
    third = _factorize(env, out)
    assert computed(third.output) == 1 and stamps(kept) == before
    assert {n: (out / n).read_bytes() for n in matrices} == matrices


def finished_work(out: Path) -> list[Path]:
    """What a re-run must load rather than recompute: the dataset, its collection parts and
    the per-substation MI parts."""
    parts = sorted((out / "parts").glob("*.npz")) + sorted((out / "mi_parts").glob("*.npz"))
    return [out / "dataset.parquet", *parts]


def test_partition_components_is_the_earlier_rule(tmp_path):
    out = tmp_path / "components"
    result = _factorize("rte_case5_example", out, "--partition", "components")
    assert "zones (" not in result.output
    fact = Factorization.load(out / "factorization.json")
    assert "zones" not in fact.meta and not (out / "factorization_components.json").exists()
    # every line and every substation in exactly one cluster (singletons included)
    assert (fact.target_labels() >= 0).all() and (fact.input_labels() >= 0).all()

    # other zone settings on the same run: re-partitioned from the saved MI, nothing
    # collected or measured again, the new settings recorded; other settings still refused
    finished = finished_work(out)
    before = stamps(finished)
    again = _factorize("rte_case5_example", out, "--partition", "louvain", "--n-zones", "2")
    assert stamps(finished) == before and "[MI]" not in again.output
    zones = Factorization.load(out / "factorization.json").meta["zones"]
    assert zones["method"] == "louvain" and zones["n_zones"] == 2
    config = json.loads((out / "config.json").read_text())
    assert config["partition"] == "louvain" and config["n_zones"] == 2
    with pytest.raises(UserError, match=r"differs in: seed\)"):
        _factorize("rte_case5_example", out, "--partition", "louvain", "--seed", "4")


@pytest.mark.slow  # CI budget: the long variant of a path CI runs elsewhere
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
    # a log file, not a terminal: plain progress lines, the time per phase as the last line
    assert "\r" not in proc.stdout + proc.stderr
    assert "[collect] 7/7 chunks (100%)" in proc.stderr and "[MI] " in proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("time: ")
    assert "MI " in proc.stdout.strip().splitlines()[-1]
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
    # no MI, yet acted on: they join the zone of most of their lines, so they get an agent
    labels = fact.input_labels()
    assert (labels[unmeasured] >= 0).all()
    assert fact.meta["zones"]["unmeasured_substation_zones"] == {
        str(s): int(labels[s]) for s in unmeasured
    }
    # a re-run reuses the saved columns (including the unmeasured flag): same bytes, the
    # MI parts loaded, not recomputed
    before = (out / "factorization.json").read_bytes()
    finished = finished_work(out)
    saved = stamps(finished)
    rerun = subprocess.run([str(GRIDFACTOR), *args], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0 and (out / "factorization.json").read_bytes() == before
    assert stamps(finished) == saved


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


def test_case14_zones_follow_the_grid(tmp_path):
    """A small collection (20 episodes per substation) already separates the 14-bus grid's
    two voltage levels: lines 0_1_0 and 0_4_1 land with sub_1 and sub_4, not with sub_12
    (also seen with seeds 1-6 and at the seed settings)."""
    out = tmp_path / "case14"
    args = ["--n-episodes", "20", "--max-steps", "30", "--n-samples", "2000"]
    _factorize("l2rpn_case14_sandbox", out, *args, "--threshold", "quantile", "--seed", "5")
    fact = Factorization.load(out / "factorization.json")
    lines = {name: i for i, name in enumerate(fact.target_names)}
    line_zone, sub_zone = fact.target_labels(), fact.input_labels()
    assert line_zone[lines["0_1_0"]] == line_zone[lines["0_4_1"]] == sub_zone[1] == sub_zone[4]
    assert sub_zone[12] != sub_zone[1]
    assert line_zone[lines["11_12_13"]] == sub_zone[12]

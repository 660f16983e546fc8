import numpy as np
import pandas as pd
import pytest

from gridfactor.errors import UserError
from gridfactor.factorize.data import load_transitions


def _frame(n=50, seed=0):
    rng = np.random.default_rng(seed)
    s = rng.integers(0, 2, (n, 2))
    a = rng.integers(0, 2, n)
    return pd.DataFrame(
        {
            "s_x": s[:, 0],
            "s_y": s[:, 1],
            "a_u": a,
            "s_next_x": a,
            "s_next_y": s[:, 1] ^ 1,
            "episode": 0,
        }
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".npz"])
def test_reads_every_format(tmp_path, suffix):
    frame = _frame()
    path = tmp_path / f"t{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    else:
        np.savez(path, **{c: frame[c].to_numpy() for c in frame.columns})
    t = load_transitions(path)
    assert t.state_names == ["x", "y"] and t.action_names == ["u"]
    assert t.inputs.shape == (50, 3) and t.targets.shape == (50, 2)
    assert t.target_names == ["s_next_x", "s_next_y"]
    np.testing.assert_array_equal(t.targets[:, 0], frame["a_u"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["s_y"]), "s_next_y has no matching s_y"),
        (lambda f: f.drop(columns=["s_next_x"]), "s_x has no matching s_next_x"),
        (lambda f: f.drop(columns=["a_u"]), "no action columns"),
        (lambda f: f.drop(columns=["s_next_x", "s_next_y"]), "no next-state columns"),
        (lambda f: f.assign(s_x=np.where(np.arange(50) == 7, np.nan, f.s_x)), "row 7"),
        (lambda f: f.assign(s_y="a"), "not numeric"),
        (lambda f: f.assign(a_u=1), "constant"),
    ],
)
def test_bad_tables_give_clear_errors(tmp_path, change, message):
    path = tmp_path / "t.csv"
    change(_frame()).to_csv(path, index=False)
    with pytest.raises(UserError, match=message):
        load_transitions(path)


def test_missing_truncated_and_unsupported_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_transitions(tmp_path / "nope.parquet")
    path = tmp_path / "t.parquet"
    _frame().to_parquet(path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UserError, match="cannot read t.parquet"):
        load_transitions(path)
    other = tmp_path / "t.xlsx"
    other.write_text("x")
    with pytest.raises(UserError, match="unsupported extension"):
        load_transitions(other)

"""The E4 search (issue 23): its sweep file, and the score tables chapter 8 reads."""
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from ttsbook.runs import expand, read_sweep

TABLES = Path(str(resources.files("ttsbook") / "data" / "gpt" / "e4_search"))
SHIPPED_K8 = {"61a5e259", "12b267e1", "0e080d48", "321ac81e"}


def sweep():
    name, spec = read_sweep("e4_search")
    return expand(spec, name=name)


def test_sweep_file_is_the_designed_grid():
    runs = sweep().runs
    design = {(c.cot_steps, c.train_cov, c.n_points, c.train.seed) for c in runs}
    specs = {"isotropic", "power_raw:1.0", "power_raw:2.0", "missing:4:0.01"}
    assert {(K, s, n, 0) for K in (2, 8) for s in specs for n in (10, 20)} <= design
    assert {(1, s, 10, 0) for s in specs} <= design
    assert {(2, s, 10, 1) for s in ("isotropic", "power_raw:2.0")} <= design
    assert len(runs) == len(design) == 22
    # the shipped K = 8 runs are reused hash for hash
    assert SHIPPED_K8 <= {c.run_id() for c in runs}


def test_score_table_holds_every_run_m_and_k():
    table = pd.read_csv(TABLES / "e4_search.csv", dtype={"run_id": str})
    ids = {c.run_id() for c in sweep().runs}
    assert set(table["run_id"]) == ids
    assert set(table["m"]) == {10, 20, 40} and set(table["k"]) == set(range(1, 25))
    assert len(table) == len(ids) * 3 * 24 and (table["n_prompts"] == 3000).all()
    assert (table["test_cov"] == "isotropic").all()
    values = table[["mean", "ci_low", "ci_high", "median"]].to_numpy()
    assert np.isfinite(values).all()
    assert (table["ci_low"] <= table["mean"]).all() and (table["mean"] <= table["ci_high"]).all()


def test_rise_table_agrees_with_the_scores():
    table = pd.read_csv(TABLES / "e4_search.csv", dtype={"run_id": str})
    rise = pd.read_csv(TABLES / "rise.csv")
    for _, row in rise.sample(20, random_state=0).iterrows():
        curve = table.query("train_cov == @row.train_cov and n == @row.n and "
                            "cot_steps == @row.cot_steps and seed == @row.seed and m == @row.m")
        curve = curve.set_index("k")[row["stat"]]
        if row["window"] == "3K":
            curve = curve.loc[:3 * row["cot_steps"]]
        assert curve.idxmin() == row["k_best"] and np.isclose(curve.min(), row["best"], rtol=1e-5)
        assert np.isclose(curve.iloc[-1] / curve.min(), row["rise"], rtol=1e-4)


def test_contraction_and_chain_lsa_tables_cover_the_grid():
    nu = pd.read_csv(TABLES / "contraction.csv")
    assert len(nu) == 22 * 3 and nu["nu_median"].notna().all()
    lsa = pd.read_csv(TABLES / "chain_lsa_d5.csv")
    assert {"isotropic", "power_raw:1.0", "power_raw:2.0", "missing:4:0.01"} <= set(lsa["spec"])
    assert {1, 2, 8} <= set(lsa["K"]) and set(lsa["n"]) == {10, 20}

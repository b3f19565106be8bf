import json

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestRegressor

from aam.data import load_study
from aam.data.simulate import LOCATIONS, simulate, write_simulation


def test_shapes_lengths_and_determinism():
    sim = simulate(n_samples=40, seed=5, n_features=64)
    assert sim.counts.shape == (40, 64)
    assert len(set(sim.sequences)) == 64
    assert all(150 <= len(s) <= 250 and set(s) <= set("ACGT") for s in sim.sequences)
    assert list(sim.metadata.columns) == ["ph", "temperature", "location", "depth", "ph_class"]
    assert set(sim.metadata["location"]) <= set(LOCATIONS)
    for ph, level in zip(sim.metadata["ph"], sim.metadata["ph_class"]):
        assert level == ("acidic" if ph < 5.5 else "neutral" if ph < 7.5 else "alkaline")
    np.testing.assert_array_equal(sim.counts.sum(axis=1).A1, sim.truth["reads_per_sample"])
    again = simulate(n_samples=40, seed=5, n_features=64)
    assert again.sequences == sim.sequences and (again.counts != sim.counts).nnz == 0
    assert simulate(n_samples=40, seed=6, n_features=64).sequences != sim.sequences


def test_sequences_share_clade_mutations():
    """ASVs of one clade are closer to each other than to ASVs of other clades (Hamming, first 150 nt)."""
    sim = simulate(n_samples=2, seed=0, n_features=64)
    codes = np.array([list(s[:150]) for s in sim.sequences])
    dist = (codes[:, None, :] != codes[None, :, :]).sum(-1)
    clade = np.array(sim.truth["feature_clade"])
    same = clade[:, None] == clade[None, :]
    off_diagonal = ~np.eye(64, dtype=bool)
    assert dist[same & off_diagonal].mean() < dist[~same].mean()


def test_ph_is_learnable_by_a_random_forest():
    sim = simulate(n_samples=300, seed=0)
    dense = sim.counts.toarray().astype(float)
    rel = dense / dense.sum(axis=1, keepdims=True)
    ph = sim.metadata["ph"].to_numpy()
    forest = RandomForestRegressor(n_estimators=60, random_state=0, n_jobs=1).fit(rel[:200], ph[:200])
    assert forest.score(rel[200:], ph[200:]) > 0.5


def test_written_files_read_back_independently(tmp_path):
    import biom

    sim = write_simulation(tmp_path / "sim", n_samples=30, seed=2, n_features=40)
    table = biom.load_table(str(tmp_path / "sim" / "table.biom"))
    assert list(table.ids(axis="observation")) == sim.sequences
    np.testing.assert_array_equal(table.matrix_data.T.toarray(), sim.counts.toarray())
    meta = pd.read_csv(tmp_path / "sim" / "metadata.tsv", sep="\t")
    assert list(meta.columns) == ["sample_id", "ph", "temperature", "location", "depth", "ph_class"]
    assert list(meta["sample_id"]) == list(table.ids())
    truth = json.loads((tmp_path / "sim" / "truth.json").read_text())
    assert truth["seed"] == 2 and len(truth["ph_optimum"]) == 40
    study = load_study(tmp_path / "sim" / "table.biom", metadata=tmp_path / "sim" / "metadata.tsv",
                       target_columns=["ph", "temperature"], categorical_columns=["location"])
    assert study.n_samples == 30
    np.testing.assert_allclose(study.targets[:, 0], meta["ph"])

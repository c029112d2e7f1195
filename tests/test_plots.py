"""ttsbook.plots: each helper draws on the given ax and returns it (Agg backend, no display)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ttsbook.plots import error_vs_k, mark_blocks, matrix_heatmap, training_curve  # noqa: E402


def _frame(names=("a", "b"), K=5):
    rows = [dict(predictor=p, k=k, mean=1 / k, ci_low=0.9 / k, ci_high=1.1 / k, median=0.8 / k)
            for p in names for k in range(1, K + 1)]
    return pd.DataFrame(rows)


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_error_vs_k_draws_mean_median_band_and_theory(ax):
    out = error_vs_k(ax, _frame(), theory={"closed form": np.linspace(1, 0.1, 6)})
    assert out is ax
    assert len(ax.lines) == 2 * 2 + 1 and len(ax.collections) == 2  # two bands
    assert ax.get_yscale() == "log"
    mean_a, median_a = ax.lines[0], ax.lines[1]
    assert mean_a.get_color() == median_a.get_color() and median_a.get_linestyle() == "--"
    np.testing.assert_allclose(ax.lines[-1].get_xdata(), np.arange(6))  # theory indexed from k = 0
    assert ax.lines[-1].get_linestyle() == ":"
    assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == ["a (mean)", "a (median)"]
    assert all(float(t).is_integer() for t in ax.get_xticks())          # k is a count


def test_theory_lines_take_their_series_colour(ax):
    theory = {"a: theory": np.ones(6), "b: theory": np.ones(6)}
    error_vs_k(ax, _frame(), theory=theory)                              # paired in order
    mean_a, mean_b = ax.lines[0], ax.lines[2]
    assert ax.lines[-2].get_color() == mean_a.get_color() != mean_b.get_color()
    assert ax.lines[-1].get_color() == mean_b.get_color()
    fig, other = plt.subplots()
    error_vs_k(other, _frame(), theory={"t": np.ones(6)}, theory_for={"t": "b"})
    assert other.lines[-1].get_color() == other.lines[2].get_color()
    with pytest.raises(ValueError, match="not drawn"):
        error_vs_k(other, _frame(), theory={"t": np.ones(6)}, theory_for={"t": "zzz"})
    plt.close(fig)


def test_use_book_style_sets_the_palette_and_fits_the_column():
    import seaborn as sns

    from ttsbook.plots import FIGURE_WIDTH, use_book_style
    with matplotlib.rc_context():
        use_book_style()
        cycle = [c["color"] for c in matplotlib.rcParams["axes.prop_cycle"]]
        assert matplotlib.colors.to_hex(cycle[0]) == matplotlib.colors.to_hex(sns.color_palette("colorblind")[0])
        width = matplotlib.rcParams["figure.figsize"][0] * matplotlib.rcParams["figure.dpi"]
        assert width == FIGURE_WIDTH * 100 and 688 / width >= 0.8


def test_error_vs_k_options(ax):
    error_vs_k(ax, _frame(), predictors=["b"], median=False, band=False, logy=False)
    assert len(ax.lines) == 1 and not ax.collections and ax.get_yscale() == "linear"
    with pytest.raises(ValueError, match="not in df"):
        error_vs_k(ax, _frame(), predictors=["zzz"])
    with pytest.raises(ValueError, match="lacks columns"):
        error_vs_k(ax, _frame().drop(columns="median"))


def test_matrix_heatmap(ax):
    M = torch.tensor([[1.0, -3.0], [0.5, 2.0]])
    assert matrix_heatmap(ax, M, title="V") is ax
    image = ax.images[0]
    assert image.get_clim() == (-3.0, 3.0) and ax.get_title() == "V"
    with pytest.raises(ValueError, match="2-D"):
        matrix_heatmap(ax, np.zeros(3))


def test_mark_blocks_labels_centres_and_checks_sizes(ax):
    matrix_heatmap(ax, np.zeros((4, 3)))
    assert mark_blocks(ax, [("x", 2), ("y", 1), ("1", 1)], [("ex", 2), ("q", 1)]) is ax
    np.testing.assert_allclose(ax.get_yticks(), [0.5, 2.0, 3.0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["ex", "q"]
    assert len(ax.lines) == 2 + 1  # separators between blocks only
    with pytest.raises(ValueError, match="add up to 4"):
        mark_blocks(ax, [("x", 3)], [("ex", 3)])
    fig, empty = plt.subplots()
    with pytest.raises(ValueError, match="no image"):
        mark_blocks(empty, [("x", 1)])
    plt.close(fig)


def test_training_curve(ax):
    history = pd.DataFrame({"step": [0, 10, 20], "loss": [1.0, 0.5, 0.4]})
    assert training_curve(ax, history, "loss", target=0.4) is ax
    assert len(ax.lines) == 2 and ax.get_yscale() == "log" and ax.get_xlabel() == "training step"
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [1.0, 0.5, 0.4])
    with pytest.raises(ValueError, match="columns"):
        training_curve(ax, history, "dist")


def test_error_vs_hardness_and_mixture_weights(ax):
    from ttsbook.plots import error_vs_hardness, mixture_weights
    sweep = pd.DataFrame({"family": ["a", "a", "b"], "hard": [10.0, 20.0, 15.0], "theory": [0.1, 0.2, 0.15],
                          "bound": [0.1, 0.3, 0.2], "mean": [0.1, 0.2, 0.15], "ci_low": [0.09, 0.18, 0.14],
                          "ci_high": [0.11, 0.22, 0.16]})
    assert error_vs_hardness(ax, sweep) is ax
    assert len(ax.lines) >= 3 and ax.get_xscale() == "log" == ax.get_yscale()
    np.testing.assert_allclose(ax.lines[-1].get_xdata(), [10.0, 15.0, 20.0])  # bound, sorted by hardness
    with pytest.raises(ValueError, match="lacks columns"):
        error_vs_hardness(ax, sweep.drop(columns="bound"))
    fig, ax2 = plt.subplots()
    mixture_weights(ax2, {"QP": torch.tensor([0.5, 0.5]), "uniform": [0.5, 0.5]}, ["t1", "t2"])
    assert len(ax2.patches) == 4 and ax2.get_ylim() == (0, 1)
    with pytest.raises(ValueError, match="must hold 2"):
        mixture_weights(ax2, {"bad": [1.0]}, ["t1", "t2"])
    plt.close(fig)


def test_error_heatmap_contours_and_law(ax):
    from ttsbook.plots import error_heatmap
    ns, ks = np.array([5, 10, 20, 30]), np.arange(1, 7)
    errors = (1 + ns[:, None] / 6) ** (-2.0 * ks[None, :])          # Λ = I, d = 5: the scaling law
    k_law = np.linspace(1, 6, 20)
    out = error_heatmap(ax, ns, ks, errors, levels=(1e-2, 1e-4, 1e-30),
                        law={1e-2: (k_law, 6 * (100 ** (1 / (2 * k_law)) - 1))})
    assert out is ax
    assert len(ax.collections) >= 2                  # the mesh and the contour set
    assert len(ax.lines) == 1 and ax.lines[0].get_linestyle() == "--"
    assert ax.get_ylim() == (5.0, 30.0) and ax.get_xlabel().startswith("k")
    with pytest.raises(ValueError, match="shape"):
        error_heatmap(ax, ns, ks[:-1], errors)

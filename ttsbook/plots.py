"""Plot helpers for the book. Each takes an ``ax``, draws, and returns the ``ax``.

Nothing here changes global matplotlib style at import; a chapter that wants the book's look
calls :func:`use_book_style` once.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

# The rendered page's column is 688 px; figures are stored at 100 dpi. A figure at most
# FIGURE_WIDTH inches wide is shown at >= 80% of its size, so 10-pt text stays >= 11 px.
FIGURE_WIDTH = 8.5


def use_book_style() -> None:
    """One look for the whole book: seaborn's colour-blind palette, white ticks style, and
    font sizes that stay legible when a figure is scaled to the page's column."""
    import seaborn as sns  # imported here: plotting helpers alone need only matplotlib

    sns.set_theme(context="notebook", style="ticks", palette="colorblind",
                  rc={"figure.dpi": 100, "figure.figsize": (FIGURE_WIDTH, 4.5),
                      "legend.fontsize": 10, "axes.titlesize": 12, "axes.labelsize": 11,
                      "xtick.labelsize": 10, "ytick.labelsize": 10, "axes.grid": True,
                      "grid.alpha": 0.3})


def integer_k_axis(ax):
    """Ticks only at whole numbers of passes k on the x axis. Returns the ``ax``."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return ax


def error_vs_k(ax, df: pd.DataFrame, theory: Mapping[str, Sequence[float]] | None = None, *,
               predictors: Sequence[str] | None = None, median: bool = True, band: bool = True,
               logy: bool = True, labels: Mapping[str, str] | None = None,
               colors: Mapping[str, str] | None = None,
               theory_for: Mapping[str, str] | None = None):
    """Error vs k from the tidy frame of ``ttsbook.evaluate``, with closed forms beside it.

    Per predictor (in ``predictors`` order, default: order of appearance) it draws the mean as
    a solid line with markers, its bootstrap CI as a shaded band and the median dashed, all in
    one colour. ``theory`` maps a legend label to values indexed by k = 0..K (as the functions
    of ``ttsbook.theory`` return them), drawn dotted in the colour of the series it belongs to:
    ``theory_for[label]`` names that predictor; when there are as many theory curves as
    predictors they pair up in order; otherwise (and for ``colors[label]``) as given, or
    dark grey. The k axis gets integer ticks.

    Args:
        df: columns ``predictor, k, mean, ci_low, ci_high, median``.
        labels: legend text per predictor (default: the predictor's name).
        colors: colour per predictor or theory label (default: the axes' colour cycle).
    Returns the ``ax``; lines drawn: ``2 * len(predictors) + len(theory)`` (``median=True``).
    """
    missing = {"predictor", "k", "mean", "ci_low", "ci_high", "median"} - set(df.columns)
    if missing:
        raise ValueError(f"df lacks columns {sorted(missing)}; "
                         "pass the frame ttsbook.evaluate returns")
    names = list(predictors) if predictors is not None else list(dict.fromkeys(df["predictor"]))
    labels, colors, drawn = dict(labels or {}), dict(colors or {}), {}
    for name in names:
        rows = df[df["predictor"] == name].sort_values("k")
        if rows.empty:
            raise ValueError(f"predictor {name!r} is not in df "
                             f"(has {sorted(set(df['predictor']))})")
        (line,) = ax.plot(rows["k"], rows["mean"], marker="o", ms=3, color=colors.get(name),
                          label=f"{labels.get(name, name)} (mean)")
        drawn[name] = line.get_color()
        if band:
            ax.fill_between(rows["k"], rows["ci_low"], rows["ci_high"], color=line.get_color(),
                            alpha=0.2, lw=0)
        if median:
            ax.plot(rows["k"], rows["median"], ls="--", color=line.get_color(),
                    label=f"{labels.get(name, name)} (median)")
    _draw_theory(ax, theory or {}, drawn, colors, theory_for)
    if logy:
        ax.set_yscale("log")
    integer_k_axis(ax)
    ax.set_xlabel("k (number of forward passes)")
    ax.set_ylabel(r"error $\|\hat w - w\|^2 / d$")
    ax.legend(fontsize="small")
    return ax


def _draw_theory(ax, theory: Mapping[str, Sequence[float]], drawn: Mapping[str, str],
                 colors: Mapping[str, str], theory_for: Mapping[str, str] | None) -> None:
    """Closed-form curves, dotted, each in its series' colour (see :func:`error_vs_k`)."""
    pairs = dict(theory_for or {})
    unknown = set(pairs.values()) - set(drawn)
    if unknown:
        raise ValueError(f"theory_for names predictors {sorted(unknown)} that are not drawn")
    if not pairs and len(theory) == len(drawn) > 1:
        pairs = dict(zip(theory, drawn))
    for label, values in theory.items():
        values = np.asarray(values, dtype=float)
        color = colors.get(label) or (drawn[pairs[label]] if label in pairs else "0.25")
        ax.plot(np.arange(len(values)), values, color=color, lw=1.6, ls=":", label=label)


def matrix_heatmap(ax, M, *, title: str | None = None, cmap: str = "RdBu_r",
                   symmetric: bool = True, colorbar: bool = True):
    """Show a matrix as an image; ``symmetric`` centres the colour scale on 0.

    ``M``: (r, c) array or tensor. Returns the ``ax`` (its image is ``ax.images[0]``).
    """
    M = np.asarray(M.detach().cpu() if hasattr(M, "detach") else M, dtype=float)
    if M.ndim != 2:
        raise ValueError(f"M must be a 2-D matrix, got shape {M.shape}")
    vmax = float(np.abs(M).max()) or 1.0
    lims = dict(vmin=-vmax, vmax=vmax) if symmetric else {}
    image = ax.imshow(M, cmap=cmap, interpolation="nearest", **lims)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def mark_blocks(ax, rows: Sequence[tuple[str, int]],
                cols: Sequence[tuple[str, int]] | None = None, *, color: str = "0.2"):
    """Label the blocks of a heatmap drawn by ``matrix_heatmap`` and draw lines between them.

    ``rows`` (and ``cols``, default ``rows``) list ``(label, size)`` from the top (left); the
    sizes must add up to the matrix's rows (columns). Example: the LSA token matrix has rows
    ``[("x", d), ("y", 1), ("w", d), ("1", 1)]``. Returns the ``ax``.
    """
    if not ax.images:
        raise ValueError("draw the matrix first (e.g. with matrix_heatmap): ax has no image")
    cols = rows if cols is None else cols
    n_rows, n_cols = ax.images[0].get_array().shape[:2]
    for blocks, total, axis in ((rows, n_rows, "y"), (cols, n_cols, "x")):
        sizes = [int(size) for _, size in blocks]
        if sum(sizes) != total or min(sizes, default=0) < 1:
            raise ValueError(f"{axis} block sizes {sizes} must be >= 1 and add up to {total}")
        edges = np.cumsum([0] + sizes) - 0.5  # pixel boundaries
        line = ax.axhline if axis == "y" else ax.axvline
        for edge in edges[1:-1]:
            line(edge, color=color, lw=1)
        set_ticks = ax.set_yticks if axis == "y" else ax.set_xticks
        set_ticks((edges[:-1] + edges[1:]) / 2, [label for label, _ in blocks])
    return ax


def training_curve(ax, history: pd.DataFrame, column: str, *, target: float | None = None,
                   label: str | None = None, target_label: str = "closed form", logy: bool = True):
    """``history[column]`` against the training step, with an optional dashed ``target`` line.

    ``history``: the frame ``ttsbook.train`` returns (columns ``step``, ``column``).
    Returns the ``ax``; lines drawn: 1, or 2 with ``target``.
    """
    if "step" not in history or column not in history:
        raise ValueError(f"history must have columns 'step' and {column!r}, "
                         f"got {list(history.columns)}")
    ax.plot(history["step"], history[column], label=label or column)
    if target is not None:
        ax.axhline(target, color="0.15", ls="--", lw=1.2, label=target_label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(column)
    ax.legend(fontsize="small")
    return ax


def error_vs_hardness(ax, sweep: pd.DataFrame, *, colors: Mapping[str, str] | None = None):
    """Error vs ``Hard(Λ)`` from ``ttsbook.hardness_sweep``, log-log.

    Per family: the closed form as a line and the Monte Carlo mean as markers with CI bars;
    the scaling-law bound, evaluated on every family's points, as one dashed black curve.
    Returns the ``ax``; lines drawn: ``len(families) + 1`` plus one errorbar per family.
    """
    missing = ({"family", "hard", "theory", "bound", "mean", "ci_low", "ci_high"}
               - set(sweep.columns))
    if missing:
        raise ValueError(f"sweep lacks columns {sorted(missing)}; pass hardness_sweep's frame")
    colors = dict(colors or {})
    for family, rows in sweep.groupby("family", sort=False):
        rows = rows.sort_values("hard")
        (line,) = ax.plot(rows["hard"], rows["theory"], color=colors.get(family),
                          label=f"{family}: theory")
        err = np.vstack([rows["mean"] - rows["ci_low"], rows["ci_high"] - rows["mean"]])
        ax.errorbar(rows["hard"], rows["mean"], yerr=err, fmt="o", ms=4, mfc="none",
                    color=line.get_color(), label=f"{family}: Monte Carlo")
    bound = sweep.sort_values("hard")
    ax.plot(bound["hard"], bound["bound"], color="0.15", ls="--", lw=1.2,
            label="bound $(1+n/(1+\\mathrm{Hard}))^{-2k}$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"hardness $\mathrm{Hard}(\Lambda) = \mathrm{tr}\,\Lambda / \lambda_{\min}$")
    ax.set_ylabel(r"error $\|\hat w_k - w\|^2 / d$")
    ax.legend(fontsize="small")
    return ax


def mixture_weights(ax, weights: Mapping[str, Sequence[float]], tasks: Sequence[str]):
    """Grouped bars: for each task (x axis) the probability each mixture (legend) gives it.

    ``weights`` maps a mixture name to one probability per entry of ``tasks``.
    Returns the ``ax``; bars drawn: ``len(weights) * len(tasks)``.
    """
    width = 0.8 / max(len(weights), 1)
    x = np.arange(len(tasks))
    for i, (name, probs) in enumerate(weights.items()):
        probs = np.asarray(probs.detach().cpu() if hasattr(probs, "detach") else probs, dtype=float)
        if probs.shape != (len(tasks),):
            raise ValueError(f"weights[{name!r}] must hold {len(tasks)} probabilities, "
                             f"got shape {probs.shape}")
        ax.bar(x + (i - (len(weights) - 1) / 2) * width, probs, width, label=name)
    ax.set_xticks(x, list(tasks))
    ax.set_ylim(0, 1)
    ax.set_ylabel(r"probability $\pi_\ell$")
    ax.legend(fontsize="small")
    return ax


def error_heatmap(ax, ns: Sequence[float], ks: Sequence[float], errors, *,
                  levels: Sequence[float] = (1e-1, 1e-2, 1e-4, 1e-6),
                  law: Mapping[float, tuple[Sequence[float], Sequence[float]]] | None = None,
                  colorbar: bool = True, vmin: float | None = None, vmax: float | None = None):
    """Error over the (k, n) grid as a log-colour heatmap with iso-error contours.

    ``errors[i, j]`` is the error at training context ``ns[i]`` after ``ks[j]`` passes (e.g.
    ``ttsbook.sweeps.grid_matrix``). Solid black contours mark ``levels``; ``law`` maps a
    level ``eps`` to a curve ``(k values, n values)`` (e.g. ``n_star``), drawn dashed white.
    Returns the ``ax``; contour sets in ``ax.collections`` after the mesh, law curves in
    ``ax.lines``.
    """
    log_err = np.log10(np.asarray(errors, dtype=float))
    ns, ks = np.asarray(ns, dtype=float), np.asarray(ks, dtype=float)
    if log_err.shape != (len(ns), len(ks)):
        raise ValueError(f"errors must have shape {(len(ns), len(ks))} = (len(ns), len(ks)), "
                         f"got {log_err.shape}")
    lims = {key: np.log10(v) for key, v in (("vmin", vmin), ("vmax", vmax)) if v is not None}
    mesh = ax.pcolormesh(ks, ns, log_err, shading="nearest", cmap="viridis", **lims)
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, label=r"$\log_{10}$ error $\|\hat w_k - w\|^2/d$")
    inside = sorted(np.log10(lv) for lv in levels if log_err.min() < np.log10(lv) < log_err.max())
    if inside:
        lines = ax.contour(ks, ns, log_err, levels=inside, colors="k", linewidths=1.2,
                           linestyles="solid")
        ax.clabel(lines, fmt=lambda v: f"$10^{{{v:.0f}}}$", fontsize="small")
    for eps, (k_law, n_law) in (law or {}).items():
        ax.plot(k_law, n_law, color="w", ls="--", lw=1.5)
    ax.set_xlim(ks.min() - 0.5, ks.max() + 0.5)
    ax.set_ylim(ns.min(), ns.max())
    integer_k_axis(ax)
    ax.set_xlabel("k (number of forward passes)")
    ax.set_ylabel("training context n")
    return ax


def draw_plan(ax, result, *, colors=("C0", "C3", "0.4")):
    """A :class:`ttsbook.planner.Plan` on ``ax``: frontier n*(k) (line) and the integer n it
    needs (dots: median-safe; crosses: above the divergence threshold, where the typical
    prompt diverges), the threshold, the iso-cost line through the cheapest point (star).
    ``colors``: frontier, unsafe/threshold, cost.
    Returns the ``ax``.
    """
    good, unsafe, grey = colors
    ks, reach = result.ks, np.isfinite(result.n_needed)
    ax.plot(ks, result.n_frontier, color=good, lw=1.5, label=r"frontier $n^*(k)$")
    ok = reach & result.median_safe
    ax.plot(ks[ok], result.n_needed[ok], "o", color=good, ms=5,
            label="integer n, median-safe")
    if (reach & ~result.median_safe).any():
        bad = reach & ~result.median_safe
        ax.plot(ks[bad], result.n_needed[bad], "x", color=unsafe, ms=7,
                label="above divergence threshold")
    top = max(np.nanmax(np.where(reach, result.n_needed, 1)), 10) * 3
    if math.isfinite(result.n_diverge):
        top = max(top, 3 * result.n_diverge)
        ax.axhline(result.n_diverge, color=unsafe, ls="--", lw=1)
        ax.axhspan(result.n_diverge, 1e12, color=unsafe, alpha=0.08,
                   label=r"typical prompt diverges ($n > n_{\rm div}$)")
    if (~reach).any():
        ax.axvspan(0.5, ks[~reach].max() + 0.5, color=grey, alpha=0.12,
                   label=r"$\varepsilon$ out of reach (error floor)")
    if result.n is not None:
        k_line = np.linspace(0.5, ks[-1] + 0.5, 100)
        n_line = (result.cost - result.cost_pass * result.pass_units(k_line)) / result.cost_train
        ax.plot(k_line[n_line > 0], n_line[n_line > 0], ":", color=grey, label="iso-cost line")
        ax.plot(result.k, result.n, "*", color="k", ms=14, zorder=5,
                label=f"cheapest: n = {result.n}, k = {result.k}")
    ax.set(yscale="log", xlim=(0.5, ks[-1] + 0.5), ylim=(0.8, top),
           xlabel="k (forward passes; k = 1 is direct prediction)",
           ylabel="training context n")
    return integer_k_axis(ax)

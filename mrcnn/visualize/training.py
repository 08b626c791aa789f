"""Training: loss curves, the learning-rate schedule, cache statistics.

:func:`plot_history` reads a ``keras.callbacks.History``, a dict of
per-epoch lists or the ``history.csv`` training writes;
:func:`plot_lr_schedule` evaluates the schedule ``MaskRCNN.train`` builds
from a Config; :func:`plot_cache_stats` shows the data cache's hits,
misses, size and compression per epoch. Epochs are numbered from 1 as Keras
prints them. ``ax`` / ``save_path`` as in the :mod:`mrcnn.visualize`
package docstring; matplotlib and keras are imported inside the functions
only.
"""

import csv
import math
import os

import numpy as np

from mrcnn.visualize.figures import finish_figure, open_axes


def _history_columns(history):
    """``(epochs 1-based [E], {name: float [E]})`` from History, dict or CSV."""
    if hasattr(history, "history") and isinstance(history.history, dict):
        logs = dict(history.history)
        epochs = getattr(history, "epoch", None)
        logs["epoch"] = epochs if epochs else list(range(len(next(iter(logs.values()), []))))
    elif isinstance(history, dict):
        logs = dict(history)
    elif isinstance(history, (str, os.PathLike)):
        path = os.fspath(history)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"history file {path!r} not found (training writes "
                                    f"<log_dir>/history.csv)")
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            raise ValueError(f"history file {path!r} holds no epochs")
        logs = {k: [r[k] for r in rows] for k in rows[0]}
    else:
        raise TypeError(f"history must be a keras History, a dict of lists or the path "
                        f"of a history.csv, got {type(history).__name__}")

    def column(name, values):
        try:
            # "" and Keras' "NA" (a column missing that epoch) are NaN
            return np.array([float(v) if v not in ("", "NA", None) else np.nan for v in values])
        except (TypeError, ValueError):
            raise ValueError(f"history column {name!r} is not numeric: {values!r}") from None

    cols = {k: column(k, v) for k, v in logs.items() if k != "epoch"}
    lengths = {k: v.size for k, v in cols.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"history columns differ in length: {lengths}")
    n = next(iter(lengths.values()), 0)
    epochs = column("epoch", logs["epoch"]) + 1 if "epoch" in logs else np.arange(1, n + 1.0)
    if epochs.size != n:
        raise ValueError(f"history has {epochs.size} epochs but {n} values per column")
    # A resumed run may log an epoch twice (CSV append); keep the last row of each.
    _, last = np.unique(epochs[::-1], return_index=True)
    keep = np.sort(n - 1 - last)
    return epochs[keep], {k: v[keep] for k, v in cols.items()}


def plot_history(history, metric=None, logy=False, figsize=None, ax=None, save_path=None):
    """Training curves, one panel per loss, train solid and validation dashed.

    Each panel marks its best epoch (lowest validation value, or lowest
    training value without validation) with a star, a vertical line and its
    value. Epochs are numbered from 1, as Keras prints them and as the
    checkpoints are named (``mask_rcnn_<name>_0007.h5`` is epoch 7).

    Args:
        history: the ``keras.callbacks.History`` returned by
            ``MaskRCNN.train``, a dict ``{name: [per-epoch values]}`` (with an
            optional 0-based ``"epoch"`` list), or the path of the
            ``history.csv`` training writes (columns ``epoch, loss, val_loss,
            rpn_class_loss, ...``).
        metric: a name or list of names to plot (``"loss"``,
            ``"mrcnn_mask_loss"``, ...; ``val_`` counterparts are added);
            default every column whose name contains ``"loss"``.
        logy: logarithmic y axes.
        figsize: inches; default 5 x 3.6 per panel, 3 panels a row.
        ax: optional sequence of Axes, one per panel.
        save_path: see the :mod:`mrcnn.visualize` docstring.

    Returns:
        ``save_path``, the figure (non-interactive backend, no ``ax``) or None.
    """
    epochs, cols = _history_columns(history)
    if metric is None:
        names = [k for k in cols if "loss" in k and not k.startswith("val_")]
        names += [k[4:] for k in cols if k.startswith("val_") and "loss" in k
                  and k[4:] not in cols]
    else:
        names = [metric] if isinstance(metric, str) else list(metric)
        missing = [m for m in names if m not in cols and f"val_{m}" not in cols]
        if missing:
            raise ValueError(f"history has no {missing}; it holds {sorted(cols)}")
    if not names:
        raise ValueError(f"history has no loss columns; it holds {sorted(cols)}")
    ncols = min(3, len(names))
    if figsize is None:
        figsize = (5 * ncols, 3.6 * math.ceil(len(names) / ncols))
    fig, axes, own = open_axes(ax, len(names), ncols, figsize, save_path, "plot_history")
    for a, name in zip(axes, names):
        train, val = cols.get(name), cols.get(f"val_{name}")
        if train is not None:
            a.plot(epochs, train, "-o", color="tab:blue", markersize=3, label="train")
        if val is not None:
            a.plot(epochs, val, "--o", color="tab:orange", markersize=3, label="validation")
        ref = val if val is not None and np.isfinite(val).any() else train
        if ref is not None and np.isfinite(ref).any():
            b = int(np.nanargmin(np.where(np.isfinite(ref), ref, np.nan)))
            a.axvline(epochs[b], color="gray", linewidth=1, linestyle=":")
            a.plot(epochs[b], ref[b], "*", color="tab:red", markersize=13, zorder=5,
                   label=f"best: epoch {epochs[b]:g}, {ref[b]:.4g}")
        a.set_title(name, fontsize=11)
        a.set_xlabel("epoch")
        if logy:
            a.set_yscale("log")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
        if epochs.size <= 20:
            a.set_xticks(epochs)
    return finish_figure(fig, own, save_path)


def plot_lr_schedule(config, epochs, steps=None, learning_rate=None, title="",
                     figsize=(9, 4), ax=None, save_path=None):
    """The learning rate a training run will use, step by step.

    Evaluates :func:`mrcnn.training.schedule.schedule_from_config` (Config.
    N_WARMUP_STEPS, Config.LR_SCHEDULE, Config.LR_DECAY_EPOCHS/GAMMA) over
    ``epochs * steps`` optimizer steps, exactly as ``MaskRCNN.train`` builds
    it; the warm-up is shaded, step decays are dotted lines and the peak and
    final rates are written on the plot.

    Args:
        config: a Config.
        epochs: epochs of the run (``train(epochs=...)``).
        steps: steps per epoch; default Config.STEPS_PER_EPOCH.
        learning_rate: peak rate; default Config.LEARNING_RATE.
        title, figsize, ax, save_path: see the :mod:`mrcnn.visualize` docstring.

    Returns:
        ``save_path``, the figure (non-interactive backend, no ``ax``) or None.
    """
    from keras import ops
    from mrcnn.training.schedule import schedule_from_config

    steps = int(config.STEPS_PER_EPOCH if steps is None else steps)
    if int(epochs) < 1 or steps < 1:
        raise ValueError(f"epochs and steps must be >= 1, got epochs={epochs!r}, "
                         f"steps={steps!r}")
    total = int(epochs) * steps
    lr0 = float(config.LEARNING_RATE if learning_rate is None else learning_rate)
    schedule = schedule_from_config(config, lr0, total, steps_per_epoch=steps)
    step = np.arange(total, dtype=np.float32)
    lr = np.broadcast_to(np.asarray(ops.convert_to_numpy(schedule(step)), np.float64),
                         step.shape)
    x = (step + 1) / steps                      # epoch progress after each step
    fig, (a,), own = open_axes(ax, 1, 1, figsize, save_path, "plot_lr_schedule")
    a.plot(x, lr, color="tab:blue", linewidth=2)
    warm = min(int(schedule.warmup_steps), total)
    if warm:
        a.axvspan(0, warm / steps, color="tab:orange", alpha=0.15,
                  label=f"warm-up: {warm} steps")
    peak = int(np.argmax(lr))
    a.annotate(f"peak {lr[peak]:.3g} (step {peak + 1})", (x[peak], lr[peak]),
               xytext=(8, -14), textcoords="offset points", fontsize=9)
    a.annotate(f"final {lr[-1]:.3g}", (x[-1], lr[-1]), xytext=(-8, 8),
               textcoords="offset points", ha="right", fontsize=9)
    decay = {None: "constant", False: "constant", True: "cosine"}.get(
        config.LR_SCHEDULE, config.LR_SCHEDULE)
    if config.LR_SCHEDULE == "step":
        decay = (f"step (x{config.LR_DECAY_GAMMA:g} at epochs "
                 f"{', '.join(str(int(e)) for e in config.LR_DECAY_EPOCHS)})")
        for e in config.LR_DECAY_EPOCHS:
            if e < epochs:
                a.axvline(e, color="tab:gray", linestyle=":", linewidth=1)
    a.set(xlabel=f"epoch ({steps} steps each)", ylabel="learning rate", xlim=(0, epochs),
          ylim=(0, lr.max() * 1.12))
    a.set_title(title or f"Learning rate: {decay} after {warm} warm-up steps, "
                         f"{total} steps in all", fontsize=11)
    a.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    a.grid(alpha=0.3)
    if warm:
        a.legend(loc="upper right", fontsize=9)
    return finish_figure(fig, own, save_path)


_CACHE_ALIASES = {"bytes": "bytes_stored", "size_bytes": "bytes_stored",
                  "ratio": "compression_ratio"}


def _cache_row(i, item):
    """One epoch of cache statistics as a dict with the canonical keys."""
    if isinstance(item, dict):
        row = {_CACHE_ALIASES.get(k, k): v for k, v in item.items()}
    elif hasattr(item, "hits") and hasattr(item, "misses"):     # mrcnn.data.cache.stats.CacheStats
        row = {"hits": item.hits, "misses": item.misses}
        for attr in ("size_bytes", "ratio"):
            if hasattr(item, attr):
                row[_CACHE_ALIASES[attr]] = getattr(item, attr)
    else:
        raise TypeError(f"stats[{i}] must be a dict or a CacheStats, got "
                        f"{type(item).__name__}")
    missing = [k for k in ("hits", "misses") if k not in row]
    if missing:
        raise ValueError(f"stats[{i}] lacks {missing}; expected keys hits, misses "
                         f"[, bytes_stored, compression_ratio], got {sorted(row)}")
    return row


def _cache_columns(stats, cumulative):
    """``(epochs 1-based, {hits, misses, bytes_stored, compression_ratio} arrays)``."""
    is_history = isinstance(stats, (str, os.PathLike, dict)) or hasattr(stats, "history")
    if is_history:
        epochs, cols = _history_columns(stats)
        missing = [k for k in ("cache_hits", "cache_misses") if k not in cols]
        if missing:
            raise ValueError(f"history has no {missing} (CacheStatsLogger writes them); "
                             f"it holds {sorted(cols)}")
        nan = np.full(epochs.size, np.nan)
        return epochs, {"hits": cols["cache_hits"], "misses": cols["cache_misses"],
                        "bytes_stored": cols.get("cache_mb", nan) * 2.0 ** 20,
                        "compression_ratio": cols.get("cache_ratio", nan)}
    rows = [_cache_row(i, item) for i, item in enumerate(stats)]
    if not rows:
        raise ValueError("plot_cache_stats needs at least one epoch of stats, got none")
    cols = {k: np.array([float(r.get(k, np.nan)) for r in rows])
            for k in ("hits", "misses", "bytes_stored", "compression_ratio")}
    if cumulative:
        cols["hits"] = np.diff(cols["hits"], prepend=0.0)
        cols["misses"] = np.diff(cols["misses"], prepend=0.0)
    return np.arange(1, len(rows) + 1), cols


def plot_cache_stats(stats, cumulative=False, title="", figsize=(15, 4), ax=None,
                     save_path=None):
    """Per-epoch cache statistics: hits and misses, bytes held, compression ratio.

    Args:
        stats: either the training history (the ``keras.callbacks.History``
            of ``MaskRCNN.train``, its ``history.csv`` path, or a dict of
            per-epoch lists) holding the ``cache_hits``, ``cache_misses``,
            ``cache_mb`` and ``cache_ratio`` columns that
            :class:`mrcnn.training.callbacks.CacheStatsLogger` logs (a dict
            is always read as such a history); or a
            list with one entry per epoch, each a dict or a
            :class:`mrcnn.data.cache.stats.CacheStats`, with keys (attributes)
            ``hits`` and ``misses`` (lookups served from the cache / loaded
            and prepared again), optionally ``bytes_stored`` (bytes the cache
            holds; aliases ``bytes``, ``size_bytes``; in a difference of two
            CacheStats snapshots it is the growth during the epoch) and
            ``compression_ratio`` (uncompressed / stored bytes; alias
            ``ratio``). Ratios <= 0 mean "nothing measured"; a panel whose
            value no epoch reports says so.
        cumulative: for a list only: True when the entries are running
            totals (e.g. ``cache.stats()`` taken after every epoch); hits and
            misses are then differenced to per-epoch counts.
        title: figure title.
        figsize, save_path: see the :mod:`mrcnn.visualize` docstring.
        ax: optional sequence of 3 Axes.

    Returns:
        ``save_path``, the figure (non-interactive backend, no ``ax``) or None.
    """
    epoch, cols = _cache_columns(stats, cumulative)
    hits, misses = cols["hits"], cols["misses"]
    fig, axes, own = open_axes(ax, 3, 3, figsize, save_path, "plot_cache_stats")
    a = axes[0]
    a.bar(epoch, hits, color="tab:green", label="hits")
    a.bar(epoch, misses, bottom=hits, color="tab:gray", label="misses")
    total = hits + misses
    rate = np.divide(hits, total, out=np.zeros_like(hits), where=total > 0)
    for e, t, r in zip(epoch, total, rate):
        a.text(e, t, f"{100 * r:.0f}%", ha="center", va="bottom", fontsize=9)
    a.set(title="lookups (hit rate on top)", xlabel="epoch", ylim=(0, total.max() * 1.4 or 1))
    a.legend(fontsize=9, loc="upper center", ncol=2)
    for a, key, label, scale in ((axes[1], "bytes_stored", "stored (MiB)", 2.0 ** -20),
                                 (axes[2], "compression_ratio", "compression ratio", 1.0)):
        v = cols[key] * scale
        if key == "compression_ratio":
            v[v <= 0] = np.nan
        if np.isfinite(v).any():
            a.plot(epoch, v, "-o", color="tab:blue")
            a.set_ylim(0, np.nanmax(v) * 1.15 or 1)
        else:
            a.text(0.5, 0.5, f"{key} not reported", transform=a.transAxes,
                   ha="center", va="center", color="gray")
        a.set(title=label, xlabel="epoch")
    for a in axes:
        a.grid(alpha=0.3)
        if len(epoch) <= 20:
            a.set_xticks(epoch)
    if title and own:
        fig.suptitle(title)
    return finish_figure(fig, own, save_path)

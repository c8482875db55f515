"""Read predictions back: a few genes or cells of a ``.h5ad`` (lazily) or a Parquet file.

With ``predict.genes: varying`` (the default) genes whose model has all-zero coefficients
are not written: their prediction is the model store's intercept for every cell.
:func:`read_predictions` puts them back when given the store (its folder, e.g.
``store="data/models/rds"``, or a loaded :class:`~ephys2expr.model.store.ModelStore`), so
the table is the same as ``genes: all`` would have written (same float32 values).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.model.store import ModelStore, load_model_store
from ephys2expr.predict.inputs.cells import ID_COLUMN


def constant_genes(store: ModelStore) -> np.ndarray:
    """Row indices of the genes whose prediction is one number for every cell: all
    coefficients zero in every feature set, with the same intercept (the training mean) in
    each, so the full set's intercept is every cell's prediction whatever its set."""
    primary = store.primary
    const = ~primary.coef.to_numpy(dtype=float).any(axis=1)
    for model in list(store.sets.values())[1:]:
        const &= ~model.coef.to_numpy(dtype=float).any(axis=1)
        const &= model.intercept == primary.intercept
    return np.flatnonzero(const)


def _plain(obj):
    """What anndata reads back from ``uns`` as plain Python: arrays -> lists, numpy
    scalars -> numbers, bytes -> str."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return [_plain(v) for v in obj.tolist()]
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, bytes):
        return obj.decode()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def file_metadata(path: str | os.PathLike) -> dict:
    """The ``ephys2expr`` metadata of a predictions file as a dict, the same for both formats
    (``uns["ephys2expr"]`` of a ``.h5ad``, a JSON string in files of older versions; the
    Parquet schema's ``ephys2expr`` JSON)."""
    path = Path(path)
    if path.suffix.lower() == ".h5ad":
        import h5py
        from anndata.io import read_elem

        with h5py.File(path, "r") as f:
            uns = f.get("uns")
            raw = read_elem(uns["ephys2expr"]) if uns is not None and "ephys2expr" in uns else {}
        raw = _plain(raw)
        return json.loads(raw) if isinstance(raw, str) else raw
    import pyarrow.parquet as pq

    raw = (pq.read_schema(path).metadata or {}).get(b"ephys2expr", b"{}")
    return json.loads(raw.decode())


def _resolve_store(path: Path, store) -> ModelStore | None:
    """The store as given (a folder is loaded); one line if it did not make the file."""
    if store is None or isinstance(store, ModelStore):
        loaded = store
    else:
        loaded = load_model_store(store)
    if loaded is None:
        return None
    made_with = file_metadata(path).get("model_provenance", {}).get("inputs_md5")
    if made_with and loaded.provenance.get("inputs_md5") not in (None, made_with):
        where = store if not isinstance(store, ModelStore) else "the model store given"
        raise InputError(
            f"{path}: was predicted by another model store than {where} (its training "
            "tables differ: model_provenance.inputs_md5); give the store that made it"
        )
    return loaded


def _missing_gene_error(path: Path, gene: str) -> InputError:
    """No such gene in the file: a constant one left out (say which store fills it in) or
    none at all."""
    meta = file_metadata(path)
    if meta.get("constant_genes_omitted"):
        store = meta.get("model_store") or "<model store folder>"
        return InputError(
            f"{path}: no gene {gene}: genes whose model is constant are left out of this "
            f"file; read_predictions({str(path)!r}, store={str(store)!r}) fills them in"
        )
    return InputError(f"{path}: no gene {gene}")


LAYERS = ("X", "lower", "upper")
SEP = "|"  # Parquet interval columns: <gene>|lower, <gene>|upper (predict.outputs.write)


def _no_layer(path: Path, layer: str) -> InputError:
    return InputError(
        f"{path}: holds no prediction intervals ({layer!r}); predict with a model store of "
        "schema 6 (retrain: dvc repro train), and for Parquet set predict.parquet_intervals"
    )


def _read_h5ad(path: Path, genes: list[str] | None, cells: list[str] | None, layer: str = "X"):
    import anndata as ad

    adata = ad.read_h5ad(path, backed="r")
    try:
        var = pd.Index(adata.var_names)
        obs = pd.Index(adata.obs_names)
        gi = np.arange(len(var)) if genes is None else var.get_indexer(genes)
        ci = np.arange(len(obs)) if cells is None else obs.get_indexer(cells)
        if (ci < 0).any():
            raise InputError(f"{path}: no cell {cells[int(np.flatnonzero(ci < 0)[0])]}")
        if layer != "X" and f"layers/{layer}" not in adata.file:
            raise _no_layer(path, layer)
        x = adata.file["X" if layer == "X" else f"layers/{layer}"]
        # h5py reads increasing indices; a full axis is read as a slice
        rows = slice(None) if cells is None else np.sort(ci)
        found = gi[gi >= 0]
        cols = slice(None) if genes is None else np.sort(found)
        if cells is not None and genes is not None:
            block = x[rows, :][:, cols]
        else:
            block = x[rows, cols]
        values = pd.DataFrame(
            block.astype(np.float32),  # float16 layers: float32 holds them exactly
            index=obs[rows] if cells is not None else obs,
            columns=var[cols] if genes is not None else var,
        )
        if cells is not None:
            values = values.loc[list(cells)]
        if genes is not None:
            values = values[[g for g in genes if g in values.columns]]
        meta = adata.obs.loc[values.index].copy()
    finally:
        adata.file.close()
    for col in meta.columns:
        if isinstance(meta[col].dtype, pd.CategoricalDtype):
            meta[col] = meta[col].astype(object).where(meta[col].notna(), None)
    return values, meta


def _read_parquet(path: Path, genes: list[str] | None, cells: list[str] | None, layer="X"):
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    # gene columns are float32; metadata and flags are strings, booleans, int64, float64
    meta_cols = [f.name for f in schema if f.type != pa.float32()]
    floats = [f.name for f in schema if f.type == pa.float32()]
    suffixes = tuple(f"{SEP}{b}" for b in LAYERS[1:])
    if layer == "X":
        value_cols = [c for c in floats if not c.endswith(suffixes)]
    else:
        value_cols = [c for c in floats if c.endswith(f"{SEP}{layer}")]
        if not value_cols:
            raise _no_layer(path, layer)
    names = {c.removesuffix(f"{SEP}{layer}"): c for c in value_cols}
    wanted = list(names.values()) if genes is None else [names[g] for g in genes if g in names]
    df = pd.read_parquet(path, columns=meta_cols + wanted)
    df = df.rename(columns={c: g for g, c in names.items()})
    if ID_COLUMN in df.columns:
        df = df.set_index(ID_COLUMN)
    df.index = df.index.astype(str)
    if cells is not None:
        missing = pd.Index(cells).difference(df.index)
        if len(missing):
            raise InputError(f"{path}: no cell {missing[0]}")
        df = df.loc[cells]
    meta_set = set(meta_cols)
    meta = [c for c in df.columns if c in meta_set]
    return df.drop(columns=meta), df[meta]


def read_predictions(
    path: str | os.PathLike,
    genes: list[str] | None = None,
    cells: list[str] | None = None,
    store: ModelStore | str | os.PathLike | None = None,
    layer: str = "X",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predicted log2 expression (cells x genes, float32) and the cells' metadata + flags.

    Parameters
    ----------
    path : path-like
        ``<name>.h5ad`` (read lazily: only the requested genes/cells) or ``<name>.parquet``.
    genes, cells : list of str, optional
        Only these genes / cells (default all), in this order.
    store : ModelStore or path-like, optional
        The model store the predictions were made with, loaded or its folder
        (``"data/models/rds"``): genes left out because their model is constant are filled
        in with its intercept (float32, as the writer computes it); without ``genes``, the
        columns are then every gene of the store, in its order.
    layer : {"X", "lower", "upper"}
        The predictions (``X``, default) or the bounds of their prediction intervals
        (h5ad layers; Parquet columns ``<gene>|lower``/``<gene>|upper``), float16 in a
        ``.h5ad``. Intervals exist only for the genes written: ``store`` fills in constant
        genes for ``X`` only.

    Raises
    ------
    InputError
        A requested cell or gene that is neither in the file nor (with ``store``) constant;
        a store that cannot be loaded or did not make the file (one line each).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    if layer not in LAYERS:
        raise InputError(f"layer {layer!r} is not one of {list(LAYERS)}")
    store = _resolve_store(path, store) if layer == "X" else None
    reader = _read_h5ad if path.suffix.lower() == ".h5ad" else _read_parquet
    values, meta = reader(path, genes, cells, layer)
    if store is None:
        missing = [] if genes is None else [g for g in genes if g not in values.columns]
        if missing:
            raise _missing_gene_error(path, missing[0])
        return values, meta
    order = list(store.primary.genes.index) if genes is None else list(genes)
    want = [g for g in order if g not in values.columns]
    const = constant_genes(store)
    const_names = pd.Index(store.primary.genes.index[const])
    pos = const_names.get_indexer(want)
    if genes is None:
        want = [g for g, p in zip(want, pos, strict=True) if p >= 0]
        pos = pos[pos >= 0]
        keep = set(values.columns) | set(want)
        order = [g for g in order if g in keep]
    elif (pos < 0).any():
        raise InputError(f"{path}: no gene {want[int(np.flatnonzero(pos < 0)[0])]}")
    if want:
        _, offset, _ = store.primary.prediction_terms(const[pos], np.float32)
        filled = np.broadcast_to(offset[:, 0], (len(values), len(want)))
        values = pd.concat([values, pd.DataFrame(filled, index=values.index, columns=want)], axis=1)
    return values[order], meta


# ---------------------------------------------------------------- one cell, as text (stages.show)
# obs columns shown in the header lines, when present
_HEADER = ("species", "cre_line", "layer", "dendrite_type", "feature_set", "features_used")
_FLAGS = ("ood_score", "ood", "extrapolated", "extrapolated_features", "imputed_features")


def _h5ad_extras(path: Path, cell: str) -> tuple[dict[str, pd.Series], pd.DataFrame | None]:
    """``({obsm key: this cell's row}, varm['trusted'])`` of a ``.h5ad`` (empty/None if
    absent)."""
    import anndata as ad
    from anndata.io import read_elem

    adata = ad.read_h5ad(path, backed="r")
    try:
        row = int(pd.Index(adata.obs_names).get_loc(cell))
        f = adata.file._file
        obsm = {}
        for key in f.get("obsm", {}):
            table = read_elem(f[f"obsm/{key}"])
            if isinstance(table, pd.DataFrame):
                obsm[key] = table.iloc[row]
        trusted = read_elem(f["varm/trusted"]) if "varm/trusted" in f else None
        if trusted is not None and not isinstance(trusted, pd.DataFrame):
            trusted = None
        if trusted is not None:
            trusted.index = pd.Index(adata.var_names)
    finally:
        adata.file.close()
    return obsm, trusted


def _value(v) -> str:
    """An obs value as shown: floats to one decimal (``ood_score 76.4``), empty as ``-``."""
    if isinstance(v, float | np.floating):
        return f"{v:.1f}"
    return str(v) if v not in (None, "") else "-"


def _bounds(path: Path, cell: str) -> pd.DataFrame | None:
    try:
        lower, _ = read_predictions(path, cells=[cell], layer="lower")
        upper, _ = read_predictions(path, cells=[cell], layer="upper")
    except InputError:  # no interval layers (old store, Parquet without them)
        return None
    return pd.DataFrame({"lower": lower.iloc[0], "upper": upper.iloc[0]})


def describe_cell(path: str | os.PathLike, cell: str, top: int = 15) -> str:
    """The lines :mod:`stages.show` prints for ``cell`` of the predictions file ``path``.

    Identity (obs ``family``/``type`` with the three most probable classes of obsm
    ``<level>_proba``), the ``top`` genes by predicted log2(x + 1) with their interval and
    whether the gene is trusted for the cell's feature set, and the ``ood_score``.

    Raises
    ------
    InputError
        No such cell (one line naming the file).
    """
    path = Path(path)
    values, meta = read_predictions(path, cells=[str(cell)])
    obs = meta.iloc[0]
    obsm, trusted = _h5ad_extras(path, str(cell)) if path.suffix == ".h5ad" else ({}, None)
    lines = [f"cell {cell} ({path})"]
    lines.append("  " + ", ".join(f"{k} {obs[k]}" for k in _HEADER if k in obs.index))
    lines.append("  " + ", ".join(f"{k} {_value(obs[k])}" for k in _FLAGS if k in obs.index))
    for level in ("family", "type"):
        proba = obsm.get(f"{level}_proba")
        if level in obs.index and proba is not None:
            best = proba.astype(float).sort_values(ascending=False).head(3)
            others = ", ".join(f"{name} {p:.2f}" for name, p in best.items())
            lines.append(f"  {level}: {obs[level]} (most probable: {others})")
    row = values.iloc[0].astype(float).sort_values(ascending=False).head(top)
    bounds = _bounds(path, str(cell))
    feature_set = obs.get("feature_set")
    ok = None
    if trusted is not None and feature_set in trusted.columns:
        ok = trusted[feature_set].astype(bool)
    head = "interval [lower, upper]" if bounds is not None else "no intervals in this file"
    star = ", * = trusted for its feature set" if ok is not None else ""
    lines.append(f"  top {len(row)} genes by predicted log2(x + 1), {head}{star}:")
    width = max(len(str(g)) for g in row.index)
    for gene, value in row.items():
        text = f"    {str(gene):<{width}}  {value:6.2f}"
        if bounds is not None:
            lo, hi = bounds.loc[gene, "lower"], bounds.loc[gene, "upper"]
            text += f"  [{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) else "  [-]"
        if ok is not None and bool(ok.get(gene, False)):
            text += "  *"
        lines.append(text)
    return "\n".join(lines)


__all__ = ["constant_genes", "describe_cell", "file_metadata", "read_predictions"]

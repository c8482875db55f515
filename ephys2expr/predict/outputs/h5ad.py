"""The predictions' primary file: AnnData ``.h5ad`` whose ``X`` is written chunk by chunk.

``X`` (cells x genes, float32) is an HDF5 dataset stored in tiles of
:func:`x_chunk_shape` (by default 1,000 cells x 65 genes, 254 KiB), so that

* writing a block of ``chunk_cells`` cells fills whole tiles (memory bounded by the
  block, whatever the number of cells);
* one gene for all cells reads ``n_cells / 1000`` tiles, one cell for all genes
  ``n_genes / 65`` tiles - both a few tens of MB at 200,000 cells x 14,000 genes,
  without reading anything else (``anndata.read_h5ad(path, backed="r")``,
  ``h5py.File(path)["X"][:, j]``, or :func:`ephys2expr.predict.outputs.read.read_predictions`).

obs/var/uns are written by anndata itself; ``X`` is then created with h5py following the
anndata on-disk spec (dense array, ``encoding-type="array"``, ``encoding-version="0.2.0"``).
No compression: float32 predictions barely compress, and tiles must read fast. With
intervals, layers ``lower`` and ``upper`` are float16 datasets of the same shape and tiles
(:mod:`ephys2expr.predict.intervals`), gzip-compressed (level 1): together about 0.6 x the
bytes of ``X``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.model.store import ModelStore

# Values per HDF5 tile of X (float32: 256 KiB), a size HDF5 reads efficiently.
TILE_VALUES = 1 << 16
# Most cells per tile: bigger chunks of cells are still written whole, a tile at a time.
MAX_TILE_CELLS = 2048


def x_chunk_shape(n_cells: int, n_genes: int, chunk_cells: int) -> tuple[int, int] | None:
    """HDF5 tile of ``X``: cells x genes, about :data:`TILE_VALUES` values; ``None`` if empty.

    Cells per tile: the write block's (``chunk_cells``, at most :data:`MAX_TILE_CELLS`), so
    each block fills whole tiles. HDF5 stores the last, partial tile row at full size, so
    for fewer than 20 tiles of cells the rows are evened out instead (1,019 cells in blocks
    of 1,000 are two tiles of 510, not 2,000 rows on disk); such files are small, and
    writes that cross tiles cost nothing noticeable there.
    """
    if n_cells == 0 or n_genes == 0:
        return None
    rows = max(1, min(n_cells, chunk_cells, MAX_TILE_CELLS))
    if n_cells < 20 * rows:
        rows = -(-n_cells // -(-n_cells // rows))
    return rows, max(1, min(n_genes, TILE_VALUES // rows))


def uns_dict(metadata: dict) -> dict:
    """``metadata`` as ``uns`` holds it: nested dicts of str, numbers, booleans and lists
    (anndata writes a list as an array; :func:`ephys2expr.predict.outputs.read.file_metadata` turns
    it back into a list), keys sorted. Anything else (numpy scalars, paths) goes through JSON
    first, as in the Parquet metadata."""
    return json.loads(json.dumps(metadata, sort_keys=True, default=str))


def h5ad_bytes_bound(n_cells: int, n_genes: int, chunk_cells: int, intervals: bool) -> int:
    """At most how many bytes ``X`` (and the interval layers) add to the ``.h5ad``: whole
    tiles of float32 (HDF5 stores a partial tile at full size), float16 layers counted
    uncompressed plus 1 % (gzip of incompressible data grows slightly), and 1 MiB for HDF5's
    own structures (its chunk index: about 100 bytes per tile)."""
    tiles = x_chunk_shape(n_cells, n_genes, chunk_cells)
    if tiles is None:
        return 1 << 20
    rows, cols = tiles
    values = -(-n_cells // rows) * rows * (-(-n_genes // cols) * cols)
    per_value = 4 + (4 * 1.01 if intervals else 0)
    n_tiles = -(-n_cells // rows) * -(-n_genes // cols) * (3 if intervals else 1)
    return int(values * per_value) + 128 * n_tiles + (1 << 20)


def _table_bytes(*tables: pd.DataFrame) -> int:
    """A generous bound of what anndata writes for these tables (obs, var, obsm, varm)."""
    return 2 * sum(int(t.memory_usage(deep=True).sum()) for t in tables) + (1 << 20)


def _no_room(path, errno_: int, needed: int) -> OSError:
    import os

    return OSError(
        errno_,
        f"{os.strerror(errno_)}; the predictions need up to {needed / 1e6:,.1f} MB",
        os.fspath(path),
    )


def check_space(path: Path, needed: int) -> None:
    """Raise ``OSError`` (``ENOSPC``, ``EFBIG``) now if ``needed`` bytes cannot be written to
    ``path``: the free space of its file system, and the file-size limit (``ulimit -f``)."""
    import errno
    import os
    import resource

    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY and limit < needed:
        raise _no_room(path, errno.EFBIG, needed)
    free = os.statvfs(path)
    if free.f_bavail * free.f_frsize < needed:
        raise _no_room(path, errno.ENOSPC, needed)


def reserve_space(path: Path, extra: int) -> None:
    """Allocate ``extra`` bytes beyond the end of ``path`` before HDF5 writes into it.

    libhdf5 handles a full disk or a file-size limit (``ulimit -f``) badly: the failed
    write is reported, but the file cannot be closed and the process crashes at exit
    (SIGSEGV, exit 139). Reserving the space first turns either into a plain ``OSError``
    (``ENOSPC``, ``EFBIG``) that the caller reports as one line. HDF5 then writes inside
    the reserved space and cuts the file to what it used when it closes it. Where the file
    system cannot reserve (``EOPNOTSUPP``), the free space is compared instead.
    """
    import errno
    import os

    size = os.stat(path).st_size
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, size, extra)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise _no_room(path, exc.errno, extra) from None
        check_space(path, extra)  # cannot reserve here: at least compare the free space
    finally:
        os.close(fd)


# A '/' in an obsm column name is an HDF5 path separator: anndata warns (FutureWarning, one
# per name: 8 per Scala-store predict, types such as 'L2/3 IT_2') and will refuse it. The
# written names have it replaced; obs 'type' keeps the class names as they are.
OBSM_SLASH = "-"


def obsm_columns(names: list[str], key: str = "obsm") -> list[str]:
    """``names`` as written in an obsm table: ``'/'`` -> :data:`OBSM_SLASH`
    (``'L2/3 IT_2'`` -> ``'L2-3 IT_2'``); a name that would then clash is an error."""
    out = [n.replace("/", OBSM_SLASH) for n in names]
    if len(set(out)) != len(out):
        raise InputError(f"{key}: class names {names} clash once '/' is replaced")
    return out


class H5adWriter:
    """Write an AnnData ``.h5ad`` with obs = ``meta``, var = the store's genes table rows
    ``gene_idx`` (the full set's), varm = ``varm`` (genes x feature sets tables:
    :func:`~ephys2expr.predict.quality.set_quality`), uns[``ephys2expr``] = ``file_metadata``
    (a dict), ``X`` filled by :meth:`write` block by block (genes x cells blocks, as
    predicted)."""

    def __init__(
        self,
        path: Path,
        store: ModelStore,
        meta: pd.DataFrame,
        gene_idx: np.ndarray,
        file_metadata: dict | None,
        chunk_cells: int = 1000,
        intervals: bool = False,
        obsm: dict | None = None,
        varm: dict | None = None,
    ) -> None:
        self.varm = varm or {}
        self.path = Path(path)
        self.store, self.meta, self.gene_idx = store, meta, gene_idx
        self.file_metadata = file_metadata or {}
        self.chunk_cells = chunk_cells
        self.intervals = intervals
        self.obsm = obsm or {}

    def __enter__(self) -> H5adWriter:
        import anndata as ad
        import h5py

        obs = self.meta.copy()
        for col in obs.columns:
            if obs[col].dtype == object:
                # anndata writes strings as categoricals; None becomes a missing category.
                obs[col] = pd.Categorical(obs[col])
        obs.index = obs.index.astype(str)
        var = self.store.primary.genes.iloc[self.gene_idx].copy()
        var.index = pd.Index([str(g) for g in var.index], name="gene")
        uns = {"ephys2expr": uns_dict(self.file_metadata)}
        obsm = {}
        for key, table in self.obsm.items():  # DataFrames indexed like obs (str cell ids)
            table = table.copy()
            table.index = obs.index
            table.columns = obsm_columns([str(c) for c in table.columns], key)
            obsm[key] = table
        adata = ad.AnnData(obs=obs, var=var, uns=uns, obsm=obsm)
        for key, table in self.varm.items():  # genes x feature sets (predict.quality)
            adata.varm[key] = table.set_axis(var.index)
        n, g = len(obs), len(var)
        x_bytes = h5ad_bytes_bound(n, g, self.chunk_cells, self.intervals)
        # libhdf5 cannot be trusted with a full disk (see reserve_space): check the room for
        # the whole file first, then reserve X's before writing it
        tables = _table_bytes(obs, var, *obsm.values(), *self.varm.values())
        check_space(self.path, x_bytes + tables)
        adata.write_h5ad(self.path)
        reserve_space(self.path, x_bytes)
        self._file = h5py.File(self.path, "a")
        self._x = self._file.create_dataset(
            "X", shape=(n, g), dtype="float32", chunks=x_chunk_shape(n, g, self.chunk_cells)
        )
        self._x.attrs["encoding-type"] = "array"
        self._x.attrs["encoding-version"] = "0.2.0"
        self._layers = []
        if self.intervals:
            group = self._file.require_group("layers")
            group.attrs["encoding-type"] = "dict"
            group.attrs["encoding-version"] = "0.1.0"
            for name in ("lower", "upper"):
                # float16 (rounded outward by the caller), same tiles as X; gzip 1 with
                # shuffle (any HDF5 reads it, R too): 63 % of the raw bytes on the Allen v10
                # cells (most lower bounds are 0), 0.5 s per 4 million values
                tiles = x_chunk_shape(n, g, self.chunk_cells)
                layer = group.create_dataset(
                    name,
                    shape=(n, g),
                    dtype="float16",
                    chunks=tiles,
                    compression="gzip",
                    compression_opts=1,
                    shuffle=True,
                )
                layer.attrs["encoding-type"] = "array"
                layer.attrs["encoding-version"] = "0.2.0"
                self._layers.append(layer)
        return self

    def write(self, sl: slice, block: np.ndarray, bounds=None) -> None:
        self._x[sl, :] = block.T
        for layer, values in zip(self._layers, bounds or (), strict=False):
            layer[sl, :] = values.T

    def __exit__(self, *exc) -> None:
        # drop the datasets before the file: a file left open by a failed close made
        # libhdf5 crash at exit (exit 139)
        self._x, self._layers = None, []
        self._file.close()


__all__ = [
    "H5adWriter",
    "OBSM_SLASH",
    "check_space",
    "h5ad_bytes_bound",
    "obsm_columns",
    "reserve_space",
    "uns_dict",
    "x_chunk_shape",
]

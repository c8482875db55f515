"""The wide Parquet file of predictions: ``cell_id``, metadata and flags, one float32 column
per gene (and ``<gene>|lower`` / ``<gene>|upper`` with intervals), one row group per chunk
of cells (:func:`~ephys2expr.predict.outputs.write.write_predictions` drives it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ephys2expr.predict.inputs.cells import ID_COLUMN

INTERVAL_LAYERS = ("lower", "upper")
INTERVAL_SEP = "|"


def _meta_schema(meta: pd.DataFrame) -> pa.Schema:
    """Arrow schema of the metadata part (id first); fixed once so every chunk matches."""
    fields = [pa.field(ID_COLUMN, pa.string(), nullable=False)]
    for col in meta.columns:
        dtype = meta[col].dtype
        if pd.api.types.is_bool_dtype(dtype):
            fields.append(pa.field(col, pa.bool_()))
        elif pd.api.types.is_integer_dtype(dtype):
            fields.append(pa.field(col, pa.int64()))
        elif pd.api.types.is_float_dtype(dtype):
            fields.append(pa.field(col, pa.float64()))
        else:
            fields.append(pa.field(col, pa.string()))
    return pa.schema(fields)


def _meta_arrays(meta: pd.DataFrame, schema: pa.Schema) -> list[pa.Array]:
    arrays = [pa.array(meta.index.astype(str).tolist(), type=pa.string())]
    for field in schema:
        if field.name == ID_COLUMN:
            continue
        col = meta[field.name]
        if pa.types.is_string(field.type):
            values = [
                None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                for v in col.tolist()
            ]
            arrays.append(pa.array(values, type=pa.string()))
        else:
            arrays.append(pa.array(col.to_numpy(), type=field.type))
    return arrays


class ParquetWriter:
    """The wide Parquet file: ``cell_id``, metadata and flags, one float32 column per gene."""

    def __init__(
        self,
        path: Path,
        meta: pd.DataFrame,
        genes: list[str],
        file_metadata: dict,
        intervals: bool = False,
    ):
        self.meta_schema = _meta_schema(meta)
        # with intervals: <gene>|lower for every gene, then <gene>|upper (float32)
        bounds = [f"{g}{INTERVAL_SEP}{b}" for b in INTERVAL_LAYERS for g in genes]
        bounds = bounds if intervals else []
        self.intervals = intervals
        schema = pa.schema(
            list(self.meta_schema)
            + [pa.field(g, pa.float32()) for g in genes]
            + [pa.field(c, pa.float32()) for c in bounds]
        )
        self.schema = schema.with_metadata(
            {"ephys2expr": json.dumps(file_metadata, sort_keys=True, default=str)}
        )
        # Statistics and dictionaries only for the metadata: on ~40,000 float columns of
        # near-unique values they cost write time and bytes and buy nothing.
        self.path, self.meta = path, meta
        self.meta_names = [f.name for f in self.meta_schema]
        self.string_meta = [f.name for f in self.meta_schema if pa.types.is_string(f.type)]

    def __enter__(self) -> ParquetWriter:
        self._writer = pq.ParquetWriter(
            self.path,
            self.schema,
            compression="snappy",
            use_dictionary=self.string_meta,
            write_statistics=self.meta_names,
        )
        return self

    def write(self, sl: slice, block: np.ndarray, bounds=None) -> None:
        arrays = _meta_arrays(self.meta.iloc[sl], self.meta_schema) + list(block)
        if self.intervals:
            arrays += [row.astype(np.float32) for b in bounds for row in b]
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))

    def __exit__(self, *exc) -> None:
        self._writer.close()


__all__ = ["INTERVAL_LAYERS", "INTERVAL_SEP", "ParquetWriter"]

"""THE one reader of R data files: ``saveRDS`` (RDS) and ``save`` (RData) alike."""

from __future__ import annotations

import os
import warnings
from typing import Any

from ephys2expr.errors import InputError


def read_r(path: str | os.PathLike, name: str | None = None) -> Any:
    """Read one object from an R data file, whether ``saveRDS`` or ``save`` wrote it.

    The suffix is not trusted (several ``.rda`` files in the raw data are RDS): the
    format is recognised from the file's content.

    Parameters
    ----------
    path : path-like
        The R file.
    name : str, optional
        For an RData workspace, the object to return; by default the workspace must hold
        exactly one (non-hidden) object. An RDS file holds one unnamed object, returned
        whatever ``name`` says.

    Returns
    -------
    object
        The converted object (``DataFrame`` for a data frame, ``xarray.DataArray`` for a
        matrix, ``ndarray``/list for a vector...).

    Raises
    ------
    FileNotFoundError
        ``path`` is not a file.
    InputError
        One line naming ``path``: not an R file, truncated, no object ``name``, or
        several objects and no ``name``.
    """
    import rdata  # imported here: most stages never read R files

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(2, "No such file", path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdata warns when the suffix does not match the format
        try:
            with open(path, "rb") as fh:
                head = fh.read(2)
            converted = rdata.conversion.convert(rdata.parser.parse_file(path))
        except Exception as exc:  # truncated gzip, not an R file, unsupported R type ...
            kind = "gzip" if head == b"\x1f\x8b" else "R data"
            raise InputError(
                f"{path}: unreadable {kind} file ({type(exc).__name__}: {exc})"
            ) from None
    if not isinstance(converted, dict):  # RDS: one unnamed object
        return converted
    # RData: a workspace of named objects; R's hidden ones (.Random.seed ...) never count.
    objects = {k: v for k, v in converted.items() if not k.startswith(".")}
    if name is None:
        if len(objects) != 1:
            raise InputError(f"{path}: holds R objects {sorted(objects)}; say which to read")
        return next(iter(objects.values()))
    if name not in objects:
        raise InputError(f"{path}: no R object '{name}' (has {sorted(objects)})")
    return objects[name]

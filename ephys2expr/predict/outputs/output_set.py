"""All outputs of a predict run as one set: checked before the first write, committed together.

:class:`OutputSet` is a small transaction over files:

* :meth:`OutputSet.plan` checks every output path before anything is written - not a
  directory, its folder creatable and writable (proved by creating the temporary file it
  will be written to), not a device, FIFO or socket, not an input file, not inside the
  model store, no path twice - and
  raises one :class:`~ephys2expr.errors.InputError` line naming the path otherwise.
* Writers write to :meth:`OutputSet.temp` paths (hidden files beside the destination).
* Leaving the ``with`` block normally renames every temporary file into place; any
  exception (including SIGTERM, which the stage turns into ``SystemExit``) removes every
  temporary file and every folder the set created, so a failed run leaves nothing.

Temporary files are :class:`ephys2expr.temps.Temp` files (``.<name>.<random>.tmp``), locked
by this process while it lives: those of a dead run (killed with SIGKILL, in another PID
namespace or container too) are removed by the next run that writes the same destination
(:func:`~ephys2expr.temps.remove_dead_temps`); a live run's never are. An OS error while
writing (a full disk) is one :class:`~ephys2expr.errors.WriteError` line naming the
destination, never the temporary file.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from ephys2expr.errors import InputError, WriteError
from ephys2expr.io import (
    OUTPUT_MANIFEST,
    check_output_file,
    output_manifest,
    prune_folder,
    write_manifest,
)
from ephys2expr.temps import (
    Temp,
    raise_if_stopped,
    remove_dead_temps,
    signals_deferred,
)

log = logging.getLogger("ephys2expr.predict")


def remove_stale_temps(folder: Path, names: Iterable[str] = ()) -> list[Path]:
    """Remove the temporary files of ``names`` that dead runs left in ``folder``."""
    removed = remove_dead_temps(folder, names)
    if removed:
        log.info("removed %d temporary file(s) of killed runs in %s", len(removed), folder)
    return removed


def _resolved(path: str | os.PathLike) -> Path:
    """``path`` with its folder resolved but not its last part: an output that is a symbolic
    link replaces the link itself, never writes through it."""
    path = Path(os.path.abspath(path))
    return Path(os.path.realpath(path.parent)) / path.name


def _set_aside(dst: Path) -> Path | None:
    """A second, hidden name for the file at ``dst`` (a hard link, so ``dst`` itself stays
    as it is) to put it back with if the set cannot be committed whole; None if there is
    no file. Its name is a temporary's of ``dst``: if this run dies, the next one removes
    it (:func:`~ephys2expr.temps.remove_dead_temps`)."""
    if not os.path.lexists(dst):
        return None
    import secrets

    aside = dst.with_name(f".{dst.name}.{secrets.token_hex(4)}-aside.tmp")
    try:
        os.link(dst, aside, follow_symlinks=False)  # an output that is a link stays a link
    except OSError:  # no hard links here (or an immutable file, whose rename fails next)
        return _CANNOT
    return aside


_CANNOT = Path("")  # _set_aside could not keep the earlier file: it cannot be put back


def _remove(path: Path | None) -> None:
    if path is not None and path is not _CANNOT:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _put_back(placed: list[tuple[Path, Path | None]]) -> None:
    """Undo the renames ``placed`` (destination, its earlier file or None), last first; an
    earlier file that could not be kept (:func:`_set_aside`) is named in a warning."""
    for dst, aside in reversed(placed):
        if aside is None:
            _remove(dst)
        elif aside is _CANNOT:
            log.warning("%s: holds this failed run's file: the earlier one could not be kept", dst)
        else:
            os.replace(aside, dst)


class OutputSet:
    """Every file a run writes, checked first and committed together (see module doc).

    Parameters
    ----------
    inputs : iterable of path-like
        Files the run reads: no output may be one of them (same path, symlink or hard link).
    protected_dirs : iterable of path-like
        Folders no output may be inside (the model store).
    """

    def __init__(
        self,
        inputs: Iterable[str | os.PathLike] = (),
        protected_dirs: Iterable[str | os.PathLike] = (),
    ) -> None:
        self.inputs = [Path(p) for p in inputs]
        self.protected = [_resolved(p) for p in protected_dirs]
        self._temps: dict[Path, Temp] = {}  # resolved destination -> temporary file
        self._created_dirs: list[Path] = []
        self._claimed: set[Path] = set()  # asked for with temp(): committed at the end
        self._owned: list[tuple[Path, list[str], list[str]]] = []  # see own_folder

    # ------------------------------------------------------------------ checks
    def _check(self, path: Path) -> Path:
        real = _resolved(path)
        if real in self._temps:
            raise InputError(f"{path}: this output path is given twice")
        check_output_file(path)  # no folder, device, FIFO or socket (nor a link to one)
        for src in self.inputs:
            same = _resolved(src) == real
            if not same and path.exists() and src.exists():
                same = os.path.samefile(src, path)
            if same:
                raise InputError(f"{path}: output would overwrite the input {src}")
        for folder in self.protected:
            if real == folder or folder in real.parents:
                raise InputError(f"{path}: output would be written inside the model store {folder}")
        return real

    def _make_parents(self, path: Path) -> None:
        missing = []
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            missing.append(parent)
            parent = parent.parent
        if not parent.is_dir():
            raise InputError(f"{path}: {parent} is not a folder")
        for folder in reversed(missing):
            folder.mkdir()
            self._created_dirs.append(folder)

    def plan(self, *paths: str | os.PathLike | None) -> None:
        """Check ``paths`` (``None`` skipped) and reserve a temporary file for each.

        Raises
        ------
        InputError
            One line naming the first bad path; temporary files reserved so far are kept
            until the ``with`` block ends (which removes them).
        """
        for p in paths:
            if p is None:
                continue
            path = Path(p)
            real = self._check(path)
            try:
                self._make_parents(path)
                remove_stale_temps(real.parent, [real.name])
                self._temps[real] = Temp.create(real.parent, real.name)
            except OSError as exc:
                raise InputError(f"{path}: cannot write here ({exc.strerror})") from None

    def temp(self, path: str | os.PathLike) -> Path:
        """The temporary file to write for the destination ``path`` (planned if it is not yet).

        Only destinations asked for here are committed: a planned output that the run turns
        out not to produce (a plot without data) is discarded, not left empty.
        """
        real = _resolved(path)
        if real not in self._temps:
            self.plan(path)
        self._claimed.add(real)
        return self._temps[real].path

    def destination(self, path: str | os.PathLike) -> Path:
        """The destination whose temporary file is ``path`` (``path`` itself otherwise)."""
        real = _resolved(path)
        for dst, tmp in self._temps.items():
            if _resolved(tmp.path) == real:
                return dst
        return Path(path)

    @property
    def destinations(self) -> list[Path]:
        """The planned destination paths (resolved), in plan order."""
        return list(self._temps)

    def own_folder(self, folder: str | os.PathLike, names: Iterable[str | os.PathLike]) -> None:
        """Declare ``folder`` a folder this run owns (a DVC folder output) with the files
        ``names``: at commit its manifest (:data:`~ephys2expr.io.OUTPUT_MANIFEST`) lists them,
        and the files an earlier run listed there that this run did not write are removed.
        Nothing else in the folder is ever touched (``--out-dir .`` keeps README.md)."""
        folder = Path(folder)
        names = [Path(n).name for n in names]
        for owned, listed, _ in self._owned:
            if _resolved(owned) == _resolved(folder):  # --out-dir = --plots-dir: one manifest
                listed.extend(names)
                return
        self._owned.append((folder, names, output_manifest(folder)))
        self.plan(folder / OUTPUT_MANIFEST)

    # ------------------------------------------------------------------ commit / abort
    def commit(self) -> None:
        """Rename every temporary file into place (all were written: nothing can fail half-way
        but the renames, which stay in their own folders), then prune the owned folders. A
        rename that fails (an immutable or vanished file) puts back what the ones before it
        replaced: the earlier outputs, or nothing where there was none."""
        for folder, names, _ in self._owned:
            write_manifest(names, self.temp(folder / OUTPUT_MANIFEST))
        raise_if_stopped()
        placed: list[tuple[Path, Path | None]] = []  # destination, its earlier file set aside
        with signals_deferred():  # a SIGTERM now waits: never half a set renamed
            try:
                for dst, tmp in list(self._temps.items()):
                    if dst in self._claimed:
                        aside = _set_aside(dst)
                        try:
                            tmp.replace(dst)
                        except BaseException:
                            _remove(aside)
                            raise
                        placed.append((dst, aside))
                    else:
                        tmp.discard()
                    del self._temps[dst]
            except BaseException:
                _put_back(placed)
                raise
            for _, aside in placed:
                _remove(aside)
        self._created_dirs.clear()
        for folder, names, previous in self._owned:
            removed = prune_folder(folder, names, previous)
            if removed:
                log.info(
                    "removed %d output(s) of an earlier run from %s: %s",
                    len(removed),
                    folder,
                    ", ".join(p.name for p in removed),
                )
        self._owned.clear()

    def abort(self) -> None:
        """Remove every temporary file and every folder this set created (if left empty)."""
        for tmp in self._temps.values():
            tmp.discard()
        self._temps.clear()
        for folder in reversed(self._created_dirs):
            try:
                folder.rmdir()
            except OSError:
                pass
        self._created_dirs.clear()

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            # name the destination, not its temporary file (known until abort)
            if isinstance(exc, WriteError):
                error = WriteError(self.destination(exc.path), exc.reason)
            elif isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
                where = self.destination(exc.filename) if exc.filename else "output"
                error = WriteError(where, exc.strerror or str(exc))
            else:
                error = None
            self.abort()
            if error is not None:
                raise error from None
            return
        try:
            self.commit()
        except OSError as exc:
            # the destination, not its temporary file (known until abort); nothing replaced
            where = self.destination(exc.filename) if exc.filename else "output"
            self.abort()
            raise InputError(
                f"{where}: cannot move output into place ({exc.strerror}); no output of this "
                "run was kept, the earlier ones are as they were"
            ) from None
        except BaseException:  # a signal (also one swallowed earlier) or a failed manifest write
            self.abort()
            raise


__all__ = ["OutputSet", "remove_stale_temps"]

"""Files: reading AnnData (also with the matrix left on disk), checking paths, writing atomically.

Every file sclatent writes (an output AnnData, a figure, a saved model) is written beside its
destination under a temporary name and renamed over it only once complete, so a failed write (disk
full, interrupted) leaves the input and any previous output byte for byte as they were.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import anndata as ad
import scipy.sparse as sp

from ._core.data import row_blocks

#: Suffixes of the AnnData files sclatent reads and writes.
ANNDATA_SUFFIXES = (".h5ad", ".zarr")
#: Suffixes of the figures the plots and ``--plot`` save.
FIGURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".tif", ".tiff", ".eps")


def read_backed(path: str | os.PathLike[str]) -> ad.AnnData:
    """Open an ``.h5ad`` file or a ``.zarr`` store with ``.X`` left on disk, for streamed training.

    Every field but ``.X`` (``obs``, ``var``, ``obsm``, ``layers``, ...) is read into memory; ``.X``
    stays a sparse (or dense) dataset on disk that sclatent's models read in contiguous blocks of rows (see
    ``sl.settings.disk_block_rows`` and ``sl.settings.disk_buffer_blocks``). ``.h5ad`` files are opened
    with ``anndata.read_h5ad(path, backed="r")``.

    Parameters
    ----------
    path
        The ``.h5ad`` file or ``.zarr`` store.

    Returns
    -------
    The AnnData, its ``.X`` on disk.
    """
    path = check_input_file(path, "path", directory=True)  # a .zarr store is a directory
    if path.suffix != ".zarr":
        return ad.read_h5ad(path, backed="r")
    import zarr

    store = zarr.open(path, mode="r")
    # every field but X in memory, as anndata's backed h5ad mode does
    fields = ("obs", "var", "obsm", "varm", "obsp", "varp", "layers", "uns")
    elements = {key: ad.io.read_elem(store[key]) for key in fields if key in store}
    x = store["X"]
    matrix = ad.io.sparse_dataset(x) if isinstance(x, zarr.Group) else x
    return ad.AnnData(X=matrix, **elements)


def read_anndata(path: str | os.PathLike[str], *, backed: bool = False) -> ad.AnnData:
    """Read an ``.h5ad`` file or ``.zarr`` store, into memory or (``backed``) with ``.X`` on disk.

    Parameters
    ----------
    path
        The file or store.
    backed
        Leave the matrix on disk (:func:`read_backed`).

    Returns
    -------
    The AnnData.
    """
    path = check_input_file(path, "input", directory=str(path).rstrip("/").endswith(".zarr"))
    try:
        if backed:
            return read_backed(path)
        return ad.read_zarr(path) if path.suffix == ".zarr" else ad.read_h5ad(path)
    except (OSError, KeyError, ValueError, TypeError) as err:
        msg = (
            f"{os.fspath(path)!r} is not a readable AnnData file (.h5ad or .zarr): "
            f"{type(err).__name__}: {str(err)[:200]}"
        )
        raise ValueError(msg) from err


def write_anndata(adata: ad.AnnData, path: str | os.PathLike[str]) -> None:
    """Write ``adata`` to an ``.h5ad`` file or ``.zarr`` store atomically (see the module docstring).

    Parameters
    ----------
    adata
        The data, in memory or backed. A sparse matrix on disk is copied from its own file (which is
        only read) block by block of rows (:func:`write_rows`), never loaded whole.
    path
        The destination, replaced when it exists.
    """
    if isinstance(adata.X, ad.abc.CSRDataset):
        write_rows(_without_matrix(adata), row_blocks(adata.X), path)
        return
    path = Path(path)
    with atomic_path(path) as temporary:
        if path.suffix == ".zarr":
            adata.write_zarr(temporary)
        else:
            # HDF5 can crash the process (SIGSEGV on closing a file whose write failed, e.g. a full
            # disk); on Linux the write runs in a forked child, so such a failure becomes an error here
            _isolated(lambda: adata.write_h5ad(temporary), f"writing {os.fspath(path)!r}")


def write_rows(
    adata: ad.AnnData, blocks: Iterable[sp.csr_matrix | sp.csr_array], path: str | os.PathLike[str]
) -> None:
    """Write ``adata`` (without ``.X``) and, as its ``.X``, the CSR blocks of rows that ``blocks`` yields.

    The matrix is appended to the ``.h5ad`` file or ``.zarr`` store a block at a time, so no more than
    one block is ever in memory; the whole is written atomically (see the module docstring).

    Parameters
    ----------
    adata
        Every field but the matrix; its ``n_obs`` must be the blocks' rows in all.
    blocks
        Consecutive row blocks, each with ``adata.n_vars`` columns.
    path
        The destination, replaced when it exists.
    """
    path = Path(path)

    def write(temporary: Path) -> None:
        if path.suffix == ".zarr":
            import zarr

            adata.write_zarr(temporary)
            _append_rows(zarr.open_group(temporary, mode="a", use_consolidated=False), blocks, adata.shape)
            zarr.consolidate_metadata(temporary)
        else:
            import h5py

            adata.write_h5ad(temporary)
            with h5py.File(temporary, "a") as file:
                _append_rows(file, blocks, adata.shape)

    with atomic_path(path) as temporary:
        if path.suffix == ".zarr":
            write(temporary)
        else:
            _isolated(lambda: write(temporary), f"writing {os.fspath(path)!r}")


def _append_rows(group: object, blocks: Iterable, shape: tuple[int, int]) -> None:
    """Write the blocks as the CSR matrix ``X`` of an open file or store, a block at a time."""
    matrix = None
    for block in blocks:
        block = sp.csr_matrix(block)
        if matrix is None:
            ad.io.write_elem(group, "X", block)
            matrix = ad.io.sparse_dataset(group["X"])
        else:
            matrix.append(block)
    if matrix is None or tuple(matrix.shape) != tuple(shape):
        got = None if matrix is None else tuple(matrix.shape)
        msg = f"the row blocks make a matrix of shape {got}, but the AnnData has shape {tuple(shape)}."
        raise ValueError(msg)


def _without_matrix(adata: ad.AnnData) -> ad.AnnData:
    """Every field of ``adata`` (also a backed one) but ``.X``, in memory."""
    fields = ("obs", "var", "uns", "obsm", "varm", "obsp", "varp", "layers")
    return ad.AnnData(**{key: getattr(adata, key) for key in fields})


def _as_path(path: str | os.PathLike[str], argument: str) -> Path:
    if not isinstance(path, str | os.PathLike):
        msg = f"{argument}={path!r}: expected a file path (str or os.PathLike)."
        raise TypeError(msg)
    return Path(path)


def check_input_file(path: str | os.PathLike[str], argument: str, *, directory: bool = False) -> Path:
    """``path`` as a Path, checked to exist (and to be a file unless ``directory``)."""
    path = _as_path(path, argument)
    if not path.exists():
        msg = f"{argument} {os.fspath(path)!r} does not exist."
        raise FileNotFoundError(msg)
    if path.is_dir() and not directory:
        msg = f"{argument} {os.fspath(path)!r} is a directory; pass a file."
        raise IsADirectoryError(msg)
    return path


def check_output_file(
    path: str | os.PathLike[str],
    argument: str,
    *,
    suffixes: Sequence[str] = (),
    overwrite: bool = True,
) -> Path:
    """``path`` as a Path, checked before any work: a known suffix, an existing writable directory.

    Parameters
    ----------
    path
        The destination.
    argument
        Its name, for the messages.
    suffixes
        Allowed suffixes (empty: any).
    overwrite
        Whether an existing file may be replaced.

    Returns
    -------
    The path.
    """
    text = os.fspath(path) if isinstance(path, str | os.PathLike) else ""  # as given: "dir/" is a folder
    path = _as_path(path, argument)
    is_store = path.suffix == ".zarr"
    if not is_store and (text.endswith(os.sep) or path.is_dir()):
        example = f"out{suffixes[0]}" if suffixes else "model.pt"
        msg = f"{argument} {text!r} is a directory; pass a file name inside it (e.g. {example})."
        raise IsADirectoryError(msg)
    if suffixes and path.suffix.lower() not in suffixes:
        msg = f"{argument} {text!r} has an unknown suffix; name it *{' or *'.join(suffixes)}."
        raise ValueError(msg)
    parent = path.parent
    if not parent.is_dir():
        msg = f"{argument} {text!r}: the directory {os.fspath(parent)!r} does not exist; create it first."
        raise FileNotFoundError(msg)
    if not os.access(parent, os.W_OK | os.X_OK):
        msg = f"{argument} {text!r}: the directory {os.fspath(parent)!r} is not writable."
        raise PermissionError(msg)
    if path.exists() and not overwrite:
        msg = f"{argument} {text!r} exists; pass overwrite=True to replace it."
        raise FileExistsError(msg)
    return path


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed over ``path`` when the block succeeds.

    On any error (or interruption) the temporary file is removed and ``path`` is left untouched. A
    directory (a ``.zarr`` store) replacing another is swapped in with two renames.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    _remove(temporary)
    try:
        yield temporary
        if temporary.is_dir() and path.exists():
            previous = path.with_name(f".{path.stem}.{os.getpid()}.old{path.suffix}")
            os.replace(path, previous)
            try:
                os.replace(temporary, path)
            except BaseException:
                os.replace(previous, path)
                raise
            _remove(previous)
        else:
            os.replace(temporary, path)
    finally:
        _remove(temporary)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _isolated(write: Callable[[], None], what: str) -> None:
    """Run ``write`` in a forked child process (Linux), raising an OSError if it fails or crashes."""
    if not sys.platform.startswith("linux"):
        write()
        return
    with tempfile.TemporaryFile() as log:  # the child's stderr: HDF5 explains its failures there
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: write, report an error through the pipe, exit without clean-up
            os.close(read_end)
            os.dup2(log.fileno(), 2)
            code = 0
            try:
                write()
            except BaseException as err:
                os.write(write_end, f"{type(err).__name__}: {err}".encode()[:4000])
                code = 1
            finally:
                os._exit(code)
        os.close(write_end)
        try:
            with os.fdopen(read_end, "rb") as pipe:
                report = pipe.read().decode(errors="replace").strip()
            code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        except BaseException:  # interrupted: stop the child before the temporary file is removed
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        log.seek(0)
        hdf5 = re.findall(r"error message = '([^']+)'", log.read().decode(errors="replace"))
    if code != 0:
        reason = report.splitlines()[0][:300] if report else f"the writer stopped (exit status {code})"
        if hdf5:
            reason = f"{reason}; HDF5: {hdf5[-1]}"
        msg = f"{what} failed, nothing was written: {reason}"
        raise OSError(msg)


def versions() -> dict[str, str]:
    """Versions of sclatent and the libraries that shape its results."""
    out = {}
    for name in ("sclatent", "torch", "anndata", "numpy", "scanpy"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out

"""R_NX(K): how well an embedding keeps each cell's K nearest neighbours (Lee & Verleysen 2009).

For cells i and j let r_ij be the rank of j among the neighbours of i in the reference space and
rho_ij its rank in the embedding (1 = nearest, self excluded, ties broken by index). j is in both
K-neighbourhoods of i exactly when m_ij = max(r_ij, rho_ij) <= K, so one histogram of m over all pairs
gives Q_NX(K) for every K at once:

    Q_NX(K) = #{(i, j): m_ij <= K} / (K N),    R_NX(K) = ((N - 1) Q_NX(K) - K) / (N - 1 - K).

Rows are ranked a chunk at a time (memory O(chunk x N), never N x N), on the CPU or the GPU. With a
sample of reference rows the same sums estimate the curve without bias, and per-row terms give the
standard errors of Local and Global SP.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

#: Bytes of working memory per chunk of rows (about 64 bytes per (row, cell) entry) on a CPU; a GPU
#: takes up to :data:`_GPU_CHUNK_SHARE` of its free memory, at most :data:`_GPU_CHUNK_BYTES`, so that
#: its chunks are few (at N = 100,000, 128 MiB would be 5,000 chunks of 20 rows).
_CHUNK_BYTES = 1 << 27
_GPU_CHUNK_BYTES = 1 << 31
_GPU_CHUNK_SHARE = 0.25
_BYTES_PER_ENTRY = 64
#: Rows per chunk at least, so that every thread has work and distance products are not GEMVs.
_MIN_ROWS = 8
#: Up to this dimension distances are summed coordinate by coordinate (exact ties, no cancellation).
_DIRECT_MAX_DIM = 16


@dataclass
class RnxResult:
    """R_NX of one embedding.

    Attributes
    ----------
    rnx
        R_NX(K) for K = 1..N-2 (float64).
    local_sp
        Local structure preservation: mean of R_NX(K) weighted by 1/K (the area under R_NX on log K).
    global_sp
        Global structure preservation: mean of R_NX(K) over K.
    local_sp_se, global_sp_se
        Standard errors of the SP values (0 when every cell is a reference).
    n_ref
        Reference cells the curve is averaged over (N when exact).
    rnx_se
        Standard errors of R_NX(K) at the K of :func:`k_grid` (zeros when every cell is a reference).
    """

    rnx: np.ndarray
    local_sp: float
    global_sp: float
    local_sp_se: float
    global_sp_se: float
    n_ref: int
    rnx_se: np.ndarray


class _Space:
    """One space (reference or embedding) on a device, giving squared distances from rows to all cells."""

    def __init__(self, matrix: np.ndarray | sp.spmatrix | sp.sparray, device: torch.device) -> None:
        self.n, self.dim = matrix.shape
        self.sparse = sp.issparse(matrix)
        # Matrix products give identical points tiny, unequal distances (rounding noise that would
        # break ties); so distances are computed between distinct points only and copied to the
        # duplicates, which then tie exactly and are ranked by index.
        self.inverse = None
        if self.sparse or self.dim > _DIRECT_MAX_DIM:
            distinct, inverse = _distinct_rows(matrix)
            if distinct is not None:
                matrix, self.inverse = distinct, torch.as_tensor(inverse).to(device)
        if self.sparse:
            csr = sp.csr_matrix(matrix, dtype=np.float32)
            self.csr = csr
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
                self.x = torch.sparse_csr_tensor(
                    torch.as_tensor(csr.indptr.astype(np.int64)),
                    torch.as_tensor(csr.indices.astype(np.int64)),
                    torch.as_tensor(csr.data),
                    size=csr.shape,
                    check_invariants=True,
                ).to(device)
            self.sq_norms = torch.as_tensor(np.asarray(csr.multiply(csr).sum(1)).ravel()).to(device)
        else:
            array = np.ascontiguousarray(matrix)
            dtype = torch.float64 if array.dtype == np.float64 else torch.float32
            x = torch.as_tensor(array).to(device=device, dtype=dtype)
            # Shifting by the rounded mean curbs cancellation in float32 and keeps integer data exact.
            self.x = x - x.mean(0).round()
            self.sq_norms = (self.x * self.x).sum(1)
        self.dtype = self.sq_norms.dtype

    def sq_dists(self, rows: torch.Tensor) -> torch.Tensor:
        """``(len(rows), N)`` squared Euclidean distances, non-negative."""
        if self.inverse is None:
            return self._sq_dists(rows)
        points = self.inverse[rows]
        out = self._sq_dists(points)
        out[torch.arange(len(rows), device=out.device), points] = 0.0  # self and duplicates
        return out[:, self.inverse]

    def _sq_dists(self, rows: torch.Tensor) -> torch.Tensor:
        """Squared distances from ``rows`` to every stored point."""
        if self.sparse:
            chunk = torch.as_tensor(self.csr[rows.cpu().numpy()].toarray()).to(self.x.device)
            cross = (self.x @ chunk.T).T
        elif self.dim <= _DIRECT_MAX_DIM:
            a = self.x[rows]
            out = torch.zeros(len(rows), len(self.x), dtype=self.dtype, device=a.device)
            for k in range(self.dim):
                out.add_((a[:, k, None] - self.x[:, k]).square_())
            return out
        else:
            cross = self.x[rows] @ self.x.T
        out = self.sq_norms[rows, None] + self.sq_norms[None, :] - 2 * cross
        return out.clamp_min_(0).abs_()  # abs turns -0.0 into +0.0 for the bit-level keys


def _distinct_rows(
    matrix: np.ndarray | sp.spmatrix | sp.sparray,
) -> tuple[np.ndarray | sp.csr_matrix | None, np.ndarray | None]:
    """The distinct rows of ``matrix`` and each row's index among them; ``(None, None)`` if all differ."""
    if sp.issparse(matrix):
        csr = sp.csr_matrix(matrix, copy=True)
        csr.sum_duplicates()
        csr.eliminate_zeros()
        csr.data += 0.0  # -0.0 and 0.0 are the same coordinate
        keys = [
            (csr.indices[a:b].tobytes(), csr.data[a:b].tobytes())
            for a, b in zip(csr.indptr[:-1], csr.indptr[1:], strict=True)
        ]
        first: dict[tuple[bytes, bytes], int] = {}
        inverse = np.array([first.setdefault(key, len(first)) for key in keys], dtype=np.int64)
        if len(first) == csr.shape[0]:
            return None, None
        _, representatives = np.unique(inverse, return_index=True)
        return csr[representatives], inverse
    array = np.ascontiguousarray(matrix) + 0  # -0.0 -> 0.0
    rows = array.view(np.dtype((np.void, array.dtype.itemsize * array.shape[1]))).ravel()
    _, representatives, inverse = np.unique(rows, return_index=True, return_inverse=True)
    if len(representatives) == len(array):
        return None, None
    return array[representatives], inverse.ravel().astype(np.int64)


def neighbour_order(sq_dists: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Each row's cells sorted by distance, self first, ties broken by index.

    float32 distances are non-negative, so their bit patterns sort like the values: they are packed
    with the column index into one int64 key and sorted in place, which is faster than a stable
    argsort. float64 distances use a stable argsort.
    """
    c, n = sq_dists.shape
    chunk = torch.arange(c, device=sq_dists.device)
    if sq_dists.dtype == torch.float32:
        bits = max(1, (n - 1).bit_length())
        key = sq_dists.view(torch.int32).to(torch.int64)
        key.bitwise_left_shift_(bits).bitwise_or_(torch.arange(n, device=key.device))
        key[chunk, rows] = (-1 << bits) | rows  # negative: self sorts first
        return _sort_rows_(key).bitwise_and_((1 << bits) - 1)
    sq_dists[chunk, rows] = -1.0
    return torch.sort(sq_dists, dim=1, stable=True).indices


def _sort_rows_(key: torch.Tensor) -> torch.Tensor:
    """Sort each row of an int64 tensor in place.

    On the CPU, NumPy's sort (SIMD, no output copy) runs on slices of rows in threads, one per
    PyTorch thread: about 1.3-1.4x faster than ``torch.sort`` on two cores.
    """
    if key.device.type != "cpu":
        key.copy_(torch.sort(key, dim=1).values)
        return key
    array = key.numpy()
    n_threads = min(torch.get_num_threads(), len(array))
    if n_threads <= 1:
        array.sort(axis=1)
        return key
    with ThreadPoolExecutor(n_threads) as pool:
        slices = np.array_split(np.arange(len(array)), n_threads)
        list(pool.map(lambda rows: array[rows[0] : rows[-1] + 1].sort(axis=1), slices))
    return key


def _sp_weights(n: int) -> tuple[list[torch.Tensor], list[float]]:
    """Per-pair weights that turn a row's co-ranks into its Local and Global SP.

    One row's R_NX(K) is a_K C(K) - b_K with C(K) = #{j: m_j <= K}, K = 1..N-2, and each SP value is
    a weighted sum of R_NX(K). Summing w_K C(K) over K equals summing S(m_j) = sum_{K >= m_j} w_K over
    the row's cells, so per-pair weights S (indexed by m; zero for self, m = 0, and for m = N - 1)
    and a constant give the row's SP. Returns S for (Local, Global) and the two constants.
    """
    k = torch.arange(1, n - 1, dtype=torch.float64)
    a = (n - 1) / (k * (n - 1 - k))
    b = k / (n - 1 - k)
    harmonic = float((1 / k).sum())
    suffix_sums = []
    for w in (a / k / harmonic, a / (n - 2)):
        s = torch.zeros(n, dtype=torch.float64)
        s[1 : n - 1] = w.flip(0).cumsum(0).flip(0)
        suffix_sums.append(s.float())  # for standard errors only
    return suffix_sums, [float((b / k).sum()) / harmonic, float(b.sum()) / (n - 2)]


def rnx_curves(
    reference: np.ndarray | sp.spmatrix | sp.sparray,
    embeddings: Sequence[np.ndarray],
    *,
    rows: np.ndarray | None = None,
    device: torch.device | str = "cpu",
    chunk_bytes: int | None = None,
) -> list[RnxResult]:
    """R_NX curves and Local / Global SP of embeddings against one reference space.

    Parameters
    ----------
    reference
        ``(N, D)`` reference coordinates (dense or sparse), e.g. 50 principal components.
    embeddings
        ``(N, d)`` coordinates of the same cells, one array per embedding. float64 arrays are ranked in
        float64, others in float32.
    rows
        Reference cells to rank against all N cells (a uniform sample without replacement gives an
        unbiased estimate); None: every cell, the exact curve.
    device
        Where to compute.
    chunk_bytes
        Working memory per chunk of rows; None: 128 MiB on a CPU, up to 2 GiB on a GPU.

    Returns
    -------
    One :class:`RnxResult` per embedding.
    """
    device = torch.device(device)
    n = reference.shape[0]
    if n < 4:
        msg = f"R_NX needs at least 4 cells; got {n}."
        raise ValueError(msg)
    for i, embedding in enumerate(embeddings):
        if embedding.shape[0] != n:
            msg = (
                f"Embedding {i} has {embedding.shape[0]} cells but the reference has {n}; both must "
                "hold the same cells in the same order."
            )
            raise ValueError(msg)
    exact = rows is None
    rows_all = torch.arange(n) if exact else torch.as_tensor(np.asarray(rows, dtype=np.int64))
    ref = _Space(reference, device)
    spaces = [_Space(e, device) for e in embeddings]
    pair_weights, constants = _sp_weights(n)
    pair_weights = [w.to(device) for w in pair_weights]
    hist = [torch.zeros(n, dtype=torch.int64, device=device) for _ in spaces]
    per_row: list[list[torch.Tensor]] = [[] for _ in spaces]
    # sampled: sums over reference rows of c_i(K) and c_i(K)^2 (c_i: neighbours shared at K) on the grid
    grid_k = torch.as_tensor(k_grid(n), device=device, dtype=torch.int32)
    moments = [torch.zeros(2, len(grid_k), dtype=torch.float64, device=device) for _ in spaces]
    if chunk_bytes is None:
        chunk_bytes = _CHUNK_BYTES
        if device.type == "cuda":
            chunk_bytes = min(_GPU_CHUNK_BYTES, int(_GPU_CHUNK_SHARE * torch.cuda.mem_get_info(device)[0]))
    step = max(_MIN_ROWS, chunk_bytes // (_BYTES_PER_ENTRY * n))
    positions = torch.arange(n, device=device, dtype=torch.int32)
    one = torch.ones(1, dtype=torch.int64, device=device)
    for start in range(0, len(rows_all), step):
        rows = rows_all[start : start + step].to(device)
        by_reference = neighbour_order(ref.sq_dists(rows), rows)
        grid = positions.expand(len(rows), n)
        for space, counts, rows_sp, sums in zip(spaces, hist, per_row, moments, strict=True):
            order = neighbour_order(space.sq_dists(rows), rows)
            rank = torch.empty_like(grid).scatter_(1, order, grid)
            co_rank = torch.maximum(rank.gather(1, by_reference), grid)
            # index_add_ rather than bincount, which reads its input's maximum back on a GPU
            counts.index_add_(0, co_rank.flatten(), one.expand(co_rank.numel()))
            if not exact:
                # the self match has co-rank 0 and is not counted
                shared = torch.searchsorted(
                    co_rank.sort(1).values, grid_k.expand(len(rows), -1).contiguous(), right=True
                )
                shared = (shared - 1).double()
                sums += torch.stack([shared.sum(0), (shared**2).sum(0)])
                co_rank = co_rank.long()  # take() wants int64; it is the fastest gather here
                local = pair_weights[0].take(co_rank).sum(1) - constants[0]
                global_ = pair_weights[1].take(co_rank).sum(1) - constants[1]
                rows_sp.append(torch.stack([local, global_], 1))
    k = np.arange(1, n - 1, dtype=np.float64)
    results = []
    for counts, rows_sp, sums in zip(hist, per_row, moments, strict=True):
        shared = counts.cpu().numpy()[1 : n - 1].cumsum()
        q = shared / (k * len(rows_all))
        rnx = ((n - 1) * q - k) / (n - 1 - k)
        local_se = global_se = 0.0
        rnx_se = np.zeros(len(grid_k))
        if not exact:
            local_se, global_se = (_standard_error(t, n) for t in torch.cat(rows_sp).T)
            rnx_se = _rnx_standard_error(sums.cpu().numpy(), grid_k.cpu().numpy(), n, len(rows_all))
        results.append(
            RnxResult(
                rnx=rnx,
                local_sp=float((rnx / k).sum() / (1 / k).sum()),
                global_sp=float(rnx.mean()),
                local_sp_se=local_se,
                global_sp_se=global_se,
                n_ref=len(rows_all),
                rnx_se=rnx_se,
            )
        )
    return results


def _rnx_standard_error(sums: np.ndarray, k: np.ndarray, n: int, m: int) -> np.ndarray:
    """Standard errors of R_NX(K) from the sums of c_i(K) and c_i(K)^2 over m sampled rows.

    R_NX(K) = ((N-1) Q(K) - K) / (N-1-K) with Q(K) the mean of c_i(K) / K, so its standard error is
    (N-1) / (N-1-K) times that of Q(K), a mean over a sample without replacement from N cells.
    """
    if m < 2:
        return np.full(len(k), np.nan)
    variance = np.maximum(sums[1] - sums[0] ** 2 / m, 0.0) / (m - 1)
    se_q = np.sqrt(variance * (n - m) / ((n - 1) * m)) / k
    return (n - 1) / (n - 1 - k) * se_q


def _standard_error(per_row: torch.Tensor, n: int) -> float:
    """Standard error of a mean over a sample without replacement from n cells."""
    m = per_row.numel()
    if m < 2:
        return float("nan")
    finite_population = (n - m) / (n - 1)
    return float(per_row.double().std() * np.sqrt(finite_population / m))


def k_grid(n: int, max_full: int = 100_000, n_points: int = 2_000) -> np.ndarray:
    """The K values (1-based) a curve is stored at: all of 1..N-2 up to ``max_full``, else log-spaced."""
    if n - 2 <= max_full:
        return np.arange(1, n - 1)
    return np.unique(np.round(np.geomspace(1, n - 2, n_points)).astype(np.int64))

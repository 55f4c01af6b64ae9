"""The implicit design ``A = [D_1 X, ..., D_p X]`` as matrix-free operators (``docs/math.md``, "The convex programs").

Never forms the ``n x p d`` design. With the ``n x p`` 0/1 mask ``M`` (``M[:, i] = diag(D_i)``):

* forward ``A u = sum_i D_i X u_i = rowsum(M * (X U)) = rowsum(X * (M U^T))``;
* adjoint ``A^T r = [X^T D_i r]_i = X^T (M * r) = (X * r[:, None])^T M``.

Both are one GEMM of ``2 n d p`` flops. The second form of each keeps every temporary at
``n x d`` (not ``n x p``), so the only ``n x p`` array touched is the mask itself, read as a
float matrix. Vector output (``U`` of shape ``d x p x c``, ``R`` of shape ``n x c``) applies
the same per output, fused into a single GEMM with ``d c`` columns.

:class:`ImplicitDesign` is the reusable operator of the native solvers: it owns the design
in the compute dtype (float64 or float32), caches the float mask when it fits the memory
budget and otherwise converts it chunk by chunk, works over row chunks so every temporary
is bounded by ``chunk_bytes``, counts its GEMM flops, and refuses (with
:class:`~cvxnn.errors.MemoryBudgetError`, naming the bytes) to allocate what cannot fit.
"""

from __future__ import annotations

import hashlib
import logging
import numbers
import os
from collections import OrderedDict

import numpy as np

from .errors import InvalidParameterError, MemoryBudgetError, NonFiniteError, ShapeError

__all__ = [
    "CHUNK_BYTES",
    "ImplicitDesign",
    "adjoint",
    "available_memory",
    "block_norms",
    "cgroup_memory",
    "check_memory",
    "default_memory_budget",
    "memory_limit",
    "forward",
]

logger = logging.getLogger(__name__)

class _GramCache:
    """The eigendecompositions ``X^T D_i X = Q_i diag(e_i) Q_i^T`` computed so far for one design:
    stacked in ``Q`` (``size x d x d``) and ``e`` (``size x d``), with ``slot[i]`` the row of block
    ``i`` (-1: not computed). A request for ``k`` blocks is then one gather, not ``k`` copies."""

    def __init__(self, p: int, d: int) -> None:
        self.slot = np.full(p, -1, dtype=np.intp)
        self.Q = np.empty((0, d, d))
        self.e = np.empty((0, d))
        self.size = 0

    def add(self, blocks: np.ndarray, Q: np.ndarray, e: np.ndarray) -> None:
        """Store the decompositions of the new (distinct, not yet cached) ``blocks``."""
        need = self.size + blocks.size
        if need > self.Q.shape[0]:  # grow geometrically, at most to one row per block
            cap = min(self.slot.size, max(need, 2 * self.Q.shape[0]))
            Qn, en = np.empty((cap,) + self.Q.shape[1:]), np.empty((cap, self.e.shape[1]))
            Qn[:self.size], en[:self.size] = self.Q[:self.size], self.e[:self.size]
            self.Q, self.e = Qn, en
        self.Q[self.size:need], self.e[self.size:need] = Q, e
        self.slot[blocks] = np.arange(self.size, need)
        self.size = need


#: Eigendecompositions of ``X^T D_i X`` (:meth:`ImplicitDesign.gram_eigh`), per design: a design
#: fingerprint -> :class:`_GramCache`. The solves of a regularisation path (and of a CV fold's
#: path) build a new operator per ``lam`` on the same data, so the cache is shared by fingerprint
#: and holds the last GRAM_CACHE_DESIGNS designs.
_GRAM_CACHE: OrderedDict[tuple, _GramCache] = OrderedDict()
GRAM_CACHE_DESIGNS = 4

#: Bytes of float temporaries allowed per row chunk (``rows x max(p, d c)`` entries).
CHUNK_BYTES = 32 * 2**20


def _rows_per_chunk(n: int, width: int, itemsize: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    return max(1, min(n, chunk_bytes // max(1, width * itemsize)))


def _count(value, name: str, minimum: int = 1) -> int:
    """An integer parameter ``>= minimum`` (bools and floats refused), or
    :class:`~cvxnn.errors.InvalidParameterError`. (``cvxnn._validation`` imports this module for
    its memory budget, so its checker cannot be imported here.)"""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)) \
            or int(value) < minimum:
        raise InvalidParameterError(f"{name} must be an integer >= {minimum}, got {value!r:.40}.")
    return int(value)


def _check_design(Xa: np.ndarray, mask: np.ndarray) -> None:
    """Raise :class:`~cvxnn.errors.ShapeError` unless ``Xa`` and ``mask`` are 2-D with the same rows
    (a longer mask or residual was silently cut to the rows of ``Xa``)."""
    if Xa.ndim != 2 or mask.ndim != 2 or Xa.shape[0] != mask.shape[0]:
        raise ShapeError(f"Xa {Xa.shape} and mask {mask.shape} must be 2-D with the same rows.")


def _check_finite_design(Xa: np.ndarray, original: np.ndarray, name: str = "Xa") -> None:
    """Raise :class:`~cvxnn.errors.NonFiniteError` naming the first NaN / inf entry of the design.

    ``Xa`` is the design in the compute dtype, ``original`` the array it was converted from (a
    finite ``float64`` entry beyond the ``float32`` range becomes inf in a ``float32`` design).
    One pass without temporaries: the sum (NaN and inf propagate into it); only when it is not
    finite, which a sum of large finite entries can also be, the minimum and the maximum, and the
    position of the first bad entry only when one of them is not finite. (``cvxnn._validation``
    imports this module, so its ``_check_finite`` cannot be imported here.)
    """
    if Xa.size == 0:
        return
    with np.errstate(all="ignore"):
        if np.isfinite(Xa.sum()):
            return
    lo, hi = float(Xa.min()), float(Xa.max())
    if np.isfinite(lo) and np.isfinite(hi):
        return
    r, j = (int(i) for i in np.argwhere(~np.isfinite(Xa))[0])
    value = original[r, j]
    if np.isfinite(value):
        raise NonFiniteError(
            f"{name} has entries beyond the range of {Xa.dtype} (first at row {r}, column {j}, value {value}); "
            "rescale the data or use dtype=numpy.float64."
        )
    raise NonFiniteError(
        f"{name} contains NaN or infinity (first at row {r}, column {j}, value {value}); "
        "remove or impute those entries."
    )


def forward(Xa: np.ndarray, mask: np.ndarray, U: np.ndarray) -> np.ndarray:
    """``sum_i D_i X_a U_i``: ``(n,)`` for ``U`` of shape ``(d, p)``, ``(n, c)`` for ``(d, p, c)``.

    Computed as ``rowsum(X_a * (M U^T))`` in row chunks (temporaries of ``rows x d c``
    plus the chunk of the float mask).
    """
    _check_design(Xa, mask)
    dtype = np.result_type(Xa, U, np.float32)
    scalar = U.ndim == 2
    if U.ndim not in (2, 3) or U.shape[:2] != (Xa.shape[1], mask.shape[1]):
        raise ShapeError(f"U must have shape (d_a, p) or (d_a, p, c) = ({Xa.shape[1]}, {mask.shape[1]}[, c]), "
                         f"got {U.shape}.")
    U3 = U[:, :, None] if scalar else U
    d, p, c = U3.shape
    n = Xa.shape[0]
    Ut = np.ascontiguousarray(np.transpose(U3, (1, 0, 2)).reshape(p, d * c), dtype=dtype)
    out = np.empty((n, c), dtype=dtype)
    rows = _rows_per_chunk(n, max(p, d * c), np.dtype(dtype).itemsize)
    for s in range(0, n, rows):
        e = min(n, s + rows)
        Mf = np.asarray(mask[s:e], dtype=dtype)
        Z = (Mf @ Ut).reshape(e - s, d, c)
        np.einsum("rd,rdc->rc", np.asarray(Xa[s:e], dtype=dtype), Z, out=out[s:e])
    return out[:, 0] if scalar else out


def adjoint(Xa: np.ndarray, mask: np.ndarray, R: np.ndarray) -> np.ndarray:
    """``[X_a^T D_i r]_i``: ``(d, p)`` for ``r`` of shape ``(n,)``, ``(d, p, c)`` for ``(n, c)``.

    Computed as ``(X_a * r)^T M`` in row chunks (temporaries of ``rows x d c``).
    """
    _check_design(Xa, mask)
    dtype = np.result_type(Xa, R, np.float32)
    scalar = R.ndim == 1
    if R.ndim not in (1, 2) or R.shape[0] != Xa.shape[0]:
        raise ShapeError(f"R must have shape (n,) or (n, c) with n = {Xa.shape[0]}, got {R.shape}.")
    R2 = R[:, None] if scalar else R
    n, d = Xa.shape
    c = R2.shape[1]
    p = mask.shape[1]
    acc = np.zeros((d * c, p), dtype=dtype)
    rows = _rows_per_chunk(n, max(p, d * c), np.dtype(dtype).itemsize)
    for s in range(0, n, rows):
        e = min(n, s + rows)
        Mf = np.asarray(mask[s:e], dtype=dtype)
        XR = (np.asarray(Xa[s:e], dtype=dtype)[:, :, None] * R2[s:e, None, :]).reshape(e - s, d * c)
        acc += XR.T @ Mf
    G = np.ascontiguousarray(acc.reshape(d, c, p).transpose(0, 2, 1))
    return G[:, :, 0] if scalar else G


def block_norms(U: np.ndarray) -> np.ndarray:
    """Group norms of the blocks ``U_i``: ``||u_i||_2`` (``U`` is ``d x p``) or the nuclear
    norm ``||U_i||_*`` (``U`` is ``d x p x c``). Returns ``(p,)``."""
    if U.ndim == 2:
        return np.linalg.norm(U, axis=0)
    return np.linalg.svd(np.transpose(U, (1, 0, 2)), compute_uv=False).sum(axis=-1)


#: cgroup files holding the memory limit of this process's container (v2, then v1).
_CGROUP_LIMIT_FILES = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def cgroup_memory_limit() -> int | None:
    """The memory limit of the container (cgroup v2 or v1) in bytes, or None when there is none."""
    for path in _CGROUP_LIMIT_FILES:
        try:
            with open(path) as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < 2**62:  # "max" or a huge v1 value: no limit
            return int(text)
    return None


#: Values of a cgroup v1 ``memory.limit_in_bytes`` at or above this mean "no limit".
_CGROUP_UNLIMITED = 2**60


def _read_int(path: str) -> int | None:
    """An integer read from a (cgroup / proc) file; None when absent, unreadable or ``max``."""
    try:
        with open(path, encoding="ascii") as fh:
            text = fh.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text or text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if 0 < value < _CGROUP_UNLIMITED else None


def _cgroup_dirs(version: int) -> list[str]:
    """The cgroup folders of this process (v2, or v1's memory controller), from its own
    folder up to the mount point."""
    try:
        with open("/proc/self/cgroup", encoding="ascii") as fh:
            lines = fh.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    root = "/sys/fs/cgroup" if version == 2 else "/sys/fs/cgroup/memory"
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        if (version == 2 and fields[0] == "0" and fields[1] == "") or (
            version == 1 and "memory" in fields[1].split(",")
        ):
            rel = fields[2].strip().strip("/")
            parts = rel.split("/") if rel else []
            return [root + "".join("/" + q for q in parts[:k]) for k in range(len(parts), -1, -1)]
    return []


def cgroup_memory() -> tuple[int | None, int | None]:
    """The cgroup memory limit of this process and the memory the cgroup uses now (bytes).

    Reads cgroup v2 (``memory.max`` / ``memory.current`` of this process's cgroup and its
    ancestors; the smallest limit wins) and falls back to cgroup v1
    (``memory/memory.limit_in_bytes`` / ``memory.usage_in_bytes``).

    Returns
    -------
    (limit, usage) : tuple of int or None
        None where there is no limit or the platform does not report it.
    """
    best: tuple[int | None, int | None] = (None, None)
    files = {2: ("memory.max", "memory.current"), 1: ("memory.limit_in_bytes", "memory.usage_in_bytes")}
    for version in (2, 1):
        limit_file, usage_file = files[version]
        folders = _cgroup_dirs(version)
        if version == 1 and "/sys/fs/cgroup/memory" not in folders:
            folders.append("/sys/fs/cgroup/memory")  # a container sees its own cgroup there
        for folder in folders:
            limit = _read_int(f"{folder}/{limit_file}")
            if limit is not None and (best[0] is None or limit < best[0]):
                best = (limit, _read_int(f"{folder}/{usage_file}"))
        if best[0] is not None:
            return best
    return best


def _physical_memory() -> int | None:
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError) as exc:  # pragma: no cover - platform dependent
        logger.debug("physical memory not reported (%s)", exc)
        return None
    return int(total) if total > 0 else None


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None
    return None


def available_memory() -> int | None:
    """Bytes this process can still allocate: the smaller of the system's available memory
    (``MemAvailable``) and what the cgroup limit leaves (limit minus usage).

    Returns None where the platform reports neither.
    """
    candidates = []
    avail = _meminfo_available()
    if avail is not None:
        candidates.append(avail)
    limit, usage = cgroup_memory()
    if limit is not None:
        candidates.append(max(0, limit - (usage or 0)))
    return min(candidates) if candidates else None


def memory_limit() -> int | None:
    """Total memory this process may use: the smaller of the physical memory and the cgroup
    limit (bytes); None where neither is reported."""
    candidates = [v for v in (_physical_memory(), cgroup_memory()[0]) if v is not None]
    return min(candidates) if candidates else None


def default_memory_budget() -> int:
    """Default memory budget of cvxnn's allocations (bytes).

    Half of the memory this process may use (the smaller of the physical memory and the
    cgroup limit, see :func:`memory_limit`), and never more than what is available now
    (:func:`available_memory`, which accounts for other processes and the cgroup's usage).
    Falls back to 4 GiB where the platform reports none of these.

    Every budget check sums the allocations of one operation (inputs copies, outputs and
    temporaries) and compares the sum with this budget before allocating.
    """
    total = memory_limit()
    avail = available_memory()
    if total is None and avail is None:  # pragma: no cover - platform dependent
        logger.debug("memory size not reported; the memory budget falls back to 4 GiB")
        return 4 * 2**30
    budget = total // 2 if total is not None else avail
    if avail is not None:
        budget = min(budget, avail)
    return int(budget)


def check_memory(parts: dict[str, int], *, what: str, budget: int | None = None, hint: str = "") -> int:
    """Refuse an operation whose allocations, summed, exceed the memory budget.

    Parameters
    ----------
    parts : dict of str to int
        Bytes of each allocation the operation holds at its peak, by name.
    what : str
        The operation, for the message (e.g. ``"sample_patterns"``).
    budget : int, optional
        Bytes allowed (default :func:`default_memory_budget`).
    hint : str
        What to do instead, appended to the message.

    Returns
    -------
    int
        The total bytes needed.

    Raises
    ------
    MemoryBudgetError
        Naming the total, each part and the budget.
    """
    need = int(sum(int(v) for v in parts.values()))
    budget = default_memory_budget() if budget is None else int(budget)
    if need > budget:
        detail = ", ".join(f"{name} {int(v):,}" for name, v in parts.items())
        # the caller may pass the default on, so the message names both sources
        raise MemoryBudgetError(
            f"{what} needs about {need:,} bytes ({detail}) but the memory budget is {budget:,} "
            "bytes (memory_budget where given; by default half the memory of this machine or "
            "container, at most what is available)." + (f" {hint}" if hint else "")
        )
    return need


class ImplicitDesign:
    """The implicit design ``A = [D_1 X_a, ..., D_p X_a]`` in a compute dtype, row-chunked.

    Parameters
    ----------
    Xa : ndarray of shape (n, d_a)
        The design (data with the bias column when the patterns use one).
    mask : ndarray of bool, shape (n, p)
        ``M[:, i] = diag(D_i)``.
    n_outputs : int
        ``c``: the operators act on blocks of shape ``(d_a, p, c)`` and residuals ``(n, c)``.
    dtype : {numpy.float64, numpy.float32}
        Compute dtype of the GEMMs.
    memory_budget : int, optional
        Bytes this operator and its solver may hold (default :func:`default_memory_budget`).
        The float mask (``n p`` entries) is cached when it fits in the budget, otherwise
        converted chunk by chunk (slower, bounded).
    chunk_bytes : int
        Bytes of the per-chunk temporaries (``rows x max(p, d_a c)`` entries).
    reserve_bytes : int
        Bytes the caller will allocate besides this operator (iterates, multipliers);
        counted against ``memory_budget``.
    cache_mask : bool, optional
        Force (True) or forbid (False) holding the whole float mask; default: when it fits.

    Raises
    ------
    MemoryBudgetError
        When the design copy, the per-chunk temporaries and ``reserve_bytes`` exceed the budget.
    NonFiniteError
        ``Xa`` holds NaN or infinity (or, with ``dtype=numpy.float32``, values beyond its range).

    Attributes
    ----------
    flops : float
        GEMM flops spent by :meth:`forward` and :meth:`adjoint` so far (``2 n d p c`` each).
    n_forward, n_adjoint : int
        Number of calls.
    """

    def __init__(
        self,
        Xa: np.ndarray,
        mask: np.ndarray,
        *,
        n_outputs: int = 1,
        dtype=np.float64,
        memory_budget: int | None = None,
        chunk_bytes: int = CHUNK_BYTES,
        reserve_bytes: int = 0,
        cache_mask: bool | None = None,
    ) -> None:
        try:
            dt = np.dtype(dtype)
        except TypeError:  # np.dtype("junk") raised a bare TypeError
            dt = None
        if dt is None or dt not in (np.dtype(np.float64), np.dtype(np.float32)):  # dtype(None) == float64
            raise InvalidParameterError(f"dtype must be numpy.float64 or numpy.float32, got {dtype!r:.40}.")
        dtype = dt
        Xa, mask = np.asarray(Xa), np.asarray(mask)
        _check_design(Xa, mask)
        if mask.dtype != bool and not (mask.dtype.kind in "iuf" and np.all((mask == 0) | (mask == 1))):
            # a weighted "mask" made forward/adjoint another operator than gram_eigh (which reads mask > 0)
            raise InvalidParameterError(f"mask must be boolean (or hold only 0 and 1), got dtype {mask.dtype}.")
        self.dtype = dtype
        self.n, self.d = Xa.shape
        self.p = mask.shape[1]
        self.c = _count(n_outputs, "n_outputs")
        chunk_bytes = _count(chunk_bytes, "chunk_bytes")
        reserve_bytes = _count(reserve_bytes, "reserve_bytes", minimum=0)
        itemsize = dtype.itemsize
        budget = default_memory_budget() if memory_budget is None else int(memory_budget)
        self.memory_budget = budget
        width = max(self.p, self.d * self.c)
        # np.ascontiguousarray copies a Fortran-ordered or strided design too, not only another dtype
        copies = Xa.dtype != dtype or not Xa.flags.c_contiguous
        design_need = self.n * self.d * itemsize if copies else 0
        # chunks shrink to what the budget leaves (three temporaries of rows x width entries)
        room = budget - design_need - reserve_bytes
        rows_bytes = max(min(chunk_bytes, room // 3), width * itemsize)
        self.rows = _rows_per_chunk(self.n, width, itemsize, rows_bytes)
        chunk_need = 3 * self.rows * width * itemsize
        need = design_need + chunk_need + reserve_bytes
        if need > budget:
            halve = "use dtype=numpy.float32, " if itemsize > 4 else ""
            raise MemoryBudgetError(
                f"the native solver needs about {need:,} bytes (design copy {design_need:,}, "
                f"chunk temporaries {chunk_need:,}, iterates {reserve_bytes:,}) but the "
                f"memory budget is {budget:,} bytes; raise memory_budget, {halve}"
                "fewer patterns, or subsample the data."
            )
        mask_bytes = self.n * self.p * itemsize
        fits = need + mask_bytes <= budget
        if cache_mask is None:
            self.mask_cached = fits
        elif cache_mask and not fits:
            raise MemoryBudgetError(
                f"caching the float mask needs {mask_bytes:,} more bytes ({need + mask_bytes:,} in "
                f"all) than the memory budget of {budget:,} bytes allows; pass cache_mask=None."
            )
        else:
            self.mask_cached = bool(cache_mask)
        if self.mask_cached:
            # the float mask is held whole; temporaries are only rows x d c (bytes_held counted
            # rows x max(p, d c) here, 2x to 3x what is allocated)
            self.rows = _rows_per_chunk(self.n, self.d * self.c, itemsize, rows_bytes)
            chunk_need = 3 * self.rows * self.d * self.c * itemsize
        with np.errstate(over="ignore"):  # a float64 entry beyond the float32 range: refused just below
            self.Xa = np.ascontiguousarray(Xa, dtype=dtype)
        _check_finite_design(self.Xa, Xa)
        self.mask = mask
        self._Mf = mask.astype(dtype) if self.mask_cached else None
        self.bytes_held = design_need + chunk_need + (mask_bytes if self.mask_cached else 0)
        self.flops = 0.0
        self.n_forward = 0
        self.n_adjoint = 0
        # the eigendecompositions of X^T D_i X (gram_eigh; shared with operators on the same data)
        self._gram_eigh: _GramCache | None = None
        logger.debug(
            "ImplicitDesign n=%d d=%d p=%d c=%d dtype=%s rows/chunk=%d mask cached=%s (%d bytes held)",
            self.n, self.d, self.p, self.c, dtype, self.rows, self.mask_cached, self.bytes_held,
        )

    # ----------------------------------------------------------------- chunks
    def _chunks(self):
        for s in range(0, self.n, self.rows):
            e = min(self.n, s + self.rows)
            Mf = self._Mf[s:e] if self._Mf is not None else self.mask[s:e].astype(self.dtype)
            yield s, e, Mf

    @property
    def gemm_flops(self) -> float:
        """Flops of one forward or one adjoint product: ``2 n d p c``."""
        return 2.0 * self.n * self.d * self.p * self.c

    # -------------------------------------------------------------- products
    def forward(self, U: np.ndarray) -> np.ndarray:
        """``A U = sum_i D_i X_a U_i`` for ``U`` of shape ``(d_a, p, c)``; returns ``(n, c)``."""
        d, p, c = self.d, self.p, self.c
        U = np.asarray(U)
        if U.shape != (d, p, c) and not (c == 1 and U.shape == (d, p)):
            # a (p, d, c) array of the same size was silently read in the wrong layout
            raise ShapeError(f"U must have shape (d_a, p, c) = {(d, p, c)}, got {U.shape}.")
        U = U.reshape(d, p, c)
        Ut = np.ascontiguousarray(np.transpose(U, (1, 0, 2)).reshape(p, d * c), dtype=self.dtype)
        out = np.empty((self.n, c), dtype=self.dtype)
        for s, e, Mf in self._chunks():
            Z = (Mf @ Ut).reshape(e - s, d, c)
            if c == 1:
                np.einsum("rd,rd->r", self.Xa[s:e], Z[:, :, 0], out=out[s:e, 0])
            else:
                np.einsum("rd,rdc->rc", self.Xa[s:e], Z, out=out[s:e])
        self.flops += self.gemm_flops
        self.n_forward += 1
        return out

    def adjoint(self, R: np.ndarray) -> np.ndarray:
        """``A^T R = [X_a^T D_i R]_i`` for ``R`` of shape ``(n, c)``; returns ``(d_a, p, c)``."""
        d, p, c = self.d, self.p, self.c
        R = np.asarray(R, dtype=self.dtype)
        if R.shape != (self.n, c) and not (c == 1 and R.shape == (self.n,)):
            # an (n,) residual was broadcast against X_a (wrong when n == d_a), longer ones were cut
            raise ShapeError(f"R must have shape (n, c) = {(self.n, c)}, got {R.shape}.")
        R = R.reshape(self.n, c)
        acc = None
        for s, e, Mf in self._chunks():
            if c == 1:
                part = (self.Xa[s:e] * R[s:e]).T @ Mf
            else:
                # the products x_nk r_nj laid out (d, c, rows): the broadcast runs along the rows,
                # contiguous, 1.3x to 2x faster than along c (c is small) at c = 3 to 10
                XRt = np.ascontiguousarray(self.Xa[s:e].T)[:, None, :] * np.ascontiguousarray(R[s:e].T)[None, :, :]
                part = XRt.reshape(d * c, e - s) @ Mf
            if acc is None:
                acc = part
            else:
                acc += part
        self.flops += self.gemm_flops
        self.n_adjoint += 1
        return np.ascontiguousarray(acc.reshape(d, c, p).transpose(0, 2, 1))

    def gram_eigh(self, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Eigendecompositions ``X^T D_i X = Q_i diag(e_i) Q_i^T`` of the blocks ``i`` (float64).

        Each is computed once (``2 n_i d^2`` flops for the ``n_i`` rows of pattern ``i``, plus an
        ``eigh``) and cached, for this operator and for any other on the same design and mask (a
        fingerprint of both; the last ``GRAM_CACHE_DESIGNS`` designs are kept), so the solves of
        a path share them. :attr:`gram_cache_bytes` is what this design's cache holds.

        Parameters
        ----------
        blocks : array of int, shape (k,)
            Block indices (repeats allowed: each block is decomposed once).

        Returns
        -------
        Q : ndarray of shape (k, d, d)
        e : ndarray of shape (k, d)
            Eigenvalues (clipped at 0), ascending.

        Raises
        ------
        ShapeError
            ``blocks`` is not a 1-D integer array.
        InvalidParameterError
            An index is outside ``[0, p)``.
        """
        if self._gram_eigh is None:
            key = (self.Xa.shape, self.mask.shape, hashlib.blake2b(np.ascontiguousarray(self.Xa).data).hexdigest(),
                   hashlib.blake2b(np.ascontiguousarray(self.mask).data).hexdigest())
            cache = _GRAM_CACHE.pop(key, None)
            self._gram_eigh = _GramCache(self.p, self.d) if cache is None else cache
            _GRAM_CACHE[key] = self._gram_eigh
            while len(_GRAM_CACHE) > GRAM_CACHE_DESIGNS:
                _GRAM_CACHE.popitem(last=False)
        blocks = np.asarray(blocks)
        if blocks.ndim != 1 or (blocks.size and not np.issubdtype(blocks.dtype, np.integer)):
            raise ShapeError(f"blocks must be a 1-D array of integers, got {blocks.dtype} of shape {blocks.shape}.")
        blocks = blocks.astype(np.intp)
        if blocks.size and (blocks.min() < 0 or blocks.max() >= self.p):
            raise InvalidParameterError(f"block indices must lie in [0, {self.p}), got {blocks.min()}..{blocks.max()}.")
        cache = self._gram_eigh
        missing = np.unique(blocks[cache.slot[blocks] < 0])
        if missing.size:
            grams = np.empty((missing.size, self.d, self.d))
            for k, i in enumerate(missing.tolist()):
                Xi = np.asarray(self.Xa[self.mask[:, i] > 0], dtype=np.float64)
                grams[k] = Xi.T @ Xi
                self.flops += 2.0 * Xi.shape[0] * self.d * self.d
            ev, vec = np.linalg.eigh(grams)  # one batched call
            cache.add(missing, vec, np.maximum(ev, 0.0))
        rows = cache.slot[blocks]
        return cache.Q[rows], cache.e[rows]

    @property
    def gram_cache_bytes(self) -> int:
        """Bytes held by the cache of :meth:`gram_eigh`."""
        return 0 if self._gram_eigh is None else self._gram_eigh.Q.shape[0] * (self.d + 1) * self.d * 8

    def spectral_norm_sq(self, n_iter: int = 6, seed: int = 0) -> float:
        """Estimate ``||A||_2^2`` by power iteration on ``A^T A`` (a slight underestimate)."""
        return power_iteration_norm_sq(self, n_iter=n_iter, seed=seed)


def power_iteration_norm_sq(op, n_iter: int = 6, seed: int = 0) -> float:
    """Estimate ``||A||_2^2`` of a linear operator on ``(d, p, c)`` blocks (``op.forward`` /
    ``op.adjoint``, attributes ``d, p, c, dtype``) by power iteration on ``A^T A``: a slight
    underestimate (the R-FISTA line search corrects the step)."""
    n_iter = _count(n_iter, "n_iter")  # n_iter=0 returned 0.0, an infinite step 1 / L
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((op.d, op.p, op.c)).astype(op.dtype)
    v /= np.linalg.norm(v)
    est = 0.0
    for _ in range(n_iter):
        w = op.adjoint(op.forward(v))
        nrm = float(np.linalg.norm(w))
        if not np.isfinite(nrm) or nrm == 0.0:
            return max(est, 0.0)
        est, v = nrm, w / nrm
    return est

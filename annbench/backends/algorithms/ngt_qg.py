"""NGT's QG (quantized graph): an ONNG whose objects NGT quantizes (QBG's optimiser, 4-bit codes
per subvector) and whose edges it realigns so each node's neighbours' codes sit together. The
search walks the graph on quantized distances, then re-ranks the best candidates exactly.

The ``ngt`` wheel's Python module can search a QG but not build one; NGT's C API can
(``ngtqg_quantize``, what ``qbg create-qg`` + ``build-qg`` run), and the wheel ships that
library as ``ngt.libs/libngt-*.so``, so it is called through ctypes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os

import ngtpy
import numpy as np

from annbench.backends.adapter import Adapter, at_least

from ._ngt import NgtGraph, check_epsilon


class _QuantizationParameters(ctypes.Structure):
    _fields_ = [("dimension_of_subvector", ctypes.c_float), ("max_number_of_edges", ctypes.c_size_t)]


def _ngt_c_library() -> ctypes.CDLL:
    wheel_libs = sorted(glob.glob(os.path.join(os.path.dirname(ngtpy.__file__), "ngt.libs", "libngt*.so*")))
    path = wheel_libs[0] if wheel_libs else ctypes.util.find_library("ngt")
    lib = ctypes.CDLL(path) if path else None
    if lib is None or not hasattr(lib, "ngtqg_quantize"):
        raise ImportError(f"NGT's C library with ngtqg_quantize not found (looked for {path or 'libngt'}); "
                          "the ngt==2.3.12 wheel ships it")
    lib.ngt_create_error_object.restype = ctypes.c_void_p
    lib.ngt_destroy_error_object.argtypes = [ctypes.c_void_p]
    lib.ngt_get_error_string.argtypes, lib.ngt_get_error_string.restype = [ctypes.c_void_p], ctypes.c_char_p
    lib.ngtqg_quantize.argtypes = [ctypes.c_char_p, _QuantizationParameters, ctypes.c_void_p]
    lib.ngtqg_quantize.restype = ctypes.c_bool
    return lib


_LIB = _ngt_c_library()


class NgtQg(NgtGraph):
    """An ONNG quantized into NGT's quantized graph (``ngtqg_quantize``, ``ngtpy.QuantizedIndex``).

    Parameters:
        max_number_of_edges: edges per node kept in the quantized graph (multiples of 16 fill NGT's SIMD
            blocks; recall and memory vs speed)
        dimension_of_subvector: dimensions per 4-bit code, 0 = NGT's choice (1, or 2 above 400-d), otherwise
            a divisor of the dimension NGT pads to (smaller codes, faster, less recall)
        result_expansion: k·result_expansion candidates found on quantized distances are re-ranked with exact
            ones, below 1 = no re-ranking (recall vs speed)
    """

    #: NGT quantizes only L2 and normalized-cosine indexes.
    native_metrics = {m: NgtGraph.native_metrics[m] for m in ("euclidean", "angular")}

    def __init__(self, metric: str, edge_size_for_creation: int = 100, num_of_outgoings: int = 10,
                 num_of_incomings: int = 120, max_number_of_edges: int = 128, dimension_of_subvector: int = 0,
                 threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(1, edge_size_for_creation=edge_size_for_creation, num_of_outgoings=num_of_outgoings,
                 num_of_incomings=num_of_incomings, max_number_of_edges=max_number_of_edges)
        if dimension_of_subvector < 0:
            raise ValueError(f"dimension_of_subvector={dimension_of_subvector}; valid: 0 (NGT's choice) or an "
                             "int >= 1 dividing the dimension NGT pads to")
        self.edge_size_for_creation, self.degrees = edge_size_for_creation, (num_of_outgoings, num_of_incomings)
        self.quantization = _QuantizationParameters(dimension_of_subvector, max_number_of_edges)

    def fit(self, X: np.ndarray) -> None:
        self._build_graph(X)
        error = _LIB.ngt_create_error_object()
        try:
            if not _LIB.ngtqg_quantize(self._path.encode(), self.quantization, error):
                message = _LIB.ngt_get_error_string(error).decode(errors="replace")
                raise ValueError(f"NGT could not quantize (dimension_of_subvector="
                                 f"{self.quantization.dimension_of_subvector:g}): {message}")
        finally:
            _LIB.ngt_destroy_error_object(error)
        self._index = ngtpy.QuantizedIndex(self._path, self.quantization.max_number_of_edges, log_disabled=True)
        self._index.set_with_distance(False)

    def set_query_params(self, epsilon: float = 0.1, result_expansion: float = 2.0) -> None:
        """``epsilon``: search-range coefficient (ann-benchmarks' value minus 1); ``result_expansion``:
        k × this many candidates found on quantized distances are re-ranked exactly (< 1: no re-ranking)."""
        if result_expansion < 0:
            raise ValueError(f"result_expansion={result_expansion}; valid: a float >= 0")
        self._index.set(epsilon=check_epsilon(epsilon), result_expansion=result_expansion)

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        return self._index.search(q, k)

    batch_query = Adapter.batch_query  # a QG has no batch API: one search per query

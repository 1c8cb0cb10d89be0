"""The blocked Cholesky factor behind every evaluation of the profiled deviance.

The cross-product matrix ``A = [Z X y]ᵀ W [Z X y]`` is built once per model
(``sums``: ``CrossBlocks``, in the change of variables of ``frame``) and
split in two, MixedModels.jl style:

* the *first* random-effects term (the one with the most random effects) has a
  block-diagonal ``ZᵀZ`` (one S×S block per level), so its Cholesky factor is
  ``ℓ`` independent tiny factorizations done as one batched array operation
  (``levels``: ``FirstTerm``);
* everything after it (the other terms, then X, then y) forms the *rest*: its
  Schur complement after eliminating the first term (``schur``) is factored
  by LAPACK, dense: crossed terms fill this block in, so storing it dense
  costs nothing extra for them.  Where it stays sparse (``rest``:
  ``KeptRest``) and cvxopt is installed, CHOLMOD factors its nonzeros instead
  (``CholmodRest``, ``mixedfit.supernodal``); where its first term stays block
  diagonal, that term is factored level by level (``factor``:
  ``NestedLeadCholesky``).

For each θ only the scaling by Λθ and the two factorizations are redone
(``crossproducts``: ``CrossProducts``).
A model small enough that these steps cost more in calls than in flops is
scaled and factored whole instead (``whole``: ``WholeSystem``), where L-BFGS-B
minimizes it on the exact gradient.
"""

from .crossproducts import CrossProducts
from .factor import Factor
from .frame import Frame, least_squares, subtract_columns
from .levels import batched_lower_inverse, level_blocks_product, pair_index
from .memory import available_memory, check_dense_memory
from .rest import SparseRest
from .schur import shared_blocks
from .sums import CrossBlocks, ResponseSums, engine_plan, intercepts_only, joined_term

__all__ = [
    "level_blocks_product", "batched_lower_inverse", "shared_blocks", "pair_index", "SparseRest", "Factor",
    "engine_plan", "joined_term", "available_memory", "check_dense_memory", "intercepts_only", "Frame",
    "least_squares", "subtract_columns", "ResponseSums", "CrossBlocks", "CrossProducts",
]

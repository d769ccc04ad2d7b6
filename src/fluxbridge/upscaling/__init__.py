"""Upscaling: trained models applied to gridded predictors chunk by chunk, on dask.

* :mod:`~fluxbridge.upscaling.workflow` — :func:`upscale`: chunks planned, run, resumed after a
  kill, and assembled into the products (:mod:`fluxbridge.outputs.products`);
* :mod:`~fluxbridge.upscaling.chunks` — the plan of chunks and the chunk function;
* :mod:`~fluxbridge.upscaling.cluster` — running the chunks in a loop, on threads or on a
  dask.distributed cluster.
"""

from fluxbridge.upscaling.chunks import MAX_CHUNK_CELLS, Chunk, plan_chunks, predict_chunk
from fluxbridge.upscaling.workflow import MANIFEST, UpscaleResult, upscale

__all__ = [
    "MANIFEST",
    "MAX_CHUNK_CELLS",
    "Chunk",
    "UpscaleResult",
    "plan_chunks",
    "predict_chunk",
    "upscale",
]

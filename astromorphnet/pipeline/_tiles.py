"""Overlapping tiles of a large image, each galaxy kept by exactly one of them.

A tile is what is read into memory and searched for sources; its *core* is
the part no other tile's core shares.  The cores partition the image, so a
galaxy is kept by the tile whose core holds its centroid; the overlap makes
sure that tile holds the galaxy's whole cutout.
"""

from collections import namedtuple
from itertools import pairwise

import numpy as np

__all__ = ["Tile", "default_overlap", "in_core", "tile_grid", "whole_image"]

#: Pixels added to the cutout size in the default overlap: room for the
#: neighbours' segments (which mask a cutout) and the smoothing kernel.
OVERLAP_MARGIN = 32

Tile = namedtuple("Tile", ["index", "slices", "core"])
Tile.__doc__ = """One tile of an image.

Attributes
----------
index : int
    Position of the tile in the grid, row by row (0-based).
slices : tuple of slice
    ``(rows, columns)`` of the image that the tile holds.
core : tuple of tuple of float
    ``((y_low, y_high), (x_low, x_high))``: the pixel coordinates (0-based,
    pixel centres at integers) of the centroids this tile keeps, low bound
    included, high bound excluded; infinite at the image's edges.
"""


def default_overlap(size):
    """The default tile overlap for cutouts of shape ``size``: the cutout plus a margin.

    Parameters
    ----------
    size : tuple of int
        Cutout shape ``(ny, nx)``.

    Returns
    -------
    overlap : int
        ``max(size) + OVERLAP_MARGIN`` pixels.
    """
    return int(max(size)) + OVERLAP_MARGIN


def _starts(length, tile, step):
    """Start of each tile along one axis; the last one ends at the edge."""
    if tile >= length:
        return [0]
    n = int(np.ceil((length - tile) / step)) + 1
    return [min(i * step, length - tile) for i in range(n)]


def _cores(starts, tile):
    """Core bounds along one axis: split each overlap at its middle."""
    bounds = [-np.inf]
    for left, right in pairwise(starts):
        # Pixel i spans [i - 0.5, i + 0.5): the overlap spans [right - 0.5, left + tile - 0.5).
        bounds.append((right + left + tile) / 2 - 0.5)
    bounds.append(np.inf)
    return list(pairwise(bounds))


def tile_grid(shape, tile_size, overlap):
    """Cut an image of ``shape`` into overlapping tiles whose cores partition it.

    Parameters
    ----------
    shape : tuple of int
        Image shape ``(ny, nx)``.
    tile_size : tuple of int
        Tile shape ``(ny, nx)``, overlap included; a tile never exceeds the image.
    overlap : int
        Pixels shared by neighbouring tiles.  A centroid in a tile's core lies
        at least ``overlap / 2`` pixels inside the tile (or at the image's
        edge), so a cutout of up to ``overlap`` pixels around it never
        crosses the tile's inner edges.

    Returns
    -------
    tiles : list of `Tile`
        Row by row; one tile when ``tile_size`` covers the image.

    Examples
    --------
    >>> from astromorphnet.pipeline._tiles import tile_grid
    >>> tiles = tile_grid((100, 100), (60, 60), 20)
    >>> [(t.slices[1].start, t.slices[1].stop) for t in tiles[:2]]
    [(0, 60), (40, 100)]
    >>> tiles[0].core[1], tiles[1].core[1]
    ((-inf, 49.5), (49.5, inf))
    """
    axes = []
    for length, tile in zip(shape, tile_size):
        starts = _starts(length, tile, tile - overlap)
        extent = min(tile, length)
        axes.append([(slice(s, s + extent), core)
                     for s, core in zip(starts, _cores(starts, extent))])
    return [Tile(i * len(axes[1]) + j, (rows, cols), (ycore, xcore))
            for i, (rows, ycore) in enumerate(axes[0])
            for j, (cols, xcore) in enumerate(axes[1])]


def in_core(tile, x, y):
    """Whether centroids ``(x, y)`` (image pixel coordinates) lie in ``tile``'s core.

    Parameters
    ----------
    tile : `Tile`
        The tile.
    x, y : `~numpy.ndarray`
        Centroids, 0-based pixel coordinates of the whole image.

    Returns
    -------
    keep : `~numpy.ndarray` of bool
    """
    (ylo, yhi), (xlo, xhi) = tile.core
    return (x >= xlo) & (x < xhi) & (y >= ylo) & (y < yhi)


def whole_image(shape):
    """The one tile of an untiled image: all of it, an unbounded core.

    Parameters
    ----------
    shape : tuple of int
        Image shape ``(ny, nx)``.

    Returns
    -------
    tile : `Tile`
    """
    return Tile(0, (slice(0, shape[0]), slice(0, shape[1])),
                ((-np.inf, np.inf), (-np.inf, np.inf)))

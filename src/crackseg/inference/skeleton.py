"""The branch graph of a one-pixel-wide skeleton: nodes are skeleton pixels, paths run between
free ends and junctions.

The construction is the one of skan's ``Skeleton`` (Nunez-Iglesias et al., "A new Python library
to analyse skeleton images confirms malaria parasite remodelling of the red blood cell membrane",
PeerJ 6:e4312, 2018), written with scikit-image and SciPy alone so that measurement needs
neither numba nor pandas (about 370 MB of the light install):

1. every pair of 8-neighbouring skeleton pixels is an edge, weighted by their distance (1 or
   sqrt 2; ``skimage.graph.pixel_graph``);
2. inside clusters of junction pixels (degree 3 or more) only a minimum spanning tree of those
   edges is kept, so a blob of junction pixels does not make small loops;
3. paths: from every node whose degree is not 2 (a free end, a junction), along each unvisited
   edge, through degree-2 nodes, to the next such node; what is left are isolated cycles, each
   walked once from its first node back to it.

Nodes are numbered in raster order of their pixels, and paths come in the order of that walk;
``tests/inference/test_skeleton.py`` checks both against hand-made skeletons.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

__all__ = ["SkeletonGraph"]


class SkeletonGraph:
    """The graph of ``skeleton`` (a 2-D boolean image of one-pixel-wide lines).

    Attributes:
        coordinates: ``(N, 2)`` integer ``(row, col)`` of each node.
        degrees: ``(N,)`` number of neighbours of each node in the graph.
    """

    def __init__(self, skeleton: np.ndarray) -> None:
        from skimage.graph import pixel_graph

        mask = np.asarray(skeleton, dtype=bool)
        graph, nodes = pixel_graph(mask, mask=mask, connectivity=mask.ndim)
        self._graph = _junction_trees(sparse.csr_matrix(graph))
        self.coordinates = np.transpose(np.unravel_index(nodes, mask.shape))
        self.degrees = np.diff(self._graph.indptr)
        self._paths = _walk_paths(self._graph, self.degrees)

    def paths_list(self) -> list[list[int]]:
        """Each path's node indices, ends included."""
        return [list(p) for p in self._paths]

    def path_lengths(self) -> np.ndarray:
        """Length of each path: the sum of its edges' weights."""
        g = self._graph
        return np.array(
            [sum(g[a, b] for a, b in zip(p[:-1], p[1:], strict=True)) for p in self._paths]
        )


def _junction_trees(graph: sparse.csr_matrix) -> sparse.csr_matrix:
    """``graph`` with the edges between junction pixels (degree >= 3) not on a minimum spanning
    tree of those edges removed."""
    degrees = np.diff(graph.indptr)
    among = graph.copy().tocoo()
    keep = (degrees[among.row] >= 3) & (degrees[among.col] >= 3)
    junction_edges = sparse.csr_matrix(
        (among.data[keep], (among.row[keep], among.col[keep])), shape=graph.shape
    )
    tree = csgraph.minimum_spanning_tree(junction_edges)
    dropped = junction_edges - (tree + tree.T)
    out = (graph - dropped).tocsr()
    out.eliminate_zeros()
    out.sort_indices()
    return out


def _walk(graph: sparse.csr_matrix, degrees, node: int, neighbour: int, visited: set) -> list[int]:
    """The path from ``node`` through ``neighbour`` to the next node of degree other than 2."""
    start, path = node, [node]
    indptr, indices = graph.indptr, graph.indices
    while (node, neighbour) not in visited:
        visited.add((node, neighbour))
        visited.add((neighbour, node))
        path.append(int(neighbour))
        if degrees[neighbour] != 2 or neighbour == start:
            break
        a, b = indices[indptr[neighbour] : indptr[neighbour + 1]]
        node, neighbour = neighbour, int(a if a != node else b)
    return path


def _walk_paths(graph: sparse.csr_matrix, degrees: np.ndarray) -> list[list[int]]:
    """Every path: from free ends and junctions first, then the isolated cycles."""
    visited: set[tuple[int, int]] = set()
    indptr, indices = graph.indptr, graph.indices
    paths = []
    for node in np.flatnonzero((degrees == 1) | (degrees > 2)):
        for neighbour in indices[indptr[node] : indptr[node + 1]]:
            if (node, neighbour) not in visited:
                paths.append(_walk(graph, degrees, int(node), int(neighbour), visited))
    for node in np.flatnonzero(degrees > 0):
        neighbour = indices[indptr[node]]
        if (node, neighbour) not in visited:
            paths.append(_walk(graph, degrees, int(node), int(neighbour), visited))
    return paths

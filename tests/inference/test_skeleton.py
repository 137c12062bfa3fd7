"""The skeleton branch graph (crackseg.inference.skeleton) on skeletons drawn by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crackseg.inference.skeleton import SkeletonGraph


def _image(rows: list[str]) -> np.ndarray:
    return np.array([[c == "#" for c in r] for r in rows])


def test_a_straight_line_is_one_path_between_two_free_ends():
    g = SkeletonGraph(_image(["......", ".####.", "......"]))
    assert list(g.degrees) == [1, 2, 2, 1]
    assert g.paths_list() == [[0, 1, 2, 3]]
    assert g.path_lengths() == pytest.approx([3.0])
    assert g.coordinates.tolist() == [[1, 1], [1, 2], [1, 3], [1, 4]]
    assert g.coordinates.dtype.kind == "i"  # pixel indices (measurement indexes arrays with them)


def test_a_diagonal_step_counts_sqrt_2():
    g = SkeletonGraph(_image(["#..", ".#.", "..#"]))
    assert g.path_lengths() == pytest.approx([2 * math.sqrt(2)])


def test_a_t_junction_makes_three_paths_from_the_junction():
    g = SkeletonGraph(_image(["#####", "..#..", "..#.."]))
    assert sorted(g.degrees.tolist()) == [1, 1, 1, 2, 2, 2, 3]
    paths = g.paths_list()
    assert len(paths) == 3
    junction = int(np.flatnonzero(g.degrees == 3)[0])
    assert all(junction in (p[0], p[-1]) for p in paths)
    assert sorted(g.path_lengths()) == pytest.approx([2.0, 2.0, 2.0])


def test_a_cluster_of_junction_pixels_keeps_only_a_spanning_tree():
    # a cross thickened at its centre: its three junction pixels are all 8-neighbours, three
    # edges among them; a spanning tree keeps two
    image = _image(["..#..", "..##.", "####.", "..#..", "..#.."])
    g = SkeletonGraph(image)
    junctions = set(np.flatnonzero(g.degrees >= 3).tolist())
    assert len(junctions) == 3
    among = {tuple(p) for p in g.paths_list() if len(p) == 2 and set(p) <= junctions}
    assert len(among) == len(junctions) - 1


def test_an_isolated_loop_is_walked_once_back_to_its_start():
    g = SkeletonGraph(_image([".##.", "#..#", ".##."]))
    assert set(g.degrees.tolist()) == {2}
    (path,) = g.paths_list()
    assert path[0] == path[-1] and len(path) == 7
    assert g.path_lengths() == pytest.approx([2 + 4 * math.sqrt(2)])

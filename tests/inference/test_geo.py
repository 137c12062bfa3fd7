"""Local tangent-plane placement against a geodesic library, and EXIF reading edge cases."""

from __future__ import annotations

import math

import pytest

from crackseg.inference.geo import PhotoInfo, enu_to_lonlat, gsd_mm_per_px, read_photo_info


@pytest.mark.parametrize("lat", [0.0, 45.0, 52.2, -33.9, 70.0])
def test_tangent_plane_offsets_match_the_ellipsoid(lat):
    pyproj = pytest.importorskip("pyproj", reason="pyproj (with geopandas, dev extra)")
    geod = pyproj.Geod(ellps="WGS84")
    for east, north in ((5.0, 0.0), (0.0, 5.0), (-3.0, 4.0), (20.0, -15.0)):
        lon, lat2 = enu_to_lonlat(lat, 10.0, east, north)
        az, _, dist = geod.inv(10.0, lat, float(lon), float(lat2))
        assert dist == pytest.approx(math.hypot(east, north), abs=2e-3)  # 2 mm over 25 m
        assert az == pytest.approx(math.degrees(math.atan2(east, north)), abs=0.01)


def test_gsd_needs_the_height_above_ground_and_the_35mm_focal():
    assert gsd_mm_per_px(PhotoInfo(relative_alt_m=10.0), 4000, 3000) is None
    assert gsd_mm_per_px(PhotoInfo(alt_m=300.0, focal_35mm=24), 4000, 3000) is None  # ASL
    # 10 m up, 24 mm equivalent, 4000 x 3000: 10000 * 43.27 / (24 * 5000) = 3.606 mm/px
    v = gsd_mm_per_px(PhotoInfo(relative_alt_m=10.0, focal_35mm=24), 4000, 3000)
    assert v == pytest.approx(10000 * math.hypot(36, 24) / (24 * 5000))


def test_files_without_metadata(tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg")
    assert read_photo_info(tmp_path / "a.png") == PhotoInfo()
    assert read_photo_info(tmp_path / "b.jpg") == PhotoInfo()
    assert not PhotoInfo().has_position and PhotoInfo(lat=0.0, lon=0.0).has_position

import numpy as np
import pytest
from scipy import ndimage

from tmpbench.errors import TmpbenchError
from tmpbench.shapes.detector import (
    COLOR_NAMES,
    SceneConflictError,
    classify_pixels,
    classify_shape,
    detect,
    detect_scene,
    min_area_pixels,
)
from tmpbench.shapes.world import COLORS, SHAPES, Scene, ShapeObject, render


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("shape", SHAPES)
def test_each_class_and_colour_is_recovered(shape, size):
    for i, color in enumerate(COLORS):
        row, col = divmod(i % 4, 2)
        dets = detect(render(Scene((ShapeObject(shape, color, row, col),)), size), grid=2)
        assert [(d.shape, d.color) for d in dets] == [(shape, color)]
        cx, cy = dets[0].centroid
        # the object is centred in its cell (the triangle's centroid sits below the cell centre)
        assert cx == pytest.approx((col + 0.5) * size / 2, abs=0.01)
        assert (row + 0.5) * size / 2 - 0.01 <= cy <= (row + 0.5) * size / 2 + size / 2 * 0.2


def test_square_box_centroid_area_at_32px():
    # square half-side 0.34 * 16 px = 5.44 px around (8, 8): pixel centres 3.5 .. 12.5 are inside
    (det,) = detect(render(Scene((ShapeObject("square", "green", 0, 0),)), 32))
    assert det.bbox == (3.0, 3.0, 13.0, 13.0)
    assert det.centroid == (8.0, 8.0)
    assert det.area == 100
    assert det.score == 1.0


def test_full_scene_at_512px():
    scene = Scene(
        (
            ShapeObject("triangle", "blue", 0, 1),
            ShapeObject("circle", "yellow", 1, 1),
            ShapeObject("square", "orange", 1, 0),
        )
    )
    img = render(scene, 512)
    assert detect_scene(img, 2) == scene
    dets = detect(img, 2)
    assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)


def test_three_by_three_grid_scene():
    scene = Scene(
        (ShapeObject("circle", "purple", 0, 0), ShapeObject("triangle", "red", 1, 1), ShapeObject("square", "blue", 2, 2)),
        grid=3,
    )
    assert detect_scene(render(scene, 48), 3) == scene


def test_blur_and_noise_keep_the_scene():
    scene = Scene((ShapeObject("triangle", "yellow", 0, 0), ShapeObject("circle", "orange", 1, 1)))
    img = render(scene, 32)
    blurred = np.round(ndimage.uniform_filter(img.astype(float), size=(3, 3, 1))).astype(np.uint8)
    rng = np.random.default_rng(0)
    noisy = np.clip(img / 255.0 + rng.normal(0, 0.05, img.shape), 0, 1)
    noisy = np.round(noisy * 255).astype(np.uint8)
    assert detect_scene(blurred, 2) == scene
    assert detect_scene(noisy, 2) == scene


def test_uniform_noise_yields_nothing():
    rng = np.random.default_rng(0)
    for size in (32, 64):
        assert detect(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), 2) == []
        assert detect(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) == []


def test_downward_triangle_is_not_an_upward_triangle():
    img = render(Scene((ShapeObject("triangle", "red", 0, 0),)), 64)
    assert [d.shape for d in detect(img, 2)] == ["triangle"]
    assert all(d.shape != "triangle" for d in detect(np.ascontiguousarray(img[::-1]), 2))


def test_classify_shape_templates():
    assert classify_shape(np.ones((6, 6), bool)) == ("square", 1.0)
    yy, xx = np.mgrid[0:20, 0:20] + 0.5
    circle = (xx - 10) ** 2 + (yy - 10) ** 2 <= 100
    shape, fit = classify_shape(circle)
    assert shape == "circle" and fit > 0.95
    tri = np.abs(xx - 10) <= 0.5 * yy
    assert classify_shape(tri)[0] == "triangle"


def test_half_bright_edges_keep_their_colour():
    # a blurred orange edge is half orange, half black: plain nearest-RGB would call it red,
    # and half-bright yellow would become green; the ray match keeps both
    for name in ("orange", "yellow", "purple"):
        px = np.zeros((4, 4, 3), np.uint8)
        px[:] = np.round(np.array(COLORS[name]) * 0.55).astype(np.uint8)
        assert COLOR_NAMES[classify_pixels(px)[0, 0]] == name
    dim = np.full((4, 4, 3), 0, np.uint8)
    dim[:] = np.round(np.array(COLORS["red"]) * 0.4).astype(np.uint8)
    grey = np.full((4, 4, 3), 128, np.uint8)
    white = np.full((4, 4, 3), 255, np.uint8)
    for img in (dim, grey, white):
        assert (classify_pixels(img) == -1).all()


def test_min_area_scales_with_canvas_and_grid():
    assert min_area_pixels(32, 32, 2) == 22
    assert min_area_pixels(64, 64, 2) == 85
    assert min_area_pixels(32, 32, 4) < min_area_pixels(32, 32, 2)
    assert min_area_pixels(32, 32) == 9
    small = np.zeros((32, 32, 3), np.uint8)
    small[2:6, 2:6] = COLORS["red"]  # 16 px square: below the grid-2 minimum, above the default
    assert detect(small, 2) == []
    assert [d.shape for d in detect(small)] == ["square"]


def test_detect_scene_refuses_two_objects_in_one_cell():
    img = np.zeros((64, 64, 3), np.uint8)
    img[2:12, 2:12] = COLORS["red"]
    img[18:28, 18:28] = COLORS["blue"]
    with pytest.raises(SceneConflictError, match=r"cell \(0, 0\) holds two objects"):
        detect_scene(img, 2)


def test_bad_images_are_refused():
    with pytest.raises(TmpbenchError, match="must be uint8"):
        detect(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(TmpbenchError, match=r"must be HxWx3 RGB, got shape \(32, 32\)"):
        detect(np.zeros((32, 32), np.uint8))
    with pytest.raises(TmpbenchError, match="numpy array"):
        detect([[0, 0, 0]])

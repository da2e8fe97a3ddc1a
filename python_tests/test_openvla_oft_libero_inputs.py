"""The official LIBERO evaluation's input and output conventions for OpenVLA-OFT, as pure functions.

TensorFlow itself is compared in scripts/openvla_oft_equality.py (bench/RESULTS.md); these tests pin the behaviour
that follows from its definitions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ript_fast.policies.openvla_oft import libero_inputs as li


def ramp(height: int, width: int) -> np.ndarray:
    """An image whose red channel rises along x and green along y."""
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx * 255 // (width - 1), yy * 255 // (height - 1), np.full_like(xx, 90)], -1).astype(np.uint8)


def test_camera_images_are_rotated_180_degrees() -> None:
    image = ramp(4, 6)
    rotated = li.camera_image(image)
    assert np.array_equal(rotated[0, 0], image[-1, -1]) and np.array_equal(rotated[-1, 0], image[0, -1])


def test_lanczos_resize_keeps_constants_and_is_the_identity_at_the_same_size() -> None:
    flat = np.full((256, 256, 3), 77, np.uint8)
    assert np.array_equal(li.lanczos_resize(flat), np.full((224, 224, 3), 77, np.uint8))
    image = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    assert np.array_equal(li.lanczos_resize(image), image)


def test_lanczos_resize_follows_a_ramp() -> None:
    out = li.lanczos_resize(ramp(256, 256)).astype(int)
    assert out.shape == (224, 224, 3)
    assert (np.diff(out[112, 5:-5, 0]) >= 0).all() and (np.diff(out[5:-5, 112, 1]) >= 0).all()


def test_jpeg_round_trip_is_close_and_resize_for_policy_gives_224() -> None:
    image = ramp(256, 256)
    assert np.abs(li.jpeg_round_trip(image).astype(int) - image).max() <= 4
    out = li.resize_for_policy(image)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8


def test_center_crop_takes_the_middle_90_percent_of_the_area() -> None:
    image = ramp(224, 224)
    out = li.center_crop(image)
    assert out.shape == (224, 224, 3)
    side = math.sqrt(0.9)
    first = (1 - side) / 2 * 223  # the crop box's left edge, in input pixels
    assert abs(int(out[100, 0, 0]) - int(image[100, round(first), 0])) <= 2
    assert abs(int(out[100, -1, 0]) - int(image[100, round(223 - first), 0])) <= 2
    flat = np.full((224, 224, 3), 200, np.uint8)
    assert np.array_equal(li.center_crop(flat), flat)  # x 255.5 then truncation maps levels back to themselves


def test_policy_image_chains_rotation_resize_and_crop() -> None:
    rendered = ramp(256, 256)
    expected = li.center_crop(li.resize_for_policy(li.camera_image(rendered)))
    assert np.array_equal(li.policy_image(rendered), expected)
    assert np.array_equal(li.policy_image(rendered, crop=False), li.resize_for_policy(li.camera_image(rendered)))


@pytest.mark.parametrize(
    ("quat", "expected"),
    [
        ([0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0]),
        ([0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4)], [0.0, 0.0, math.pi / 2]),
        ([1.0, 0.0, 0.0, 0.0], [math.pi, 0.0, 0.0]),
        ([0.0, 0.0, 0.0, 1.0000001], [0.0, 0.0, 0.0]),  # w clipped to 1, then the zero-rotation case
    ],
)
def test_quaternion_to_axis_angle(quat: list[float], expected: list[float]) -> None:
    np.testing.assert_allclose(li.quat_to_axis_angle(np.array(quat)), expected, atol=1e-12)


def test_proprio_is_position_axis_angle_and_fingers() -> None:
    pos, quat, fingers = np.array([[0.1, 0.2, 0.3]]), np.array([[0.0, 0.0, 0.0, 1.0]]), np.array([[0.04, -0.04]])
    assert li.libero_proprio(pos, quat, fingers).tolist() == [[0.1, 0.2, 0.3, 0.0, 0.0, 0.0, 0.04, -0.04]]


def test_gripper_goes_from_the_models_open_is_1_to_liberos_open_is_minus_1() -> None:
    chunk = np.array([[0.1, -0.2, 0.3, 0.0, 0.0, 0.5, 0.9], [0.0] * 6 + [0.1]])
    out = li.env_actions(chunk)
    assert out[:, -1].tolist() == [-1.0, 1.0]  # 0.9 (open) -> -1, 0.1 (close) -> +1
    assert np.array_equal(out[:, :6], chunk[:, :6]) and chunk[0, -1] == 0.9  # the input is not modified
    assert li.env_actions(np.array([0.0] * 6 + [0.5]))[-1] == 0.0

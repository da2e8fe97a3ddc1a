"""LIBERO observations -> OpenVLA-OFT inputs, and its chunk -> LIBERO actions, as the official LIBERO evaluation does.

Official path (experiments/robot/libero/run_libero_eval.py and openvla_utils.py), per camera image rendered at 256 px:
1. `camera_image`: rotate by 180 degrees (both axes flipped), as the training data was;
2. `resize_for_policy`: JPEG round trip then a 224 x 224 lanczos3 antialiased resize (TensorFlow's
   `tf.image.resize(..., "lanczos3", antialias=True)`), rounded and clipped to uint8 - the RLDS training pipeline;
3. `center_crop`: for models trained with random-resized-crop augmentation (all LIBERO OFT checkpoints), the center
   crop of 90% of the area resized back to 224 x 224 with TensorFlow's bilinear `crop_and_resize`.
Then `images.pixel_values` (the processor) and the prompt of `sequence.py`.

Proprio is eef position (3), eef orientation as axis-angle (3, robosuite's `quat2axisangle` of the (x, y, z, w)
quaternion) and the two gripper finger positions; ript-fast's LIBERO "state" holds these at [7:10], [10:14] and
[14:16]. The model's gripper output is in the training data's convention (1 = open, 0 = close); LIBERO takes
-1 = open, +1 = close: `env_actions` maps it as the official `normalize_gripper_action(binarize=True)` followed by
`invert_gripper_action` do.

The crop and the resize are written here in NumPy, float32, in TensorFlow's order of operations, so TensorFlow is not
a dependency. The JPEG round trip encodes with Pillow at TensorFlow's encoder settings (quality 95, 4:2:0: the same
bytes' content) and decodes with libjpeg-turbo's fast integer IDCT and fancy upsampling (simplejpeg), which is what
`tf.io.decode_image` does by default; Pillow's decoder (accurate IDCT) would differ by up to 8 levels on most pixels.
`bench/RESULTS.md` records each step against TensorFlow's.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

from ript_fast.envs.libero.vec_env import quat_to_axis_angle

POLICY_IMAGE_SIZE = 224
CROP_AREA = 0.9
JPEG_QUALITY = 95  # tf.image.encode_jpeg's default
LANCZOS_RADIUS = 3.0
_PI = np.float32(3.14159265359)  # the constant TensorFlow's lanczos kernel uses


def camera_image(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) as LIBERO renders it -> rotated by 180 degrees (official `get_libero_image`)."""
    return np.ascontiguousarray(image[::-1, ::-1])


def jpeg_round_trip(image: np.ndarray) -> np.ndarray:
    """Encode and decode once as TensorFlow does (the training frames were stored as JPEG)."""
    import simplejpeg

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling="4:2:0")
    return simplejpeg.decode_jpeg(buffer.getvalue(), colorspace="RGB", fastdct=True, fastupsample=False)


def _lanczos3(x: np.ndarray) -> np.ndarray:
    """TensorFlow's `LanczosKernelFunc(3)` in float32 (1 at |x| <= 1e-3, 0 beyond the radius)."""
    x = np.abs(x).astype(np.float32)
    r = np.float32(LANCZOS_RADIUS)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = r * np.sin(_PI * x) * np.sin(_PI * x / r) / (_PI * _PI * x * x)
    return np.where(x <= 1e-3, np.float32(1), np.where(x > r, np.float32(0), value)).astype(np.float32)


def _resize_spans(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """TensorFlow's antialiased `scale_and_translate` spans: first input index (out,) and weights (out, span), float32.

    Sums run left to right in float32 as TensorFlow's loops do (not pairwise), so the weights are bit-identical.
    """
    scale = np.float32(out_size) / np.float32(in_size)
    inv_scale = np.float32(1.0) / scale
    kernel_scale = max(inv_scale, np.float32(1.0))
    reach = np.float32(LANCZOS_RADIUS) * kernel_scale
    span = min(2 * math.ceil(reach) + 1, in_size)
    starts = np.zeros(out_size, dtype=np.int64)
    weights = np.zeros((out_size, span), dtype=np.float32)
    for x in range(out_size):
        sample = (np.float32(x) + np.float32(0.5)) * inv_scale
        start = min(max(math.ceil(sample - reach - np.float32(0.5)), 0), in_size - 1)
        end = min(max(math.floor(sample + reach - np.float32(0.5)), 0), in_size - 1) + 1
        w = _lanczos3((np.arange(start, end, dtype=np.float32) + np.float32(0.5) - sample) / kernel_scale)
        total = np.float32(0)
        for value in w:
            total = np.float32(total + value)
        starts[x] = start
        weights[x, : end - start] = w * (np.float32(1.0) / total)
    return starts, weights


def _resize_axis(pixels: np.ndarray, out_size: int, axis: int) -> np.ndarray:
    """Resamples one axis, accumulating the span's terms one after the other in float32 (TensorFlow's order)."""
    starts, weights = _resize_spans(pixels.shape[axis], out_size)
    shape = [1] * pixels.ndim
    shape[axis] = out_size
    out = np.zeros((*pixels.shape[:axis], out_size, *pixels.shape[axis + 1 :]), dtype=np.float32)
    for k in range(weights.shape[1]):
        index = np.minimum(starts + k, pixels.shape[axis] - 1)
        out += weights[:, k].reshape(shape) * np.take(pixels, index, axis=axis)
    return out


def lanczos_resize(image: np.ndarray, size: int = POLICY_IMAGE_SIZE) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8: lanczos3, antialiased, rounded half to even, clipped."""
    wide = _resize_axis(image.astype(np.float32), size, axis=1)  # TensorFlow resizes the width first
    out = _resize_axis(wide, size, axis=0)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def resize_for_policy(image: np.ndarray, size: int = POLICY_IMAGE_SIZE) -> np.ndarray:
    """Official `resize_image_for_policy`: JPEG round trip, then the lanczos3 resize."""
    return lanczos_resize(jpeg_round_trip(image), size)


def center_crop(image: np.ndarray, area: float = CROP_AREA) -> np.ndarray:
    """(H, W, 3) uint8 -> the centered crop of `area` of the image, bilinearly resized back to 224 x 224.

    TensorFlow's `crop_and_resize` on [0, 1] floats, box side sqrt(area), then `convert_image_dtype` back (x 255.5,
    truncated, saturated), as the official `center_crop_image`.
    """
    h, w = image.shape[:2]
    pixels = image.astype(np.float32) * np.float32(1.0 / 255)
    side = np.float32(np.sqrt(np.float32(area)))
    low = (np.float32(1) - side) / np.float32(2)
    high = low + side

    def coords(n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scale = (high - low) * np.float32(n_in - 1) / np.float32(POLICY_IMAGE_SIZE - 1)
        pos = low * np.float32(n_in - 1) + np.arange(POLICY_IMAGE_SIZE, dtype=np.float32) * scale
        top = np.floor(pos).astype(np.int64)
        return top, np.ceil(pos).astype(np.int64), (pos - top.astype(np.float32)).astype(np.float32)

    y0, y1, ly = coords(h)
    x0, x1, lx = coords(w)
    lx = lx[None, :, None]
    top = pixels[y0][:, x0] + (pixels[y0][:, x1] - pixels[y0][:, x0]) * lx
    bottom = pixels[y1][:, x0] + (pixels[y1][:, x1] - pixels[y1][:, x0]) * lx
    out = np.clip(top + (bottom - top) * ly[:, None, None], 0, 1)
    return np.clip(np.trunc(out * np.float32(255.5)), 0, 255).astype(np.uint8)


def policy_image(rendered: np.ndarray, crop: bool = True) -> np.ndarray:
    """One rendered LIBERO camera image -> the 224 x 224 uint8 image the processor takes."""
    image = resize_for_policy(camera_image(rendered))
    return center_crop(image) if crop else image


def libero_proprio(eef_pos: np.ndarray, eef_quat_xyzw: np.ndarray, gripper_qpos: np.ndarray) -> np.ndarray:
    """(..., 8): eef position, eef axis-angle, gripper finger positions (official `prepare_observation`)."""
    return np.concatenate([eef_pos, quat_to_axis_angle(eef_quat_xyzw), gripper_qpos], axis=-1)


def env_actions(actions: np.ndarray) -> np.ndarray:
    """Un-normalized model actions (..., 7) -> LIBERO actions: gripper g in [0, 1] (1 open) -> -sign(2g - 1)."""
    out = np.array(actions, dtype=np.float64, copy=True)
    out[..., -1] = -np.sign(2.0 * out[..., -1] - 1.0)
    return out

"""Procedural frontal chest X-ray phantoms whose anatomy and lesions are known exactly.

One call to :func:`draw_phantom` samples a patient (body size and position, lungs,
heart, ribs, clavicles, spine, lung vessels), optional lesions, and an exposure, and
returns the image together with a mask per structure and a box per lesion component.

Geometry is sampled in normalised units (0..1, x to the image's right, y down) in a
canonical upright pose; one random similarity transform (patient size, tilt and position)
maps it into the image while rasterising, so the image and every mask share it exactly
without resampling. The image is built as an attenuation map (soft tissue and bone add, lung air
subtracts) and then exposed with a random window, gamma and noise.

The view is PA: the patient's right appears on the image's left, so ``'right_lung'`` is
drawn on the image's left half and the heart bulges to the image's right.

How hard the lesions are to see is a parameter: ``lesion_size`` multiplies their extent
(focal radii, effusion height, pneumothorax retraction) and ``lesion_contrast`` the
attenuation they add or remove; 1 and 1 give the faintest, smallest lesions this module
draws.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from scipy import ndimage

from fxmm.structures.mask_rle import masks_to_boxes

# Lesion classes draw_phantom can place; each has a mask in its output.
LESION_TYPES = ('nodule', 'mass', 'consolidation', 'effusion', 'pneumothorax')
# Anatomical structures with masks in every output (named by the patient's side).
ANATOMY = ('right_lung', 'left_lung', 'heart')
# Lesions placed as separate, non-touching blobs inside aerated lung.
FOCAL_LESIONS = ('nodule', 'mass', 'consolidation')
# Radius (normalised units) and added attenuation ranges of focal lesions at lesion_size and
# lesion_contrast 1; consolidation's density is the fraction of lung air it replaces.
_FOCAL_RADIUS = dict(nodule=(0.015, 0.035), mass=(0.06, 0.1), consolidation=(0.05, 0.09))
_FOCAL_DENSITY = dict(nodule=(0.1, 0.4), mass=(0.35, 0.75), consolidation=(0.35, 0.7))
# Connectivity of mask components (one box per component, as the converters box masks).
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
# Sub-pixel precision of polygon rasterisation (cv2 fixed-point shift).
_SHIFT = 4
# Most of a lung's height an effusion fills, and of its size a pneumothorax retracts, at any
# lesion_size (beyond it the lung would be gone).
_MAX_FLUID_HEIGHT = 0.6
_MAX_RETRACTION = 0.6

Box = Dict[str, object]


def _smoothstep(x, lo: float, hi: float):
    """Cubic ramp from 0 at ``lo`` to 1 at ``hi`` (works with ``lo > hi`` too)."""
    t = np.clip((np.asarray(x, dtype=np.float32) - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


class _Canvas:
    """Rasterisation of canonical geometry onto a square grid of ``size`` pixels.

    The patient's pose maps canonical normalised points ``p`` to image ones
    ``q = scale * R(angle) @ (p - 0.5) + 0.5 + shift``. ``x`` and ``y`` (S, S) hold the
    canonical coordinates of every pixel centre, so fields computed from them and polygons
    mapped with :meth:`to_image` are drawn in the final pose without resampling.

    Args:
        size (int): grid side in pixels.
        angle (float): in-plane tilt in degrees. Defaults to 0.
        scale (float): patient size factor. Defaults to 1.
        shift (tuple[float, float]): patient offset in normalised image units.
    """

    def __init__(self, size: int, angle: float = 0.0, scale: float = 1.0,
                 shift: Tuple[float, float] = (0.0, 0.0)):
        self.size = size
        self.scale = scale
        cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        self._pose = scale * np.array([[cos, -sin], [sin, cos]])
        self._shift = np.asarray(shift, dtype=np.float64)
        centres = (np.arange(size, dtype=np.float32) + 0.5) / size
        qx = centres[None, :] - 0.5 - self._shift[0]
        qy = centres[:, None] - 0.5 - self._shift[1]
        self.x = ((cos * qx + sin * qy) / scale + 0.5).astype(np.float32)
        self.y = ((-sin * qx + cos * qy) / scale + 0.5).astype(np.float32)
        self.image_y = centres[:, None]  # (S, 1) normalised image rows, for exposure effects

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Canonical (N, 2) points -> normalised image (N, 2) points."""
        return (points - 0.5) @ self._pose.T + 0.5 + self._shift

    def _pixels(self, points: np.ndarray) -> np.ndarray:
        """Canonical (N, 2) points -> cv2 fixed-point int32 pixel coordinates."""
        pixels = self.to_image(points) * self.size - 0.5
        return np.round(pixels * (1 << _SHIFT)).astype(np.int32)

    def polygon(self, points: np.ndarray) -> np.ndarray:
        """Bool mask (S, S) of the polygon with canonical vertices ``points`` (N, 2)."""
        canvas = np.zeros((self.size, self.size), np.uint8)
        cv2.fillPoly(canvas, [self._pixels(points)], 1, cv2.LINE_8, _SHIFT)
        return canvas.astype(bool)

    def lines(self, curves: Sequence[np.ndarray], thickness: float) -> np.ndarray:
        """Anti-aliased polylines, float32 (S, S) in 0..1; ``thickness`` in canonical units."""
        canvas = np.zeros((self.size, self.size), np.uint8)
        width = max(1, int(round(thickness * self.scale * self.size)))
        cv2.polylines(canvas, [self._pixels(c) for c in curves], False, 255, width,
                      cv2.LINE_AA, _SHIFT)
        return canvas.astype(np.float32) / 255.0

    def blur(self, image: np.ndarray, sigma: float) -> np.ndarray:
        """Gaussian blur with ``sigma`` in canonical units, float32 (S, S)."""
        sigma = max(sigma * self.scale * self.size, 0.3)
        return cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigma)

    def noise(self, rng: np.random.Generator, cells: int) -> np.ndarray:
        """Smooth unit-variance noise (S, S) with about ``cells`` blobs across the image."""
        coarse = rng.standard_normal((cells + 3, cells + 3)).astype(np.float32)
        fine = cv2.resize(coarse, (self.size, self.size), interpolation=cv2.INTER_CUBIC)
        return (fine - fine.mean()) / (fine.std() + 1e-6)

    def depth(self, mask: np.ndarray) -> np.ndarray:
        """Distance (canonical units) of each pixel of ``mask`` to its border, 0 outside."""
        dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
        return dist / (self.scale * self.size)


def _lung_contour(lateral: float, medial: float, top: float, base: float, dome: float,
                  apex: float, notch: float, notch_span: Tuple[float, float],
                  n: int = 32) -> np.ndarray:
    """Outline of one lung field, (3n - 2, 2) canonical (x, y) points.

    ``u`` runs 0 (lateral chest wall) -> 1 (mediastinum), ``v`` 0 (apex) -> 1 (costophrenic
    angle); ``x = lateral + u * (medial - lateral)`` so either side uses the same code.
    ``dome`` is the hemidiaphragm height and ``notch`` the cardiac notch depth (fractions of
    lung height / width), the notch growing over ``notch_span`` (v range).
    """
    v = np.linspace(0.0, 1.0, n)
    # lateral wall: rounded apex, then a straight wall down to a sharp costophrenic angle
    u_lat = apex * (1.0 - np.sin(np.pi / 2 * np.minimum(v / 0.7, 1.0)) ** 0.5)
    # hemidiaphragm: rises steeply from the angle to a dome, ends at the cardiac border
    u_end = 1.0 - notch
    u_dia = np.linspace(0.0, u_end, n)
    v_dia = 1.0 - dome * np.sin(np.pi / 2 * np.minimum(u_dia / (0.8 * u_end), 1.0)) ** 0.7
    # mediastinal border from the diaphragm back up to the apex
    v_med = np.linspace(1.0 - dome, 0.0, n)
    u_med = (apex + (1.0 - apex) * np.sin(np.pi / 2 * np.minimum(v_med / 0.3, 1.0)) ** 0.6
             - notch * _smoothstep(v_med, *notch_span))
    u = np.concatenate([u_lat, u_dia[1:], u_med[1:]])
    vv = np.concatenate([v, v_dia[1:], v_med[1:]])
    return np.stack([lateral + u * (medial - lateral), top + vv * (base - top)], axis=1)


class _Patient:
    """Sampled canonical anatomy: masks (S, S) and the numbers lesions are placed by."""

    def __init__(self, rng: np.random.Generator, canvas: _Canvas, heart_ratio: float):
        c = canvas
        self.mid = mid = 0.5 + rng.normal(0.0, 0.005)
        half = rng.uniform(0.33, 0.38)  # lung (rib cage) half width at the bases
        lat_r, lat_l = mid - half, mid + half * rng.uniform(0.97, 1.03)
        med_r, med_l = mid - rng.uniform(0.045, 0.07), mid + rng.uniform(0.05, 0.075)
        top_r = rng.uniform(0.12, 0.17)
        top_l = top_r + rng.uniform(-0.01, 0.01)
        base_r = rng.uniform(0.70, 0.78)
        base_l = base_r + rng.uniform(0.0, 0.03)  # the liver lifts the right hemidiaphragm
        dome_r, dome_l = rng.uniform(0.10, 0.16), rng.uniform(0.07, 0.12)
        self.thorax = (lat_r, lat_l)

        # heart: a tilted ellipse cut by the left hemidiaphragm, width = ratio * thorax
        width = heart_ratio * (lat_l - lat_r)
        centre_x = mid - rng.uniform(0.28, 0.36) * width + width / 2
        theta = math.radians(rng.uniform(28.0, 42.0))
        minor = min(rng.uniform(0.11, 0.14), 0.9 * width / 2)
        major = math.sqrt(max((width / 2) ** 2 - (minor * math.sin(theta)) ** 2, minor ** 2)
                          ) / math.cos(theta)
        major = max(major, minor)
        half_h = math.sqrt((major * math.sin(theta)) ** 2 + (minor * math.cos(theta)) ** 2)
        cut = top_l + (1.0 - dome_l) * (base_l - top_l) + 0.015
        # the heart's leftmost point lies `drop` below its centre: keep it above the cut
        drop = (major ** 2 - minor ** 2) * math.sin(theta) * math.cos(theta) / (width / 2)
        centre_y = cut - max(0.55 * half_h, drop + 0.02)
        dx, dy = c.x - centre_x, c.y - centre_y
        along = dx * math.cos(theta) + dy * math.sin(theta)
        across = -dx * math.sin(theta) + dy * math.cos(theta)
        self.heart = ((along / major) ** 2 + (across / minor) ** 2 <= 1.0) & (c.y < cut)

        # the left lung's cardiac notch follows the heart's left border, overlapping a little
        height_l = base_l - top_l
        heart_left = centre_x + width / 2 - 0.012
        notch = float(np.clip(1.0 - (heart_left - lat_l) / (med_l - lat_l), 0.0, 0.75))
        span_hi = min((centre_y - top_l) / height_l, 1.0 - dome_l - 0.02)
        span = (min((centre_y - half_h - top_l) / height_l + 0.08, span_hi - 0.05), span_hi)
        self.contours = {
            'right_lung': _lung_contour(lat_r, med_r, top_r, base_r, dome_r,
                                        rng.uniform(0.45, 0.6), 0.0, (0.5, 0.9)),
            'left_lung': _lung_contour(lat_l, med_l, top_l, base_l, dome_l,
                                       rng.uniform(0.45, 0.6), notch, span),
        }
        self.lungs = {name: c.polygon(pts) for name, pts in self.contours.items()}
        # hilum: where vessels fan out from and where a collapsing lung retracts to
        self.hila = {
            'right_lung': np.array([med_r - 0.03, top_r + 0.45 * (base_r - top_r)]),
            'left_lung': np.array([med_l + 0.03, top_l + 0.45 * height_l]),
        }
        self.top = min(top_r, top_l)
        self.base = max(base_r, base_l)
        self.body_half = half + rng.uniform(0.06, 0.10)
        # gastric air bubble under the left hemidiaphragm
        self.stomach = np.array([med_l + rng.uniform(0.05, 0.12), cut + rng.uniform(0.04, 0.07)])


def _bones(rng, canvas: _Canvas, p: _Patient) -> np.ndarray:
    """Ribs, clavicles and spine as attenuation (S, S)."""
    c = canvas
    t = np.linspace(0.0, 1.0, 24)[:, None]
    half = (p.thorax[1] - p.thorax[0]) / 2
    posterior, anterior = [], []
    n_ribs = 10
    gap = (p.base - p.top + 0.02) / (n_ribs - 0.5)
    arch = rng.uniform(0.035, 0.06)
    for side in (-1.0, 1.0):
        for k in range(n_ribs):
            y0 = p.top - 0.04 + k * gap + rng.normal(0.0, 0.004)
            # posterior rib: arches up and out from the spine, bends down at the chest wall
            x = p.mid + side * (0.025 + (half + 0.02) * t)
            y = y0 - arch * np.sin(np.pi * t * 0.9) + 0.12 * t ** 2
            posterior.append(np.hstack([x, y]))
            if y0 < p.base - 0.2:
                # anterior rib: from the chest wall down towards the sternum, fainter
                x = p.mid + side * (half + 0.01) * (1.0 - 0.55 * t)
                y = y0 + 0.04 + 0.15 * t - 0.03 * t ** 2
                anterior.append(np.hstack([x, y]))
    rib_width = rng.uniform(0.016, 0.022)
    ribs = c.lines(posterior, rib_width)
    # cortical rims: the band's edges are brighter than its middle
    ribs = 0.7 * ribs + 0.5 * np.abs(ribs - c.blur(ribs, 0.006))
    ribs += 0.35 * c.lines(anterior, rib_width * 0.7)
    clavicles = []
    for side in (-1.0, 1.0):
        x = p.mid + side * (0.035 + t * rng.uniform(0.26, 0.31))
        y = p.top + 0.01 - t * rng.uniform(0.05, 0.09) + 0.012 * np.sin(2 * np.pi * t)
        clavicles.append(np.hstack([x, y]))
    bones = 0.15 * c.blur(ribs, 0.003) + 0.3 * c.blur(c.lines(clavicles, 0.024), 0.004)
    # spine: a vertical band with vertebral bodies, behind the mediastinum
    period = rng.uniform(0.042, 0.05)
    vertebrae = 0.85 + 0.15 * np.cos(2 * np.pi * (c.y - p.top) / period) ** 2
    spine = _smoothstep(np.abs(c.x - p.mid), 0.045, 0.03) * vertebrae
    return bones + 0.1 * c.blur(spine, 0.004)


def _vessels(rng, canvas: _Canvas, p: _Patient) -> np.ndarray:
    """Branching lung vessels fanning out from both hila and fading outwards, (S, S)."""
    c = canvas
    curves = []
    fade = np.zeros((c.size, c.size), np.float32)
    for name, hilum in p.hila.items():
        outward = -1.0 if name == 'right_lung' else 1.0
        for _ in range(rng.integers(10, 15)):
            angle = rng.uniform(-1.4, 1.4)  # radians from horizontal-outward, + is down
            point, pts = hilum.copy(), [hilum.copy()]
            for _ in range(int(rng.integers(3, 6))):
                angle += rng.normal(0.0, 0.3)
                step = rng.uniform(0.025, 0.05)
                point = point + step * np.array([outward * math.cos(angle), math.sin(angle)])
                pts.append(point.copy())
            curves.append(np.array(pts))
        dist = np.hypot(c.x - hilum[0], c.y - hilum[1])
        fade = np.maximum(fade, np.exp(-dist / 0.12))
    return c.blur(c.lines(curves, 0.005), 0.003) * fade


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a bool (S, S) mask (all False if empty)."""
    labels, n = ndimage.label(mask, structure=_EIGHT_CONNECTED)
    if n <= 1:
        return mask
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
    return labels == 1 + int(np.argmax(sizes))


def _place(rng, depth: np.ndarray, margin: float, placed: List[Tuple[np.ndarray, float]],
           radius: float, canvas: _Canvas) -> Optional[np.ndarray]:
    """A centre (2,) at least ``margin`` deep in the region and clear of ``placed`` blobs."""
    ys, xs = np.nonzero(depth >= margin)
    if len(ys) == 0:
        return None
    for _ in range(30):
        i = rng.integers(len(ys))
        centre = np.array([canvas.x[ys[i], xs[i]], canvas.y[ys[i], xs[i]]], np.float64)
        # lobes and fuzzy edges reach ~1.4 radii: keep lesions apart by more than that
        if all(np.hypot(*(centre - q)) > 1.5 * (radius + r) + 0.02 for q, r in placed):
            return centre
    return None


def _focal(rng, kind: str, canvas: _Canvas, centre: np.ndarray, radius: float,
           ) -> Tuple[np.ndarray, np.ndarray]:
    """Density profile (S, S) in 0..1 and its support mask of a nodule, mass or patch."""
    c = canvas
    if kind == 'consolidation':
        # fuzzy patch: an anisotropic Gaussian roughened by smooth noise
        ax, ay = radius * rng.uniform(0.8, 1.3), radius * rng.uniform(0.7, 1.1)
        field = np.exp(-(((c.x - centre[0]) / ax) ** 2 + ((c.y - centre[1]) / ay) ** 2))
        field = field * (1.0 + 0.35 * np.clip(c.noise(rng, 10), -1.2, 1.2))
        return np.clip(field, 0.0, 1.0), field > 0.5
    # nodule / mass: a solid sphere profile; masses are lobulated (union of 2-3 spheres)
    lobes = 1 if kind == 'nodule' else int(rng.integers(2, 4))
    profile = np.zeros((c.size, c.size), np.float32)
    for k in range(lobes):
        r = radius if k == 0 else radius * rng.uniform(0.5, 0.8)
        offset = 0.0 if k == 0 else radius * 0.6 * rng.uniform(-1, 1, 2)
        cx, cy = centre + offset
        d2 = ((c.x - cx) ** 2 + (c.y - cy) ** 2) / r ** 2
        profile = np.maximum(profile, np.sqrt(np.clip(1.0 - d2, 0.0, None)))
    return profile, profile > 0.0


def _effusion(rng, canvas: _Canvas, p: _Patient, lung: str, size: float,
              ) -> Tuple[np.ndarray, np.ndarray]:
    """Fluid filling a lung base, its surface a meniscus rising along the chest wall;
    ``size`` multiplies its height.

    Returns the fluid fraction (S, S) in 0..1 (soft surface) and the fluid mask.
    """
    c = canvas
    mask = p.lungs[lung]
    top, bottom = p.contours[lung][:, 1].min(), p.contours[lung][:, 1].max()
    height = min(rng.uniform(0.1, 0.35) * size, _MAX_FLUID_HEIGHT)
    level = bottom - height * (bottom - top)
    lateral = p.thorax[0] if lung == 'right_lung' else p.thorax[1]
    towards_wall = np.clip(1.0 - np.abs(c.x - lateral) / abs(p.mid - lateral), 0.0, 1.0)
    surface = level - rng.uniform(0.04, 0.1) * towards_wall ** 3
    region = mask & (c.y > surface)
    return _smoothstep(c.y - surface, -0.015, 0.02), region


def _pneumothorax(rng, canvas: _Canvas, p: _Patient, lung: str, size: float) -> np.ndarray:
    """Air between chest wall and a lung retracted towards its hilum from apex and side;
    ``size`` multiplies the retraction.

    Returns the pleural air mask (S, S), one connected region at the apex / lateral wall.
    """
    points = p.contours[lung]
    hilum = p.hila[lung]
    top, base = points[:, 1].min(), points[:, 1].max()
    v = (points[:, 1] - top) / (base - top)
    # retraction is full above ``v_lo`` and fades out by ``v_hi`` (lung stays on the base)
    v_lo = rng.uniform(0.2, 0.45)
    v_hi = v_lo + rng.uniform(0.25, 0.4)
    # a moderate to large pneumothorax: the rim is several pixels wide at 128 px, so a
    # stride-4 segmentation head can resolve it (a 3 % retraction is a 1-pixel crescent)
    retraction = min(rng.uniform(0.1, 0.3) * size, _MAX_RETRACTION)
    shrink = 1.0 - retraction * (1.0 - _smoothstep(v, v_lo, v_hi))
    # slivers along the mediastinum are not a pneumothorax: keep the main region
    return _largest_component(
        p.lungs[lung] & ~canvas.polygon(hilum + shrink[:, None] * (points - hilum)))


def check_lesion_style(lesion_size: float, lesion_contrast: float) -> None:
    """ValueError unless both multipliers of :func:`draw_phantom` are positive numbers."""
    for name, value in (('lesion_size', lesion_size), ('lesion_contrast', lesion_contrast)):
        if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
            raise ValueError(f'{name} must be a positive number, got {value!r}')


def cardiothoracic_ratio(masks: Dict[str, np.ndarray]) -> float:
    """Widest heart extent over the widest extent of the two lungs (chest width).

    Args:
        masks (dict[str, np.ndarray]): bool (H, W) masks with 'heart', 'right_lung' and
            'left_lung'.
    """
    def extent(mask):
        cols = np.nonzero(mask.any(axis=0))[0]
        return (cols[-1] + 1 - cols[0]) if len(cols) else 0

    chest = extent(masks['right_lung'] | masks['left_lung'])
    return float(extent(masks['heart']) / chest) if chest else 0.0


class _Film:
    """The attenuation map of one patient, built up structure by structure, and its masks.

    Brightness follows attenuation: soft tissue and bone add, lung air subtracts. Lesions
    are added before the structures drawn over the whole chest (bones, vessels), because
    they change where aerated lung (with vessels) is left.

    Args:
        rng (np.random.Generator): source of randomness.
        canvas (_Canvas): the pixel grid in the patient's pose.
        patient (_Patient): the sampled anatomy.
        lesion_size (float): multiplier of the lesions' extent.
        lesion_contrast (float): multiplier of the attenuation lesions add or remove.
    """

    def __init__(self, rng: np.random.Generator, canvas: _Canvas, patient: _Patient,
                 lesion_size: float, lesion_contrast: float):
        c, p = canvas, patient
        self.canvas, self.patient = c, p
        self.lesion_size, self.lesion_contrast = lesion_size, lesion_contrast
        self.lungs = p.lungs['right_lung'] | p.lungs['left_lung']
        # lung air: deepest inside the lung, less behind the heart and at the apices (bone
        # and soft tissue in front)
        air = 0.7 * (1.0 - np.exp(-c.depth(self.lungs) / 0.03)) * (1.0 + 0.06 * c.noise(rng, 6))
        air *= 1.0 - 0.25 * _smoothstep(c.y, p.top + 0.1, p.top - 0.02)
        heart_soft = c.blur(p.heart, 0.006)
        self.air = c.blur(air * (1.0 - 0.85 * heart_soft), 0.004)
        # body soft tissue: an elliptic cross-section under shoulders and neck
        half = p.body_half * (0.25 + 0.75 * _smoothstep(c.y, p.top - 0.16, p.top - 0.02))
        half = half * (0.93 + 0.07 * _smoothstep(c.y, p.top, p.base))
        body = np.sqrt(np.clip(1.0 - ((c.x - p.mid) / half) ** 2, 0.0, 1.0))
        self.atten = c.blur(body, 0.004) + 0.04 * heart_soft - self.air
        self.aerated = dict(p.lungs)  # lung parts still holding air: vessels, focal lesions
        self.masks = {name: np.zeros((c.size, c.size), bool) for name in LESION_TYPES}
        self._placed: List[Tuple[np.ndarray, float]] = []

    def add_pneumothorax(self, rng: np.random.Generator, lung: str):
        """Pleural air at the apex / chest wall of ``lung`` with a visible pleural line."""
        c = self.canvas
        region = _pneumothorax(rng, c, self.patient, lung, self.lesion_size)
        self.masks['pneumothorax'] |= region
        self.aerated[lung] = self.aerated[lung] & ~region
        # pleural air holds no lung tissue: darker than the lung next to it
        weight = c.blur(self.aerated[lung], 0.03)
        near = c.blur(self.atten * self.aerated[lung], 0.03) / np.maximum(weight, 1e-3)
        darker = np.minimum(near - rng.uniform(0.01, 0.05) * self.lesion_contrast - self.atten,
                            0.0)
        self.atten += c.blur(region * darker, 0.004)
        # visceral pleural line: a thin bright edge of the retracted lung by the air
        inside = c.blur(self.aerated[lung], 0.0025)
        line = inside * (1.0 - inside) * (c.blur(region, 0.01) > 0.05)
        self.atten += rng.uniform(0.03, 0.3) * self.lesion_contrast * line

    def add_effusion(self, rng: np.random.Generator, lung: str):
        """Fluid at the base of ``lung``: replaces lung air below a meniscus."""
        c = self.canvas
        fluid, region = _effusion(rng, c, self.patient, lung, self.lesion_size)
        self.masks['effusion'] |= region
        self.aerated[lung] = self.aerated[lung] & ~region
        lung_soft = c.blur(self.patient.lungs[lung], 0.006)
        # the fraction of the lung air the fluid replaces: all of it at most
        replaced = min(rng.uniform(0.3, 0.8) * self.lesion_contrast, 1.0)
        self.atten += replaced * fluid * self.air * lung_soft

    def add_focal(self, rng: np.random.Generator, kind: str):
        """A nodule, mass or consolidation in aerated lung, apart from earlier ones.

        Left out when no room is found even for a smaller lesion.
        """
        c = self.canvas
        aerated = self.aerated['right_lung'] | self.aerated['left_lung']
        depth = c.depth(aerated)
        radius = rng.uniform(*_FOCAL_RADIUS[kind]) * self.lesion_size
        for _ in range(3):  # no room left: try smaller
            # nodules lie wholly inside aerated lung; larger lesions may reach the pleura
            margin = radius + 1.0 / c.size if kind == 'nodule' else 0.6 * radius
            centre = _place(rng, depth, margin, self._placed, radius, c)
            if centre is not None:
                break
            radius *= 0.7
        if centre is None:
            return
        self._placed.append((centre, radius))
        profile, support = _focal(rng, kind, c, centre, radius)
        self.masks[kind] |= _largest_component(support & aerated)
        density = rng.uniform(*_FOCAL_DENSITY[kind]) * self.lesion_contrast
        # consolidation fills alveoli (replaces at most all the air); nodules and masses are
        # solid tissue
        if kind == 'consolidation':
            density = min(density, 1.0)
        density = density * profile * c.blur(aerated, 0.003)
        self.atten += density * self.air if kind == 'consolidation' else density

    def add_chest(self, rng: np.random.Generator):
        """Trachea, stomach gas, bones, lung vessels and lung texture."""
        c, p = self.canvas, self.patient
        trachea = _smoothstep(np.abs(c.x - p.mid), 0.02, 0.012) * _smoothstep(
            c.y, p.top + 0.16, p.top + 0.1)
        stomach = np.hypot((c.x - p.stomach[0]) / 0.06, (c.y - p.stomach[1]) / 0.035) < 1.0
        self.atten -= 0.22 * c.blur(trachea, 0.004)
        self.atten -= rng.uniform(0.0, 0.15) * c.blur(stomach, 0.01)
        visible = 0.35 + 0.65 * c.blur(self.lungs, 0.03)  # bone contrast is highest over air
        self.atten += _bones(rng, c, p) * visible
        aerated = self.aerated['right_lung'] | self.aerated['left_lung']
        self.atten += rng.uniform(0.12, 0.2) * _vessels(rng, c, p) * c.blur(aerated, 0.003)
        self.atten += 0.03 * c.noise(rng, 24) * c.blur(self.lungs, 0.01)

    def expose(self, rng: np.random.Generator) -> np.ndarray:
        """The film: window, gamma, heel effect and quantum noise, float32 (S, S) in 0..1."""
        c = self.canvas
        lo, hi = rng.uniform(-0.15, 0.0), rng.uniform(1.15, 1.45)
        image = np.clip((self.atten - lo) / (hi - lo), 0.0, 1.0) ** rng.uniform(0.75, 1.35)
        image *= 1.0 + rng.uniform(-0.08, 0.08) * (c.image_y - 0.5)
        grain = rng.standard_normal((c.size, c.size)).astype(np.float32)
        image += rng.uniform(0.01, 0.04) * cv2.GaussianBlur(grain, (0, 0), 0.7)
        return np.clip(image, 0.0, 1.0).astype(np.float32)


def draw_phantom(rng: np.random.Generator, size: int = 128, lesions: Sequence[str] = (),
                 heart_ratio: Optional[float] = None, lesion_size: float = 1.0,
                 lesion_contrast: float = 1.0,
                 ) -> Tuple[np.ndarray, Dict[str, np.ndarray], List[Box]]:
    """Draw one frontal (PA) chest X-ray phantom.

    Args:
        rng (np.random.Generator): the only source of randomness; same state -> same output.
        size (int): image height and width in pixels. Defaults to 128.
        lesions (Sequence[str]): lesions to draw, one instance per entry (repeat a name for
            several), each from :data:`LESION_TYPES`. Focal lesions (nodule, mass,
            consolidation) never touch each other; one that finds no room is left out, so
            read presence from the returned masks. Defaults to () (a healthy chest).
        heart_ratio (float, optional): target cardiothoracic ratio (heart width / chest
            width, see :func:`cardiothoracic_ratio`); the drawn ratio is within a few pixels
            of it. Defaults to a random normal-sized heart, ratio in [0.38, 0.48].
        lesion_size (float): multiplier (> 0) of the lesions' extent: the radius of nodules
            (0.015-0.035 of the image side at 1), masses (0.06-0.1) and consolidations
            (0.05-0.09), the height of an effusion (10-35 % of the lung's, at most 60 %),
            the retraction of a pneumothorax (10-30 % of the lung's size, at most 60 %).
            Defaults to 1.
        lesion_contrast (float): multiplier (> 0) of the attenuation lesions change: the
            density of nodules and masses, the fraction of lung air a consolidation or an
            effusion replaces (at most all of it), how much darker a pneumothorax is than
            the lung next to it and how bright its pleural line. Defaults to 1.

    Returns:
        tuple:
        - image (np.ndarray): float32 of shape (size, size) in 0..1, bright = dense.
        - masks (dict[str, np.ndarray]): bool (size, size) per name in :data:`ANATOMY` and
          :data:`LESION_TYPES` (empty for lesions not drawn). Lesion masks lie inside the
          lungs.
        - boxes (list[dict]): ``{'label': lesion name, 'bbox': [x1, y1, x2, y2]}``, one per
          8-connected component of each lesion mask, x2 = max x + 1 (COCO-style).
    """
    unknown = sorted(set(lesions) - set(LESION_TYPES))
    if unknown:
        raise ValueError(f'unknown lesion type(s) {unknown}; expected {LESION_TYPES}')
    if size < 32:
        raise ValueError(f'size must be at least 32 pixels, got {size}')
    check_lesion_style(lesion_size, lesion_contrast)
    if heart_ratio is None:
        heart_ratio = rng.uniform(0.38, 0.48)
    # patient pose: tilt, size and position, applied while rasterising
    canvas = _Canvas(size, angle=rng.uniform(-4.0, 4.0), scale=rng.uniform(0.9, 1.06),
                     shift=tuple(rng.uniform(-0.04, 0.04, 2)))
    patient = _Patient(rng, canvas, heart_ratio)
    film = _Film(rng, canvas, patient, lesion_size, lesion_contrast)
    # diffuse lesions first: they decide where aerated lung is left for focal ones
    diffuse = dict(pneumothorax=film.add_pneumothorax, effusion=film.add_effusion)
    for lesion in lesions:
        if lesion in diffuse:
            diffuse[lesion](rng, 'right_lung' if rng.random() < 0.5 else 'left_lung')
    for lesion in lesions:
        if lesion in FOCAL_LESIONS:
            film.add_focal(rng, lesion)
    film.add_chest(rng)
    image = film.expose(rng)
    masks = {**patient.lungs, 'heart': patient.heart, **film.masks}
    boxes = [{'label': name, 'bbox': [int(v) for v in box]} for name in LESION_TYPES
             for box in masks_to_boxes(masks[name], connectivity=8)]
    return image, masks, boxes

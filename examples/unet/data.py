"""Data for the U-Net example: synthetic scenes and a PNG folder loader.

Synthetic scenes hold four classes chosen to stress different losses:

* 0 ``background``: a noisy, slowly varying ramp;
* 1 ``blob``: large ellipses (easy, most foreground pixels);
* 2 ``curve``: curvilinear structures (thin, boundary-dominated);
* 3 ``tiny``: small discs (a few pixels each).

Five regimes, each a field of :class:`SceneConfig` and all on by default, make
the scenes hard in the ways where losses differ:

* ``thin``: curves 1–3 px wide that cross the whole image, so one missed pixel
  breaks them in two (connectivity matters); off: 3 px, shorter curves;
* ``tiny``: discs of radius 0.8–1.6 px (2–8 pixels), 1–5 per image before the
  ``imbalance`` division (0–2 at the default); off:
  radius 1.5–3 px, 2–6 per image;
* ``absent``: each foreground class is left out of an image with probability
  0.3, so models must also predict "not there";
* ``imbalance``: blob area times ``imbalance`` and tiny objects divided by it
  (1: off);
* ``ignore``: half of the images have an unlabelled rectangle (mask
  ``IGNORE_LABEL``) over 4–25% of the image; the image is drawn as usual there.

Images are ``[H, W, C]`` float32 in roughly ``[0, 1]``, masks ``[H, W]`` int32.
Everything is NumPy and seeded: sample ``i`` of a stream depends only on
``(seed, stream, i)``, so datasets of different lengths share their prefix.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

CLASS_NAMES: tuple[str, ...] = ("background", "blob", "curve", "tiny")
IGNORE_LABEL = 255  # VOC convention: mask pixels with this value are ignored

# Mean intensity of each foreground class (grey) and its tint (RGB). The
# intensities overlap once noise and blur are added, so shape has to be used.
_INTENSITY = np.array([0.0, 0.45, 0.8, 1.0], np.float32)
_TINT = np.array([[1.0, 1.0, 1.0], [1.0, 0.55, 0.45], [0.5, 0.9, 0.6], [0.6, 0.6, 1.0]], np.float32)


@dataclasses.dataclass(frozen=True)
class SceneConfig:
    """How synthetic scenes look. Pixel sizes are absolute, blob sizes relative."""

    size: int = 64
    channels: int = 1  # 1 (grey) or 3 (tinted RGB)
    thin: bool = True  # curves 1-3 px wide across the image (else 3 px, shorter)
    tiny: bool = True  # discs of radius 0.8-1.6 px, 1-5 per image (else 1.5-3 px, 2-6)
    absent: bool = True  # each foreground class missing from an image with p = 0.3
    imbalance: float = 2.0  # blob area x imbalance, tiny objects / imbalance (1: off)
    ignore: bool = True  # unlabelled rectangle (IGNORE_LABEL) in half of the images
    num_blobs: tuple[int, int] = (1, 3)  # inclusive ranges of object counts
    num_curves: tuple[int, int] = (1, 2)
    blob_radius: tuple[float, float] = (0.08, 0.2)  # fraction of `size`
    noise: float = 0.08  # std of additive Gaussian noise
    blur: float = 0.7  # Gaussian blur sigma in pixels (0: none)

    def easy(self) -> SceneConfig:
        """The same scenes with every regime off."""
        return dataclasses.replace(
            self, thin=False, tiny=False, absent=False, imbalance=1.0, ignore=False
        )


def _ellipse(
    yy: np.ndarray, xx: np.ndarray, rng: np.random.Generator, cfg: SceneConfig
) -> np.ndarray:
    n = cfg.size
    scale = np.sqrt(cfg.imbalance)  # area grows linearly with `imbalance`
    a, b = rng.uniform(*cfg.blob_radius, size=2) * n * scale
    cy, cx = rng.uniform(0.15 * n, 0.85 * n, size=2)
    t = rng.uniform(0.0, np.pi)
    u = (xx - cx) * np.cos(t) + (yy - cy) * np.sin(t)
    v = -(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0


def _curve(
    yy: np.ndarray, xx: np.ndarray, rng: np.random.Generator, cfg: SceneConfig
) -> np.ndarray:
    # A quadratic Bezier, rasterised by its distance to densely sampled points
    # (cheap at these sizes, no drawing library).
    n = cfg.size
    if cfg.thin:  # from one image side to the opposite one, 1-3 px wide
        p0, p2 = rng.uniform(0.0, n - 1, size=(2, 2)).astype(np.float32)
        axis = rng.integers(2)
        p0[axis], p2[axis] = 0.0, n - 1.0
        p1 = rng.uniform(0.1 * n, 0.9 * n, size=2).astype(np.float32)
        width = rng.uniform(1.0, 3.0)
    else:
        p0, p1, p2 = rng.uniform(0.05 * n, 0.95 * n, size=(3, 2)).astype(np.float32)
        width = 3.0
    # Four samples per pixel of length (the control polygon bounds it).
    num = 4 * int(np.linalg.norm(p1 - p0) + np.linalg.norm(p2 - p1)) + 2
    t = np.linspace(0.0, 1.0, num, dtype=np.float32)[:, None]
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2  # [T, 2] (y, x)
    d2 = (yy[..., None] - pts[:, 0]) ** 2 + (xx[..., None] - pts[:, 1]) ** 2
    # A 1 px line still covers the pixel centres it passes through.
    return d2.min(axis=-1) <= max(width / 2, 0.71) ** 2


def _disc(yy: np.ndarray, xx: np.ndarray, rng: np.random.Generator, cfg: SceneConfig) -> np.ndarray:
    r = rng.uniform(*((0.8, 1.6) if cfg.tiny else (1.5, 3.0)))
    cy, cx = rng.uniform(r, cfg.size - r, size=2)
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def _gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a ``[H, W, C]`` image with reflected borders."""
    if sigma <= 0:
        return img
    r = max(1, int(3 * sigma + 0.5))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k = (k / k.sum()).astype(np.float32)
    h, w = img.shape[:2]
    p = np.pad(img, ((r, r), (0, 0), (0, 0)), mode="reflect")
    img = sum(k[i] * p[i : i + h] for i in range(2 * r + 1))
    p = np.pad(img, ((0, 0), (r, r), (0, 0)), mode="reflect")
    return sum(k[i] * p[:, i : i + w] for i in range(2 * r + 1))


def make_scene(
    rng: np.random.Generator, cfg: SceneConfig = SceneConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic scene: image ``[H, W, C]`` float32 and mask ``[H, W]`` int32."""
    n = cfg.size
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    mask = np.zeros((n, n), np.int32)
    num_tiny = (1, 5) if cfg.tiny else (2, 6)
    num_tiny = tuple(int(round(k / cfg.imbalance)) for k in num_tiny)
    # Later classes are painted over earlier ones, so thin and tiny objects stay whole.
    for label, draw, counts in (
        (1, _ellipse, cfg.num_blobs),
        (2, _curve, cfg.num_curves),
        (3, _disc, num_tiny),
    ):
        count = rng.integers(counts[0], counts[1] + 1)
        if cfg.absent and rng.uniform() < 0.3:
            count = 0
        for _ in range(count):
            mask[draw(yy, xx, rng, cfg)] = label

    # Background: a gentle random ramp, so a global threshold is not enough.
    gy, gx = rng.uniform(-0.15, 0.15, size=2)
    background = 0.2 + gy * (yy / n - 0.5) + gx * (xx / n - 0.5)
    grey = np.where(mask > 0, _INTENSITY[mask], background).astype(np.float32)
    if cfg.channels == 3:
        img = grey[..., None] * _TINT[mask]
    elif cfg.channels == 1:
        img = grey[..., None]
    else:
        raise ValueError(f"channels must be 1 or 3, got {cfg.channels}")
    img = _gaussian_blur(img, cfg.blur)
    img = img + cfg.noise * rng.standard_normal(img.shape)
    if cfg.ignore and rng.uniform() < 0.5:  # an unlabelled region: image kept, label unknown
        h, w = (rng.uniform(0.2, 0.5, size=2) * n).astype(int)
        y0, x0 = rng.integers(0, n - h + 1), rng.integers(0, n - w + 1)
        mask[y0 : y0 + h, x0 : x0 + w] = IGNORE_LABEL
    return img.astype(np.float32), mask


def make_dataset(
    num: int, cfg: SceneConfig = SceneConfig(), *, seed: int = 0, stream: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``num`` scenes: images ``[N, H, W, C]`` float32, masks ``[N, H, W]`` int32.

    ``stream`` separates splits (e.g. 0 train, 1 validation) under one seed.
    """
    scenes = [make_scene(np.random.default_rng([seed, stream, i]), cfg) for i in range(num)]
    images = np.stack([s[0] for s in scenes])
    masks = np.stack([s[1] for s in scenes])
    return images, masks


# ---------------------------------------------------------------------------
# PNG folders: root/images/<name>.png + root/masks/<name>.png


def save_png_folder(root: str | pathlib.Path, images: np.ndarray, masks: np.ndarray) -> None:
    """Write ``images [N,H,W,1|3]`` (clipped to [0,1]) and index ``masks [N,H,W]`` as PNGs."""
    from PIL import Image  # Pillow is a dependency of matplotlib

    root = pathlib.Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i, (img, mask) in enumerate(zip(images, masks, strict=True)):
        pixels = (np.clip(img, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
        pixels = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
        Image.fromarray(pixels).save(root / "images" / f"{i:05d}.png")
        Image.fromarray(mask.astype(np.uint8)).save(root / "masks" / f"{i:05d}.png")


def _read_image(path: pathlib.Path, size: int | None) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        if im.mode not in ("L", "I;16", "I", "F"):
            im = im.convert("RGB")  # palette, RGBA, CMYK, ...
        if size is not None:
            im = im.resize((size, size), Image.Resampling.BILINEAR)
        a = np.asarray(im)
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    elif a.dtype.kind in "ui":  # 16-bit greyscale
        a = a.astype(np.float32) / np.float32(np.iinfo(a.dtype).max)
    return (a[..., None] if a.ndim == 2 else a).astype(np.float32)


def _read_mask(path: pathlib.Path, size: int | None) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        # "P" (palette) masks store class indices directly, as in Pascal VOC.
        if im.mode not in ("L", "P", "I", "I;16"):
            raise ValueError(
                f"{path}: mask mode {im.mode!r}; expected single-channel class indices (L or P)"
            )
        if size is not None:
            im = im.resize((size, size), Image.Resampling.NEAREST)  # never mix labels
        return np.asarray(im).astype(np.int32)


def load_png_folder(
    root: str | pathlib.Path, *, size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load ``root/images/*.png`` and the masks of the same names in ``root/masks``.

    Args:
      root: folder holding ``images/`` and ``masks/``.
      size: if given, resize to ``size x size`` (bilinear images, nearest masks);
        otherwise every image must already share one shape.

    Returns:
      ``images [N, H, W, C]`` float32 in [0, 1] and ``masks [N, H, W]`` int32
      (class indices; ``IGNORE_LABEL`` marks pixels to ignore).
    """
    root = pathlib.Path(root)
    image_paths = sorted((root / "images").glob("*.png"))
    if not image_paths:
        raise FileNotFoundError(f"no PNG files in {root / 'images'}")
    missing = [p.name for p in image_paths if not (root / "masks" / p.name).exists()]
    if missing:
        raise FileNotFoundError(f"no mask in {root / 'masks'} for {missing[:5]}")
    images = [_read_image(p, size) for p in image_paths]
    masks = [_read_mask(root / "masks" / p.name, size) for p in image_paths]
    shapes = {im.shape for im in images} | {m.shape + (images[0].shape[-1],) for m in masks}
    if len(shapes) != 1:
        raise ValueError(f"images/masks differ in shape {sorted(shapes)}; pass size= to resize")
    return np.stack(images), np.stack(masks)

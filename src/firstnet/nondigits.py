"""Pictures that are not digits, drawn the way the page draws (white round strokes on black), to teach when not to answer."""

import math
import pathlib

import numpy as np

from firstnet import files
from firstnet.images import prepare_image
from firstnet.errors import UserError

CANVAS = 340  # The page's drawing pad is 340x340 pixels (web/static/index.html),
STROKE = 28  # and its pen 28 pixels wide with round ends (web/static/app.js).
KINDS = ("strokes", "letters", "noise", "blank", "shapes")
# Letters a person could read as a digit (O as 0, I as 1, S as 5, Z as 2, B as 8, G as 6, Q as 9, D as 0) are left out.
LETTERS = "ACEFHJKMNPRTUVWXY"
FONT_FOLDERS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation",
                "/usr/share/fonts/dejavu", "/usr/share/fonts/TTF")
SHAPES = ("smiley", "plus", "square", "triangle", "star", "cross", "heart", "arrow")


def _canvas():
    from PIL import Image, ImageDraw

    image = Image.new("L", (CANVAS, CANVAS), 0)
    return image, ImageDraw.Draw(image)


def _line(pen, points, width):
    """A stroke through `points` as the page's pen draws it: round ends and round joins."""
    points = [tuple(map(float, point)) for point in points]
    pen.line(points, fill=255, width=int(width), joint="curve")
    for x, y in (points[0], points[-1]):
        pen.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=255)


def _dot(pen, x, y, width):
    pen.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=255)


def draw_strokes(rng):
    """One to four scribbled strokes, each a wobbly path through a few random points."""
    image, pen = _canvas()
    width = rng.uniform(20, 34)
    for _ in range(int(rng.integers(1, 5))):
        points = rng.uniform(40, CANVAS - 40, size=(int(rng.integers(3, 7)), 2))
        _line(pen, points, width)
    return image


def fonts():
    """TrueType fonts found on this machine (DejaVu, Liberation), else an empty list and Pillow's own font is used."""
    found = []
    for folder in map(pathlib.Path, FONT_FOLDERS):
        if folder.is_dir():
            found += sorted(str(path) for path in folder.glob("*.ttf") if "Math" not in path.name)
    return found


def draw_letter(rng, letter=None, font_files=None):
    """A capital letter, not one that looks like a digit, in a font from this machine, large and somewhere on the pad."""
    from PIL import ImageFont

    image, pen = _canvas()
    letter = letter or LETTERS[int(rng.integers(len(LETTERS)))]
    font_files = fonts() if font_files is None else font_files
    size = int(rng.uniform(180, 280))
    if font_files:
        font = ImageFont.truetype(font_files[int(rng.integers(len(font_files)))], size)
    else:
        font = ImageFont.load_default(size=size)
    left, top, right, bottom = pen.textbbox((0, 0), letter, font=font)
    x = rng.uniform(10, max(11, CANVAS - 10 - (right - left))) - left
    y = rng.uniform(10, max(11, CANVAS - 10 - (bottom - top))) - top
    pen.text((x, y), letter, fill=255, font=font)
    return image


def draw_noise(rng):
    """Dabs of the pen all over the pad, or a few short strokes scattered around it: ink that forms no shape."""
    image, pen = _canvas()
    width = rng.uniform(16, 34)
    if rng.random() < 0.5:
        for x, y in rng.uniform(10, CANVAS - 10, size=(int(rng.integers(12, 60)), 2)):
            _dot(pen, x, y, width)
    else:
        for _ in range(int(rng.integers(6, 20))):
            start = rng.uniform(20, CANVAS - 20, size=2)
            _line(pen, [start, start + rng.normal(0, 30, size=2)], width)
    return image


def draw_blank(rng):
    """A nearly empty page: one dot, a short tick, or two dots, as a learner who has only started drawing leaves it."""
    image, pen = _canvas()
    width = rng.uniform(16, 34)
    choice = int(rng.integers(3))
    centre = rng.uniform(60, CANVAS - 60, size=2)
    if choice == 0:
        _dot(pen, *centre, width)
    elif choice == 1:
        _line(pen, [centre, centre + rng.normal(0, 18, size=2)], width)
    else:
        _dot(pen, *centre, width)
        _dot(pen, *(centre + rng.uniform(-90, 90, size=2)), width)
    return image


def _shape_points(shape, rng):
    """The strokes of a shape in a unit box centred on 0, as lists of points (a smiley's eyes are dots)."""
    circle = [(math.cos(angle), math.sin(angle)) for angle in np.linspace(0, 2 * math.pi, 40)]
    if shape == "smiley":
        mouth = [(0.55 * math.cos(angle), 0.55 * math.sin(angle)) for angle in np.linspace(0.2 * math.pi, 0.8 * math.pi, 16)]
        return [circle, mouth], [(-0.35, -0.3), (0.35, -0.3)]
    if shape == "plus":
        return [[(-1, 0), (1, 0)], [(0, -1), (0, 1)]], []
    if shape == "square":
        return [[(-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1)]], []
    if shape == "triangle":
        return [[(0, -1), (1, 0.8), (-1, 0.8), (0, -1)]], []
    if shape == "star":
        corners = [(math.sin(4 * math.pi * k / 5), -math.cos(4 * math.pi * k / 5)) for k in range(6)]
        return [corners], []
    if shape == "cross":
        return [[(-1, -1), (1, 1)], [(-1, 1), (1, -1)]], []
    if shape == "heart":
        angles = np.linspace(0, 2 * math.pi, 60)
        return [[(math.sin(t) ** 3, -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)) / 16)
                 for t in angles]], []
    if shape == "arrow":
        return [[(-1, 0), (1, 0)], [(0.4, -0.6), (1, 0), (0.4, 0.6)]], []
    raise ValueError(f"unknown shape {shape!r}; choose one of {', '.join(SHAPES)}")


def draw_shape(rng, shape=None):
    """A smiley, a plus, a square, a triangle, a star, a cross, a heart or an arrow: its size, place and turn vary."""
    image, pen = _canvas()
    shape = shape or SHAPES[int(rng.integers(len(SHAPES)))]
    lines, dots = _shape_points(shape, rng)
    radius, turn = rng.uniform(70, 140), rng.uniform(-0.3, 0.3)
    centre = rng.uniform(30 + radius, CANVAS - 30 - radius, size=2)
    width = rng.uniform(20, 34)
    rotation = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])

    def placed(points):
        return np.asarray(points, dtype=np.float64) @ rotation.T * radius + centre

    for points in lines:
        _line(pen, placed(points), width)
    for x, y in placed(dots) if dots else []:
        _dot(pen, x, y, width * 1.2)
    return image


DRAWERS = {"strokes": draw_strokes, "letters": draw_letter, "noise": draw_noise, "blank": draw_blank,
           "shapes": draw_shape}


def drawings(kind, count, seed=0):
    """`count` pictures of one kind as the page's pad would hold them: 340x340 greyscale PIL images."""
    if kind not in DRAWERS:
        raise ValueError(f"unknown kind of picture {kind!r}; choose one of {', '.join(KINDS)}")
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    return [DRAWERS[kind](rng) for _ in range(int(count))]


def prepared(kind, count, seed=0):
    """`count` pictures of one kind, each prepared as `predict` prepares a drawing: a (count, 28, 28) uint8 array.

    The few that `prepare_image` refuses (it finds no ink in them) are drawn again, so that every one is a picture
    the network would be asked about.
    """
    made, attempt = [], 0
    while len(made) < count:
        for image in drawings(kind, count - len(made), seed=seed * 1000 + attempt):
            try:
                made.append(prepare_image(image))
            except UserError:
                continue
        attempt += 1
        if attempt > 20:
            raise ValueError(f"could not draw {count} {kind} pictures that prepare_image accepts")
    return np.stack(made)


def page_digits(images, count=None):
    """Real 28x28 digits drawn again on the page's pad (scaled up, smoothed) and prepared as `predict` prepares a drawing.

    A digit the page receives went through this: the answer rate on them is the one a learner drawing digits sees.
    """
    from PIL import Image, ImageFilter

    images = np.asarray(images)[:count]
    made = []
    for image in images:
        big = Image.fromarray(np.asarray(image, dtype=np.uint8)).resize((280, 280), Image.Resampling.BILINEAR)
        big = big.filter(ImageFilter.GaussianBlur(3)).point(lambda level: 255 if level > 100 else 0)
        pad = Image.new("L", (CANVAS, CANVAS), 0)
        pad.paste(big, (30, 30))
        made.append(prepare_image(pad))
    return np.stack(made)


CACHE_VERSION = 1  # Raise it whenever a drawer changes, so that no picture drawn the old way is read back.


def cached(kind, count, seed=0):
    """`prepared(kind, count, seed)`, kept in firstnet's cache folder: the pictures depend on nothing but their seed,
    and drawing and preparing a thousand of them takes half a minute."""
    return _through_cache(f"{kind}-{int(count)}-{int(seed)}", count, lambda: prepared(kind, count, seed))


def cached_page_digits(images):
    """`page_digits(images)`, kept in firstnet's cache folder under a digest of the digits."""
    import hashlib

    images = np.ascontiguousarray(images, dtype=np.uint8)
    digest = hashlib.sha256(images.tobytes()).hexdigest()[:16]
    return _through_cache(f"page-{digest}", len(images), lambda: page_digits(images))


def _through_cache(name, count, make):
    folder = files.cache_folder("nondigits")
    usable = folder is not None and files.private_writable_folder(folder)
    path = folder / f"{name}-v{CACHE_VERSION}.npy" if usable else None
    if path is not None and path.is_file():
        try:
            pictures = np.load(path, allow_pickle=False)
            if pictures.shape == (int(count), 28, 28) and pictures.dtype == np.uint8:
                return pictures
        except (OSError, ValueError):
            pass  # A broken cache file is made again below.
    pictures = make()
    if path is not None:
        with files.atomic_path(path, sync=False) as temporary:
            np.save(temporary, pictures, allow_pickle=False)
    return pictures

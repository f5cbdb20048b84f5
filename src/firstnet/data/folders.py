"""Your own pictures: a folder with one folder of pictures per class, as `keras.utils.image_dataset_from_directory` reads.

Two layouts: FOLDER/train/<class>/* and FOLDER/test/<class>/*, or just FOLDER/<class>/*. In the second, training
holds out a fifth of each class (the same fifth every time) for its test score, and scoring a trained model
(`firstnet evaluate`) takes every picture. PNG, JPEG and BMP pictures of any size, grey or colour, are made one
size, as uint8 arrays like MNIST's: (n, height, width) when all are grey, (n, height, width, 3) when any is in
colour. Classes are numbered in the sorted order of their names, as Keras numbers them.

Whatever cannot be used is said: a picture that cannot be read is skipped with a note naming it, a folder
that cannot make a class is one clear error. No picture is ever given another folder's label.
"""

import collections
import pathlib
import sys
import unicodedata
import warnings

import numpy as np

from firstnet.files import files_inside, links_note
from firstnet.names import shown
from firstnet.errors import UserError, first_line
from firstnet.images import IMAGE_FORMATS, open_image, to_grey
from firstnet.data.arrays import Dataset

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
# Pictures are made at most this many pixels on their longer side: a network learns classes from small pictures,
# and a photo's 12 million pixels would take gigabytes per thousand pictures.
MAX_TRAINING_SIDE = 64
# Larger pictures are skipped: their header says more pixels than a photo has, the mark of a broken file or a
# decompression bomb.
MAX_PICTURE_PIXELS = 100_000_000
MAX_PICTURE_SIDE = 10_000
HELD_OUT_FRACTION = 5  # One picture in this many of each class, in the one-folder layout.
HELD_OUT_SEED = 0
WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{n}" for n in range(1, 10)), *(f"lpt{n}" for n in range(1, 10))}
WINDOWS_FORBIDDEN = set('<>:"/\\|?*')
SHOWN = 3  # How many file names a note lists before "and N more".


def is_class_folders(path):
    """True if `path` looks like a class-per-folder set (either layout) rather than one of MNIST's formats."""
    path = pathlib.Path(path)
    if (path / "train").is_dir():
        return True
    return any(_class_folders(path)) and not any(path.glob("*-idx[13]-ubyte*"))


def load_class_folders(path, *, for_scoring=False, announce=None, preparation=None):
    """The pictures under `path` as an `Dataset` with `class_names`; see the module's docstring for the layouts.

    `for_scoring` (evaluate) takes every picture of the one-folder layout as the test set. `preparation`, a run's
    (metrics.json), makes every picture as that run's were: "mnist" the MNIST way (as predict and `train --from`
    do), or "resized to ..." at that size; without it, the folder's own most common size. Notes on what was
    skipped or changed go to `announce` (default: one line each on stderr) and into the result's `notes`.
    """
    announce = announce or (lambda line: print(line, file=sys.stderr))
    path = pathlib.Path(path)
    notes = []
    split = (path / "train").is_dir()
    if split and not (path / "test").is_dir():
        raise UserError(f"{path}: has train/ but no test/; put test/<class>/ pictures beside train/, or put the class "
                        "folders directly in it (then a fifth of each class is held out for testing)")
    train_root = path / "train" if split else path
    class_names, train_files = _listed(train_root, notes)
    if split:
        test_names, test_files = _listed(path / "test", notes, allow_missing_of=class_names)
        unknown = sorted(set(test_names) - set(class_names))
        if unknown:
            raise UserError(f"{path / 'test'}: has class folders that train/ has not ({', '.join(map(repr, unknown))});"
                            " a model cannot learn a class it never sees: add them to train/ or remove them")
        test_files = [(file, class_names.index(test_names[label])) for file, label in test_files]
    else:
        train_files, test_files = _held_out(train_files, len(class_names), for_scoring)
    files = [file for file, _ in train_files + test_files]
    if len(files) > 2000:
        announce(f"firstnet: reading {len(files):,} pictures from {path} (a while for large photos)")
    if preparation == "mnist":
        shape, pictures = (28, 28), _read_the_mnist_way(files, notes)
    else:
        shape, pictures = _read_all(files, notes, preparation)
    images = {}
    for split_name, listed in (("train", train_files), ("test", test_files)):
        kept = [(pictures[file], label) for file, label in listed if file in pictures]
        images[split_name] = (np.stack([picture for picture, _ in kept]) if kept else np.zeros((0, *shape), np.uint8),
                              np.array([label for _, label in kept], dtype=np.uint8))
    _check_classes_left(images["train"][1], class_names, train_root)
    if not len(images["test"][0]):
        raise UserError(f"{path}: no readable test pictures left; add some to test/<class>/")
    for note in notes:
        announce(f"firstnet: {note}")
    return Dataset(*images["train"], *images["test"], source=str(path), class_names=tuple(class_names),
                 dataset="folders", notes=tuple(notes),
                   preparation=preparation or preparation_of(shape))


# How a folder's pictures are made for the network, after resizing: the paper taken away. Each picture's paper
# colour (the median of its border, per channel) is subtracted and the distance kept, so the paper becomes black
# (0) and the ink bright, as in MNIST, whatever the paper's colour and whether the ink is darker or lighter. Without
# it a folder of 32x32 colour photos of digits (dark ink on light paper) gave the dense network 3,072 inputs that
# are almost all bright: RMSprop's first steps, about the same size for every weight, then add up over thousands
# of inputs to activations in the thousands, the softmax saturates and the loss sticks at 14.5 (chance). With the
# paper taken away most inputs are 0, as in MNIST, and the same run learns (README, "Your own pictures").
PAPER_REMOVED = "paper removed"


def preparation_of(shape, paper_removed=True):
    """How a folder's pictures were made arrays, in words that `prepare_picture` reads back."""
    made = f"resized to {shape[1]}x{shape[0]}, {'colour' if len(shape) == 3 else 'grey'}"
    return f"{made}, {PAPER_REMOVED}" if paper_removed else made


def shape_of(preparation):
    """The picture shape that `preparation_of` wrote, or None for MNIST's own preparation (checked: run_files.py)."""
    from firstnet import run_files

    return run_files.parse_preparation(preparation) if preparation and preparation != "mnist" else None


def removes_paper(preparation):
    """Whether `preparation` takes each picture's paper away (runs saved before it did not)."""
    return bool(preparation) and preparation.endswith(f", {PAPER_REMOVED}")


def prepare_picture(image, shape, paper_removed=False):
    """One Pillow picture as the set's pictures were made: `shape` (height, width) grey or (height, width, 3),
    with its paper taken away (`without_paper`) when the set's preparation says so."""
    from PIL import Image

    height, width = shape[:2]
    colour = len(shape) == 3
    image = _opaque(image)
    if getattr(image, "format", None) == "JPEG":
        image.draft("RGB" if colour else "L", (width, height))  # Decode a big JPEG at a fraction of its size.
    if colour:
        image = image.convert("RGB")
    else:
        image = Image.fromarray(to_grey(image).astype(np.float32))  # 16-bit scans scaled, not clipped.
    resized = image.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=3.0)
    pixels = np.clip(np.asarray(resized, dtype=np.float32).round(), 0, 255).astype(np.uint8)
    return without_paper(pixels) if paper_removed else pixels


def without_paper(pixels):
    """A uint8 picture with its paper's colour (the median of its border, per channel) subtracted: paper 0, ink bright."""
    signed = pixels.astype(np.int16)
    border = np.concatenate([signed[0], signed[-1], signed[:, 0], signed[:, -1]])
    paper = np.median(border, axis=0)
    return np.clip(np.abs(signed - paper).round(), 0, 255).astype(np.uint8)


def _opaque(image):
    """A picture with transparency, laid on white paper, as a viewer shows it."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return image


def _class_folders(root, notes=None):
    """The class folders under `root`; a link is never a class (it may lead anywhere), and is named in `notes`."""
    if not root.is_dir():
        return []
    entries = [entry for entry in root.iterdir() if not entry.name.startswith(".")]
    links = [entry for entry in entries if entry.is_symlink() and entry.is_dir()]
    if links and notes is not None:
        notes.append(links_note(sorted(links)))
    return sorted((entry for entry in entries if entry.is_dir() and not entry.is_symlink()), key=lambda entry: entry.name)


def _listed(root, notes, allow_missing_of=None):
    """The class names under `root` and (file, label) for each picture, with notes on files that are not pictures."""
    folders = _class_folders(root, notes)
    if not folders:
        raise UserError(f"{root}: no class folders; put each class's pictures in a folder named after it, like "
                        f"{root}/cat/1.jpg and {root}/dog/1.jpg")
    names = [_class_name(folder) for folder in folders]
    _check_names(names, root, notes)
    if allow_missing_of is None and len(names) < 2:
        raise UserError(f"{root}: only one class ({names[0]!r}); a classifier needs at least two classes to tell apart")
    listed, not_pictures, links = [], [], []
    for label, folder in enumerate(folders):
        found, linked = files_inside(folder, recursive=True)
        found = sorted(file for file in found if not file.name.startswith("."))
        links += linked
        pictures = [file for file in found if file.suffix.lower() in PICTURE_SUFFIXES]
        not_pictures += [file for file in found if file.suffix.lower() not in PICTURE_SUFFIXES]
        if not pictures:
            raise UserError(f"{folder}: no pictures (PNG, JPEG or BMP) in this class folder; add some, or remove it")
        listed += [(file, label) for file in pictures]
    if links:
        notes.append(links_note(links))
    if not_pictures:
        notes.append(f"skipped {_listing(not_pictures)}: not PNG, JPEG or BMP")
    if allow_missing_of is not None:
        missing = sorted(set(allow_missing_of) - set(names))
        if missing:
            notes.append(f"{root} has no pictures of {', '.join(map(repr, missing))}; its test score leaves them out")
    return names, listed


def _class_name(folder):
    """A folder's name as a class name; a name that is not text (undecodable bytes) is refused."""
    try:
        folder.name.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"{folder}: its name is not valid text (bytes of another encoding); rename the folder") from None
    return folder.name


def _check_names(names, root, notes):
    """Refuse names that would show as one (the same letters written two ways); note names other systems refuse."""
    normalised = collections.defaultdict(list)
    for name in names:
        normalised[unicodedata.normalize("NFC", name)].append(name)
    same = [found for found in normalised.values() if len(found) > 1]
    if same:
        raise UserError(f"{root}: class folders {' and '.join(map(ascii, same[0]))} are the same name written two "
                        "ways (Unicode); their labels would look identical: rename one")
    folded = collections.defaultdict(list)
    for name in names:
        folded[name.casefold()].append(name)
    if any(len(found) > 1 for found in folded.values()):
        clash = next(found for found in folded.values() if len(found) > 1)
        notes.append(f"class folders {' and '.join(map(repr, clash))} differ only in case: on macOS and Windows they "
                     "would be one folder, so rename one before copying the set there")
    foreign = [name for name in names if not _portable(name)]
    if foreign:
        notes.append(f"class names {', '.join(map(repr, foreign[:SHOWN]))}{' and more' if len(foreign) > SHOWN else ''}"
                     " cannot be folder names on Windows; they are kept as labels here")


def _portable(name):
    stem = name.split(".")[0].lower()
    return not (set(name) & WINDOWS_FORBIDDEN or any(ord(character) < 32 for character in name)
                or name.endswith((".", " ")) or stem in WINDOWS_RESERVED)


def _held_out(files, class_count, for_scoring):
    """The one-folder layout's split: a fifth of each class held out, the same fifth every time (seed 0)."""
    if for_scoring:
        return files, files
    shuffling = np.random.default_rng(HELD_OUT_SEED)
    train, test = [], []
    for label in range(class_count):
        members = [entry for entry in files if entry[1] == label]
        order = shuffling.permutation(len(members))
        held = len(members) // HELD_OUT_FRACTION if len(members) >= HELD_OUT_FRACTION else min(1, len(members) - 1)
        test += [members[index] for index in sorted(order[:held])]
        train += [members[index] for index in sorted(order[held:])]
    return train, test


def _read_the_mnist_way(files, notes):
    """Every readable picture prepared as predict prepares a digit for an MNIST run (images.prepare_image)."""
    from firstnet.images import prepare_image

    pictures, broken = {}, []
    for file in files:
        try:
            with open_image(file, max_side=MAX_PICTURE_SIDE) as image:
                pictures[file] = prepare_image(image)
        except Exception as error:
            broken.append((file, first_line(error)))
    if broken:
        notes.append(f"skipped {_listing([file for file, _ in broken])}: not readable as digits "
                     f"({shown(broken[0][0].name)}: {broken[0][1]})")
    if not pictures:
        raise UserError(f"none of the {len(files)} pictures could be read as digits (e.g. {shown(broken[0][0])}: "
                        f"{broken[0][1]})")
    return pictures


def _read_all(files, notes, preparation=None):
    """Every readable picture, made one shape: the most common size (shrunk to MAX_TRAINING_SIDE), grey or colour,
    its paper taken away (`without_paper`); or as `preparation` (a run's) says, when scoring that run."""
    target = shape_of(preparation)
    paper_removed = removes_paper(preparation) if preparation else True
    from PIL import Image

    headers, broken = {}, []
    for file in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # Only the formats firstnet reads (images.IMAGE_FORMATS), the same list as predict and the page.
                with Image.open(file, formats=IMAGE_FORMATS) as image:
                    size, mode = image.size, image.mode
            if size[0] * size[1] > MAX_PICTURE_PIXELS:
                broken.append((file, f"{size[0]}x{size[1]} pixels, too large"))
            else:
                headers[file] = (size, mode)
        except Exception as error:
            broken.append((file, first_line(error)))
    if not headers:
        raise UserError(f"none of the {len(files)} pictures could be read (e.g. {broken[0][0]}: {broken[0][1]})")
    sizes = collections.Counter(size for size, _ in headers.values())
    (width, height), _ = sizes.most_common(1)[0]
    scale = min(1.0, MAX_TRAINING_SIDE / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if target is not None:  # The run's own size: every picture is stretched to it, as predict does.
        (width, height), scale = (target[1], target[0]), 1.0
        size = (width, height)
    grey_shape = (size[1], size[0])
    pictures = {}
    for file, (_, mode) in headers.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # images.open_image: the format list, the size limits, no links, and NaN refused (to_grey).
                with open_image(file, max_side=MAX_PICTURE_SIDE) as image:
                    pictures[file] = prepare_picture(image, grey_shape + (() if mode in GREY_MODES else (3,)))
        except Exception as error:
            broken.append((file, first_line(error)))
    # The set is in colour if any picture really is: channels that differ by more than a JPEG's noise.
    colour = any(picture.ndim == 3 and int(np.abs(picture.astype(np.int16) - picture[..., :1]).max()) > 8
                 for picture in pictures.values()) if target is None else len(target) == 3
    for file, picture in pictures.items():
        if colour and picture.ndim == 2:
            picture = np.repeat(picture[..., np.newaxis], 3, axis=2)
        elif not colour and picture.ndim == 3:
            picture = _luma(picture).astype(np.uint8)
        pictures[file] = without_paper(picture) if paper_removed else picture
    if broken:
        notes.append(f"skipped {_listing([file for file, _ in broken])}: not readable as pictures "
                     f"({broken[0][0].name}: {broken[0][1]})")
    resized = sum(count for other, count in sizes.items() if other != (width, height))
    if resized or scale < 1:
        made = ("the size of the run's pictures" if target is not None else "the most common size" if scale == 1
                else f"the most common size, {width}x{height}, shrunk")
        notes.append(f"made every picture {size[0]}x{size[1]} pixels ({made}"
                     f"{f'; {resized} of other sizes were stretched to it' if resized else ''})")
    return (grey_shape + (3,) if colour else grey_shape), pictures


GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def _luma(rgb):
    """A colour picture in grey as Pillow's convert("L") computes it (ITU-R 601-2 luma), rounded."""
    weights = np.array([299, 587, 114], dtype=np.int32)
    return ((rgb.astype(np.int32) * weights).sum(axis=-1) + 500) // 1000


def _check_classes_left(labels, class_names, root):
    counts = np.bincount(labels, minlength=len(class_names))
    empty = [class_names[label] for label in np.flatnonzero(counts == 0)]
    if empty:
        raise UserError(f"{root}: no readable training pictures of {', '.join(map(repr, empty))}; add some, or remove "
                        "the folder")


def _listing(files):
    names = [shown(file) for file in files[:SHOWN]]
    more = f" and {len(files) - SHOWN} more" if len(files) > SHOWN else ""
    return f"{len(files)} file{'s' if len(files) != 1 else ''} ({', '.join(names)}{more})"

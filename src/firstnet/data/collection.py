"""The class collection: our own handwritten digits, labelled, kept as a class-per-folder set every command reads.

A collection is a folder: `COLLECTION/<digit>/<id>.png` holds each picture as the network sees it (the 28x28
prepared digit, white ink on black, made the way `firstnet predict` and the page prepare a drawing or a photo), and
`COLLECTION/.originals/<id>.<ext>` the picture as it was drawn or photographed. The folder reader (data/folders.py)
skips folders whose names start with a dot, so an original is never counted as a second picture. A picture's id is
the start of the SHA-256 of its 784 prepared pixels, so the same picture added twice, or imported twice, is kept
once. Every file is written to a temporary name and renamed, so a crash leaves no half-written picture.
"""

import datetime
import hashlib
import io
import os
import pathlib
import re
import shutil
import sys
import tempfile
import threading
import zipfile
import zlib

import numpy as np

from firstnet import files
from firstnet.data.other_writers import shifted_digits  # noqa: F401  (the collection's word for it, as before)
from firstnet.errors import UserError
from firstnet.files import DEFAULT_RUNS_ROOT
from firstnet.images import IMAGE_SUFFIXES, open_image, prepare_file, prepare_image, to_grey
from firstnet.data.arrays import Dataset

MARKER = ".firstnet-collection"
ORIGINALS = ".originals"
DIGITS = tuple(str(digit) for digit in range(10))
ID_LENGTH = 16
ID_PATTERN = re.compile(rf"^[0-9a-f]{{{ID_LENGTH}}}$")
# A class of 30 each drawing every digit a dozen times makes 3,600 pictures; the bound leaves room for several
# classes while keeping a collection small enough to list, export and train on in seconds.
MAX_ITEMS = 5000
MAX_ORIGINAL_BYTES = 2 * 1024 * 1024  # The page's upload limit (web/limits.py): a digit needs far less.
# An original is kept as a PNG of at most this many pixels a side: under 200 KB even for a noisy colour photo, so
# a full collection's originals stay under 1 GB, and the teacher can still see what was drawn.
ORIGINAL_SIDE = 256
# A zip to import: its size on the wire, how many entries and how much it may unpack to (a zip bomb claims far more).
MAX_IMPORT_BYTES = 64 * 1024 * 1024
MAX_IMPORT_ENTRIES = 2 * MAX_ITEMS + 16
MAX_IMPORT_UNPACKED = 512 * 1024 * 1024
MAX_COMPRESSION_RATIO = 200  # PNGs and JPEGs hardly compress; an entry that shrank more than this is a bomb.
ORIGINAL_SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "GIF": ".gif", "WEBP": ".webp"}
HELD_OUT_SEED = 0


class Full(UserError):
    """The collection holds as many pictures as it may."""


class LabelledOtherwise(UserError):
    """The same picture is already in the collection under another label."""


def default_folder(runs_root=DEFAULT_RUNS_ROOT):
    """Where `firstnet serve` keeps the collection when not told: `collection/` beside the runs folder."""
    return pathlib.Path(runs_root).resolve().parent / "collection"


def is_collection(path):
    """True for a folder that holds a collection's marker file (written by `Collection`)."""
    return (pathlib.Path(path) / MARKER).is_file()


def picture_id(prepared):
    """A picture's id: the first 16 hex digits of the SHA-256 of its 28x28 uint8 pixels."""
    prepared = np.ascontiguousarray(prepared, dtype=np.uint8)
    return hashlib.sha256(prepared.tobytes()).hexdigest()[:ID_LENGTH]


def check_label(label):
    """The label as one of "0".."9", or a UserError saying what a label must be."""
    text = str(label).strip() if label is not None else ""
    if text not in DIGITS:
        raise UserError(f"label {label!r}: must be one digit, 0 to 9 (which digit the picture shows)")
    return text


def prepare_upload(image_bytes, name="the picture", max_pixels=None):
    """A drawing's or photo's bytes as (the prepared 28x28 digit, the original to keep, its suffix).

    The original is kept re-encoded as a PNG of at most 256x256 pixels, not byte for byte: whatever a file carried
    besides its pixels (a phone's location, trailing bytes) is dropped, and each original has a bound (ORIGINAL_SIDE).
    """
    if len(image_bytes) > MAX_ORIGINAL_BYTES:
        raise UserError(f"{name}: {len(image_bytes) / 2**20:.1f} MB is too large; at most "
                        f"{MAX_ORIGINAL_BYTES // 2**20} MB (a digit needs far less)")
    image = open_image(bytes(image_bytes), name=name, max_pixels=max_pixels)
    grey = to_grey(image)
    if grey.max() - grey.min() < 32:
        raise UserError(f"{name}: the picture is blank; draw a digit first (or upload a photo of one)")
    return prepare_image(image), original_png(image), ".png"


def original_png(image):
    """The picture as it was drawn or photographed, shrunk to fit ORIGINAL_SIDE, as PNG bytes without metadata."""
    from PIL import Image

    kept = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
    kept.thumbnail((ORIGINAL_SIDE, ORIGINAL_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    kept.save(buffer, "PNG", optimize=False)
    return buffer.getvalue()


def read_prepared(path):
    """A collection's prepared digit read back: a 28x28 greyscale PNG as uint8, or a UserError."""
    image = open_image(pathlib.Path(path))
    if image.size != (28, 28) or image.mode != "L":
        raise UserError(f"{path}: not a prepared 28x28 greyscale digit")
    return np.asarray(image, dtype=np.uint8)


def png_bytes(prepared):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(prepared, dtype=np.uint8), mode="L").save(buffer, "PNG")
    return buffer.getvalue()


class Collection:
    """One collection folder; its methods may be called from many threads at once (a class adding at the same time)."""

    def __init__(self, root, max_items=None, sync=True):
        self.root = pathlib.Path(root)
        self.max_items = max_items or MAX_ITEMS
        # Each picture is written through to the disk before its rename, unless a bulk writer (write_digits) says
        # not to: the rename keeps every file whole either way, the sync only guards against a power cut.
        self.sync = sync
        self.lock = threading.Lock()
        self.tidied = False
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"{self.root}: is a file, not a folder; name a folder for the collection")
        if self.root.is_dir() and not is_collection(self.root):
            if not all(entry.name in DIGITS or entry.name.startswith(".") for entry in self.root.iterdir()):
                raise UserError(f"{self.root}: holds other files than a collection's; name an empty or new folder")

    def ensure(self):
        """Make the folder and its marker on the first picture, so that merely serving the page creates nothing.

        The first write also removes what a killed write left (half-written temporaries, files.remove_leftovers):
        under the lock, so no write of this collection is under way.
        """
        if not is_collection(self.root):
            self.root.mkdir(parents=True, exist_ok=True)
            files.write_text(self.root / MARKER, "firstnet class collection: <digit>/<id>.png, originals in .originals/\n")
        if not self.tidied:
            for folder in [self.root, self.root / ORIGINALS, *(self.root / label for label in DIGITS)]:
                if folder.is_dir() and not folder.is_symlink():
                    files.remove_leftovers(folder)
            self.tidied = True

    def find(self, item_id):
        """The (label, path) of a picture by id, or None (a link in its place is not a picture the collection wrote)."""
        if not ID_PATTERN.match(str(item_id)):
            return None
        for label in DIGITS:
            path = self.root / label / f"{item_id}.png"
            if path.is_file() and not path.is_symlink() and not path.parent.is_symlink():
                return label, path
        return None

    def _pictures(self):
        """Every (label, path) the collection wrote: a link, or a file it could not have written, is never listed."""
        return [(label, path) for label in DIGITS if (self.root / label).is_dir() and not (self.root / label).is_symlink()
                for path in (self.root / label).iterdir()
                if path.suffix == ".png" and ID_PATTERN.match(path.stem) and not path.is_symlink() and path.is_file()]

    def count(self):
        return len(self._pictures())

    def add_prepared(self, prepared, label, original=None, original_suffix=".png"):
        """Add a prepared 28x28 digit with its label (and the original picture's bytes); returns (item, added).

        `added` is False when the same picture is already there with the same label. The same picture under
        another label is refused: delete it first to label it again.
        """
        label = check_label(label)
        prepared = np.asarray(prepared, dtype=np.uint8)
        if prepared.shape != (28, 28):
            raise UserError(f"a prepared digit is 28x28 pixels, got {prepared.shape}")
        item_id = picture_id(prepared)
        with self.lock:
            found = self.find(item_id)
            if found is not None:
                if found[0] != label:
                    raise LabelledOtherwise(f"this picture is already in the collection as a {found[0]} (id {item_id}); "
                                    f"delete it first to label it {label}")
                return self.item(found[0], found[1]), False
            if self.count() >= self.max_items:
                raise Full(f"the collection is full: {self.max_items} pictures; export it and start a new one, "
                                "or delete some")
            self.ensure()
            path = self.root / label / f"{item_id}.png"
            if original is not None:
                files.write_bytes(self.root / ORIGINALS / f"{item_id}{original_suffix}", original, self.sync)
            files.write_bytes(path, png_bytes(prepared), self.sync)
            return self.item(label, path), True

    def add_upload(self, image_bytes, label, name="the picture"):
        """Add a drawing or photo as the page sends it: prepared as the page prepares it, the original kept beside."""
        label = check_label(label)
        prepared, original, suffix = prepare_upload(image_bytes, name)
        return self.add_prepared(prepared, label, original=original, original_suffix=suffix)

    def delete(self, item_id):
        """Remove a picture and its original; False if there is no picture with that id."""
        if not ID_PATTERN.match(str(item_id)):
            return False
        with self.lock:
            found = self.find(item_id)
            if found is None:
                return False
            found[1].unlink()
            for original in (self.root / ORIGINALS).glob(f"{item_id}.*"):
                original.unlink()
            return True

    def item(self, label, path):
        import base64

        stat = path.stat()
        return {"id": path.stem, "label": label,
                "added": datetime.datetime.fromtimestamp(stat.st_mtime).astimezone().isoformat(timespec="seconds"),
                "picture": "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")}

    def summary(self, recent=24):
        """Counts per label, the total, the bound, and the most recently added pictures (newest first)."""
        with self.lock:  # A picture deleted while it is listed would be gone before it is read.
            return self._summary(recent)

    def _summary(self, recent):
        pictures = self._pictures()
        counts = {label: 0 for label in DIGITS}
        for label, _ in pictures:
            counts[label] += 1
        newest = sorted(pictures, key=lambda entry: (entry[1].stat().st_mtime, entry[1].name), reverse=True)[:recent]
        return {"folder": str(self.root), "total": len(pictures), "max_items": self.max_items, "counts": counts,
                "recent": [self.item(label, path) for label, path in newest]}

    def export_zip(self, destination):
        """Write the whole collection as a zip to `destination` (atomically); unzipped, it is a collection folder.

        The lock is held only to list the files, not while they are zipped, so the class can go on adding and the
        page listing; a picture deleted meanwhile is left out.
        """
        with self.lock:
            pictures = sorted(self._pictures())
            originals = self.root / ORIGINALS
            kept = {path.stem.split(".")[0]: path for path in originals.iterdir()
                    if path.is_file() and not path.is_symlink()} if originals.is_dir() and not originals.is_symlink() else {}
        with files.atomic_path(destination) as temporary:
            with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(MARKER, "firstnet class collection: <digit>/<id>.png, originals in .originals/\n")
                for label, path in pictures:
                    try:
                        archive.writestr(f"{label}/{path.name}", path.read_bytes())
                    except FileNotFoundError:
                        continue
                    original = kept.get(path.stem)
                    if original is not None:
                        try:
                            archive.writestr(f"{ORIGINALS}/{original.name}", original.read_bytes())
                        except FileNotFoundError:
                            pass
        return pathlib.Path(destination)

    def import_zip(self, source):
        """Add the pictures of a zip (an export, or `<digit>/<any name>.png|jpg` photos); returns what happened.

        Nothing outside the collection is ever written: entry names are only read as a label and an id, never used
        as paths. A picture already present is not added again; the zip's size, entry count and unpacked size are
        bounded, and an entry that claims to unpack far beyond its compressed size is refused (a zip bomb).
        """
        with _checked_archive(source) as archive:
            entries = [entry for entry in archive.infolist() if not entry.is_dir()]
            originals = {}
            for entry in entries:
                parts = entry.filename.split("/")
                if len(parts) >= 2 and parts[-2] == ORIGINALS and "." in parts[-1]:
                    originals[parts[-1].split(".")[0]] = entry
            report = {"added": 0, "already": 0, "skipped": 0, "conflicts": 0, "notes": []}
            for entry in entries:
                label = _entry_label(entry.filename)
                if label is None:
                    # The marker, originals (read with their pictures) and anything else: never written as given.
                    if not entry.filename.endswith(MARKER) and f"/{ORIGINALS}/" not in f"/{entry.filename}":
                        report["skipped"] += 1
                    continue
                try:
                    data = _read_entry(archive, entry)
                    prepared, original, suffix = _picture_from_entry(data, entry.filename)
                    if original is None:
                        stem = pathlib.PurePosixPath(entry.filename).stem
                        if stem in originals:
                            original, suffix = _original_from_entry(archive, originals[stem])
                    _, added = self.add_prepared(prepared, label, original=original, original_suffix=suffix)
                    report["added" if added else "already"] += 1
                except Full as error:
                    raise Full(f"{error} (imported {report['added']} before it filled)") from None
                except UserError as error:
                    report["conflicts" if isinstance(error, LabelledOtherwise) else "skipped"] += 1
                    if len(report["notes"]) < 5:
                        report["notes"].append(f"{entry.filename}: {error}")
        return report


def check_import(data):
    """Refuse at once, with one line, bytes that are not a zip a collection can be imported from (nothing is written)."""
    with _checked_archive(io.BytesIO(data)):
        pass


def _checked_archive(source):
    """The zip, opened, once its entry count and unpacked size are within bounds; a UserError otherwise."""
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise UserError("not a zip file; import a zip that `export` made, or one with <digit>/<picture> entries") from None
    entries = [entry for entry in archive.infolist() if not entry.is_dir()]
    if len(entries) > MAX_IMPORT_ENTRIES:
        archive.close()
        raise UserError(f"the zip has {len(entries)} entries, more than a collection holds ({MAX_IMPORT_ENTRIES} "
                        "at most); split it")
    if sum(entry.file_size for entry in entries) > MAX_IMPORT_UNPACKED:
        archive.close()
        raise UserError(f"the zip would unpack to more than {MAX_IMPORT_UNPACKED // 2**20} MB; a collection "
                        "is far smaller, so it is not imported")
    return archive


def _entry_label(name):
    """The digit an entry is filed under (`[prefix/]<digit>/<file>`), or None; names are never used as paths."""
    parts = name.replace("\\", "/").split("/")
    if len(parts) < 2 or parts[-2] not in DIGITS or not parts[-1] or parts[-1].startswith("."):
        return None
    if pathlib.PurePosixPath(parts[-1]).suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"):
        return None
    return parts[-2]


def _read_entry(archive, entry):
    """An entry's bytes, reading at most the bound whatever its header claims; a bomb-like entry is refused."""
    if entry.file_size > MAX_ORIGINAL_BYTES:
        raise UserError(f"over {MAX_ORIGINAL_BYTES // 2**20} MB unpacked")
    if entry.file_size > 64 * 1024 and entry.file_size > MAX_COMPRESSION_RATIO * max(1, entry.compress_size):
        raise UserError("compressed far more than any picture (a zip bomb?)")
    try:
        with archive.open(entry) as stream:
            data = stream.read(MAX_ORIGINAL_BYTES + 1)
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, OSError, zlib.error) as error:
        # A damaged entry (a bad checksum, broken compressed data), an encrypted one or an unknown compression.
        raise UserError(f"cannot be read from the zip ({type(error).__name__}: {str(error)[:80]})") from None
    if len(data) > MAX_ORIGINAL_BYTES:
        raise UserError(f"over {MAX_ORIGINAL_BYTES // 2**20} MB unpacked")
    return data


def _original_from_entry(archive, entry):
    """An original from a zip, re-encoded within the bound as every original is; (None, ".png") if it is unusable."""
    if pathlib.PurePosixPath(entry.filename).suffix.lower() not in ORIGINAL_SUFFIXES.values():
        return None, ".png"
    try:
        return original_png(open_image(_read_entry(archive, entry), name=entry.filename)), ".png"
    except UserError:
        return None, ".png"


def _picture_from_entry(data, name):
    """(prepared, original bytes or None, suffix): a 28x28 grey PNG is taken as prepared, any other picture prepared."""
    image = open_image(data, name=name)
    if image.size == (28, 28) and image.mode == "L":  # A prepared digit, as an export holds it.
        return np.asarray(image, dtype=np.uint8), None, ".png"
    return prepare_upload(data, name)


def read_pictures(root):
    """Every picture of a collection: images (n, 28, 28) uint8, labels (n,) uint8 and ids, in id order per digit."""
    root = pathlib.Path(root)
    images, labels, ids, links = [], [], [], []
    for label in DIGITS:
        folder = root / label
        if folder.is_symlink():
            links.append(folder)
        if not folder.is_dir() or folder.is_symlink():
            continue
        for path in sorted(folder.iterdir()):
            # A link could point anywhere on the computer: a collection only ever holds the files it wrote.
            if path.is_symlink():
                links.append(path)
            if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith(".") or path.is_symlink():
                continue
            try:
                image = open_image(path)
            except UserError:
                if not path.exists():
                    continue  # Deleted from the page while the collection was being read.
                raise
            # A collection's own pictures are prepared already; a photo filed by hand is prepared as the page would.
            is_prepared = image.size == (28, 28) and image.mode == "L"
            pixels = np.asarray(image, dtype=np.uint8) if is_prepared else prepare_file(path)
            images.append(pixels)
            labels.append(int(label))
            ids.append(path.stem)
    if links:
        print(f"firstnet: {files.links_note(links)}", file=sys.stderr)
    if not images:
        raise UserError(f"{root}: the collection is empty; add pictures on the page (`firstnet serve --collection "
                        f"{root}`) first")
    return np.stack(images), np.array(labels, dtype=np.uint8), ids


def held_out_split(labels, fraction=0.2, seed=HELD_OUT_SEED):
    """Indices (train, held_out): `fraction` of each digit held out, chosen by `seed`, at least one of any digit with 2+."""
    labels = np.asarray(labels)
    shuffling = np.random.default_rng(seed)
    train, held = [], []
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        if not len(members):
            continue
        order = members[shuffling.permutation(len(members))]
        count = max(1, round(len(members) * fraction)) if len(members) >= 2 and fraction > 0 else 0
        held += list(order[:count])
        train += list(order[count:])
    return np.array(sorted(train), dtype=np.int64), np.array(sorted(held), dtype=np.int64)


def load_collection(root, for_scoring=False):
    """A collection as an `Dataset` of digits (labels are the folder digits, whichever digits are present).

    For scoring every picture is the test set; for training the same seeded fifth of each digit is held out.
    """
    images, labels, _ = read_pictures(root)
    train, held = (np.arange(len(labels)), np.arange(len(labels))) if for_scoring else held_out_split(labels)
    return Dataset(images[train], labels[train], images[held], labels[held],
                 source=f"the class collection {root} ({len(labels)} pictures)", preparation="mnist")


def write_digits(root, images, labels):
    """Add prepared 28x28 digits to the collection at `root` (made if new); returns how many were new."""
    collection = Collection(root, sync=False)
    return sum(collection.add_prepared(image, int(label))[1] for image, label in zip(images, labels))


def temporary_export(collection):
    """The collection exported into a temporary file (for a download), and a function that removes it."""
    folder = tempfile.mkdtemp(prefix="firstnet-export-")
    path = collection.export_zip(os.path.join(folder, "collection.zip"))
    return path, lambda: shutil.rmtree(folder, ignore_errors=True)

"""A class collection in a classroom: who added which picture, and the pictures waiting for the teacher's review.

A student is a random id that their browser keeps (no name is ever asked for or stored). Each picture a student
adds records that id in `COLLECTION/.owners/<picture id>`, so that the student can see and take back their own
pictures and nobody else's. With "review first" on, a picture waits in `COLLECTION/.pending/` until the teacher
accepts it (then it joins the collection) or rejects it (then it is gone): a rude drawing never reaches the class's
screen or the training. Every file is written atomically, and the folder reader skips dot-folders, so neither the
owners nor the queue is ever read as a picture.
"""

import base64
import datetime
import json
import re
import threading

import numpy as np

from firstnet import files
from firstnet.data import collection as library
from firstnet.errors import UserError

OWNERS = ".owners"
PENDING = ".pending"
STUDENT_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
# The queue is bounded like the collection: a class that adds faster than the teacher reviews fills it, then waits.
MAX_PENDING = 500


class QueueFull(library.Full):
    """The review queue holds as many pictures as it may."""


def check_student(student):
    if not isinstance(student, str) or not STUDENT_PATTERN.match(student):
        raise UserError("not a student id: the page gives each browser one; reload the page")
    return student


class Classroom:
    """A Collection plus who added what and the review queue; safe to call from many threads at once."""

    def __init__(self, collection, review_first=False):
        self.collection = collection
        self.root = collection.root
        self.review_first = bool(review_first)
        self.lock = threading.Lock()

    # Owners.

    def owner(self, item_id):
        """The student id that added a picture, or None (the teacher's, imported, or added before owners existed)."""
        if not library.ID_PATTERN.match(str(item_id)):
            return None
        path = self.root / OWNERS / item_id
        try:
            text = path.read_text(encoding="ascii").strip() if path.is_file() and not path.is_symlink() else ""
        except (OSError, UnicodeDecodeError):
            return None
        return text if STUDENT_PATTERN.match(text) else None

    def _set_owner(self, item_id, student):
        files.write_text(self.root / OWNERS / item_id, student + "\n")

    def add(self, image_bytes, label, student, name="the picture", max_pixels=None):
        """A student's drawing or photo: straight into the collection, or into the queue when review comes first.

        Returns (item, state) with state "added", "already" (the same picture was there) or "pending".
        """
        check_student(student)
        label = library.check_label(label)
        prepared, original, suffix = library.prepare_upload(image_bytes, name, max_pixels=max_pixels)
        if self.review_first:
            return self._queue(prepared, label, student, original, suffix), "pending"
        item, added = self.collection.add_prepared(prepared, label, original=original, original_suffix=suffix)
        if added:
            self._set_owner(item["id"], student)
        item["mine"] = added or self.owner(item["id"]) == student
        return item, "added" if added else "already"

    def delete(self, item_id, student=None):
        """Remove a picture (or a queued one); a student may remove only their own. False if there is none."""
        if student is not None and self.owner(item_id) != student and self._pending_owner(item_id) != student:
            return False
        removed = self._unqueue(item_id)
        if self.collection.delete(item_id):
            removed = True
        if library.ID_PATTERN.match(str(item_id)):
            (self.root / OWNERS / item_id).unlink(missing_ok=True)
        return removed

    def mine(self, student):
        """The student's own pictures, in the collection and waiting in the queue, newest first."""
        check_student(student)
        items = []
        owners = self.root / OWNERS
        if owners.is_dir():
            for path in owners.iterdir():
                if library.ID_PATTERN.match(path.name) and self.owner(path.name) == student:
                    found = self.collection.find(path.name)
                    if found is not None:
                        items.append({**self.collection.item(*found), "state": "in the collection"})
        items += [{**item, "state": "waiting for the teacher"} for item in self.pending() if item.pop("owner") == student]
        return sorted(items, key=lambda item: item["added"], reverse=True)

    def pictures_of(self, student):
        """(images, labels) of the student's pictures in the collection, to score how the network reads them."""
        images, labels = [], []
        for item in self.mine(student):
            found = self.collection.find(item["id"]) if item["state"] == "in the collection" else None
            if found is not None:
                images.append(library.read_prepared(found[1]))
                labels.append(int(found[0]))
        return np.array(images, dtype=np.uint8).reshape(-1, 28, 28), np.array(labels, dtype=np.uint8)

    # The review queue.

    def _queue(self, prepared, label, student, original, suffix):
        item_id = library.picture_id(prepared)
        folder = self.root / PENDING
        with self.lock:
            if (folder / f"{item_id}.json").is_file():
                return self._pending_item(item_id)
            if len(self._pending_ids()) >= MAX_PENDING:
                raise QueueFull(f"{MAX_PENDING} pictures are waiting for the teacher's review; try again after the "
                                "teacher has looked at them")
            self.collection.ensure()
            files.write_bytes(folder / f"{item_id}.png", library.png_bytes(prepared))
            if original is not None:
                files.write_bytes(folder / f"{item_id}.original{suffix}", original)
            added = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
            files.write_json(folder / f"{item_id}.json", {"label": label, "owner": student, "added": added,
                                                         "suffix": suffix if original is not None else None})
            return self._pending_item(item_id)

    def _pending_ids(self):
        folder = self.root / PENDING
        if not folder.is_dir():
            return []
        return sorted(path.stem for path in folder.glob("*.json") if library.ID_PATTERN.match(path.stem))

    def _pending_record(self, item_id):
        path = self.root / PENDING / f"{item_id}.json"
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("label") not in library.DIGITS:
            return None
        return record

    def _pending_owner(self, item_id):
        if not library.ID_PATTERN.match(str(item_id)):
            return None
        record = self._pending_record(item_id)
        return record.get("owner") if record else None

    def _pending_item(self, item_id):
        record = self._pending_record(item_id) or {}
        picture = self.root / PENDING / f"{item_id}.png"
        # A link could lead anywhere on the computer: only a picture the queue wrote itself is sent.
        encoded = (base64.b64encode(picture.read_bytes()).decode("ascii")
                   if picture.is_file() and not picture.is_symlink() else "")
        return {"id": item_id, "label": record.get("label"), "added": record.get("added", ""),
                "owner": record.get("owner"), "picture": "data:image/png;base64," + encoded}

    def pending(self):
        """The queued pictures, oldest first (with their owners: callers drop them before showing anyone)."""
        return [self._pending_item(item_id) for item_id in self._pending_ids()]

    def review(self, item_id, accept):
        """Accept a queued picture into the collection, or reject it; returns the item, or None if none is queued."""
        if not library.ID_PATTERN.match(str(item_id)):
            return None
        with self.lock:
            record = self._pending_record(item_id)
            if record is None:
                return None
            folder = self.root / PENDING
            result = {"id": item_id, "label": record["label"], "accepted": bool(accept)}
            if accept:
                prepared = library.read_prepared(folder / f"{item_id}.png")
                original = None
                if record.get("suffix") in library.ORIGINAL_SUFFIXES.values():
                    original_path = folder / f"{item_id}.original{record['suffix']}"
                    original = (original_path.read_bytes()
                            if original_path.is_file() and not original_path.is_symlink() else None)
                item, added = self.collection.add_prepared(prepared, record["label"], original=original,
                                                           original_suffix=record.get("suffix") or ".png")
                if added and STUDENT_PATTERN.match(str(record.get("owner", ""))):
                    self._set_owner(item_id, record["owner"])
                result.update(item)
            self._remove_pending(item_id)
            return result

    def _unqueue(self, item_id):
        if not library.ID_PATTERN.match(str(item_id)):
            return False
        with self.lock:
            return self._remove_pending(item_id)

    def _remove_pending(self, item_id):
        folder = self.root / PENDING
        found = (folder / f"{item_id}.json").is_file()
        for path in list(folder.glob(f"{item_id}.*")) if folder.is_dir() else []:
            path.unlink(missing_ok=True)
        return found


def pending_view(item):
    """A queued picture as the teacher's page shows it: never with the student's id."""
    return {key: value for key, value in item.items() if key != "owner"}


def summary_of(pictures, labels, probabilities):
    """How the network reads one student's own pictures: how many, how many right, and each with its answer."""
    if probabilities is None or not len(labels):
        return {"count": 0, "correct": 0, "accuracy": None, "pictures": []}
    guesses = probabilities.argmax(axis=1)
    right = int((guesses == labels).sum())
    return {"count": int(len(labels)), "correct": right,
            "accuracy": right / len(labels),
            "pictures": [{"label": int(label), "read": int(guess), "probability": float(row[guess])}
                         for label, guess, row in zip(labels, guesses, probabilities)]}

"""The loaded run's rule for when not to answer (abstain.py): read from the run folder, or learnt once in the background.

Learning it takes about a minute (most of it drawing the pictures that are not digits), so the server starts at once
and answers without it meanwhile; the rule is then kept in the run folder, as `firstnet predict` keeps it, and the
next start reads it in a moment.
"""

import collections
import logging
import pathlib
import threading
import zipfile

from firstnet import abstain

READY, LEARNING, NONE, FAILED = "ready", "learning", "none", "failed"
# A run learns its rule once at a time, however many networks load it (the teacher may choose the same run again
# while it learns): the second waits for the first, then reads what it stored.
_run_locks = collections.defaultdict(threading.Lock)
_run_locks_lock = threading.Lock()

log = logging.getLogger(__name__)


def _lock_for(run_dir):
    with _run_locks_lock:
        return _run_locks[str(pathlib.Path(run_dir).resolve())]


class Learner:
    """One thread per server that learns rules one at a time, started when first needed, ended by `close`.

    Only the newest request waits: a run loaded and replaced before its turn (a teacher training run after run from
    the page) is not learnt for nothing; the network that answers now is the one whose rule matters.
    """

    def __init__(self):
        self.condition = threading.Condition()
        self.waiting = None
        self.thread = None
        self.closed = False

    def ask(self, keeper, model, load_data):
        with self.condition:
            if self.closed:
                return
            self.waiting = (keeper, model, load_data)
            if self.thread is None:
                self.thread = threading.Thread(target=self._work, daemon=True, name="not-a-digit rules")
                self.thread.start()
            self.condition.notify()

    def close(self):
        """The server is shutting down: what waits is dropped, and the thread ends after the rule it is learning."""
        with self.condition:
            self.closed, self.waiting = True, None
            self.condition.notify()

    def _work(self):
        # It runs at the server's own priority: a thread made nicer would hold Python's lock while the system kept
        # it waiting for a processor, and the answers to the drawings would wait with it.
        while True:
            with self.condition:
                while self.waiting is None and not self.closed:
                    self.condition.wait()
                if self.closed:
                    return
                (keeper, model, load_data), self.waiting = self.waiting, None
            keeper.learn(model, load_data)


# For a network loaded outside a server's playground (a notebook, a test): one learner for the process.
LEARNER = Learner()


class RuleKeeper:
    """The rule of one run and where it stands: `state` is READY, LEARNING, NONE (not a digit run) or FAILED.

    `load_data()` gives the run's MNIST (for the fit); `applies` is False for runs on other pictures than digits,
    whose classes the detector knows nothing about; `learner` (a Learner, the server's) learns a rule the run lacks.
    """

    def __init__(self, run_dir, model, load_data, applies, learner=None):
        self.run_dir = pathlib.Path(run_dir)
        self.rule, self.state, self.problem = None, NONE, None
        if not applies:
            return
        self.rule = self._stored()
        if self.rule is not None:
            self.state = READY
            return
        self.state = LEARNING
        (learner or LEARNER).ask(self, model, load_data)

    def _stored(self):
        try:
            return abstain.load_rule(self.run_dir)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            # A damaged rule file is learnt again (and replaced), as if there were none.
            log.warning("the rule in %s could not be read (%s); learning it again", self.run_dir, error)
            return None

    def learn(self, model, load_data):
        """Fit the rule and keep it in the run folder (the learner's thread calls this)."""
        try:
            with _lock_for(self.run_dir):
                rule = self._stored()
                if rule is None:
                    rule = abstain.fit_rule(model, load_data())
                    try:
                        abstain.save_rule(self.run_dir, rule)
                    except OSError as error:
                        log.warning("could not keep the rule in %s (%s): it lasts while the server runs",
                                    self.run_dir, error.strerror or error)
        except Exception as error:  # noqa: BLE001 - the page goes on answering without the rule, and says why.
            log.exception("learning what is not a digit for %s failed", self.run_dir)
            self.state, self.problem = FAILED, str(error) or type(error).__name__
            return
        self.rule = rule
        self.state = READY

    def answer(self, model, prepared):
        """`abstain.answer`'s fields for one prepared digit, or the same fields as None while there is no rule."""
        rule = self.rule
        if rule is None:
            return {"not_a_digit": None, "unlike_digits": None, "calibrated_probability": None}
        said = abstain.answer(model, prepared, rule)
        return {"not_a_digit": said["not_a_digit"], "unlike_digits": round(said["unlike_digits"], 4),
                "calibrated_probability": said["probability"]}

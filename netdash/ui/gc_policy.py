"""The live app's policy for Python's cyclic garbage collector.

At 100,000 sockets the process holds ~1.5 million tracked objects (socket records, tcp_info,
owners, rows). A full collection walks all of them: ~250 ms with the GIL held, so it stalls the
UI thread whichever thread triggered it. With the default thresholds it ran about three times
per refresh when every counter moved (a refresh allocates some 700,000 objects, and a full pass
starts once a quarter of the long-lived objects are new): 6.6 s of full collections in 8 ticks.

None of these objects form cycles (they die by reference counting), so netdash:

* freezes what the first load built (``gc.freeze``: the first 100k rows and records are never
  walked again; they are still freed normally when replaced);
* lets the young generations run as usual (they are cheap and catch the UI's own cycles), but
  considers a full collection only after 1,000 second-generation passes instead of 10: about
  every 10 s when every counter of 100k sockets moves, almost never on an idle machine;
* runs the young collections at the end of each tick in the sampling thread (:meth:`settle`),
  so that the UI thread does not walk the containers it was just handed.

Measured (100k synthetic sockets, every counter moving, 8 ticks): full collections 25 -> 0,
sampling-thread tick 3.05 -> 1.78 s (of which ~1.2 s is the synthetic source itself).
The previous thresholds are restored and the frozen objects released when the app stops.
"""

from __future__ import annotations

import gc

#: Second-generation passes between considered full collections (CPython's default: 10).
FULL_COLLECTION_EVERY = 1_000


class GcPolicy:
    """Apply on start, :meth:`loaded` once the first sample is built, undo on stop."""

    def __init__(self) -> None:
        self._saved: tuple[int, ...] | None = None
        self._frozen = False

    @property
    def active(self) -> bool:
        return self._saved is not None

    def start(self) -> None:
        if self._saved is not None:
            return
        self._saved = gc.get_threshold()
        young, middle = self._saved[0], self._saved[1]
        gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)

    def loaded(self) -> None:
        """Freeze everything alive now: the first load's records and rows, the app's widgets."""
        if self._saved is not None and not self._frozen:
            gc.freeze()
            self._frozen = True

    def settle(self) -> None:
        """Run the young collections now, in the sampling thread, before the UI gets the update.

        A refresh hands the UI containers of 100k entries (the view's lists, the frame's dicts)
        that are still in the youngest generation: the UI thread's next allocation ran a
        collection that walked them, 10-16 ms of a 30 ms refresh. Collected here they are
        promoted to the oldest generation, which only the rare full collection walks.
        """
        if self._saved is not None and gc.isenabled():
            gc.collect(1)

    def stop(self) -> None:
        if self._saved is None:
            return
        gc.set_threshold(*self._saved)
        self._saved = None
        if self._frozen:
            gc.unfreeze()
            self._frozen = False

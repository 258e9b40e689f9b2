"""The previous sample's inet messages back to back, so that a run of idle sockets is checked
with one ``memcmp`` instead of one pass of the reuse loop per socket.

The reuse loop of :mod:`netdash.sources.sockdiag` costs ~0.7 µs per socket even when nothing
changed (an unpack, a cookie lookup, a fold, a compare): at 20,000 sockets that is 14 ms of
Python a second, a third of what the live app spends. But an idle socket's message is the
same bytes from one read to the next except tcp_info's ``tcpi_last_*`` "ms since" fields, and
the kernel sends sockets in the same order. So this keeps the messages of the previous sample
as one buffer, those fields zeroed (``FOLD_START``..``FOLD_END`` of each packed tcp_info: the
fields the records fold the message's queues, uid and inode into), and checks the next reply
a run at a time: copy the run to a scratch buffer, zero the same fields where the previous
layout has them, compare. Equal bytes mean the same sockets (the cookie is in them), the same
lengths and layout, the same states, queues, counters and timers, so the previous records
stand, a run at a time. A run that differs is bisected to its first changed socket, which the
loop reads as before. A socket with a running timer never matches (its countdown moves, and
the loop zeroes it when it compares apart), so timers keep their exact handling.

The buffer costs memory (~400 bytes a socket, twice: the sample being read builds the next),
so it is kept only while the previous sample's inet messages fit in :data:`MAX_BYTES`; a
bigger table is compared socket by socket as before.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Callable
from itertools import accumulate

from netdash.model import Socket
from netdash.sources.tcpinfo import FOLD_END, FOLD_START

#: Keep the buffer while a sample's inet messages take at most this much (~40,000 sockets with
#: tcp_info): two copies of it are alive while a sample is read.
MAX_BYTES = 16 << 20
#: A run shorter than this is left to the socket-by-socket loop (its fixed cost, ~1.5 µs, is
#: two sockets' worth of that loop).
MIN_RUN = 4
#: What the folded fields of a message are gathered as (the reuse loop writes it too).
ZERO_FOLD = bytes(FOLD_END - FOLD_START)


class MessageRuns:
    """The previous sample's inet messages and, per socket in the reader's order, the length
    of its message, where its folded fields are (0: none) and its record; and the same being
    gathered for the next sample.

    Only a prefix of the reader's order is covered: the inet dumps as long as nothing else
    (UNIX sockets, a dump read while not recording) came before them.
    """

    def __init__(self) -> None:
        self._blob = bytearray()
        self._offsets = array("I", [0])  # of each covered socket's message in _blob, + the end
        self._lengths = array("I")
        self._folds = array("I")  # offset of the zeroed fields in the message, 0 for none
        self._records: list[Socket] = []
        self._next_blob = bytearray()
        self._written = 0
        self._next_lengths = array("I")
        self._next_folds = array("I")
        self._next_records: list[Socket] = []
        self._scratch = memoryview(bytearray(1 << 16))  # a reply being matched, copied
        self._scratch_words = self._scratch.cast("I")
        self._zero_words = memoryview(array("I", bytes(1 << 16)))  # enough for any run
        self.recording = False
        self.matched = 0  # sockets of the sample being read (or the last) matched in runs
        self._read_bytes = 0  # of inet messages in the sample being read
        self._last_read_bytes: int | None = None  # None before the first sample: do not record

    @property
    def known(self) -> int:
        """How many sockets of the previous sample's order the buffer covers."""
        return len(self._lengths)

    @property
    def gathered(self) -> int:
        """How many sockets the sample being read has gathered so far (a reply's records are
        counted once it is parsed)."""
        return len(self._next_records)

    def begin(self, enabled: bool) -> None:
        """Start gathering a sample: only if ``enabled`` and the last one was small enough."""
        last = self._last_read_bytes
        self.recording = enabled and last is not None and last <= MAX_BYTES
        self._written = 0
        self.matched = 0
        self._read_bytes = 0
        self._next_lengths, self._next_folds, self._next_records = array("I"), array("I"), []

    def end(self) -> None:
        """The sample gathered becomes the one to compare with."""
        self._last_read_bytes = self._read_bytes
        if not self.recording:
            self.forget()
            self._next_blob = bytearray()
            return
        self._blob, self._next_blob = self._next_blob, self._blob
        self._lengths, self._folds = self._next_lengths, self._next_folds
        self._records = self._next_records
        self._offsets = array("I", accumulate(self._lengths, initial=0))
        self.recording = False

    def forget(self) -> None:
        """Compare with nothing (the reader forgot its records); what is being gathered
        stays."""
        self._blob = bytearray()
        self._offsets = array("I", [0])
        self._lengths, self._folds, self._records = array("I"), array("I"), []

    def batch(self, size: int, covered: bool) -> bool:
        """Whether the reply being parsed (``size`` bytes of inet messages) is gathered: while
        recording, if everything before it was (``covered``) and it fits."""
        self._read_bytes += size
        if self.recording and (not covered or self._written + size > MAX_BYTES):
            self.recording = False
        return self.recording and covered

    def adders(self) -> tuple[Callable[[int], None], Callable[[int], None]]:
        """Bound appends for the loop: length and fold offset of one socket gathered."""
        return self._next_lengths.append, self._next_folds.append

    def gather_records(self, records: list[Socket]) -> None:
        """The records of a reply gathered (lengths, folds and bytes given apart)."""
        self._next_records += records

    def write(self, view: memoryview, start: int, stop: int) -> None:
        """Gather the messages in ``view[start:stop]`` (the loop has zeroed their folds)."""
        size, at, blob = stop - start, self._written, self._next_blob
        if at + size <= len(blob):
            blob[at : at + size] = view[start:stop]
        else:
            del blob[at:]
            blob += view[start:stop]
        self._written = at + size

    def match(
        self, view: memoryview, off: int, end: int, pos: int, most: int
    ) -> tuple[int, int, bool]:
        """How many of the previous sample's sockets from ``pos`` (at most ``most``) the
        messages at ``view[off:end]`` repeat, how many bytes they take, and whether a message
        that differs follows them. The messages matched are left with their folds zeroed,
        ready to be gathered; the others are untouched."""
        offsets = self._offsets
        first = offsets[pos]
        last = min(bisect_right(offsets, first + end - off, pos, len(offsets)) - 1, pos + most)
        if last - pos < MIN_RUN:
            return 0, 0, False
        span = offsets[last] - first
        scratch = self._scratch_for(span)
        scratch[:span] = view[off : off + span]
        self._zero_folds(scratch, pos, last, first)
        same = self._blob.startswith
        differs = not same(scratch[:span], first)
        if differs:
            good, bad = 0, last - pos  # the first `good` repeat, the first `bad` do not
            while bad - good > 1:
                mid = (good + bad) // 2
                a, b = offsets[pos + good] - first, offsets[pos + mid] - first
                if same(scratch[a:b], first + a):
                    good = mid
                else:
                    bad = mid
            last = pos + good
            span = offsets[last] - first
        if span:
            view[off : off + span] = scratch[:span]
        return last - pos, span, differs

    def take(self, pos: int, stop: int, gather: bool) -> list[Socket]:
        """The records of the previous sample's sockets ``pos..stop``, matched; their lengths
        and folds gathered for the next sample too if ``gather``."""
        self.matched += stop - pos
        if gather:
            self._next_lengths += self._lengths[pos:stop]
            self._next_folds += self._folds[pos:stop]
        return self._records[pos:stop]

    def _zero_folds(self, scratch: memoryview, pos: int, last: int, first: int) -> None:
        """Zero the folded fields of the previous sample's sockets ``pos..last``, as laid out
        then, in the copy of the reply at ``scratch``. A run of one length and one layout (the
        common case: one family, one kind of state) takes four strided word copies; any other,
        one slice per message."""
        count, length, fold = last - pos, self._lengths[pos], self._folds[pos]
        lengths, folds = self._lengths[pos:last], self._folds[pos:last]
        if fold and lengths.count(length) == count and folds.count(fold) == count:
            words, step, zeros = self._scratch_words, length // 4, self._zero_words[:count]
            for word in range(fold // 4, (fold + FOLD_END - FOLD_START) // 4):
                words[word : word + count * step : step] = zeros
            return
        width = FOLD_END - FOLD_START
        for start, fold in zip(self._offsets[pos:last], folds, strict=True):
            if fold:
                at = start - first + fold
                scratch[at : at + width] = ZERO_FOLD

    def _scratch_for(self, size: int) -> memoryview:
        if len(self._scratch) < size:
            self._scratch = memoryview(bytearray(size + 3 & ~3))
            self._scratch_words = self._scratch.cast("I")
            self._zero_words = memoryview(array("I", bytes(size + 3 & ~3)))
        return self._scratch

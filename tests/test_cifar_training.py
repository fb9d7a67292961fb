"""CIFAR-10 training: crop-and-flip augmentation, the new ANNConfig switches, tiny VGG/ResNet runs."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from negspike import cache, pipeline, profiles
from negspike.data import apply_crop_flip, crop_flip_params, random_crop_flip, synthetic_dataset
from negspike.models import Net4, build_model, resnet18, vgg16
from negspike.pipeline import ANNConfig
from negspike.profiles import ProfileError, load_profile
from negspike.train import evaluate_ann, train_ann
from negspike.utils import memory_format_for


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread: these tests share the 2-core machine with timing runs, and two OpenMP
    threads on a busy machine are many times slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_crop_flip_keeps_shape_and_dtype():
    x = torch.randn(16, 3, 32, 32)
    out = random_crop_flip(x, gen())
    assert out.shape == x.shape and out.dtype == x.dtype
    x5 = torch.randn(4, 1, 28, 20)  # not square, one channel
    assert random_crop_flip(x5, gen(), padding=2).shape == x5.shape


def test_no_padding_and_no_flip_is_the_identity():
    x = torch.randn(8, 3, 32, 32)
    assert torch.equal(random_crop_flip(x, gen(), padding=0, flip=False), x)
    # the same through the gather path: offsets zero, flips forced off
    zeros = torch.zeros(8, dtype=torch.long)
    assert torch.equal(apply_crop_flip(x, zeros + 4, zeros + 4, torch.zeros(8, dtype=torch.bool), padding=4), x)


def test_about_half_of_the_images_are_flipped():
    x = torch.randn(2000, 1, 4, 4)
    out = random_crop_flip(x, gen(3), padding=0)
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert bool((flipped ^ kept).all())  # each image is either untouched or mirrored
    assert 0.45 < flipped.float().mean() < 0.55


def test_same_seed_same_result_other_seed_other_result():
    x = torch.randn(32, 3, 32, 32)
    a, b, c = random_crop_flip(x, gen(7)), random_crop_flip(x, gen(7)), random_crop_flip(x, gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("channels_last", [False, True])
def test_crop_is_a_shifted_window_of_the_zero_padded_image(channels_last):
    x = torch.randn(64, 3, 32, 32)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    dy, dx, flipped = crop_flip_params(64, gen(1), padding=4)
    assert dy.min() >= 0 and dy.max() <= 8 and len(set(dy.tolist())) > 5  # offsets cover 0..8
    out = apply_crop_flip(x, dy, dx, flipped, padding=4)
    padded = F.pad(x, (4, 4, 4, 4))
    for i in range(64):
        window = padded[i, :, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32]
        assert torch.equal(out[i], window.flip(-1) if flipped[i] else window)
    # a shift by (1, -2) shows zeros where the padding enters the view
    one = apply_crop_flip(x[:1], torch.tensor([5]), torch.tensor([2]), torch.tensor([False]), padding=4)
    assert torch.equal(one[0, :, :31, 2:], x[0, :, 1:, :30])
    assert not one[0, :, 31, :].any() and not one[0, :, :, :2].any()


def test_crop_flip_rejects_bad_input():
    with pytest.raises(ValueError, match="padding must be >= 0"):
        random_crop_flip(torch.randn(2, 3, 8, 8), gen(), padding=-1)
    with pytest.raises(ValueError, match=r"expected an image batch \[N, C, H, W\]"):
        random_crop_flip(torch.randn(2, 8), gen())


def test_ann_config_switches_are_profile_keys_and_validated(tmp_path, monkeypatch):
    assert ANNConfig().augment is False and ANNConfig().amp is True
    # the shipped Fashion-MNIST profiles keep training without augmentation
    assert not any(load_profile(p).ann.augment for p in ("smoke", "quick", "paper"))
    with pytest.raises(ValueError, match="augment=1 must be true or false"):
        ANNConfig(augment=1)
    monkeypatch.setattr(profiles, "PROFILE_DIR", tmp_path)
    (tmp_path / "c.yaml").write_text("ann: {dataset: cifar10, model: vgg16, augment: true, amp: false}\n")
    prof = load_profile("c")
    assert prof.ann.augment is True and prof.ann.amp is False
    (tmp_path / "c.yaml").write_text("ann: {augment: yes-please}\n")
    with pytest.raises(ProfileError, match="ann.augment='yes-please' should be of type bool"):
        load_profile("c")


def test_augmentation_changes_training_and_is_reproducible():
    x, y = synthetic_dataset("cifar10", 96)

    def run(augment):
        torch.manual_seed(0)
        model = build_model("vgg16", "leaky", 0.1, width=1 / 16)
        hist = train_ann(model, (x, y), 1, batch_size=32, augment=augment, progress=False)
        return hist, torch.nn.utils.parameters_to_vector(model.parameters())

    h1, w1 = run(True)
    h2, w2 = run(True)
    h0, w0 = run(False)
    assert h1 == h2 and torch.equal(w1, w2)
    assert not torch.allclose(w1, w0)


def test_amp_is_ignored_on_the_cpu():
    x, y = synthetic_dataset("fmnist", 64)
    weights = []
    for amp in (False, True):
        torch.manual_seed(0)
        model = Net4()
        train_ann(model, (x, y), 1, batch_size=32, amp=amp, device="cpu", progress=False)
        weights.append(torch.nn.utils.parameters_to_vector(model.parameters()))
    assert torch.equal(*weights)


def test_channels_last_is_avoided_where_the_cpu_convolution_breaks():
    # torch 2.14's mkldnn backward of channels-last 1x1 strided convolutions with < 8 input
    # channels corrupts the heap (ResNet-18 shortcuts at width 1/16 segfaulted in training)
    x = torch.randn(2, 3, 32, 32)
    cl, plain = torch.channels_last, torch.contiguous_format
    assert memory_format_for(x) == cl and memory_format_for(torch.randn(2, 5)) == plain
    assert memory_format_for(x, resnet18(width=1 / 16), "cpu") == plain
    assert memory_format_for(x, resnet18(width=1 / 16), "cuda") == cl
    assert memory_format_for(x, resnet18(width=1 / 8), "cpu") == cl
    assert memory_format_for(x, vgg16(width=1 / 16), "cpu") == cl


def test_augment_needs_image_batches():
    with pytest.raises(ValueError, match=r"augment=True needs image batches"):
        train_ann(torch.nn.Linear(4, 2), (torch.randn(8, 4), torch.zeros(8, dtype=torch.long)), 1, augment=True,
                  progress=False)


def smooth_cifar(n, seed):
    """Classes with smooth templates (4x4 upsampled), which survive crops and flips; the
    pixel-noise templates of ``synthetic_dataset`` do not."""
    templates = F.interpolate(torch.randn(10, 3, 4, 4, generator=gen(1234)), size=32, mode="bilinear")
    g = gen(seed)
    y = torch.randint(10, (n,), generator=g)
    return templates[y] + 0.5 * torch.randn(n, 3, 32, 32, generator=g), y


@pytest.mark.parametrize("name", ["vgg16", "resnet18"])
def test_leaky_cifar_models_learn_synthetic_data_with_augmentation(name):
    x, y = smooth_cifar(256, 0)
    xt, yt = smooth_cifar(128, 5)
    torch.manual_seed(0)
    model = build_model(name, "leaky", 0.1, width=1 / 16)
    hist = train_ann(model, (x, y), 4, lr=3e-3, batch_size=32, augment=True, progress=False)
    assert hist[-1]["loss"] < hist[0]["loss"] and hist[-1]["train_acc"] > max(0.5, hist[0]["train_acc"] + 0.2)
    assert evaluate_ann(model, xt, yt) > 0.3  # chance is 0.1; batch-norm statistics need the 32 steps


def test_trained_ann_passes_augment_and_amp_to_training(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "CACHE_DIR", tmp_path)
    seen = {}

    def spy(model, train, epochs, **kwargs):
        seen.update(kwargs, n=len(train[1]))
        return [{"epoch": 1, "loss": 1.0, "ce": 1.0, "train_acc": 0.1}]

    monkeypatch.setattr(pipeline, "train_ann", spy)
    monkeypatch.setattr(pipeline, "evaluate_ann", lambda *a, **k: 0.5)
    cfg = ANNConfig(dataset="synthetic_cifar10", model="vgg16", width=1 / 16, epochs=1, train_subset=32, augment=True)
    model, record = pipeline.trained_ann(cfg, progress=False)
    assert seen["augment"] is True and seen["amp"] is True and seen["n"] == 32
    assert record["test_acc"] == 0.5
    # the new fields are part of the cache key: another switch is another checkpoint
    pipeline.trained_ann(dataclasses.replace(cfg, augment=False), progress=False)
    assert seen["augment"] is False and len(list(tmp_path.glob("ann-*.pt"))) == 2

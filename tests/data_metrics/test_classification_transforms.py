"""Batched classification augmentations (kornia) and Mixup/CutMix with soft targets."""

import pytest
import torch

from hf_compact.data import ClassificationTrainAugmentation, MixupCutmix, RandAugment, smooth_one_hot
from hf_compact.data.classification_transforms import PixelRandomErasing

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def unit_images(batch_size: int = 8, size: int = 24, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch_size, 3, size, size, generator=torch.Generator().manual_seed(seed))


def full_recipe(**overrides) -> ClassificationTrainAugmentation:
    kwargs = dict(image_size=16, image_mean=MEAN, image_std=STD, crop_scale=(0.08, 1.0), random_erasing_prob=0.5)
    return ClassificationTrainAugmentation(**{**kwargs, **overrides})


def test_full_recipe_shape_range_and_seed_determinism():
    augment, images = full_recipe(random_erasing_prob=0.0), unit_images()
    torch.manual_seed(3)
    first = augment(images)
    torch.manual_seed(3)
    second = augment(images)
    torch.manual_seed(4)
    third = augment(images)
    assert first.shape == (8, 3, 16, 16) and first.dtype == torch.float32
    assert torch.equal(first, second)
    assert not torch.allclose(first, third)
    # Without erasing, every value is a normalised [0, 1] value.
    low = ((0 - torch.tensor(MEAN)) / torch.tensor(STD)).view(1, 3, 1, 1)
    high = ((1 - torch.tensor(MEAN)) / torch.tensor(STD)).view(1, 3, 1, 1)
    assert (first >= low - 1e-5).all() and (first <= high + 1e-5).all()


def test_all_random_steps_off_is_resize_and_normalize():
    augment = full_recipe(
        image_size=24, crop_scale=None, hflip_prob=0.0, randaugment_num_ops=0, random_erasing_prob=0.0
    )
    images = unit_images()
    expected = (images - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    torch.testing.assert_close(augment(images), expected)


def test_rand_augment_magnitude_scale_and_noise():
    rand_augment = RandAugment(num_ops=2, magnitude=9, magnitude_std=0.0, op_probability=0.5)
    images = unit_images()
    torch.manual_seed(0)
    output = rand_augment(images)
    assert rand_augment.m == pytest.approx(27.0)  # timm m9 of 10 -> kornia 27 of 30
    assert output.shape == images.shape
    assert all(op.op.p == 0.5 for sub_policy in rand_augment.children() for op in sub_policy.children())
    noisy = RandAugment(num_ops=1, magnitude=9, magnitude_std=0.5)
    magnitudes = set()
    for _ in range(5):
        noisy(images)
        assert 0 <= noisy.m <= 30
        magnitudes.add(noisy.m)
    assert len(magnitudes) > 1
    with pytest.raises(ValueError, match="magnitude"):
        RandAugment(magnitude=11)


def test_pixel_random_erasing_fills_rectangles_with_noise():
    images = torch.full((4, 3, 16, 16), 7.0)
    torch.manual_seed(0)
    erased = PixelRandomErasing(p=1.0)(images)
    changed = erased != 7.0
    assert changed.any(dim=(1, 2, 3)).all(), "every image gets a rectangle"
    # The same pixels are erased in every channel, with values from N(0, 1).
    assert torch.equal(changed[:, 0], changed[:, 1]) and torch.equal(changed[:, 0], changed[:, 2])
    assert erased[changed].abs().max() < 7.0
    assert torch.equal(PixelRandomErasing(p=0.0)(images), images)


@pytest.mark.parametrize(
    ("images", "error", "message"),
    [
        (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), TypeError, "float tensor"),
        (torch.rand(2, 1, 8, 8), ValueError, r"\(batch, 3, height, width\)"),
        (torch.rand(3, 8, 8), ValueError, r"\(batch, 3, height, width\)"),
        (torch.rand(2, 3, 8, 8) * 255, ValueError, r"\[0, 1\]"),
    ],
)
def test_bad_images_raise(images, error, message):
    with pytest.raises(error, match=message):
        full_recipe()(images)


def test_smooth_one_hot_values_and_errors():
    targets = smooth_one_hot(torch.tensor([2, 0]), num_classes=4, smoothing=0.1)
    expected = torch.full((2, 4), 0.025)
    expected[0, 2] = expected[1, 0] = 0.925
    torch.testing.assert_close(targets, expected)
    with pytest.raises(ValueError, match="class ids in"):
        smooth_one_hot(torch.tensor([4]), num_classes=4)
    with pytest.raises(TypeError, match="integer"):
        smooth_one_hot(torch.tensor([1.0]), num_classes=4)


def test_mixup_mixes_images_and_targets_with_the_same_lambda():
    images, labels = unit_images(batch_size=6), torch.arange(6)
    mixup = MixupCutmix(num_classes=6, mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.0)
    torch.manual_seed(0)
    mixed, targets = mixup(images, labels)
    lam = targets[0, 0].item()
    assert 0 < lam < 1
    torch.testing.assert_close(targets.sum(1), torch.ones(6))
    torch.testing.assert_close(targets[torch.arange(6), labels.flip(0)], torch.full((6,), 1 - lam))
    torch.testing.assert_close(mixed, lam * images + (1 - lam) * images.flip(0))


def test_cutmix_pastes_the_area_given_by_the_targets():
    images, labels = unit_images(batch_size=4, size=32), torch.tensor([0, 1, 2, 3])
    cutmix = MixupCutmix(num_classes=4, mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.1)
    for seed in range(5):
        torch.manual_seed(seed)
        mixed, targets = cutmix(images, labels)
        torch.testing.assert_close(targets.sum(1), torch.ones(4))
        pasted_fraction = (mixed[0] != images[0]).any(0).float().mean().item()
        # Target of the own class = lam * (1 - 0.1 + 0.025) + (1 - lam) * 0.025.
        lam = (targets[0, 0].item() - 0.025) / 0.9
        assert pasted_fraction == pytest.approx(1 - lam, abs=1e-6)


def test_mixup_switch_determinism_and_disabled():
    images, labels = unit_images(batch_size=4), torch.tensor([0, 1, 2, 3])
    both = MixupCutmix(num_classes=4)
    torch.manual_seed(1)
    first = both(images, labels)
    torch.manual_seed(1)
    second = both(images, labels)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    disabled = MixupCutmix(num_classes=4, prob=0.0, label_smoothing=0.1)
    mixed, targets = disabled(images, labels)
    assert torch.equal(mixed, images)
    torch.testing.assert_close(targets, smooth_one_hot(labels, 4, 0.1))
    with pytest.raises(ValueError, match="switch_prob"):
        MixupCutmix(num_classes=4, switch_prob=1.5)
    with pytest.raises(ValueError, match="labels"):
        both(images, labels[:3])

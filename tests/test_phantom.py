import pytest
import torch

from medgan_utils.data.phantom import make_phantom


def test_deterministic_and_shaped():
    a = make_phantom(12, size=48, seed=5)
    b = make_phantom(12, size=48, seed=5)
    c = make_phantom(12, size=48, seed=6)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert not torch.equal(a[0], c[0])
    imgs, masks, labels = a
    assert imgs.shape == (12, 1, 48, 48) and masks.shape == (12, 1, 48, 48) and labels.shape == (12,)
    assert imgs.min() >= 0 and imgs.max() <= 1
    assert make_phantom(3, size=20, seed=0, channels=3)[0].shape == (3, 3, 20, 20)


def test_lesions_are_dark_and_malignant_outlines_irregular():
    imgs, masks, labels = make_phantom(200, size=64, seed=1)
    assert 0.2 < labels.float().mean() < 0.5  # both classes, benign the majority as in BUSI
    inside = (imgs * masks).flatten(1).sum(1) / masks.flatten(1).sum(1)
    outside = (imgs * (1 - masks)).flatten(1).sum(1) / (1 - masks).flatten(1).sum(1)
    assert (inside < outside).float().mean() > 0.95
    # irregularity: boundary pixels per sqrt(area) is larger for spiculated lesions
    m = masks[:, 0]
    edge = (m - torch.nn.functional.max_pool2d(-m[:, None], 3, 1, 1)[:, 0].neg()).clamp(min=0)
    ratio = edge.flatten(1).sum(1) / m.flatten(1).sum(1).sqrt()
    assert ratio[labels == 1].mean() > 1.15 * ratio[labels == 0].mean()


def test_bad_arguments():
    with pytest.raises(ValueError):
        make_phantom(2, size=4)
    with pytest.raises(ValueError):
        make_phantom(2, size=16, channels=2)

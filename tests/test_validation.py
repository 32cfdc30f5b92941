"""Input checks shared by every estimator (skgradunc/_validation.py): images, labels,
numbers and containers, each refused with a message naming the problem."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from skgradunc._validation import (check_fraction, check_images, check_labels,
                                   check_positive_int, encode_labels, refuse_containers)


def test_images_are_float32_nchw_with_uint8_scaled():
    X = np.full((2, 4, 4), 255, dtype=np.uint8)
    images = check_images(X)
    assert images.shape == (2, 1, 4, 4) and images.dtype == np.float32
    assert images.max() == 1.0
    assert check_images(np.zeros((2, 16), np.float64), (1, 4, 4)).shape == (2, 1, 4, 4)
    with pytest.raises(ValueError, match="NaN or infinity in 1 of 2 samples .first: sample 1"):
        check_images(np.array([[[[0.0]]], [[[np.nan]]]], dtype=np.float32))
    with pytest.raises(TypeError, match="got dtype int64"):
        check_images(np.zeros((2, 1, 4, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="X has images of shape .1, 4, 4. .*expects .1, 5, 5."):
        check_images(np.zeros((2, 1, 4, 4), np.float32), (1, 5, 5))


def test_labels_are_integers_naming_what_is_wrong():
    np.testing.assert_array_equal(check_labels([0.0, 2.0], 2), [0, 2])
    with pytest.raises(ValueError, match="non-integer floats"):
        check_labels([0.5, 1.0], 2)
    with pytest.raises(ValueError, match="y has 3 labels but X has 2 samples"):
        check_labels([0, 1, 1], 2)
    with pytest.raises(ValueError, match="label 3 but the network has only 3 classes"):
        check_labels([0, 3], 2, n_classes=3)


def test_encoded_labels_follow_scikit_learns_classes_convention():
    classes, encoded = encode_labels(["dog", "cat", "dog"], 3)
    assert classes.tolist() == ["cat", "dog"] and encoded.tolist() == [1, 0, 1]
    classes, encoded = encode_labels([4, 0, 2], 3)
    assert classes.tolist() == [0, 2, 4] and encoded.tolist() == [2, 0, 1]
    classes, encoded = encode_labels([1.0, 3.0], 2, classes=[3, 1])   # given order kept
    assert encoded.tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"labels \[7\] that are not among the classes"):
        encode_labels([1, 7], 2, classes=[1, 2])
    with pytest.raises(TypeError, match="mixes label types"):
        encode_labels(np.array(["a", 1], dtype=object), 2)
    with pytest.raises(ValueError, match="continuous targets"):
        encode_labels([0.5, 1.0], 2)
    with pytest.raises(TypeError, match="complex"):
        encode_labels(np.array([1j, 2j]), 2)


def test_containers_are_named():
    data = TensorDataset(torch.zeros(4, 2), torch.zeros(4))
    with pytest.raises(TypeError, match="X is a DataLoader, but an array"):
        refuse_containers(DataLoader(data, batch_size=2))
    with pytest.raises(TypeError, match="X is a torch TensorDataset, but an array"):
        refuse_containers(data)
    refuse_containers(data, datasets=True)     # where Datasets are read: fine
    with pytest.raises(TypeError, match="generator, which can be read only once"):
        refuse_containers(x for x in range(3))
    with pytest.raises(TypeError, match="list of .x, y, .... items.*SliceDataset"):
        refuse_containers([data[0], data[1]], datasets=True)
    refuse_containers([[0.1, 0.2], [0.3, 0.4]])   # rows of numbers are an array


def test_numbers_name_the_setting():
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        check_positive_int(0, "batch_size")
    with pytest.raises(ValueError, match="test_size"):
        check_fraction(1.5, "test_size")
    check_positive_int(None, "epochs", optional=True)

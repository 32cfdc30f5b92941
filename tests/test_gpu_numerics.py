"""The process-wide settings the engine holds on a GPU (skgradunc/_gpu_numerics.py): taken
while features are computed, given back as found, also when transforms overlap. The flags
are plain settings, so this runs without a GPU; tests/test_cuda.py checks their effect."""

import threading

import pytest
import torch

from skgradunc import PaperCNN
from skgradunc._gpu_numerics import _tf32_flags, gpu_numerics

read_tf32, write_tf32, FULL = _tf32_flags()


@pytest.fixture
def users_tf32():
    """The user has asked for TF32 everywhere; their setting is put back after the test."""
    saved, cudnn = read_tf32(), torch.backends.cudnn.enabled
    tf32 = ("tf32", "tf32") if FULL == ("ieee", "ieee") else (True, True)
    write_tf32(tf32)
    yield tf32
    write_tf32(saved)
    torch.backends.cudnn.enabled = cudnn


def test_full_float32_is_held_on_a_gpu_and_the_users_setting_given_back(users_tf32):
    with gpu_numerics("cuda", PaperCNN()):
        assert read_tf32() == FULL
        with gpu_numerics("cuda:0", PaperCNN()):   # nested (fit probes inside transform)
            assert read_tf32() == FULL
        assert read_tf32() == FULL
    assert read_tf32() == users_tf32
    with gpu_numerics("cpu", PaperCNN()):
        assert read_tf32() == users_tf32           # nothing to change on the CPU


def test_overlapping_holders_in_threads_give_back_the_users_setting(users_tf32):
    entered, release, seen = threading.Barrier(3), threading.Event(), []

    def hold():
        with gpu_numerics("cuda", PaperCNN()):
            entered.wait()
            release.wait()
            seen.append(read_tf32())

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for t in threads:
        t.start()
    entered.wait()                                 # both inside at once
    assert read_tf32() == FULL
    release.set()
    for t in threads:
        t.join()
    assert seen == [FULL, FULL] and read_tf32() == users_tf32


def test_cudnn_is_off_only_for_recurrent_networks_and_back_on_after(users_tf32):
    torch.backends.cudnn.enabled = True
    with gpu_numerics("cuda", PaperCNN()):
        assert torch.backends.cudnn.enabled
    gru = torch.nn.Sequential(torch.nn.GRU(3, 4, batch_first=True))
    with gpu_numerics("cuda", gru):
        assert not torch.backends.cudnn.enabled
    with gpu_numerics("cpu", gru):
        assert torch.backends.cudnn.enabled
    assert torch.backends.cudnn.enabled


def test_an_error_inside_gives_the_settings_back(users_tf32):
    with pytest.raises(ZeroDivisionError):
        with gpu_numerics("cuda", torch.nn.GRU(3, 4)):
            1 / 0
    assert read_tf32() == users_tf32 and torch.backends.cudnn.enabled

import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny networks run fastest single-threaded, and immune to a busy shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

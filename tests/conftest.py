import pytest
import torch

# The tests use tiny tensors, for which one thread is fastest and immune to other work on the machine.
torch.set_num_threads(1)


@pytest.fixture
def float64():
    """Run a test with float64 as the default dtype (comparisons to 1e-10), restoring it afterwards."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)

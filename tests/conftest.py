import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(2)


@pytest.fixture
def toy_step(monkeypatch):
    """A cache step named "step" whose result depends on no library code, for tests of the cache itself."""
    from negspike import cache

    monkeypatch.setitem(cache.STEP_CODE, "step", ())
    yield "step"
    cache._forget_code_versions()


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory):
    """One step cache for the tests that run the studies on test_reliability.TINY, so that
    each trains the tiny pipeline once (the cache keys name every setting, so they cannot mix)."""
    return tmp_path_factory.mktemp("tiny-cache")

"""clustering.gpu.share_torch_allocator without a GPU: fakes of torch and CuPy stand in for the real ones.

The `gpu` test test/clustering/test_clustering_gpu.py::test_cupy_allocates_from_torch checks the real thing.
"""
from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from pointgroup_ros.clustering import gpu


class FakePool:
    def __init__(self) -> None:
        self.released = 0

    def malloc(self, size: int) -> Any:  # the allocator CuPy starts with is this pool's bound malloc
        raise AssertionError("not called in these tests")

    def free_all_blocks(self) -> None:
        self.released += 1


class FakePythonFunctionAllocator:
    def __init__(self, malloc_func: Any, free_func: Any) -> None:
        self.malloc_func, self.free_func = malloc_func, free_func

    def malloc(self, size: int) -> Any:
        return self.malloc_func(size, 0)


class FakeCupyCuda:
    def __init__(self, pool: FakePool, available: Any = True) -> None:
        self.available = available
        self.allocator: Any = pool.malloc
        self.set_calls: list[Any] = []
        self.refuse: Exception | None = None
        self.memory = SimpleNamespace(PythonFunctionAllocator=FakePythonFunctionAllocator)

    def is_available(self) -> bool:
        if isinstance(self.available, Exception):
            raise self.available
        return self.available

    def get_allocator(self) -> Any:
        return self.allocator

    def set_allocator(self, allocator: Any) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.set_calls.append(allocator)
        self.allocator = allocator

    def get_current_stream(self) -> Any:
        return SimpleNamespace(ptr=4242)


def fake_cupy(available: Any = True) -> Any:
    pool = FakePool()
    return SimpleNamespace(cuda=FakeCupyCuda(pool, available), get_default_memory_pool=lambda: pool, pool=pool)


def fake_torch(available: bool = True) -> Any:
    calls: dict[str, list[Any]] = {"alloc": [], "delete": []}

    def alloc(size: int, device: int, stream: int) -> int:
        calls["alloc"].append((size, device, stream))
        return 0x7000 + size

    cuda = SimpleNamespace(is_available=lambda: available, caching_allocator_alloc=alloc,
                           caching_allocator_delete=lambda ptr: calls["delete"].append(ptr))
    return SimpleNamespace(__version__="0.fake", cuda=cuda, calls=calls)


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(gpu.ALLOCATOR_ENV, raising=False)
    gpu._reset_allocator_state()
    yield
    gpu._reset_allocator_state()


def test_installs_once_from_many_threads_and_releases_cupys_cache() -> None:
    torch, cupy = fake_torch(), fake_cupy()
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(gpu.share_torch_allocator(torch, cupy)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 8
    assert gpu.share_torch_allocator(torch, cupy) is True
    assert len(cupy.cuda.set_calls) == 1 and cupy.pool.released == 1
    installed = cupy.cuda.set_calls[0]
    assert installed.__self__ is gpu._ALLOCATOR.allocator  # the PythonFunctionAllocator's malloc
    assert gpu.allocator_status() == (True, "CuPy allocates from torch's caching allocator")


def test_malloc_and_free_go_to_torchs_caching_allocator_on_cupys_stream() -> None:
    torch, cupy = fake_torch(), fake_cupy()
    assert gpu.share_torch_allocator(torch, cupy)
    allocator = gpu._ALLOCATOR.allocator
    ptr = allocator.malloc_func(1 << 20, 1)
    assert ptr == 0x7000 + (1 << 20)
    assert torch.calls["alloc"] == [(1 << 20, 1, 4242)]  # size, device id, CuPy's current stream
    allocator.free_func(ptr, 1)
    assert torch.calls["delete"] == [ptr]


@pytest.mark.parametrize("torch_cuda, cupy_cuda, why", [
    (False, True, "no CUDA device visible to torch"),
    (True, False, "no CUDA device visible to CuPy"),
    (True, RuntimeError("no driver"), "no CUDA device (RuntimeError: no driver)"),
])
def test_not_installed_without_a_gpu_and_the_answer_is_kept(torch_cuda: bool, cupy_cuda: Any, why: str) -> None:
    torch, cupy = fake_torch(torch_cuda), fake_cupy(cupy_cuda)
    assert gpu.share_torch_allocator(torch, cupy) is False
    assert gpu.allocator_status() == (False, why)
    assert cupy.cuda.set_calls == [] and cupy.pool.released == 0
    # decided once per process: later calls do not look again
    assert gpu.share_torch_allocator(fake_torch(), fake_cupy()) is False


def test_not_installed_when_torch_has_no_caching_allocator_alloc() -> None:
    torch, cupy = fake_torch(), fake_cupy()
    del torch.cuda.caching_allocator_alloc
    assert gpu.share_torch_allocator(torch, cupy) is False
    assert "caching_allocator_alloc" in gpu.allocator_status()[1] and cupy.cuda.set_calls == []


def test_environment_keeps_cupys_own_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gpu.ALLOCATOR_ENV, "cupy")
    cupy = fake_cupy()
    assert gpu.share_torch_allocator(fake_torch(), cupy) is False
    assert cupy.cuda.set_calls == [] and "POINTGROUP_CUPY_ALLOCATOR=cupy" in gpu.allocator_status()[1]


def test_unknown_environment_value_uses_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gpu.ALLOCATOR_ENV, "jemalloc")
    cupy = fake_cupy()
    assert gpu.share_torch_allocator(fake_torch(), cupy) is True and len(cupy.cuda.set_calls) == 1


def test_a_users_allocator_is_kept_and_asked_again_later() -> None:
    torch, cupy = fake_torch(), fake_cupy()
    users = object()
    cupy.cuda.allocator = users
    assert gpu.share_torch_allocator(torch, cupy) is False
    assert cupy.cuda.allocator is users and "already changed" in gpu.allocator_status()[1]
    cupy.cuda.allocator = cupy.pool.malloc  # back to CuPy's default pool: the next call installs
    assert gpu.share_torch_allocator(torch, cupy) is True and len(cupy.cuda.set_calls) == 1


def test_refused_inside_using_allocator_is_retried() -> None:
    torch, cupy = fake_torch(), fake_cupy()
    cupy.cuda.refuse = ValueError("Can't change the global allocator inside `using_allocator` context manager")
    assert gpu.share_torch_allocator(torch, cupy) is False
    assert "cannot be changed now" in gpu.allocator_status()[1] and cupy.pool.released == 0
    cupy.cuda.refuse = None
    assert gpu.share_torch_allocator(torch, cupy) is True


def test_without_cupy_installed_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_cupy(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "cupy":
            raise ImportError("No module named 'cupy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cupy)
    assert gpu.share_torch_allocator() is False
    assert gpu.allocator_status() == (False, "torch or CuPy is not installed")


def test_cpu_tensors_never_touch_the_allocator(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    import torch

    from pointgroup_ros.clustering import cluster_points

    def boom(*args: Any) -> bool:
        raise AssertionError("share_torch_allocator called for CPU tensors")

    monkeypatch.setattr(gpu, "share_torch_allocator", boom)
    xyz = torch.from_numpy(np.zeros((5, 3), np.float32))
    assert cluster_points(xyz, torch.zeros(5, dtype=torch.int64), 0.03, 1).tolist() == [0] * 5
    assert cluster_points(xyz.numpy(), np.zeros(5, np.int64), 0.03, 1).tolist() == [0] * 5

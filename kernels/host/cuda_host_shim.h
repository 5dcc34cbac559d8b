// Thin host (g++) stand-in for the CUDA built-ins the kernels in kernels/*.cu use, so that the very same
// sources run on the CPU in CI: each (block, thread) of a launch becomes one call of the kernel function,
// in index order, in a shuffled order, or spread over several OS threads (real concurrency for the
// lock-free union-find). Shared union-find words and atomics go through GCC __atomic built-ins so the
// multi-threaded runs have no data races in the C++ sense. Build with -ffp-contract=off (no FMA), so the
// float arithmetic matches the device's __fmul_rn / __fadd_rn exactly.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

#define PG_LOAD(ptr) __atomic_load_n((ptr), __ATOMIC_RELAXED)
// Event counters for tests (the kernels' PG_COUNT(index) hook; a no-op on the device): read and reset through
// the generated host_counters() (hostbuild.py).
#define PG_COUNT(index) pg_host::counters[(index)].fetch_add(1, std::memory_order_relaxed)
#define PG_STORE(ptr, value) __atomic_store_n((ptr), (value), __ATOMIC_RELAXED)

inline int atomicCAS(int* address, int compare, int value) {
    __atomic_compare_exchange_n(address, &compare, value, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return compare;  // the old value, as on the device
}
inline int atomicAdd(int* address, int value) { return __atomic_fetch_add(address, value, __ATOMIC_SEQ_CST); }
inline int atomicMin(int* address, int value) {
    int old = __atomic_load_n(address, __ATOMIC_SEQ_CST);
    while (value < old && !__atomic_compare_exchange_n(address, &old, value, false, __ATOMIC_SEQ_CST,
                                                        __ATOMIC_SEQ_CST)) {
    }
    return old;
}

// Correctly rounded single operations (the device intrinsics that forbid FMA contraction).
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
using std::floor;

namespace pg_host {

constexpr int kCounters = 8;
inline std::atomic<long long> counters[kCounters];

// mode 0: threads in index order; 1: one shuffled order (seed); 2: `workers` OS threads, each running a
// shuffled share of the threads, all at once.
template <class Kernel>
void launch(int grid, int block, int mode, unsigned seed, int workers, Kernel kernel) {
    gridDim.x = (unsigned)grid;
    blockDim.x = (unsigned)block;
    std::vector<int64_t> ids((size_t)grid * (size_t)block);
    for (size_t t = 0; t < ids.size(); ++t) ids[t] = (int64_t)t;
    if (mode != 0) std::shuffle(ids.begin(), ids.end(), std::mt19937(seed));
    auto run = [&](size_t begin, size_t step) {
        for (size_t t = begin; t < ids.size(); t += step) {
            blockIdx.x = (unsigned)(ids[t] / block);
            threadIdx.x = (unsigned)(ids[t] % block);
            kernel();
        }
    };
    if (mode != 2 || workers <= 1) {
        run(0, 1);
        return;
    }
    std::vector<std::thread> pool;
    for (int w = 0; w < workers; ++w) pool.emplace_back(run, (size_t)w, (size_t)workers);
    for (auto& th : pool) th.join();
}

}  // namespace pg_host

// Point grouping (PointGroup Algorithm 1) as connected components on a uniform grid, lock-free union-find.
//
// One source for three builds: NVRTC through cupy.RawModule (the runtime path), nvcc (compile check for
// every architecture) and g++ with kernels/host/cuda_host_shim.h (runs the kernels on the CPU in CI).
// COORD_T (float or double) is defined by whoever builds it, before this file.
//
// Grid layout (see pointgroup_ros/clustering/layout.py): fine cells of side s = r / sqrt(3) * (1 - 2^-12)
// so that any two points of one fine cell are neighbours (a clique); 2x2x2 fine cells form a coarse cell.
// Sort key, 62 bits: label | cz | cy | cx (coarse, b bits each) | sub-cell bits z y x. A fine coordinate
// equal to 2^(b+1) - 1 means "clamped" (the scene is too large for the key): such cells are not cliques.
// The union-find hooks the larger root under the smaller, so every root is its component's lowest index.
// Fine cells of at least PG_BOX_MIN points get a bounding box (pg_group_bounds, stored at the cell's first
// sorted position); pg_scan_range skips such a cell when the point's distance to the box is already >= r,
// so two dense cells with no neighbour pair cost one box test per point instead of one test per point pair.

#ifndef PG_BOX_MIN
#define PG_BOX_MIN 8  // fine cells with at least this many points get a bounding box
#endif

#ifndef PG_COUNT
// Statistics hook: the host shim counts events (index 0: point-to-point distance tests in pg_scan_range,
// 1: cells skipped by their bounding box); on the device it compiles to nothing.
#define PG_COUNT(index)
#endif

#ifndef PG_LOAD
// Shared union-find reads / writes: volatile on the device (other threads change parent[] concurrently).
#define PG_LOAD(ptr) (*(volatile const int*)(ptr))
#define PG_STORE(ptr, value) (*(volatile int*)(ptr) = (value))
#endif

// Squared distance with every operation rounded separately (no FMA contraction), in the order
// (dx*dx + dy*dy) + dz*dz: the CPU path (numpy) and the reference compute exactly the same value.
__device__ __forceinline__ float pg_sqdist(float ax, float ay, float az, float bx, float by, float bz) {
    const float dx = __fsub_rn(ax, bx), dy = __fsub_rn(ay, by), dz = __fsub_rn(az, bz);
    return __fadd_rn(__fadd_rn(__fmul_rn(dx, dx), __fmul_rn(dy, dy)), __fmul_rn(dz, dz));
}

__device__ __forceinline__ double pg_sqdist(double ax, double ay, double az, double bx, double by, double bz) {
    const double dx = __dsub_rn(ax, bx), dy = __dsub_rn(ay, by), dz = __dsub_rn(az, bz);
    return __dadd_rn(__dadd_rn(__dmul_rn(dx, dx), __dmul_rn(dy, dy)), __dmul_rn(dz, dz));
}

// First position in keys[0, n) whose key is >= value.
__device__ __forceinline__ int pg_lower_bound(const long long* keys, int n, long long value) {
    int lo = 0, hi = n;
    while (lo < hi) {
        const int mid = lo + ((hi - lo) >> 1);
        if (keys[mid] < value) lo = mid + 1; else hi = mid;
    }
    return lo;
}

// First position in keys[0, n) whose key is > value.
__device__ __forceinline__ int pg_upper_bound(const long long* keys, int n, long long value) {
    int lo = 0, hi = n;
    while (lo < hi) {
        const int mid = lo + ((hi - lo) >> 1);
        if (keys[mid] <= value) lo = mid + 1; else hi = mid;
    }
    return lo;
}

// Root of x with path halving. parent[v] <= v always holds, so the walk ends at the lowest index.
__device__ __forceinline__ int pg_find(int* parent, int x) {
    for (;;) {
        const int p = PG_LOAD(parent + x);
        if (p == x) return x;
        const int gp = PG_LOAD(parent + p);
        if (gp == p) return p;
        PG_STORE(parent + x, gp);  // gp is an ancestor of x: a benign race with other halving writes
        x = gp;
    }
}

// Join the components of a and b: hook the larger root under the smaller one with a CAS (ECL-CC style).
__device__ __forceinline__ void pg_unite(int* parent, int a, int b) {
    int ra = pg_find(parent, a), rb = pg_find(parent, b);
    while (ra != rb) {
        if (ra < rb) { const int t = ra; ra = rb; rb = t; }
        const int old = atomicCAS(parent + ra, ra, rb);
        if (old == ra) return;
        ra = pg_find(parent, old);  // ra was hooked meanwhile: retry from the current roots
        rb = pg_find(parent, rb);
    }
}

// Fine cell coordinate of a key along one axis (0 = x, 1 = y, 2 = z).
__device__ __forceinline__ int pg_fine(long long key, int axis, int b) {
    const long long coarse = (key >> (3 + axis * b)) & ((1LL << b) - 1);
    return (int)((coarse << 1) | ((key >> axis) & 1));
}

// keys[i]: the sort key of point i (LLONG_MAX for invalid points); parent[i] = i.
extern "C" __global__ void pg_cell_keys(const COORD_T* __restrict__ xyz, const long long* __restrict__ labels,
                                        const bool* __restrict__ valid, int n, long long label_min,
                                        double inv_cell, double origin_x, double origin_y, double origin_z,
                                        int b, long long* __restrict__ keys, int* __restrict__ parent) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    parent[i] = i;
    if (!valid[i]) {
        keys[i] = 0x7fffffffffffffffLL;
        return;
    }
    const double top = (double)((2LL << b) - 1);  // fine coordinate reserved for clamped cells
    const double origin[3] = {origin_x, origin_y, origin_z};
    long long key = (labels[i] - label_min) << (3 * b + 3);
    for (int axis = 0; axis < 3; ++axis) {
        double f = floor((double)xyz[3LL * i + axis] * inv_cell) - origin[axis] + 2.0;
        f = f < 0.0 ? 0.0 : (f > top ? top : f);
        const long long fine = (long long)f;
        key |= ((fine >> 1) << (3 + axis * b)) | ((fine & 1) << axis);
    }
    keys[i] = key;
}

// For each sorted position p: gstart[p] / gend[p] = first / one-past-last position of p's fine cell. The first
// position f of a cell of at least PG_BOX_MIN points also writes the cell's bounding box to box[6 f .. 6 f + 5]
// (min x, y, z, then max x, y, z); box is not read anywhere else.
extern "C" __global__ void pg_group_bounds(const long long* __restrict__ skeys, const COORD_T* __restrict__ sxyz,
                                           int n, int* __restrict__ gstart, int* __restrict__ gend,
                                           COORD_T* __restrict__ box) {
    const int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n) return;
    const long long key = skeys[p];
    const int gs = pg_lower_bound(skeys, n, key), ge = pg_upper_bound(skeys, n, key);
    gstart[p] = gs;
    gend[p] = ge;
    if (gs != p || ge - gs < PG_BOX_MIN) return;
    COORD_T lo[3] = {sxyz[3LL * p], sxyz[3LL * p + 1], sxyz[3LL * p + 2]};
    COORD_T hi[3] = {lo[0], lo[1], lo[2]};
    for (int j = p + 1; j < ge; ++j) {
        for (int axis = 0; axis < 3; ++axis) {
            const COORD_T v = sxyz[3LL * j + axis];
            lo[axis] = v < lo[axis] ? v : lo[axis];
            hi[axis] = v > hi[axis] ? v : hi[axis];
        }
    }
    for (int axis = 0; axis < 3; ++axis) {
        box[6LL * p + axis] = lo[axis];
        box[6LL * p + 3 + axis] = hi[axis];
    }
}

// Squared distance from (x, y, z) to the box lo / hi, rounded like pg_sqdist: per axis the gap is lo - x, x - hi
// or 0, and rounding is monotonic, so it is <= pg_sqdist(x, y, z, point) for every point in the box (exactly,
// not up to rounding). A result >= r2 thus proves that no point of the box is a neighbour.
__device__ __forceinline__ COORD_T pg_box_sqdist(const COORD_T* lo_hi, COORD_T x, COORD_T y, COORD_T z) {
    const COORD_T c[3] = {x, y, z};
    COORD_T gap[3];
    for (int axis = 0; axis < 3; ++axis) {
        const COORD_T lo = lo_hi[axis], hi = lo_hi[3 + axis];
        gap[axis] = c[axis] < lo ? lo - c[axis] : (c[axis] > hi ? c[axis] - hi : (COORD_T)0);
    }
    return pg_sqdist(gap[0], gap[1], gap[2], (COORD_T)0, (COORD_T)0, (COORD_T)0);
}

// Unite point p (sorted position) with every fine cell of its half-neighbourhood in [q, end of key hi].
// A clique cell needs one neighbour of p; a clamped cell needs every point tested. A cell with a bounding
// box (at least PG_BOX_MIN points) is skipped when p is at least r from the box.
__device__ __forceinline__ void pg_scan_range(const long long* skeys, const COORD_T* sxyz, const int* order,
                                              const int* gend, const COORD_T* box, int n, int b, COORD_T r2,
                                              int* parent, int q, long long hi, long long key, int i, COORD_T x,
                                              COORD_T y, COORD_T z) {
    const int top = (2 << b) - 1;
    while (q < n && skeys[q] <= hi) {
        const long long hkey = skeys[q];
        const int hend = gend[q];
        bool near = true, clique = true;
        for (int axis = 0; axis < 3; ++axis) {
            const int fh = pg_fine(hkey, axis, b), d = fh - pg_fine(key, axis, b);
            near = near && d <= 2 && d >= -2;
            clique = clique && fh < top;
        }
        if (near && hend - q >= PG_BOX_MIN && !(pg_box_sqdist(box + 6LL * q, x, y, z) < r2)) {
            PG_COUNT(1);
            near = false;  // no point of the cell is within r of p
        }
        if (near) {
            // Already one component (checked only where it saves several distance tests).
            if (clique && hend - q > 2 && pg_find(parent, i) == pg_find(parent, order[q])) {
                q = hend;
                continue;
            }
            for (int j = q; j < hend; ++j) {
                PG_COUNT(0);
                if (pg_sqdist(x, y, z, sxyz[3LL * j], sxyz[3LL * j + 1], sxyz[3LL * j + 2]) < r2) {
                    pg_unite(parent, i, order[j]);
                    if (clique) break;
                }
            }
        }
        q = hend;
    }
}

// One thread per valid sorted position p: unite point order[p] with its neighbours (squared distance < r2,
// same label) in its own fine cell and in the forward half of the 3x3x3 coarse neighbourhood.
extern "C" __global__ void pg_union(const long long* __restrict__ skeys, const COORD_T* __restrict__ sxyz,
                                    const int* __restrict__ order, const int* __restrict__ gstart,
                                    const int* __restrict__ gend, const COORD_T* __restrict__ box, int n, int b,
                                    COORD_T r2, int* parent) {
    const int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n) return;
    const long long key = skeys[p];
    const int i = order[p];
    // 3 * index in 64 bits: an int product overflows past 715 million points
    const COORD_T x = sxyz[3LL * p], y = sxyz[3LL * p + 1], z = sxyz[3LL * p + 2];
    const int top = (2 << b) - 1;
    const long long cmax = (1LL << b) - 1;
    const int ge = gend[p];

    // Own fine cell: a clique joins its first point; a clamped cell tests its later points.
    if (pg_fine(key, 0, b) < top && pg_fine(key, 1, b) < top && pg_fine(key, 2, b) < top) {
        const int gs = gstart[p];
        if (gs != p) pg_unite(parent, i, order[gs]);
    } else {
        for (int j = p + 1; j < ge; ++j)
            if (pg_sqdist(x, y, z, sxyz[3LL * j], sxyz[3LL * j + 1], sxyz[3LL * j + 2]) < r2) pg_unite(parent, i, order[j]);
    }

    const long long cell = key >> 3;  // label | cz | cy | cx
    const long long cx = cell & cmax, cy = (cell >> b) & cmax, cz = (cell >> (2 * b)) & cmax;
    // Later fine cells of the own coarse cell, then the next coarse cell of the row: one key range.
    const long long own_hi = ((cx < cmax ? cell + 1 : cell) << 3) | 7;
    pg_scan_range(skeys, sxyz, order, gend, box, n, b, r2, parent, ge, own_hi, key, i, x, y, z);

    // Forward rows (dz, dy) = (0, 1), (1, -1), (1, 0), (1, 1), coarse x from cx - 1 to cx + 1.
    for (int row = 0; row < 4; ++row) {
        const long long dz = row == 0 ? 0 : 1, dy = row == 0 ? 1 : row - 2;
        if (cy + dy < 0 || cy + dy > cmax || cz + dz > cmax) continue;
        const long long base = cell + (dz << (2 * b)) + (dy << b);
        const long long lo = (cx > 0 ? base - 1 : base) << 3;
        const long long hi = ((cx < cmax ? base + 1 : base) << 3) | 7;
        pg_scan_range(skeys, sxyz, order, gend, box, n, b, r2, parent, pg_lower_bound(skeys, n, lo), hi, key, i, x,
                      y, z);
    }
}

// Final roots (parent[i] = root) and component sizes. Each thread takes 8 consecutive points and adds runs
// of equal roots at once, which keeps a huge component from serialising on one counter.
extern "C" __global__ void pg_flatten_count(int* parent, const bool* __restrict__ valid, int n,
                                            int* __restrict__ size) {
    const int first = (blockIdx.x * blockDim.x + threadIdx.x) * 8;
    int run_root = -1, run_len = 0;
    for (int i = first; i < first + 8 && i < n; ++i) {
        if (!valid[i]) continue;
        const int r = pg_find(parent, i);
        PG_STORE(parent + i, r);
        if (r == run_root) {
            ++run_len;
        } else {
            if (run_len) atomicAdd(size + run_root, run_len);
            run_root = r;
            run_len = 1;
        }
    }
    if (run_len) atomicAdd(size + run_root, run_len);
}

// flag[i] = 1 where i is the root (lowest index) of a kept component.
extern "C" __global__ void pg_root_flags(const int* __restrict__ parent, const int* __restrict__ size,
                                         const bool* __restrict__ valid, int n, int min_points,
                                         int* __restrict__ flag) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    flag[i] = (valid[i] && parent[i] == i && size[i] >= min_points) ? 1 : 0;
}

// out[i] = cluster id (inclusive prefix sum of root flags at the root, minus one) or -1.
extern "C" __global__ void pg_assign(const int* __restrict__ parent, const int* __restrict__ size,
                                     const bool* __restrict__ valid, const int* __restrict__ rank, int n,
                                     int min_points, long long* __restrict__ out) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int r = parent[i];
    out[i] = (valid[i] && size[r] >= min_points) ? (long long)(rank[r] - 1) : -1LL;
}

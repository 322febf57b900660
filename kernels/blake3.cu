// BLAKE3 of a device buffer, equal to the host's blake3::hash of the same bytes, so `--capture hashes`
// copies 32-byte digests instead of tensors:
//   1. each thread compresses one 1 KiB chunk (16 blocks of 64 bytes; CHUNK_START on the first block,
//      CHUNK_END on the last, the chunk index as counter); each block merges its B3_THREADS chaining
//      values in shared memory to one node, level by level: pairs (0,1), (2,3), ... become parents; an
//      odd last node moves up unchanged;
//   2. up the tree B3_THREADS nodes at a time: the last block of a group to finish (a ticket from an
//      atomic counter per group, after a __threadfence) merges the group's nodes the same way, level by
//      level, until the final group, whose last parent is the root. Level by level is BLAKE3's
//      left-balanced tree (the left subtree always holds the largest power of two of chunks below the
//      total). The root parent gets ROOT; its first 32 bytes are the digest.
// A single-chunk buffer is its own root (ROOT on its last block). Empty buffers are hashed on the host.
// The digest is written to `out` (32 bytes, host memory mapped into the device), then, after a system-wide
// fence, `tag` to out[8]: the host reads the digest once it sees the tag, with no copy and no stream
// synchronisation. The ticket counter is reset for the next launch. blake3_many hashes a batch of buffers
// in one launch.

#define B3_THREADS 64

#define B3_CHUNK_START 1u
#define B3_CHUNK_END 2u
#define B3_PARENT 4u
#define B3_ROOT 8u

__device__ __constant__ u32 B3_IV[8] = {0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
                                        0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u};

__device__ __forceinline__ u32 b3_rotr(u32 x, int n) { return (x >> n) | (x << (32 - n)); }

#define B3_G(a, b, c, d, mx, my)              \
    a = a + b + mx; d = b3_rotr(d ^ a, 16);  \
    c = c + d;      b = b3_rotr(b ^ c, 12);  \
    a = a + b + my; d = b3_rotr(d ^ a, 8);   \
    c = c + d;      b = b3_rotr(b ^ c, 7);

// One round with message words m[s0..s15]: the reference's permutation applied r times, as constants, so
// every index is known at compile time and the message stays in registers (a permuted copy per round, or
// an index table, put it in local memory).
#define B3_ROUND(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15) \
    B3_G(v0, v4, v8, v12, m[s0], m[s1]);                                                \
    B3_G(v1, v5, v9, v13, m[s2], m[s3]);                                                \
    B3_G(v2, v6, v10, v14, m[s4], m[s5]);                                               \
    B3_G(v3, v7, v11, v15, m[s6], m[s7]);                                               \
    B3_G(v0, v5, v10, v15, m[s8], m[s9]);                                               \
    B3_G(v1, v6, v11, v12, m[s10], m[s11]);                                             \
    B3_G(v2, v7, v8, v13, m[s12], m[s13]);                                              \
    B3_G(v3, v4, v9, v14, m[s14], m[s15]);

// The compression function: chaining value h (in/out: first 8 output words), message m. The seven rounds
// use the message schedule of the reference implementation (MSG_SCHEDULE in blake3_portable.c: row r is
// the permutation {2,6,3,10,7,0,4,13,1,11,12,5,9,14,15,8} applied r times).
__device__ __forceinline__ void b3_compress(u32 h[8], const u32 m[16], u32 counter_lo, u32 counter_hi,
                                            u32 block_len, u32 flags) {
    u32 v0 = h[0], v1 = h[1], v2 = h[2], v3 = h[3], v4 = h[4], v5 = h[5], v6 = h[6], v7 = h[7];
    u32 v8 = B3_IV[0], v9 = B3_IV[1], v10 = B3_IV[2], v11 = B3_IV[3];
    u32 v12 = counter_lo, v13 = counter_hi, v14 = block_len, v15 = flags;
    B3_ROUND(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
    B3_ROUND(2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8)
    B3_ROUND(3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1)
    B3_ROUND(10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6)
    B3_ROUND(12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4)
    B3_ROUND(9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7)
    B3_ROUND(11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13)
    h[0] = v0 ^ v8; h[1] = v1 ^ v9; h[2] = v2 ^ v10; h[3] = v3 ^ v11;
    h[4] = v4 ^ v12; h[5] = v5 ^ v13; h[6] = v6 ^ v14; h[7] = v7 ^ v15;
}

// Message block b of a chunk at p (bl bytes of it, <= 64; the rest zero), little-endian words. A whole
// 16-byte-aligned block is read as four 16-byte loads (a thread's chunks are 1 KiB apart, so narrower
// loads cost a memory transaction per word); otherwise word by word, byte by byte, with constant word
// indices only (a computed index would move the message out of registers).
__device__ __forceinline__ void b3_load_block(const u8* __restrict__ p, u32 bl, u32 m[16]) {
    if (bl == 64 && (((size_t)p) & 15) == 0) {
        const uint4* q = (const uint4*)p;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint4 w = q[i];
            m[4 * i] = w.x; m[4 * i + 1] = w.y; m[4 * i + 2] = w.z; m[4 * i + 3] = w.w;
        }
        return;
    }
#pragma unroll
    for (int i = 0; i < 16; i++) {
        u32 w = 0;
#pragma unroll
        for (int k = 0; k < 4; k++)
            if ((u32)(4 * i + k) < bl) w |= (u32)p[4 * i + k] << (8 * k);
        m[i] = w;
    }
}

// Chaining value of chunk c of data[0..len) (root: the buffer is this one chunk).
__device__ void b3_chunk(const u8* __restrict__ data, unsigned long long len, unsigned long long c, bool root,
                         u32 h[8]) {
    for (int i = 0; i < 8; i++) h[i] = B3_IV[i];
    unsigned long long start = c * 1024ull;
    unsigned long long clen = len - start < 1024ull ? len - start : 1024ull;
    u32 nblocks = clen == 0 ? 1 : (u32)((clen + 63) / 64);
    const u8* p = data + start;
    for (u32 b = 0; b < nblocks; b++) {
        u32 off = b * 64;
        u32 bl = (u32)(clen - off < 64 ? clen - off : 64);
        u32 m[16];
        b3_load_block(p + off, bl, m);
        u32 flags = (b == 0 ? B3_CHUNK_START : 0) | (b + 1 == nblocks ? B3_CHUNK_END : 0);
        if (root && b + 1 == nblocks) flags |= B3_ROOT;
        b3_compress(h, m, (u32)c, (u32)(c >> 32), bl, flags);
    }
}

__device__ __forceinline__ void b3_parent(const u32* l, const u32* r, bool root, u32 h[8]) {
    u32 m[16];
    for (int i = 0; i < 8; i++) { m[i] = l[i]; m[8 + i] = r[i]; h[i] = B3_IV[i]; }
    b3_compress(h, m, 0, 0, 64, B3_PARENT | (root ? B3_ROOT : 0));
}

// data: the buffer (len_lo/len_hi: its length in bytes, > 0); cv: 8 words per chunk of scratch;
// ticket: one u32, zero before the launch (left zero after); out: 9 words, the digest and the tag.
// Grid: ceil(chunks / B3_THREADS) blocks of B3_THREADS threads.
__device__ __forceinline__ void b3_publish(volatile u32* out, const u32 h[8], u32 tag) {
    for (int i = 0; i < 8; i++) out[i] = h[i];
    __threadfence_system();
    out[8] = tag;
}

// Level-by-level merge of the `count` chaining values in sh (count <= B3_THREADS), in place, until at most
// `until` remain: pairs (0,1), (2,3), ... become parents, an odd last node moves up unchanged. Every thread
// of the block calls it.
__device__ u32 b3_merge_shared(u32 (*sh)[8], u32 count, u32 until) {
    while (count > until) {
        u32 pairs = count / 2, p = threadIdx.x;
        u32 h[8];
        if (p < pairs) b3_parent(sh[2 * p], sh[2 * p + 1], false, h);
        __syncthreads();
        if (p < pairs)
            for (int i = 0; i < 8; i++) sh[p][i] = h[i];
        if ((count & 1) && threadIdx.x == 0)
            for (int i = 0; i < 8; i++) sh[pairs][i] = sh[count - 1][i];
        __syncthreads();
        count = pairs + (count & 1);
    }
    return count;
}

// One buffer's digest by `nblocks` blocks, this one being block `bx` of them (the whole block returns
// together or not at all). Each block hashes B3_THREADS chunks (one a thread) and merges them in shared
// memory to one node: block bx's chunks are an aligned power-of-two group (or the tail), so these are the
// first levels of the whole tree's level-by-level merge, and a tail that reaches one node early only
// moves up unchanged. Then up the tree, B3_THREADS nodes at a time: a block stores its node (level L's
// nodes follow level L-1's in cv), and the last of a group of B3_THREADS nodes to arrive (a ticket per
// group) merges the group in shared memory to one node of level L+1 and goes on with it; the last of the
// final group (at most B3_THREADS nodes) makes the root. (One block merging all the blocks' nodes, 4096 of
// a 256 MiB buffer, left the rest of the device idle for milliseconds.)
// tickets: one per group of every level (see tickets_for in digest.rs), zero before, reset to zero by the
// group's last block.
__device__ void b3_one(const u8* __restrict__ data, unsigned long long len, u32* __restrict__ cv,
                       u32* __restrict__ tickets, u32* out, u32 tag, u32 bx, u32 nblocks) {
    unsigned long long chunks = (len + 1023) / 1024;
    if (chunks == 1) {
        if (bx == 0 && threadIdx.x == 0) {
            u32 h[8];
            b3_chunk(data, len, 0, true, h);
            b3_publish(out, h, tag);
        }
        return;
    }
    __shared__ u32 sh[B3_THREADS][8];
    __shared__ bool last;
    unsigned long long first = (unsigned long long)bx * B3_THREADS;
    u32 n = (u32)(chunks - first < B3_THREADS ? chunks - first : B3_THREADS);
    if (threadIdx.x < n) {
        u32 h[8];
        b3_chunk(data, len, first + threadIdx.x, false, h);
        for (int i = 0; i < 8; i++) sh[threadIdx.x][i] = h[i];
    }
    __syncthreads();
    if (nblocks == 1) {
        b3_merge_shared(sh, n, 2);
        if (threadIdx.x == 0) {
            u32 h[8];
            b3_parent(sh[0], sh[1], true, h);
            b3_publish(out, h, tag);
        }
        return;
    }
    b3_merge_shared(sh, n, 1);
    volatile u32* vcv = (volatile u32*)cv;
    u32 idx = bx, count = nblocks;
    unsigned long long base = 0;
    for (;;) {
        u32 groups = (count + B3_THREADS - 1) / B3_THREADS;
        u32 g = idx / B3_THREADS, gfirst = g * B3_THREADS;
        u32 members = count - gfirst < B3_THREADS ? count - gfirst : B3_THREADS;
        if (threadIdx.x < 8) vcv[(base + idx) * 8 + threadIdx.x] = sh[0][threadIdx.x];
        __threadfence();
        __syncthreads();
        if (threadIdx.x == 0) {
            last = atomicAdd(&tickets[g], 1u) == members - 1;
            if (last) tickets[g] = 0;
        }
        __syncthreads();
        if (!last) return;
        __threadfence();
        // Volatile reads: the other blocks' nodes must come from memory, not a stale cache.
        if (threadIdx.x < members)
            for (int i = 0; i < 8; i++) sh[threadIdx.x][i] = vcv[(base + gfirst + threadIdx.x) * 8 + i];
        __syncthreads();
        if (groups == 1) {
            b3_merge_shared(sh, members, 2);
            if (threadIdx.x == 0) {
                u32 h[8];
                b3_parent(sh[0], sh[1], true, h);
                b3_publish(out, h, tag);
            }
            return;
        }
        b3_merge_shared(sh, members, 1);
        tickets += groups;
        base += count;
        idx = g;
        count = groups;
    }
}

// A batch of digests in one launch (the buffers hash concurrently instead of one small kernel each, in
// order, between the model's kernels). Buffer j of the batch is slot first + j of the ring; its
// descriptor, in device memory at descs[4 * j] (copied there from the host's ring before the launch:
// read from host memory, once per block of thousands, it left the kernel waiting on the bus), is
// {address, length in bytes (> 0), offset of its chaining values in cv (words), tag | offset of its
// tickets << 32}; its digest and tag go to out[16 * slot % slots]. Grid (blocks of the largest buffer, count), B3_THREADS threads.
extern "C" __global__ void blake3_many(const unsigned long long* descs, u32 first, u32 count, u32 slots,
                                       u32* __restrict__ cv, u32* __restrict__ tickets, u32* out) {
    u32 j = blockIdx.y;
    if (j >= count) return;
    u32 s = (first + j) % slots;
    // Four threads read the descriptor once per block.
    __shared__ unsigned long long sd[4];
    if (threadIdx.x < 4) sd[threadIdx.x] = descs[4 * (size_t)j + threadIdx.x];
    __syncthreads();
    const u8* data = (const u8*)sd[0];
    unsigned long long len = sd[1], cv_off = sd[2];
    u32 tag = (u32)sd[3];
    u32 toff = (u32)(sd[3] >> 32);
    unsigned long long chunks = (len + 1023) / 1024;
    u32 nblocks = (u32)((chunks + B3_THREADS - 1) / B3_THREADS);
    if (blockIdx.x >= nblocks) return;
    b3_one(data, len, cv + cv_off, tickets + toff, out + 16 * (size_t)s, tag, blockIdx.x, nblocks);
}

// BLAKE3 of a device buffer, equal to the host's blake3::hash of the same bytes, so `--capture hashes`
// copies 32-byte digests instead of tensors:
//   1. each thread compresses one 1 KiB chunk (16 blocks of 64 bytes; CHUNK_START on the first block,
//      CHUNK_END on the last, the chunk index as counter); each block merges its B3_THREADS chaining
//      values in shared memory to one node, level by level: pairs (0,1), (2,3), ... become parents; an
//      odd last node moves up unchanged;
//   2. the last block to finish (a ticket from an atomic counter, after a __threadfence) merges the blocks'
//      nodes the same way. Level by level is BLAKE3's left-balanced tree (the left subtree always holds the
//      largest power of two of chunks below the total). The final parent gets ROOT; its first 32 bytes are
//      the digest. (Merging all chunks in the last block, 64 threads for a 58 MB weight's 57,000 chaining
//      values, cost a millisecond a tensor.)
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

// The compression function: chaining value h (in/out: first 8 output words), message m (permuted in
// place between rounds, as the reference implementation does).
__device__ void b3_compress(u32 h[8], u32 m[16], u32 counter_lo, u32 counter_hi, u32 block_len, u32 flags) {
    u32 v0 = h[0], v1 = h[1], v2 = h[2], v3 = h[3], v4 = h[4], v5 = h[5], v6 = h[6], v7 = h[7];
    u32 v8 = B3_IV[0], v9 = B3_IV[1], v10 = B3_IV[2], v11 = B3_IV[3];
    u32 v12 = counter_lo, v13 = counter_hi, v14 = block_len, v15 = flags;
    const int P[16] = {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8};
    for (int r = 0; r < 7; r++) {
        B3_G(v0, v4, v8, v12, m[0], m[1]);
        B3_G(v1, v5, v9, v13, m[2], m[3]);
        B3_G(v2, v6, v10, v14, m[4], m[5]);
        B3_G(v3, v7, v11, v15, m[6], m[7]);
        B3_G(v0, v5, v10, v15, m[8], m[9]);
        B3_G(v1, v6, v11, v12, m[10], m[11]);
        B3_G(v2, v7, v8, v13, m[12], m[13]);
        B3_G(v3, v4, v9, v14, m[14], m[15]);
        if (r < 6) {
            u32 t[16];
            for (int i = 0; i < 16; i++) t[i] = m[P[i]];
            for (int i = 0; i < 16; i++) m[i] = t[i];
        }
    }
    h[0] = v0 ^ v8; h[1] = v1 ^ v9; h[2] = v2 ^ v10; h[3] = v3 ^ v11;
    h[4] = v4 ^ v12; h[5] = v5 ^ v13; h[6] = v6 ^ v14; h[7] = v7 ^ v15;
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
        if (bl == 64 && (((size_t)(p + off)) & 3) == 0) {
            const u32* w = (const u32*)(p + off);
            for (int i = 0; i < 16; i++) m[i] = w[i];
        } else {
            for (int i = 0; i < 16; i++) m[i] = 0;
            for (u32 i = 0; i < bl; i++) m[i / 4] |= (u32)p[off + i] << (8 * (i % 4));
        }
        u32 flags = (b == 0 ? B3_CHUNK_START : 0) | (b + 1 == nblocks ? B3_CHUNK_END : 0);
        if (root && b + 1 == nblocks) flags |= B3_ROOT;
        b3_compress(h, m, (u32)c, (u32)(c >> 32), bl, flags);
    }
}

__device__ void b3_parent(const u32* l, const u32* r, bool root, u32 h[8]) {
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
// moves up unchanged. The last block to finish merges the blocks' nodes (and with one block the block
// itself makes the root).
__device__ void b3_one(const u8* __restrict__ data, unsigned long long len, u32* __restrict__ cv,
                       u32* __restrict__ ticket, u32* out, u32 tag, u32 bx, u32 nblocks) {
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
    if (threadIdx.x < 8) cv[(size_t)bx * 8 + threadIdx.x] = sh[0][threadIdx.x];
    __threadfence();
    __shared__ bool last;
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(ticket, 1u) == nblocks - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    // The merge of the blocks' nodes, by this block alone. Parents of level pairs are computed into
    // registers, then written after a barrier: a pass writes nodes [base, base + B3_THREADS) and reads
    // nodes from 2 * base on, which no earlier pass has overwritten.
    unsigned long long count = nblocks;
    while (count > 2) {
        unsigned long long pairs = count / 2;
        for (unsigned long long base = 0; base < pairs; base += B3_THREADS) {
            unsigned long long p = base + threadIdx.x;
            u32 h[8];
            // Volatile reads: the other blocks' chaining values must come from memory, not a stale cache.
            if (p < pairs) {
                u32 l[8], r[8];
                for (int i = 0; i < 8; i++) {
                    l[i] = ((volatile u32*)cv)[(2 * p) * 8 + i];
                    r[i] = ((volatile u32*)cv)[(2 * p + 1) * 8 + i];
                }
                b3_parent(l, r, false, h);
            }
            __syncthreads();
            if (p < pairs)
                for (int i = 0; i < 8; i++) ((volatile u32*)cv)[p * 8 + i] = h[i];
            __syncthreads();
        }
        if (count & 1) {
            if (threadIdx.x == 0)
                for (int i = 0; i < 8; i++)
                    ((volatile u32*)cv)[pairs * 8 + i] = ((volatile u32*)cv)[(count - 1) * 8 + i];
            __syncthreads();
        }
        count = pairs + (count & 1);
    }
    if (threadIdx.x == 0) {
        u32 l[8], r[8], h[8];
        for (int i = 0; i < 8; i++) {
            l[i] = ((volatile u32*)cv)[i];
            r[i] = ((volatile u32*)cv)[8 + i];
        }
        b3_parent(l, r, true, h);
        *ticket = 0;
        b3_publish(out, h, tag);
    }
}

// A batch of digests in one launch (the buffers hash concurrently instead of one small kernel each, in
// order, between the model's kernels). Buffer j of the batch is slot first + j of the ring; its
// descriptor, in mapped host memory at descs[4 * ((first + j) % slots)], is {address, length in bytes
// (> 0), offset of its chaining values in cv (words), tag}; its digest and tag go to out[16 * slot % slots].
// tickets: one per buffer of the batch, zero before, left zero. Grid (blocks of the largest buffer,
// count), B3_THREADS threads.
extern "C" __global__ void blake3_many(const unsigned long long* descs, u32 first, u32 count, u32 slots,
                                       u32* __restrict__ cv, u32* __restrict__ tickets, u32* out) {
    u32 j = blockIdx.y;
    if (j >= count) return;
    u32 s = (first + j) % slots;
    // The descriptor lives in host memory: four threads read it once per block (one round trip over the
    // bus), not every thread (which made each batch cost milliseconds of bus reads).
    __shared__ unsigned long long sd[4];
    if (threadIdx.x < 4) sd[threadIdx.x] = ((const volatile unsigned long long*)descs)[4 * (size_t)s + threadIdx.x];
    __syncthreads();
    const u8* data = (const u8*)sd[0];
    unsigned long long len = sd[1], cv_off = sd[2];
    u32 tag = (u32)sd[3];
    unsigned long long chunks = (len + 1023) / 1024;
    u32 nblocks = (u32)((chunks + B3_THREADS - 1) / B3_THREADS);
    if (blockIdx.x >= nblocks) return;
    b3_one(data, len, cv + cv_off, tickets + j, out + 16 * (size_t)s, tag, blockIdx.x, nblocks);
}

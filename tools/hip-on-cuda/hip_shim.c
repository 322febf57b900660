/* HIP-on-CUDA shim: a libamdhip64.so.5 that implements the hip* and hiprtc* entry points greta's HIP
 * backend uses, on the CUDA driver API and NVRTC, so the same greta binary (built against ROCm 5.2)
 * runs on NVIDIA GPUs. Symbols carry the `hip_4.2` version (hip_4.2.map), as in ROCm 5.2's library.
 *
 * Scope: exactly the calls of src/backend/hip/ffi (and a few harmless extras). Semantics kept from HIP:
 * - a per-thread current device (default 0) whose primary context is made current on every call, so a
 *   thread that never called hipSetDevice (greta's recorder reading tensors back) works as on ROCm;
 * - hipMemcpy blocks the host until the copy is done, for every direction; hipMemcpyAsync from or into
 *   pinned memory does not (greta's digest ring sends its descriptors that way), into pageable memory it
 *   returns when done (greta's recorder copies on a non-blocking stream, ordered by events);
 * - hipGetDeviceProperties fills ROCm 5.2's hipDeviceProp_t; gcnArchName is "sm_XY" of the device, so
 *   the backend's `--gpu-architecture=<gcnArchName>` reaches NVRTC unchanged;
 * - every CUDA error maps to a member of ROCm 5.2's hipError_t (hipErrorUnknown when none fits; its
 *   message then names the CUDA error).
 * hiprtc options are translated for NVRTC: -ffp-contract=off -> --fmad=false, -O* dropped,
 * --offload-arch/--gpu-architecture=gfx* -> the device's sm_XY; the code object is a CUBIN (PTX when a
 * compute_XY architecture is asked for). */
#include <cuda.h>
#include <nvrtc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hip_shim_types.h"

#define EXPORT __attribute__((visibility("default")))
#define MAX_DEVICES 64

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static CUresult init_result = CUDA_ERROR_NOT_INITIALIZED;
static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static CUcontext primary[MAX_DEVICES];
static __thread int current_device = 0;
static __thread CUresult last_cuda = CUDA_SUCCESS;

static void do_init(void) { init_result = cuInit(0); }

static shim_error_t map(CUresult r) {
    last_cuda = r;
    switch (r) {
    case CUDA_SUCCESS: return SHIM_hipSuccess;
    case CUDA_ERROR_INVALID_VALUE: return SHIM_hipErrorInvalidValue;
    case CUDA_ERROR_OUT_OF_MEMORY: return SHIM_hipErrorOutOfMemory;
    case CUDA_ERROR_NOT_INITIALIZED: return SHIM_hipErrorNotInitialized;
    case CUDA_ERROR_DEINITIALIZED: return SHIM_hipErrorDeinitialized;
    case CUDA_ERROR_NO_DEVICE: return SHIM_hipErrorNoDevice;
    case CUDA_ERROR_INVALID_DEVICE: return SHIM_hipErrorInvalidDevice;
    case CUDA_ERROR_INVALID_IMAGE: return SHIM_hipErrorInvalidImage;
    case CUDA_ERROR_INVALID_CONTEXT: return SHIM_hipErrorInvalidContext;
    case CUDA_ERROR_NO_BINARY_FOR_GPU: return SHIM_hipErrorNoBinaryForGpu;
    case CUDA_ERROR_INVALID_PTX: return SHIM_hipErrorInvalidImage;
    case CUDA_ERROR_UNSUPPORTED_PTX_VERSION: return SHIM_hipErrorInvalidImage;
    case CUDA_ERROR_INVALID_SOURCE: return SHIM_hipErrorInvalidSource;
    case CUDA_ERROR_FILE_NOT_FOUND: return SHIM_hipErrorFileNotFound;
    case CUDA_ERROR_SHARED_OBJECT_SYMBOL_NOT_FOUND: return SHIM_hipErrorSharedObjectSymbolNotFound;
    case CUDA_ERROR_SHARED_OBJECT_INIT_FAILED: return SHIM_hipErrorSharedObjectInitFailed;
    case CUDA_ERROR_OPERATING_SYSTEM: return SHIM_hipErrorOperatingSystem;
    case CUDA_ERROR_INVALID_HANDLE: return SHIM_hipErrorInvalidHandle;
    case CUDA_ERROR_NOT_FOUND: return SHIM_hipErrorNotFound;
    case CUDA_ERROR_NOT_READY: return SHIM_hipErrorNotReady;
    case CUDA_ERROR_ILLEGAL_ADDRESS: return SHIM_hipErrorIllegalAddress;
    case CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES: return SHIM_hipErrorLaunchOutOfResources;
    case CUDA_ERROR_LAUNCH_TIMEOUT: return SHIM_hipErrorLaunchTimeOut;
    case CUDA_ERROR_ASSERT: return SHIM_hipErrorAssert;
    case CUDA_ERROR_LAUNCH_FAILED: return SHIM_hipErrorLaunchFailure;
    case CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE: return SHIM_hipErrorCooperativeLaunchTooLarge;
    case CUDA_ERROR_NOT_SUPPORTED: return SHIM_hipErrorNotSupported;
    case CUDA_ERROR_SYSTEM_DRIVER_MISMATCH: return SHIM_hipErrorInsufficientDriver;
    case CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE: return SHIM_hipErrorInsufficientDriver;
    default: return SHIM_hipErrorUnknown;
    }
}

/* Initialises CUDA once and makes the calling thread's current device's primary context current. */
static shim_error_t ensure(void) {
    pthread_once(&init_once, do_init);
    if (init_result != CUDA_SUCCESS) return map(init_result);
    int d = current_device;
    if (d < 0 || d >= MAX_DEVICES) return SHIM_hipErrorInvalidDevice;
    pthread_mutex_lock(&ctx_lock);
    CUresult r = CUDA_SUCCESS;
    if (!primary[d]) {
        CUdevice dev;
        r = cuDeviceGet(&dev, d);
        if (r == CUDA_SUCCESS) r = cuDevicePrimaryCtxRetain(&primary[d], dev);
    }
    CUcontext want = primary[d];
    pthread_mutex_unlock(&ctx_lock);
    if (r != CUDA_SUCCESS) return map(r);
    CUcontext cur = NULL;
    cuCtxGetCurrent(&cur);
    if (cur != want) r = cuCtxSetCurrent(want);
    return map(r);
}

#define ENSURE()                           \
    do {                                   \
        shim_error_t e_ = ensure();        \
        if (e_ != SHIM_hipSuccess) return e_; \
    } while (0)

EXPORT shim_error_t hipInit(unsigned int flags) {
    (void)flags;
    pthread_once(&init_once, do_init);
    return map(init_result);
}

EXPORT shim_error_t hipGetDeviceCount(int* count) {
    if (!count) return SHIM_hipErrorInvalidValue;
    pthread_once(&init_once, do_init);
    if (init_result != CUDA_SUCCESS) {
        *count = 0;
        return map(init_result);
    }
    return map(cuDeviceGetCount(count));
}

EXPORT shim_error_t hipSetDevice(int device) {
    int n = 0;
    shim_error_t e = hipGetDeviceCount(&n);
    if (e != SHIM_hipSuccess) return e;
    if (device < 0 || device >= n || device >= MAX_DEVICES) return SHIM_hipErrorInvalidDevice;
    current_device = device;
    return ensure();
}

EXPORT shim_error_t hipGetDevice(int* device) {
    if (!device) return SHIM_hipErrorInvalidValue;
    *device = current_device;
    return SHIM_hipSuccess;
}

static int attr(CUdevice dev, CUdevice_attribute a) {
    int v = 0;
    cuDeviceGetAttribute(&v, a, dev);
    return v;
}

EXPORT shim_error_t hipGetDeviceProperties(shim_prop_t* p, int device) {
    if (!p) return SHIM_hipErrorInvalidValue;
    pthread_once(&init_once, do_init);
    if (init_result != CUDA_SUCCESS) return map(init_result);
    CUdevice dev;
    CUresult r = cuDeviceGet(&dev, device);
    if (r != CUDA_SUCCESS) return map(r);
    memset(p, 0, sizeof *p);
    cuDeviceGetName(p->name, sizeof p->name, dev);
    cuDeviceTotalMem(&p->totalGlobalMem, dev);
    p->sharedMemPerBlock = (size_t)attr(dev, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK);
    p->regsPerBlock = attr(dev, CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK);
    p->warpSize = attr(dev, CU_DEVICE_ATTRIBUTE_WARP_SIZE);
    p->maxThreadsPerBlock = attr(dev, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK);
    p->maxThreadsDim[0] = attr(dev, CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X);
    p->maxThreadsDim[1] = attr(dev, CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y);
    p->maxThreadsDim[2] = attr(dev, CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z);
    p->maxGridSize[0] = attr(dev, CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X);
    p->maxGridSize[1] = attr(dev, CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y);
    p->maxGridSize[2] = attr(dev, CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z);
    p->clockRate = attr(dev, CU_DEVICE_ATTRIBUTE_CLOCK_RATE);
    p->memoryClockRate = attr(dev, CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE);
    p->memoryBusWidth = attr(dev, CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH);
    p->totalConstMem = (size_t)attr(dev, CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY);
    p->major = attr(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
    p->minor = attr(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
    p->multiProcessorCount = attr(dev, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
    p->l2CacheSize = attr(dev, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE);
    p->maxThreadsPerMultiProcessor = attr(dev, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR);
    p->concurrentKernels = attr(dev, CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS);
    p->pciDomainID = attr(dev, CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID);
    p->pciBusID = attr(dev, CU_DEVICE_ATTRIBUTE_PCI_BUS_ID);
    p->pciDeviceID = attr(dev, CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID);
    p->maxSharedMemoryPerMultiProcessor =
        (size_t)attr(dev, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR);
    p->canMapHostMemory = attr(dev, CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY);
    snprintf(p->gcnArchName, sizeof p->gcnArchName, "sm_%d%d", p->major, p->minor);
    p->ECCEnabled = attr(dev, CU_DEVICE_ATTRIBUTE_ECC_ENABLED);
    p->managedMemory = attr(dev, CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY);
    return SHIM_hipSuccess;
}

EXPORT shim_error_t hipDriverGetVersion(int* v) {
    if (!v) return SHIM_hipErrorInvalidValue;
    return map(cuDriverGetVersion(v));
}

/* The "runtime" is NVRTC here: its version as CUDA writes it (12090 for 12.9). */
EXPORT shim_error_t hipRuntimeGetVersion(int* v) {
    if (!v) return SHIM_hipErrorInvalidValue;
    int major = 0, minor = 0;
    nvrtcVersion(&major, &minor);
    *v = major * 1000 + minor * 10;
    return SHIM_hipSuccess;
}

EXPORT shim_error_t hipDeviceSynchronize(void) {
    ENSURE();
    return map(cuCtxSynchronize());
}

EXPORT shim_error_t hipMalloc(void** ptr, size_t size) {
    if (!ptr) return SHIM_hipErrorInvalidValue;
    *ptr = NULL;
    if (size == 0) return SHIM_hipSuccess;
    ENSURE();
    CUdeviceptr d = 0;
    CUresult r = cuMemAlloc(&d, size);
    *ptr = (void*)(uintptr_t)d;
    return map(r);
}

EXPORT shim_error_t hipFree(void* ptr) {
    if (!ptr) return SHIM_hipSuccess;
    ENSURE();
    return map(cuMemFree((CUdeviceptr)(uintptr_t)ptr));
}

EXPORT shim_error_t hipMemcpy(void* dst, const void* src, size_t n, int kind) {
    if (n == 0) return SHIM_hipSuccess;
    if (!dst || !src) return SHIM_hipErrorInvalidValue;
    ENSURE();
    CUresult r;
    switch (kind) {
    case SHIM_HtoH: memcpy(dst, src, n); return SHIM_hipSuccess;
    case SHIM_HtoD: r = cuMemcpyHtoD((CUdeviceptr)(uintptr_t)dst, src, n); break;
    case SHIM_DtoH: r = cuMemcpyDtoH(dst, (CUdeviceptr)(uintptr_t)src, n); break;
    case SHIM_DtoD: r = cuMemcpyDtoD((CUdeviceptr)(uintptr_t)dst, (CUdeviceptr)(uintptr_t)src, n); break;
    case SHIM_Default: r = cuMemcpy((CUdeviceptr)(uintptr_t)dst, (CUdeviceptr)(uintptr_t)src, n); break;
    default: return SHIM_hipErrorInvalidMemcpyDirection;
    }
    /* hipMemcpy returns after the copy, in every direction (cuMemcpyDtoD may return earlier). */
    if (r == CUDA_SUCCESS && (kind == SHIM_DtoD || kind == SHIM_Default)) r = cuCtxSynchronize();
    return map(r);
}

/* Asynchronous copy on `stream`: greta passes the null stream for device-to-device copies and for the
 * digest ring's descriptors (pinned host to device; ordered with the kernels, no host wait), and its
 * copy stream for device-to-host copies into pageable memory, after an event (the calling thread, the
 * recorder's worker, waits; the kernels go on). As in HIP and CUDA, a copy from or to pageable host
 * memory returns only once the host buffer may be reused. */
EXPORT shim_error_t hipMemcpyAsync(void* dst, const void* src, size_t n, int kind, CUstream stream) {
    if (n == 0) return SHIM_hipSuccess;
    if (!dst || !src) return SHIM_hipErrorInvalidValue;
    ENSURE();
    switch (kind) {
    case SHIM_DtoD:
        return map(cuMemcpyDtoDAsync((CUdeviceptr)(uintptr_t)dst, (CUdeviceptr)(uintptr_t)src, n, stream));
    case SHIM_HtoD: return map(cuMemcpyHtoDAsync((CUdeviceptr)(uintptr_t)dst, src, n, stream));
    case SHIM_DtoH: return map(cuMemcpyDtoHAsync(dst, (CUdeviceptr)(uintptr_t)src, n, stream));
    case SHIM_HtoH: memcpy(dst, src, n); return SHIM_hipSuccess;
    case SHIM_Default: return map(cuMemcpyAsync((CUdeviceptr)(uintptr_t)dst, (CUdeviceptr)(uintptr_t)src, n, stream));
    default: return SHIM_hipErrorInvalidMemcpyDirection;
    }
}

/* Streams and events (greta's recorder copies on a second stream). HIP's flag values equal CUDA's:
 * hipStreamNonBlocking = CU_STREAM_NON_BLOCKING = 1; hipEventBlockingSync, hipEventDisableTiming,
 * hipEventInterprocess = CU_EVENT_BLOCKING_SYNC, _DISABLE_TIMING, _INTERPROCESS = 1, 2, 4. A null stream
 * is the legacy default stream, where greta's kernels run. */
EXPORT shim_error_t hipStreamCreateWithFlags(CUstream* stream, unsigned int flags) {
    if (!stream) return SHIM_hipErrorInvalidValue;
    ENSURE();
    return map(cuStreamCreate(stream, (flags & 1u) ? CU_STREAM_NON_BLOCKING : CU_STREAM_DEFAULT));
}

EXPORT shim_error_t hipStreamCreate(CUstream* stream) { return hipStreamCreateWithFlags(stream, 0); }

EXPORT shim_error_t hipStreamDestroy(CUstream stream) {
    if (!stream) return SHIM_hipErrorInvalidHandle;
    ENSURE();
    return map(cuStreamDestroy(stream));
}

EXPORT shim_error_t hipStreamSynchronize(CUstream stream) {
    ENSURE();
    return map(cuStreamSynchronize(stream));
}

/* flags must be 0 (HIP and CUDA alike). */
EXPORT shim_error_t hipStreamWaitEvent(CUstream stream, CUevent event, unsigned int flags) {
    if (!event) return SHIM_hipErrorInvalidHandle;
    ENSURE();
    return map(cuStreamWaitEvent(stream, event, flags));
}

EXPORT shim_error_t hipEventCreateWithFlags(CUevent* event, unsigned int flags) {
    if (!event) return SHIM_hipErrorInvalidValue;
    if (flags & ~7u) return SHIM_hipErrorInvalidValue; /* hipEventReleaseTo*: not on CUDA */
    ENSURE();
    return map(cuEventCreate(event, flags));
}

EXPORT shim_error_t hipEventCreate(CUevent* event) { return hipEventCreateWithFlags(event, 0); }

EXPORT shim_error_t hipEventRecord(CUevent event, CUstream stream) {
    if (!event) return SHIM_hipErrorInvalidHandle;
    ENSURE();
    return map(cuEventRecord(event, stream));
}

EXPORT shim_error_t hipEventSynchronize(CUevent event) {
    if (!event) return SHIM_hipErrorInvalidHandle;
    ENSURE();
    return map(cuEventSynchronize(event));
}

/* hipSuccess when the work before the event is done, hipErrorNotReady (CUDA_ERROR_NOT_READY) while not. */
EXPORT shim_error_t hipEventQuery(CUevent event) {
    if (!event) return SHIM_hipErrorInvalidHandle;
    ENSURE();
    return map(cuEventQuery(event));
}

EXPORT shim_error_t hipEventDestroy(CUevent event) {
    if (!event) return SHIM_hipErrorInvalidHandle;
    ENSURE();
    return map(cuEventDestroy(event));
}

/* Pinned host memory; with hipHostMallocMapped (2) it is also mapped into the device's address space, so
 * kernels write it directly (greta's digest ring). */
EXPORT shim_error_t hipHostMalloc(void** ptr, size_t size, unsigned int flags) {
    if (!ptr) return SHIM_hipErrorInvalidValue;
    *ptr = NULL;
    if (size == 0) return SHIM_hipSuccess;
    ENSURE();
    unsigned int f = (flags & 2u) ? CU_MEMHOSTALLOC_DEVICEMAP : 0;
    return map(cuMemHostAlloc(ptr, size, f | CU_MEMHOSTALLOC_PORTABLE));
}

EXPORT shim_error_t hipHostFree(void* ptr) {
    if (!ptr) return SHIM_hipSuccess;
    ENSURE();
    return map(cuMemFreeHost(ptr));
}

EXPORT shim_error_t hipHostGetDevicePointer(void** dev, void* host, unsigned int flags) {
    if (!dev || !host) return SHIM_hipErrorInvalidValue;
    ENSURE();
    CUdeviceptr d = 0;
    CUresult r = cuMemHostGetDevicePointer(&d, host, flags);
    *dev = (void*)(uintptr_t)d;
    return map(r);
}

EXPORT shim_error_t hipMemset(void* dst, int value, size_t n) {
    if (n == 0) return SHIM_hipSuccess;
    ENSURE();
    CUresult r = cuMemsetD8((CUdeviceptr)(uintptr_t)dst, (unsigned char)value, n);
    if (r == CUDA_SUCCESS) r = cuCtxSynchronize();
    return map(r);
}

EXPORT shim_error_t hipModuleLoadData(CUmodule* module, const void* image) {
    if (!module || !image) return SHIM_hipErrorInvalidValue;
    ENSURE();
    return map(cuModuleLoadData(module, image));
}

EXPORT shim_error_t hipModuleGetFunction(CUfunction* f, CUmodule module, const char* name) {
    if (!f || !name) return SHIM_hipErrorInvalidValue;
    ENSURE();
    return map(cuModuleGetFunction(f, module, name));
}

EXPORT shim_error_t hipModuleUnload(CUmodule module) {
    ENSURE();
    return map(cuModuleUnload(module));
}

EXPORT shim_error_t hipModuleLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                                          unsigned by, unsigned bz, unsigned shared, CUstream stream,
                                          void** params, void** extra) {
    ENSURE();
    return map(cuLaunchKernel(f, gx, gy, gz, bx, by, bz, shared, stream, params, extra));
}

EXPORT shim_error_t hipGetLastError(void) { return SHIM_hipSuccess; }
EXPORT shim_error_t hipPeekAtLastError(void) { return SHIM_hipSuccess; }

EXPORT const char* hipGetErrorName(shim_error_t e) {
    switch (e) {
    case SHIM_hipSuccess: return "hipSuccess";
    case SHIM_hipErrorInvalidValue: return "hipErrorInvalidValue";
    case SHIM_hipErrorOutOfMemory: return "hipErrorOutOfMemory";
    case SHIM_hipErrorNotInitialized: return "hipErrorNotInitialized";
    case SHIM_hipErrorDeinitialized: return "hipErrorDeinitialized";
    case SHIM_hipErrorInvalidMemcpyDirection: return "hipErrorInvalidMemcpyDirection";
    case SHIM_hipErrorInsufficientDriver: return "hipErrorInsufficientDriver";
    case SHIM_hipErrorNoDevice: return "hipErrorNoDevice";
    case SHIM_hipErrorInvalidDevice: return "hipErrorInvalidDevice";
    case SHIM_hipErrorInvalidImage: return "hipErrorInvalidImage";
    case SHIM_hipErrorInvalidContext: return "hipErrorInvalidContext";
    case SHIM_hipErrorNoBinaryForGpu: return "hipErrorNoBinaryForGpu";
    case SHIM_hipErrorInvalidHandle: return "hipErrorInvalidHandle";
    case SHIM_hipErrorNotFound: return "hipErrorNotFound";
    case SHIM_hipErrorNotReady: return "hipErrorNotReady";
    case SHIM_hipErrorIllegalAddress: return "hipErrorIllegalAddress";
    case SHIM_hipErrorLaunchOutOfResources: return "hipErrorLaunchOutOfResources";
    case SHIM_hipErrorLaunchFailure: return "hipErrorLaunchFailure";
    case SHIM_hipErrorNotSupported: return "hipErrorNotSupported";
    default: return "hipErrorUnknown";
    }
}

/* The HIP name, and the CUDA error behind it (the last one of this thread). */
EXPORT const char* hipGetErrorString(shim_error_t e) {
    static __thread char buf[256];
    const char* cu = NULL;
    if (last_cuda != CUDA_SUCCESS) cuGetErrorString(last_cuda, &cu);
    if (!cu) return hipGetErrorName(e);
    snprintf(buf, sizeof buf, "%s (CUDA: %s)", hipGetErrorName(e), cu);
    return buf;
}

/* ---- hiprtc on NVRTC. hiprtcResult and nvrtcResult agree on 0..11. ---- */

typedef int shim_rtc_t;

static shim_rtc_t rtc(nvrtcResult r) { return r > 11 ? 11 : (shim_rtc_t)r; }

EXPORT const char* hiprtcGetErrorString(shim_rtc_t r) { return nvrtcGetErrorString((nvrtcResult)r); }

EXPORT shim_rtc_t hiprtcVersion(int* major, int* minor) { return rtc(nvrtcVersion(major, minor)); }

EXPORT shim_rtc_t hiprtcCreateProgram(nvrtcProgram* prog, const char* src, const char* name, int nheaders,
                                      const char* const* headers, const char* const* include_names) {
    return rtc(nvrtcCreateProgram(prog, src, name, nheaders, headers, include_names));
}

/* The device's own "sm_XY", for AMD architecture names given to the shim. */
static void device_arch(char* out, size_t n) {
    int major = 9, minor = 0;
    if (ensure() == SHIM_hipSuccess) {
        CUdevice dev;
        if (cuCtxGetDevice(&dev) == CUDA_SUCCESS) {
            major = attr(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
            minor = attr(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        }
    }
    snprintf(out, n, "--gpu-architecture=sm_%d%d", major, minor);
}

EXPORT shim_rtc_t hiprtcCompileProgram(nvrtcProgram prog, int n, const char** options) {
    if (n < 0 || (n > 0 && !options)) return 3; /* HIPRTC_ERROR_INVALID_INPUT */
    const char** opts = calloc((size_t)n + 1, sizeof *opts);
    char arch[64];
    int m = 0;
    if (!opts) return 1; /* HIPRTC_ERROR_OUT_OF_MEMORY */
    for (int i = 0; i < n; i++) {
        const char* o = options[i];
        const char* eq = strchr(o, '=');
        if (!strncmp(o, "--gpu-architecture=", 19) || !strncmp(o, "--offload-arch=", 15) || !strncmp(o, "-arch=", 6)) {
            const char* a = eq + 1;
            if (!strncmp(a, "sm_", 3) || !strncmp(a, "compute_", 8)) {
                snprintf(arch, sizeof arch, "--gpu-architecture=%s", a);
            } else {
                device_arch(arch, sizeof arch);
            }
            opts[m++] = arch;
        } else if (!strcmp(o, "-ffp-contract=off")) {
            opts[m++] = "--fmad=false";
        } else if (!strcmp(o, "-ffp-contract=fast") || !strcmp(o, "-ffp-contract=on")) {
            opts[m++] = "--fmad=true";
        } else if (!strcmp(o, "-ffast-math")) {
            opts[m++] = "--use_fast_math";
        } else if (o[0] == '-' && o[1] == 'O') {
            /* NVRTC always optimises; -O levels are clang's. */
        } else {
            opts[m++] = o;
        }
    }
    nvrtcResult r = nvrtcCompileProgram(prog, m, opts);
    free(opts);
    return rtc(r);
}

EXPORT shim_rtc_t hiprtcGetProgramLogSize(nvrtcProgram prog, size_t* n) { return rtc(nvrtcGetProgramLogSize(prog, n)); }
EXPORT shim_rtc_t hiprtcGetProgramLog(nvrtcProgram prog, char* log) { return rtc(nvrtcGetProgramLog(prog, log)); }

/* A CUBIN when compiled for sm_XY, else the PTX (compute_XY). */
EXPORT shim_rtc_t hiprtcGetCodeSize(nvrtcProgram prog, size_t* n) {
    size_t c = 0;
    if (nvrtcGetCUBINSize(prog, &c) == NVRTC_SUCCESS && c > 0) {
        *n = c;
        return 0;
    }
    return rtc(nvrtcGetPTXSize(prog, n));
}

EXPORT shim_rtc_t hiprtcGetCode(nvrtcProgram prog, char* code) {
    size_t c = 0;
    if (nvrtcGetCUBINSize(prog, &c) == NVRTC_SUCCESS && c > 0) return rtc(nvrtcGetCUBIN(prog, code));
    return rtc(nvrtcGetPTX(prog, code));
}

EXPORT shim_rtc_t hiprtcDestroyProgram(nvrtcProgram* prog) { return rtc(nvrtcDestroyProgram(prog)); }

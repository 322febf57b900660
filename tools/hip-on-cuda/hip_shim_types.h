/* Types of the HIP API (ROCm 5.2 values and layouts) that the HIP-on-CUDA shim exports, written out so
 * the shim builds on a CUDA machine without ROCm headers. layout_check.c compares them with
 * /usr/include/hip on a machine that has libamdhip64-dev (CI, the development machine). */
#ifndef GRETA_HIP_SHIM_TYPES_H
#define GRETA_HIP_SHIM_TYPES_H
#include <stddef.h>

/* hipError_t values used by the shim; every value is a member of ROCm 5.2's enum (greta's hip-sys
 * bindings make hipError_t a Rust enum, so any other value would be undefined behaviour there). */
typedef int shim_error_t;
enum {
    SHIM_hipSuccess = 0,
    SHIM_hipErrorInvalidValue = 1,
    SHIM_hipErrorOutOfMemory = 2,
    SHIM_hipErrorNotInitialized = 3,
    SHIM_hipErrorDeinitialized = 4,
    SHIM_hipErrorInvalidConfiguration = 9,
    SHIM_hipErrorInvalidMemcpyDirection = 21,
    SHIM_hipErrorInsufficientDriver = 35,
    SHIM_hipErrorNoDevice = 100,
    SHIM_hipErrorInvalidDevice = 101,
    SHIM_hipErrorInvalidImage = 200,
    SHIM_hipErrorInvalidContext = 201,
    SHIM_hipErrorNoBinaryForGpu = 209,
    SHIM_hipErrorInvalidSource = 300,
    SHIM_hipErrorFileNotFound = 301,
    SHIM_hipErrorSharedObjectSymbolNotFound = 302,
    SHIM_hipErrorSharedObjectInitFailed = 303,
    SHIM_hipErrorOperatingSystem = 304,
    SHIM_hipErrorInvalidHandle = 400,
    SHIM_hipErrorNotFound = 500,
    SHIM_hipErrorNotReady = 600,
    SHIM_hipErrorIllegalAddress = 700,
    SHIM_hipErrorLaunchOutOfResources = 701,
    SHIM_hipErrorLaunchTimeOut = 702,
    SHIM_hipErrorAssert = 710,
    SHIM_hipErrorLaunchFailure = 719,
    SHIM_hipErrorCooperativeLaunchTooLarge = 720,
    SHIM_hipErrorNotSupported = 801,
    SHIM_hipErrorUnknown = 999
};

/* hipDeviceArch_t: 32 bits of feature flags. */
typedef struct {
    unsigned flags;
} shim_arch_t;

/* hipDeviceProp_t of ROCm 5.2 (hip/hip_runtime_api.h), field for field. */
typedef struct {
    char name[256];
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;
    int regsPerBlock;
    int warpSize;
    int maxThreadsPerBlock;
    int maxThreadsDim[3];
    int maxGridSize[3];
    int clockRate;
    int memoryClockRate;
    int memoryBusWidth;
    size_t totalConstMem;
    int major;
    int minor;
    int multiProcessorCount;
    int l2CacheSize;
    int maxThreadsPerMultiProcessor;
    int computeMode;
    int clockInstructionRate;
    shim_arch_t arch;
    int concurrentKernels;
    int pciDomainID;
    int pciBusID;
    int pciDeviceID;
    size_t maxSharedMemoryPerMultiProcessor;
    int isMultiGpuBoard;
    int canMapHostMemory;
    int gcnArch;
    char gcnArchName[256];
    int integrated;
    int cooperativeLaunch;
    int cooperativeMultiDeviceLaunch;
    int maxTexture1DLinear;
    int maxTexture1D;
    int maxTexture2D[2];
    int maxTexture3D[3];
    unsigned int* hdpMemFlushCntl;
    unsigned int* hdpRegFlushCntl;
    size_t memPitch;
    size_t textureAlignment;
    size_t texturePitchAlignment;
    int kernelExecTimeoutEnabled;
    int ECCEnabled;
    int tccDriver;
    int cooperativeMultiDeviceUnmatchedFunc;
    int cooperativeMultiDeviceUnmatchedGridDim;
    int cooperativeMultiDeviceUnmatchedBlockDim;
    int cooperativeMultiDeviceUnmatchedSharedMem;
    int isLargeBar;
    int asicRevision;
    int managedMemory;
    int directManagedMemAccessFromHost;
    int concurrentManagedAccess;
    int pageableMemoryAccess;
    int pageableMemoryAccessUsesHostPageTables;
} shim_prop_t;

/* hipMemcpyKind. */
enum { SHIM_HtoH = 0, SHIM_HtoD = 1, SHIM_DtoH = 2, SHIM_DtoD = 3, SHIM_Default = 4 };

#endif

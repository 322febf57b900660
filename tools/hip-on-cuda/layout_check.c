/* Compile-time check that hip_shim_types.h matches ROCm's headers (run by build.sh --check where
 * /usr/include/hip exists; needs no GPU and no CUDA). */
#define __HIP_PLATFORM_AMD__ 1
#include <hip/hip_runtime_api.h>
#include <hip/hiprtc.h>
#include "hip_shim_types.h"

#define SAME(f) _Static_assert(offsetof(shim_prop_t, f) == offsetof(hipDeviceProp_t, f), #f " offset")
SAME(name);
SAME(totalGlobalMem);
SAME(warpSize);
SAME(major);
SAME(minor);
SAME(multiProcessorCount);
SAME(arch);
SAME(gcnArch);
SAME(gcnArchName);
SAME(hdpMemFlushCntl);
SAME(pageableMemoryAccessUsesHostPageTables);
_Static_assert(sizeof(shim_prop_t) == sizeof(hipDeviceProp_t), "hipDeviceProp_t size");
_Static_assert(sizeof(shim_arch_t) == sizeof(hipDeviceArch_t), "hipDeviceArch_t size");
_Static_assert(SHIM_hipErrorLaunchFailure == hipErrorLaunchFailure, "error codes");
_Static_assert(SHIM_hipErrorUnknown == hipErrorUnknown, "error codes");
_Static_assert(SHIM_hipErrorIllegalAddress == hipErrorIllegalAddress, "error codes");
_Static_assert(SHIM_hipErrorNoBinaryForGpu == hipErrorNoBinaryForGpu, "error codes");
_Static_assert(SHIM_hipErrorInsufficientDriver == hipErrorInsufficientDriver, "error codes");
_Static_assert(SHIM_hipErrorNotReady == hipErrorNotReady, "error codes");
_Static_assert(hipStreamNonBlocking == 1 && hipEventDisableTiming == 2 && hipEventBlockingSync == 1 &&
                   hipEventInterprocess == 4 && hipHostMallocPortable == 1 && hipHostMallocMapped == 2,
               "stream, event and host-malloc flags as the shim passes them to CUDA");
_Static_assert(SHIM_DtoD == hipMemcpyDeviceToDevice && SHIM_HtoD == hipMemcpyHostToDevice, "memcpy kinds");
_Static_assert(HIPRTC_ERROR_INTERNAL_ERROR == 11, "hiprtc codes");
int main(void) { return 0; }

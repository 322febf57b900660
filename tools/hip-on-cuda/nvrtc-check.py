#!/usr/bin/env python3
"""Compile-checks kernels/*.cu under NVRTC without a GPU (NVRTC needs no device).

Each source is compiled exactly as greta's HIP backend hands it to hiprtc (prelude, then a #line
directive, then the file; see src/backend/hip/source.rs), with the options the HIP-on-CUDA shim passes
to NVRTC (--gpu-architecture=sm_XX --fmad=false). Exit status 0 when every file compiles for every arch.

    pip install nvidia-cuda-nvrtc-cu12
    tools/hip-on-cuda/nvrtc-check.py [--arch sm_90 --arch sm_80] [--lib /path/libnvrtc.so.12]
"""
import argparse
import ctypes
import glob
import os
import sys


def find_nvrtc(explicit):
    if explicit:
        return explicit
    cands = glob.glob("/usr/local/cuda/lib64/libnvrtc.so*")
    try:
        import nvidia.cuda_nvrtc  # type: ignore

        for p in nvidia.cuda_nvrtc.__path__:
            cands += glob.glob(os.path.join(p, "lib", "libnvrtc.so*"))
    except ImportError:
        pass
    cands = [c for c in cands if "builtins" not in c and ".alt." not in c]
    if not cands:
        sys.exit("libnvrtc not found: pip install nvidia-cuda-nvrtc-cu12 or pass --lib")
    return sorted(cands)[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", action="append", default=[])
    ap.add_argument("--lib")
    ap.add_argument("--kernels", default=os.path.join(os.path.dirname(__file__), "..", "..", "kernels"))
    a = ap.parse_args()
    archs = a.arch or ["sm_80", "sm_90"]
    lib = ctypes.CDLL(find_nvrtc(a.lib))
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    ver = (ctypes.c_int(), ctypes.c_int())
    lib.nvrtcVersion(ctypes.byref(ver[0]), ctypes.byref(ver[1]))
    print(f"NVRTC {ver[0].value}.{ver[1].value}")
    prelude = open(os.path.join(a.kernels, "prelude.h")).read()
    failed = 0
    for path in sorted(glob.glob(os.path.join(a.kernels, "*.cu"))):
        name = os.path.basename(path)
        src = prelude + f'\n#line 1 "{name}"\n' + open(path).read()
        for arch in archs:
            prog = ctypes.c_void_p()
            rc = lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), name.encode(), 0, None, None)
            assert rc == 0, rc
            opts = [f"--gpu-architecture={arch}".encode(), b"--fmad=false"]
            arr = (ctypes.c_char_p * len(opts))(*opts)
            rc = lib.nvrtcCompileProgram(prog, len(opts), arr)
            size = ctypes.c_size_t()
            lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            lib.nvrtcGetProgramLog(prog, log)
            code = ctypes.c_size_t()
            if rc == 0:
                lib.nvrtcGetCUBINSize(prog, ctypes.byref(code))
            status = "ok" if rc == 0 else "FAILED: " + lib.nvrtcGetErrorString(rc).decode()
            print(f"{name:16} {arch}: {status} cubin {code.value} bytes")
            text = log.value.decode(errors="replace").strip()
            if text:
                print(text)
            if rc != 0 or "warning" in text:
                failed += 1
            lib.nvrtcDestroyProgram(ctypes.byref(prog))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

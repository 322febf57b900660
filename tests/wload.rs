//! The GPU's per-element weight loader, `greta_wload<F>` in kernels/prelude.h, compiled for the host with
//! `c++ -ffp-contract=off` (the kernels' compile options also switch contraction off) behind a few lines
//! that stand in for the CUDA/HIP built-ins, and run on every dequantisation fixture: it must give the
//! bits gguf-py gives, as `model::quant` does (tests/gguf.rs). This checks the port's indexing and its
//! order of operations on machines without a GPU; the GPU self-test (`gpu::`) checks the same loader
//! against the host on the device. It also checks that `GRETA_W_DISPATCH` reaches every format.
//!
//! Skipped, with a message, when no C++ compiler runs (`$CXX`, else `c++`).

use crate::util::tmp;
use greta::launch::DType;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// Definitions of the device built-ins the prelude uses, for a host compiler.
const SHIM: &str = r#"
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <vector>
#define __device__
#define __forceinline__ inline
#define __restrict__
#define __constant__
static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
static inline float __shfl_xor(float v, int) { return v; }
static inline int __shfl_xor(int v, int) { return v; }
static struct { int x; } threadIdx;
static inline void __syncthreads() {}
"#;

/// Reads `<base>.bin` and `<base>.f32`, compares greta_wload<F> on every element (the whole file as one
/// row), prints the first mismatches, returns their count.
const CHECK: &str = r#"
static std::vector<unsigned char> slurp(const char* path) {
    std::vector<unsigned char> v;
    FILE* f = std::fopen(path, "rb");
    if (!f) { std::printf("cannot open %s\n", path); return v; }
    int c;
    while ((c = std::fgetc(f)) != EOF) v.push_back((unsigned char)c);
    std::fclose(f);
    return v;
}
template <int F> int check(const char* name, const char* base) {
    std::string b(base);
    std::vector<unsigned char> raw = slurp((b + ".bin").c_str()), want = slurp((b + ".f32").c_str());
    int bad = want.empty() ? 1 : 0;
    for (size_t k = 0; k < want.size() / 4; k++) {
        float v = greta_wload<F>(raw.data(), (u32)k);
        unsigned got, w;
        std::memcpy(&got, &v, 4);
        std::memcpy(&w, &want[4 * k], 4);
        if (got != w && bad++ < 3) std::printf("%s: element %zu is %08x, gguf-py %08x\n", name, k, got, w);
    }
    int dispatched = -1;
#define GRETA_TEST_BODY(G) dispatched = G
    GRETA_W_DISPATCH(F, GRETA_TEST_BODY)
    if (dispatched != F) { std::printf("%s: GRETA_W_DISPATCH does not reach it\n", name); bad++; }
    return bad;
}
"#;

#[test]
fn prelude_wload_matches_the_fixtures_on_the_host() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tmp();
    let mut src = String::from(SHIM);
    src += "#include <string>\n";
    writeln!(
        src,
        "#include \"{}\"",
        root.join("kernels/prelude.h").display()
    )
    .unwrap();
    src += CHECK;
    src += "int main() {\n    int bad = 0;\n";
    for dtype in DType::WEIGHT_TYPES {
        let define = format!("GRETA_W_{}", dtype.name().to_uppercase());
        let base = root.join("tests/fixtures/dequant").join(dtype.name());
        writeln!(
            src,
            "    bad += check<{define}>(\"{dtype}\", \"{}\");",
            base.display()
        )
        .unwrap();
    }
    src += "    std::printf(\"%d mismatches\\n\", bad);\n    return bad != 0;\n}\n";
    let cpp = dir.path().join("wload.cpp");
    let exe = dir.path().join("wload");
    std::fs::write(&cpp, &src).unwrap();
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let out = match Command::new(&cxx)
        .args(["-std=c++17", "-O2", "-ffp-contract=off", "-o"])
        .arg(&exe)
        .arg(&cpp)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("skipping: no C++ compiler ({cxx}: {e})");
            return;
        }
    };
    assert!(
        out.status.success(),
        "compiling prelude.h for the host failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().unwrap();
    assert!(
        run.status.success(),
        "greta_wload differs from the fixtures:\n{}",
        String::from_utf8_lossy(&run.stdout)
    );
}

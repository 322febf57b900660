//! GGML tensor type ids (`ggml_type` in ggml.h) for the dtypes greta dequantises.
//!
//! The ids are part of the GGUF format: a tensor info stores its `ggml_type` as a `u32`. Types greta
//! cannot dequantise (Q8_1 and Q8_K, which are llama.cpp's activation formats, the IQ1/IQ2/IQ3 grids,
//! TQ*, MXFP4, ...) are reported as unsupported by the reader.

use crate::launch::DType;

/// GGML_TYPE_F32.
pub const GGML_F32: u32 = 0;
/// GGML_TYPE_F16.
pub const GGML_F16: u32 = 1;
/// GGML_TYPE_Q4_0.
pub const GGML_Q4_0: u32 = 2;
/// GGML_TYPE_Q4_1.
pub const GGML_Q4_1: u32 = 3;
/// GGML_TYPE_Q8_0.
pub const GGML_Q8_0: u32 = 8;
/// GGML_TYPE_Q4_K.
pub const GGML_Q4_K: u32 = 12;
/// GGML_TYPE_Q6_K.
pub const GGML_Q6_K: u32 = 14;
/// GGML_TYPE_Q5_0.
pub const GGML_Q5_0: u32 = 6;
/// GGML_TYPE_Q5_1.
pub const GGML_Q5_1: u32 = 7;
/// GGML_TYPE_Q2_K.
pub const GGML_Q2_K: u32 = 10;
/// GGML_TYPE_Q3_K.
pub const GGML_Q3_K: u32 = 11;
/// GGML_TYPE_Q5_K.
pub const GGML_Q5_K: u32 = 13;
/// GGML_TYPE_IQ4_NL.
pub const GGML_IQ4_NL: u32 = 20;
/// GGML_TYPE_IQ4_XS.
pub const GGML_IQ4_XS: u32 = 23;
/// GGML_TYPE_BF16.
pub const GGML_BF16: u32 = 30;

/// The dtype for a GGML type id, or None when greta does not support it.
pub fn dtype_from_ggml(id: u32) -> Option<DType> {
    Some(match id {
        GGML_F32 => DType::F32,
        GGML_F16 => DType::F16,
        GGML_Q4_0 => DType::Q4_0,
        GGML_Q4_1 => DType::Q4_1,
        GGML_Q8_0 => DType::Q8_0,
        GGML_Q4_K => DType::Q4K,
        GGML_Q6_K => DType::Q6K,
        GGML_Q5_0 => DType::Q5_0,
        GGML_Q5_1 => DType::Q5_1,
        GGML_Q2_K => DType::Q2K,
        GGML_Q3_K => DType::Q3K,
        GGML_Q5_K => DType::Q5K,
        GGML_IQ4_NL => DType::IQ4NL,
        GGML_IQ4_XS => DType::IQ4XS,
        GGML_BF16 => DType::BF16,
        _ => return None,
    })
}

/// The GGML type id of a weight dtype, or None for dtypes GGUF weights do not use here (f64, i32).
pub fn ggml_from_dtype(dtype: DType) -> Option<u32> {
    Some(match dtype {
        DType::F32 => GGML_F32,
        DType::F16 => GGML_F16,
        DType::Q4_0 => GGML_Q4_0,
        DType::Q4_1 => GGML_Q4_1,
        DType::Q8_0 => GGML_Q8_0,
        DType::Q4K => GGML_Q4_K,
        DType::Q6K => GGML_Q6_K,
        DType::Q5_0 => GGML_Q5_0,
        DType::Q5_1 => GGML_Q5_1,
        DType::Q2K => GGML_Q2_K,
        DType::Q3K => GGML_Q3_K,
        DType::Q5K => GGML_Q5_K,
        DType::IQ4NL => GGML_IQ4_NL,
        DType::IQ4XS => GGML_IQ4_XS,
        DType::BF16 => GGML_BF16,
        DType::F64 | DType::I32 => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for id in 0..64 {
            if let Some(d) = dtype_from_ggml(id) {
                assert_eq!(ggml_from_dtype(d), Some(id));
            }
        }
        assert_eq!(dtype_from_ggml(6), Some(DType::Q5_0));
        assert_eq!(dtype_from_ggml(9), None); // Q8_1
        assert_eq!(ggml_from_dtype(DType::I32), None);
    }
}

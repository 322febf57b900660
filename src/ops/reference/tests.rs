use crate::launch::{DType, Tensor};
use crate::ops::{Op, OpArgs, reference};

fn vals(t: &Tensor) -> Vec<f64> {
    t.as_f64().expect("f64 output").to_vec()
}

fn seq(n: usize, k: f64) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f64 * k).sin() * 0.7) as f32)
        .collect()
}

fn attn_args(op: Op, n: usize, ctx: usize, h: usize, hk: usize, hd: usize) -> OpArgs {
    let mut a = OpArgs::new(op);
    a.input("q", Tensor::f32(vec![n, h * hd], seq(n * h * hd, 0.37)));
    a.input(
        "k_cache",
        Tensor::f32(vec![ctx, hk * hd], seq(ctx * hk * hd, 0.71)),
    );
    if op == Op::Attention {
        a.input(
            "v_cache",
            Tensor::f32(vec![ctx, hk * hd], seq(ctx * hk * hd, 1.13)),
        );
    }
    for (k, v) in [
        ("pos", (ctx - n) as f64),
        ("n_heads", h as f64),
        ("n_kv_heads", hk as f64),
        ("head_dim", hd as f64),
        ("scale", 1.0 / (hd as f64).sqrt()),
    ] {
        a.param(k, v);
    }
    a
}

#[test]
fn attention_is_scores_then_softmax_then_pv() {
    let (n, ctx, h, hk, hd) = (3, 7, 4, 2, 8);
    for window in [0.0, 3.0] {
        let mut s = attn_args(Op::Scores, n, ctx, h, hk, hd);
        s.param("window", window);
        let scores = reference(&s).unwrap().remove(0);
        let mut sm = OpArgs::new(Op::Softmax);
        sm.input("scores", scores);
        let probs = reference(&sm).unwrap().remove(0);
        let mut pv = OpArgs::new(Op::Pv);
        pv.input("probs", probs);
        pv.input(
            "v_cache",
            Tensor::f32(vec![ctx, hk * hd], seq(ctx * hk * hd, 1.13)),
        );
        for k in ["pos", "n_heads", "n_kv_heads", "head_dim"] {
            pv.param(k, s.p(k).unwrap());
        }
        let three = vals(&reference(&pv).unwrap()[0]);
        let mut f = attn_args(Op::Attention, n, ctx, h, hk, hd);
        f.param("window", window);
        let fused = vals(&reference(&f).unwrap()[0]);
        for (a, b) in three.iter().zip(&fused) {
            assert!((a - b).abs() < 1e-15, "{a} vs {b}");
        }
    }
}

#[test]
fn a_window_of_one_returns_the_rows_own_value() {
    let (n, ctx, h, hd) = (2, 5, 2, 4);
    let mut f = attn_args(Op::Attention, n, ctx, h, h, hd);
    f.param("window", 1.0);
    let y = vals(&reference(&f).unwrap()[0]);
    let v: Vec<f64> = seq(ctx * h * hd, 1.13).iter().map(|&x| x as f64).collect();
    for i in 0..n {
        let row = ctx - n + i;
        assert_eq!(&y[i * h * hd..][..h * hd], &v[row * h * hd..][..h * hd]);
    }
}

#[test]
fn a_sink_takes_probability_mass() {
    let (n, ctx, h, hd) = (1, 4, 1, 4);
    let base = vals(&reference(&attn_args(Op::Attention, n, ctx, h, h, hd)).unwrap()[0]);
    let mut a = attn_args(Op::Attention, n, ctx, h, h, hd);
    a.input("sinks", Tensor::f32(vec![1], vec![50.0]));
    let sunk = vals(&reference(&a).unwrap()[0]);
    assert!(sunk.iter().all(|v| v.abs() < 1e-15), "{sunk:?}");
    assert!(base.iter().any(|v| v.abs() > 1e-3));
}

#[test]
fn rope_modes_rotate_their_pairs() {
    let x = vec![1.0f32, 0.0, 0.0, 0.0];
    let run = |mode: f64| {
        let mut a = OpArgs::new(Op::Rope);
        a.input("x", Tensor::f32(vec![1, 4], x.clone()));
        for (k, v) in [
            ("pos", 1.0),
            ("n_heads", 1.0),
            ("head_dim", 4.0),
            ("rope_theta", 1e4),
            ("mode", mode),
        ] {
            a.param(k, v);
        }
        vals(&reference(&a).unwrap()[0])
    };
    // NORM: (x0, x1) rotate by 1 radian; NEOX: (x0, x2).
    let (c, s) = (1f64.cos(), 1f64.sin());
    assert_eq!(run(0.0), vec![c, s, 0.0, 0.0]);
    assert_eq!(run(2.0), vec![c, 0.0, s, 0.0]);
}

#[test]
fn matmul_dequantises_weights_and_adds_the_bias() {
    // One Q8_0 block: d = 0.5, q = 0..32.
    let mut blk = half::f16::from_f32(0.5).to_bits().to_le_bytes().to_vec();
    blk.extend(0..32u8);
    let mut a = OpArgs::new(Op::MulMat);
    a.input("x", Tensor::f32(vec![1, 32], vec![1.0; 32]));
    a.input(
        "w",
        Tensor::from_le_bytes(DType::Q8_0, vec![1, 32], blk, crate::launch::Origin::Value),
    );
    a.input("b", Tensor::f32(vec![1], vec![0.25]));
    assert_eq!(vals(&reference(&a).unwrap()[0]), vec![0.5 * 496.0 + 0.25]);
}

#[test]
fn moe_route_picks_the_top_experts_and_renormalises() {
    let mut a = OpArgs::new(Op::MoeRoute);
    a.input("logits", Tensor::f32(vec![1, 4], vec![0.0, 2.0, 1.0, 2.0]));
    a.param("top_k", 2.0).param("norm", 1.0);
    let out = reference(&a).unwrap();
    assert_eq!(out[0].as_i32().unwrap(), &[1, 3]);
    assert_eq!(vals(&out[1]), vec![0.5, 0.5]);
}

#[test]
fn cpy_rounds_to_the_target_type() {
    let mut a = OpArgs::new(Op::Cpy);
    a.input("x", Tensor::f32(vec![1, 2], vec![1.0 + 1.0 / 4096.0, -3.0]));
    a.output_dtypes = vec![DType::F16];
    let out = reference(&a).unwrap();
    let b = out[0].to_host_bytes().unwrap();
    assert_eq!(&b[..], &[0x00, 0x3c, 0x00, 0xc2]);
}

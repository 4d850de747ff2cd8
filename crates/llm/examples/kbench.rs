//! Micro-benchmark of the quantized mat-vec kernels (development aid).
use candle_core::quantized::{GgmlDType, QTensor};
use reelsmith_llm::llm::cpu::quant::{matmul, Q8Acts, QMatrix};
use reelsmith_llm::llm::cpu::ThreadPool;
use std::time::Instant;

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let pool = ThreadPool::new(threads);
    for (dt, rows, cols, reps) in [
        (GgmlDType::Q4_1, 1536, 576, 2000),
        (GgmlDType::Q8_0, 1536, 576, 2000),
        (GgmlDType::Q8_0, 49152, 576, 40),
        (GgmlDType::Q4_1, 49152, 576, 40),
    ] {
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let t = candle_core::Tensor::from_vec(w, (rows, cols), &candle_core::Device::Cpu).unwrap();
        let m = QMatrix::from_qtensor(&QTensor::quantize(&t, dt).unwrap()).unwrap();
        let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut q8 = Q8Acts::default();
        q8.quantize(&x, 1, cols);
        let mut out = vec![0f32; rows];
        matmul(&pool, &m, &mut out, &x, &q8, 1);
        let t0 = Instant::now();
        for _ in 0..reps {
            matmul(&pool, &m, &mut out, &x, &q8, 1);
        }
        let dt_s = t0.elapsed().as_secs_f64() / reps as f64;
        let blocks = (rows * cols / 32) as f64;
        println!(
            "{dt:?} {rows}x{cols}: {:.3} ms/matvec, {:.2} ns/block, {:.2} GB/s",
            dt_s * 1e3,
            dt_s * 1e9 / blocks,
            (rows * cols / 32 * if dt == GgmlDType::Q4_1 { 20 } else { 34 }) as f64 / dt_s / 1e9
        );
    }
}

//! Packs a DeepSeek-V3-shaped chunk (h = 16 heads, D_nope 128, D_rope 64, D_v 128, bf16) into
//! e4m3fn on the reference backend and prints the library, the plan and a few output bytes.
//!
//!     cargo run --example pack [-- TOKENS]

use std::time::Instant;

use mlakv::{Backend, Bf16, Fp8Format, PackArgs, Tensor, TensorMut};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let s: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 1024,
    };
    let (h, dn, dr, dv) = (16, 128, 64, 128);
    let row = dn + dv; // k_nope | v, the two halves of one [s, h, 256] tensor

    println!(
        "mlakv {} (bindings for {})",
        mlakv::version_string(),
        mlakv::header_version()
    );
    for b in mlakv::backends()? {
        println!(
            "  backend {:<9} compiled={} usable={} devices={} {}",
            b.name, b.compiled, b.usable, b.device_count, b.detail
        );
    }

    // Some deterministic data: k_nope/v ramp through +-4, k_pe is -1000 (saturates).
    let kv: Vec<Bf16> = (0..s * h * row)
        .map(|i| Bf16::from_f32(((i % 97) as f32 - 48.0) / 12.0))
        .collect();
    let k_pe = vec![Bf16::from_f32(-1000.0); s * dr];
    let mut k_out = vec![0u8; s * h * (dn + dr)];
    let mut v_out = vec![0u8; s * h * dv];

    let mut args = PackArgs::builder()
        .k_nope(Tensor::new(&kv, &[s, h, dn], &[h * row, row, 1])?)
        .v(Tensor::new(&kv[dn..], &[s, h, dv], &[h * row, row, 1])?)
        .k_pe(Tensor::contiguous(&k_pe, &[s, dr])?)
        .k_out(TensorMut::contiguous(
            &mut k_out,
            Fp8Format::E4m3fn,
            &[s, h, dn + dr],
        )?)
        .v_out(TensorMut::contiguous(
            &mut v_out,
            Fp8Format::E4m3fn,
            &[s, h, dv],
        )?)
        .k_scale_inv(1.0 / 0.0375) // multipliers: 1 / scale
        .v_scale_inv(1.0 / 0.021)
        .backend(Backend::Reference)
        .build()?;
    println!("s={} h={} dims={},{},{} bf16 -> e4m3fn", s, h, dn, dr, dv);
    println!("plan: {}", args.plan()?);

    let start = Instant::now();
    args.run()?;
    let elapsed = start.elapsed();

    let bytes = s * h * (dn + dv) * 2 + s * dr * 2 + k_out.len() + v_out.len();
    println!(
        "pack: {:.3} ms, {:.2} GB/s (bytes read + written)",
        elapsed.as_secs_f64() * 1e3,
        bytes as f64 / elapsed.as_secs_f64() / 1e9
    );
    let show = |name: &str, out: &[u8], at: usize| {
        let bytes: Vec<String> = out[at..at + 4]
            .iter()
            .map(|b| format!("{:02X}", b))
            .collect();
        let values: Vec<String> = out[at..at + 4]
            .iter()
            .map(|&b| format!("{}", Fp8Format::E4m3fn.to_f32(b)))
            .collect();
        println!(
            "{}[{}..{}] = {} ({})",
            name,
            at,
            at + 4,
            bytes.join(" "),
            values.join(", ")
        );
    };
    show("k_out", &k_out, 0);
    show("k_out", &k_out, dn); // the first k_pe elements: -1000 * 26.67 saturates to -448
    show("v_out", &v_out, 0);
    Ok(())
}

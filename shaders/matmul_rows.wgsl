// A matrix product for CPU-hosted adapters such as lavapipe, and for products of few rows
// (matrix-vector) on GPUs: a workgroup of 256 threads computes 8 rows by 1024 columns. The 8
// rows are the same for every thread of the workgroup, so their reads of A are uniform (one
// scalar load for all threads on a SIMD driver); each thread takes 4 columns 256 apart, so
// that neighbouring threads read neighbouring elements of B. No barriers, no workgroup memory.
// The section between the markers is replaced by the kernel generator, as in
// `matmul_tiled.wgsl`.

// lamina:generated-begin
struct Info {
    tiles: u32, tiles_m: u32, tiles_n: u32, splits: u32, k_chunk: u32,
    m: u32, n: u32, k: u32, a_sm: u32, a_sk: u32, b_sk: u32, b_sn: u32,
};
@group(0) @binding(0) var<uniform> info: Info;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
fn a_base(batch: u32) -> u32 { return batch * info.m * info.k; }
fn b_base(batch: u32) -> u32 { return batch * info.k * info.n; }
fn load_a(i: u32) -> f32 { return a[i]; }
fn load_b(i: u32) -> f32 { return b[i]; }
fn epilogue(batch: u32, split: u32, row: u32, col: u32, acc: f32) {
    c[((split * 1u + batch) * info.m + row) * info.n + col] = acc;
}
// lamina:generated-end

fn finish(batch: u32, split: u32, row: u32, col: u32, acc: f32) {
    if (row < info.m && col < info.n) {
        epilogue(batch, split, row, col, acc);
    }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = wid.x + wid.y * nwg.x;
    if (t >= info.tiles) {
        return;
    }
    let tile_n = t % info.tiles_n;
    let tile_m = (t / info.tiles_n) % info.tiles_m;
    let rest = t / (info.tiles_n * info.tiles_m);
    let split = rest % info.splits;
    let batch = rest / info.splits;
    let ab = a_base(batch);
    let bb = b_base(batch);
    let k_begin = split * info.k_chunk;
    let k_end = min(k_begin + info.k_chunk, info.k);
    let r = tile_m * 8u;
    let q = tile_n * 1024u + lid.x;
    let last_row = info.m - 1u;
    let last_col = info.n - 1u;
    let a0r = ab + min(r, last_row) * info.a_sm;
    let a1r = ab + min(r + 1u, last_row) * info.a_sm;
    let a2r = ab + min(r + 2u, last_row) * info.a_sm;
    let a3r = ab + min(r + 3u, last_row) * info.a_sm;
    let a4r = ab + min(r + 4u, last_row) * info.a_sm;
    let a5r = ab + min(r + 5u, last_row) * info.a_sm;
    let a6r = ab + min(r + 6u, last_row) * info.a_sm;
    let a7r = ab + min(r + 7u, last_row) * info.a_sm;
    let b0c = bb + min(q, last_col) * info.b_sn;
    let b1c = bb + min(q + 256u, last_col) * info.b_sn;
    let b2c = bb + min(q + 512u, last_col) * info.b_sn;
    let b3c = bb + min(q + 768u, last_col) * info.b_sn;
    var c00 = 0.0f; var c01 = 0.0f; var c02 = 0.0f; var c03 = 0.0f;
    var c10 = 0.0f; var c11 = 0.0f; var c12 = 0.0f; var c13 = 0.0f;
    var c20 = 0.0f; var c21 = 0.0f; var c22 = 0.0f; var c23 = 0.0f;
    var c30 = 0.0f; var c31 = 0.0f; var c32 = 0.0f; var c33 = 0.0f;
    var c40 = 0.0f; var c41 = 0.0f; var c42 = 0.0f; var c43 = 0.0f;
    var c50 = 0.0f; var c51 = 0.0f; var c52 = 0.0f; var c53 = 0.0f;
    var c60 = 0.0f; var c61 = 0.0f; var c62 = 0.0f; var c63 = 0.0f;
    var c70 = 0.0f; var c71 = 0.0f; var c72 = 0.0f; var c73 = 0.0f;
    for (var p = k_begin; p < k_end; p = p + 1u) {
        let ak = p * info.a_sk;
        let bk = p * info.b_sk;
        let y0 = load_b(b0c + bk);
        let y1 = load_b(b1c + bk);
        let y2 = load_b(b2c + bk);
        let y3 = load_b(b3c + bk);
        let x0 = load_a(a0r + ak);
        c00 = c00 + x0 * y0; c01 = c01 + x0 * y1; c02 = c02 + x0 * y2; c03 = c03 + x0 * y3;
        let x1 = load_a(a1r + ak);
        c10 = c10 + x1 * y0; c11 = c11 + x1 * y1; c12 = c12 + x1 * y2; c13 = c13 + x1 * y3;
        let x2 = load_a(a2r + ak);
        c20 = c20 + x2 * y0; c21 = c21 + x2 * y1; c22 = c22 + x2 * y2; c23 = c23 + x2 * y3;
        let x3 = load_a(a3r + ak);
        c30 = c30 + x3 * y0; c31 = c31 + x3 * y1; c32 = c32 + x3 * y2; c33 = c33 + x3 * y3;
        let x4 = load_a(a4r + ak);
        c40 = c40 + x4 * y0; c41 = c41 + x4 * y1; c42 = c42 + x4 * y2; c43 = c43 + x4 * y3;
        let x5 = load_a(a5r + ak);
        c50 = c50 + x5 * y0; c51 = c51 + x5 * y1; c52 = c52 + x5 * y2; c53 = c53 + x5 * y3;
        let x6 = load_a(a6r + ak);
        c60 = c60 + x6 * y0; c61 = c61 + x6 * y1; c62 = c62 + x6 * y2; c63 = c63 + x6 * y3;
        let x7 = load_a(a7r + ak);
        c70 = c70 + x7 * y0; c71 = c71 + x7 * y1; c72 = c72 + x7 * y2; c73 = c73 + x7 * y3;
    }
    finish(batch, split, r, q, c00); finish(batch, split, r, q + 256u, c01);
    finish(batch, split, r, q + 512u, c02); finish(batch, split, r, q + 768u, c03);
    finish(batch, split, r + 1u, q, c10); finish(batch, split, r + 1u, q + 256u, c11);
    finish(batch, split, r + 1u, q + 512u, c12); finish(batch, split, r + 1u, q + 768u, c13);
    finish(batch, split, r + 2u, q, c20); finish(batch, split, r + 2u, q + 256u, c21);
    finish(batch, split, r + 2u, q + 512u, c22); finish(batch, split, r + 2u, q + 768u, c23);
    finish(batch, split, r + 3u, q, c30); finish(batch, split, r + 3u, q + 256u, c31);
    finish(batch, split, r + 3u, q + 512u, c32); finish(batch, split, r + 3u, q + 768u, c33);
    finish(batch, split, r + 4u, q, c40); finish(batch, split, r + 4u, q + 256u, c41);
    finish(batch, split, r + 4u, q + 512u, c42); finish(batch, split, r + 4u, q + 768u, c43);
    finish(batch, split, r + 5u, q, c50); finish(batch, split, r + 5u, q + 256u, c51);
    finish(batch, split, r + 5u, q + 512u, c52); finish(batch, split, r + 5u, q + 768u, c53);
    finish(batch, split, r + 6u, q, c60); finish(batch, split, r + 6u, q + 256u, c61);
    finish(batch, split, r + 6u, q + 512u, c62); finish(batch, split, r + 6u, q + 768u, c63);
    finish(batch, split, r + 7u, q, c70); finish(batch, split, r + 7u, q + 256u, c71);
    finish(batch, split, r + 7u, q + 512u, c72); finish(batch, split, r + 7u, q + 768u, c73);
}

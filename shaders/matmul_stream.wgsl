// A matrix product streaming from global memory, for CPU-hosted adapters such as lavapipe
// (where workgroup barriers are expensive) and for matrix-vector products (few rows): each
// thread computes a 4x4 block in registers, reading its 4 rows of A and 4 columns of B at
// each step of the inner dimension. A workgroup of 256 threads covers a tile of
// `tile_rows` x `tile_cols` (64x64 as 16x16 threads, or 4x1024 as one row of 256 threads
// when the product has at most 4 rows). The section between the markers is replaced by the
// kernel generator, as in `matmul_tiled.wgsl`.

// lamina:generated-begin
struct Info {
    tiles: u32, tiles_m: u32, tiles_n: u32, splits: u32, k_chunk: u32,
    m: u32, n: u32, k: u32, a_sm: u32, a_sk: u32, b_sk: u32, b_sn: u32,
    threads_x: u32, tile_rows: u32, tile_cols: u32,
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
    let tx = lid.x % info.threads_x;
    let ty = lid.x / info.threads_x;
    let r = tile_m * info.tile_rows + ty * 4u;
    let q = tile_n * info.tile_cols + tx * 4u;
    let a0r = ab + min(r, info.m - 1u) * info.a_sm;
    let a1r = ab + min(r + 1u, info.m - 1u) * info.a_sm;
    let a2r = ab + min(r + 2u, info.m - 1u) * info.a_sm;
    let a3r = ab + min(r + 3u, info.m - 1u) * info.a_sm;
    let b0c = bb + min(q, info.n - 1u) * info.b_sn;
    let b1c = bb + min(q + 1u, info.n - 1u) * info.b_sn;
    let b2c = bb + min(q + 2u, info.n - 1u) * info.b_sn;
    let b3c = bb + min(q + 3u, info.n - 1u) * info.b_sn;
    var c00 = 0.0f; var c01 = 0.0f; var c02 = 0.0f; var c03 = 0.0f;
    var c10 = 0.0f; var c11 = 0.0f; var c12 = 0.0f; var c13 = 0.0f;
    var c20 = 0.0f; var c21 = 0.0f; var c22 = 0.0f; var c23 = 0.0f;
    var c30 = 0.0f; var c31 = 0.0f; var c32 = 0.0f; var c33 = 0.0f;
    for (var p = k_begin; p < k_end; p = p + 1u) {
        let ak = p * info.a_sk;
        let bk = p * info.b_sk;
        let x0 = load_a(a0r + ak);
        let x1 = load_a(a1r + ak);
        let x2 = load_a(a2r + ak);
        let x3 = load_a(a3r + ak);
        let y0 = load_b(b0c + bk);
        let y1 = load_b(b1c + bk);
        let y2 = load_b(b2c + bk);
        let y3 = load_b(b3c + bk);
        c00 = c00 + x0 * y0; c01 = c01 + x0 * y1; c02 = c02 + x0 * y2; c03 = c03 + x0 * y3;
        c10 = c10 + x1 * y0; c11 = c11 + x1 * y1; c12 = c12 + x1 * y2; c13 = c13 + x1 * y3;
        c20 = c20 + x2 * y0; c21 = c21 + x2 * y1; c22 = c22 + x2 * y2; c23 = c23 + x2 * y3;
        c30 = c30 + x3 * y0; c31 = c31 + x3 * y1; c32 = c32 + x3 * y2; c33 = c33 + x3 * y3;
    }
    finish(batch, split, r, q, c00); finish(batch, split, r, q + 1u, c01);
    finish(batch, split, r, q + 2u, c02); finish(batch, split, r, q + 3u, c03);
    finish(batch, split, r + 1u, q, c10); finish(batch, split, r + 1u, q + 1u, c11);
    finish(batch, split, r + 1u, q + 2u, c12); finish(batch, split, r + 1u, q + 3u, c13);
    finish(batch, split, r + 2u, q, c20); finish(batch, split, r + 2u, q + 1u, c21);
    finish(batch, split, r + 2u, q + 2u, c22); finish(batch, split, r + 2u, q + 3u, c23);
    finish(batch, split, r + 3u, q, c30); finish(batch, split, r + 3u, q + 1u, c31);
    finish(batch, split, r + 3u, q + 2u, c32); finish(batch, split, r + 3u, q + 3u, c33);
}

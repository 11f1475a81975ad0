// A tiled matrix product for GPUs: each workgroup of 16x16 threads computes a 64x64 tile of
// the output, each thread a 4x4 block held in registers; the inner dimension advances 16 at a
// time through workgroup memory. The kernel generator replaces the section between the
// markers with the kernel's own declarations and with the functions this file calls: where
// an operand's matrix starts for a batch (`a_base`, `b_base`), reading the operands
// (`load_a`, `load_b`, strided views of their buffers), and the epilogue that gets each
// finished value (bias, activation, the store). A split of the inner dimension (`split`)
// lets long inner dimensions run as several workgroups whose partial products are summed by
// a second kernel, so that no loop runs long.

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

var<workgroup> ta: array<array<f32, 16>, 64>;
var<workgroup> tb: array<array<f32, 64>, 16>;

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
    let tx = lid.x % 16u;
    let ty = lid.x / 16u;
    let row0 = tile_m * 64u;
    let col0 = tile_n * 64u;
    var c00 = 0.0f; var c01 = 0.0f; var c02 = 0.0f; var c03 = 0.0f;
    var c10 = 0.0f; var c11 = 0.0f; var c12 = 0.0f; var c13 = 0.0f;
    var c20 = 0.0f; var c21 = 0.0f; var c22 = 0.0f; var c23 = 0.0f;
    var c30 = 0.0f; var c31 = 0.0f; var c32 = 0.0f; var c33 = 0.0f;
    for (var k0 = k_begin; k0 < k_end; k0 = k0 + 16u) {
        for (var l = 0u; l < 4u; l = l + 1u) {
            let e = lid.x + l * 256u;
            let ar = e / 16u;
            let ac = e % 16u;
            let gr = row0 + ar;
            let gk = k0 + ac;
            let ia = ab + min(gr, info.m - 1u) * info.a_sm + min(gk, info.k - 1u) * info.a_sk;
            ta[ar][ac] = select(0.0f, load_a(ia), gr < info.m && gk < k_end);
            let br = e / 64u;
            let bc = e % 64u;
            let gk2 = k0 + br;
            let gc = col0 + bc;
            let ib = bb + min(gk2, info.k - 1u) * info.b_sk + min(gc, info.n - 1u) * info.b_sn;
            tb[br][bc] = select(0.0f, load_b(ib), gk2 < k_end && gc < info.n);
        }
        workgroupBarrier();
        for (var q = 0u; q < 16u; q = q + 1u) {
            let x0 = ta[ty * 4u][q];
            let x1 = ta[ty * 4u + 1u][q];
            let x2 = ta[ty * 4u + 2u][q];
            let x3 = ta[ty * 4u + 3u][q];
            let y0 = tb[q][tx * 4u];
            let y1 = tb[q][tx * 4u + 1u];
            let y2 = tb[q][tx * 4u + 2u];
            let y3 = tb[q][tx * 4u + 3u];
            c00 = c00 + x0 * y0; c01 = c01 + x0 * y1; c02 = c02 + x0 * y2; c03 = c03 + x0 * y3;
            c10 = c10 + x1 * y0; c11 = c11 + x1 * y1; c12 = c12 + x1 * y2; c13 = c13 + x1 * y3;
            c20 = c20 + x2 * y0; c21 = c21 + x2 * y1; c22 = c22 + x2 * y2; c23 = c23 + x2 * y3;
            c30 = c30 + x3 * y0; c31 = c31 + x3 * y1; c32 = c32 + x3 * y2; c33 = c33 + x3 * y3;
        }
        workgroupBarrier();
    }
    let r = row0 + ty * 4u;
    let q = col0 + tx * 4u;
    finish(batch, split, r, q, c00); finish(batch, split, r, q + 1u, c01);
    finish(batch, split, r, q + 2u, c02); finish(batch, split, r, q + 3u, c03);
    finish(batch, split, r + 1u, q, c10); finish(batch, split, r + 1u, q + 1u, c11);
    finish(batch, split, r + 1u, q + 2u, c12); finish(batch, split, r + 1u, q + 3u, c13);
    finish(batch, split, r + 2u, q, c20); finish(batch, split, r + 2u, q + 1u, c21);
    finish(batch, split, r + 2u, q + 2u, c22); finish(batch, split, r + 2u, q + 3u, c23);
    finish(batch, split, r + 3u, q, c30); finish(batch, split, r + 3u, q + 1u, c31);
    finish(batch, split, r + 3u, q + 2u, c32); finish(batch, split, r + 3u, q + 3u, c33);
}

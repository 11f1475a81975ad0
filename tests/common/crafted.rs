//! Hostile files made by code for the tests: crafted HDF5 structures and `.keras` archives
//! around them (nothing large is checked in).

#![allow(dead_code)]

use std::io::Write;

/// An HDF5 file (superblock 0) whose root group's one symbol-table node lists `links`
/// entries, every one naming the same `name_len`-byte name of the local heap.
pub fn one_name_many_links(name_len: usize, links: usize) -> Vec<u8> {
    let u64le = |v: u64| v.to_le_bytes();
    let (root, heap, tree, snod) = (72u64, 200u64, 300u64, 400u64);
    let snod_len = 8 + 40 * links as u64;
    let data = snod + snod_len;
    let mut b = vec![0u8; (data as usize) + name_len + 1];
    b[..8].copy_from_slice(b"\x89HDF\r\n\x1a\n");
    b[13] = 8; // offset size
    b[14] = 8; // length size
    b[24..32].copy_from_slice(&u64le(0)); // base address
    b[64..72].copy_from_slice(&u64le(root));
    // The root object header (version 1): one symbol-table message.
    let r = root as usize;
    b[r] = 1;
    b[r + 2..r + 4].copy_from_slice(&1u16.to_le_bytes());
    b[r + 8..r + 12].copy_from_slice(&24u32.to_le_bytes());
    b[r + 16..r + 18].copy_from_slice(&0x11u16.to_le_bytes());
    b[r + 18..r + 20].copy_from_slice(&16u16.to_le_bytes());
    b[r + 24..r + 32].copy_from_slice(&u64le(tree));
    b[r + 32..r + 40].copy_from_slice(&u64le(heap));
    // The local heap: its data segment holds the name.
    let h = heap as usize;
    b[h..h + 4].copy_from_slice(b"HEAP");
    b[h + 8..h + 16].copy_from_slice(&u64le(name_len as u64 + 1));
    b[h + 24..h + 32].copy_from_slice(&u64le(data));
    b[data as usize..data as usize + name_len].fill(b'a');
    // The B-tree (a leaf level) with the one symbol-table node.
    let t = tree as usize;
    b[t..t + 4].copy_from_slice(b"TREE");
    b[t + 6..t + 8].copy_from_slice(&1u16.to_le_bytes());
    b[t + 32..t + 40].copy_from_slice(&u64le(snod));
    let n = snod as usize;
    b[n..n + 4].copy_from_slice(b"SNOD");
    b[n + 6..n + 8].copy_from_slice(&(links as u16).to_le_bytes());
    for k in 0..links {
        let e = n + 8 + 40 * k;
        b[e + 8..e + 16].copy_from_slice(&u64le(root));
    }
    b
}

/// A valid HDF5 file with an empty root group: the weights of a model without weights.
pub fn empty_h5() -> Vec<u8> {
    one_name_many_links(1, 0)
}

/// A `.keras` archive (a zip) of `config` as `config.json` and `weights` as `model.weights.h5`,
/// each deflated.
pub fn keras_archive(config: &[u8], weights: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    for (name, bytes) in [
        ("metadata.json", &br#"{"keras_version": "3.15.1"}"#[..]),
        ("config.json", config),
        ("model.weights.h5", weights),
    ] {
        zip.start_file(name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

//! A small, bounded HDF5 reader for exactly what Keras 3 writes through h5py: superblock
//! versions 0 to 3, object headers version 1 and 2, groups as symbol tables (B-tree v1 and a
//! local heap) or as link messages, and datasets with a simple dataspace, a little- or
//! big-endian integer or float datatype and a contiguous or compact layout. Everything else
//! (chunked or compressed data, dense link storage, external links, shared messages) is
//! refused with an error that names it. Every offset is checked against the file, every loop
//! is bounded, no object is visited twice, and nothing is allocated beyond the bytes of the
//! file itself.

use lamina_graph::host::{HostTensor, MAX_ELEMENTS};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The most objects (groups and datasets) a file may hold.
pub const MAX_OBJECTS: usize = 1 << 16;
/// The deepest nesting of groups.
pub const MAX_DEPTH: usize = 32;
/// The most header messages read over all objects.
const MAX_MESSAGES: usize = 1 << 20;

const UNDEFINED: u64 = u64::MAX;

/// An HDF5 object: a group of named children or a dataset.
#[derive(Debug)]
pub enum Node {
    /// A group, children by name.
    Group(BTreeMap<String, Node>),
    /// A dataset.
    Dataset(Dataset),
}

/// Where a dataset's values are and how to read them.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// The element type.
    pub dtype: ElemType,
    /// The byte range of the raw data in the file (empty for no elements).
    pub data: std::ops::Range<usize>,
}

/// The element types Keras writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    /// IEEE float of this many bytes (2, 4 or 8).
    Float { size: usize, big_endian: bool },
    /// Two's-complement or unsigned integer of this many bytes (1, 2, 4 or 8).
    Int {
        size: usize,
        signed: bool,
        big_endian: bool,
    },
}

impl ElemType {
    fn size(self) -> usize {
        match self {
            ElemType::Float { size, .. } | ElemType::Int { size, .. } => size,
        }
    }

    /// The NumPy spelling, for messages.
    pub fn name(self) -> String {
        match self {
            ElemType::Float { size, .. } => format!("float{}", size * 8),
            ElemType::Int { size, signed, .. } => {
                format!("{}int{}", if signed { "" } else { "u" }, size * 8)
            }
        }
    }
}

/// A parsed file: its root group.
pub struct File<'a> {
    bytes: &'a [u8],
    /// The root group.
    pub root: Node,
    /// The string attributes of the groups, by group path (`""` for the root) and name: each
    /// a list of strings (one for a scalar). Attributes of other types are not kept.
    attributes: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

type R<T> = std::result::Result<T, String>;

struct Reader<'a> {
    bytes: &'a [u8],
    base: u64,
    offset_size: usize,
    length_size: usize,
    objects: usize,
    messages: usize,
    visiting: HashSet<u64>,
    /// The string attributes read so far, by group path.
    attributes: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// The total bytes of attribute strings read, bounded by the file's size.
    attribute_bytes: usize,
    /// The total bytes of link names read from local heaps, bounded by the file's size: one
    /// name referenced by many links is copied once per link.
    name_bytes: usize,
    /// The global heap collections read so far: each object's byte range by its index, so a
    /// collection is walked once however many strings point into it.
    heaps: HashMap<u64, HashMap<u64, std::ops::Range<usize>>>,
}

/// A cursor over a byte slice of the file; every read is checked.
struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len());
        match end {
            Some(e) => {
                let s = &self.b[self.pos..e];
                self.pos = e;
                Ok(s)
            }
            None => Err(format!("{} is truncated", self.what)),
        }
    }
    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }
    fn uint(&mut self, n: usize) -> R<u64> {
        let s = self.take(n)?;
        let mut v = 0u64;
        for (i, &b) in s.iter().enumerate().take(8) {
            v |= (b as u64) << (8 * i);
        }
        if n > 8 && s[8..].iter().any(|&b| b != 0) {
            return Err(format!("{}: a number does not fit in 64 bits", self.what));
        }
        Ok(v)
    }
    fn skip(&mut self, n: usize) -> R<()> {
        self.take(n).map(|_| ())
    }
    fn left(&self) -> usize {
        self.b.len() - self.pos
    }
}

impl<'a> Reader<'a> {
    fn at(&self, addr: u64, what: &'static str) -> R<Cur<'a>> {
        let abs = addr
            .checked_add(self.base)
            .filter(|&a| a != UNDEFINED && a < self.bytes.len() as u64)
            .ok_or_else(|| format!("{what} at address {addr} lies outside the file"))?;
        Ok(Cur {
            b: self.bytes,
            pos: abs as usize,
            what,
        })
    }
    fn offset(&self, c: &mut Cur<'_>) -> R<u64> {
        let v = c.uint(self.offset_size)?;
        // An all-ones address of any width is HDF5's "undefined address".
        if self.offset_size < 8 && v == (1u64 << (8 * self.offset_size)) - 1 {
            return Ok(UNDEFINED);
        }
        Ok(v)
    }
    fn length(&self, c: &mut Cur<'_>) -> R<u64> {
        c.uint(self.length_size)
    }
    fn count_object(&mut self) -> R<()> {
        self.objects += 1;
        if self.objects > MAX_OBJECTS {
            return Err(format!("it holds more than {MAX_OBJECTS} objects"));
        }
        Ok(())
    }

    /// The messages of the object header at `addr`, as (type, body) pairs.
    fn messages(&mut self, addr: u64) -> R<Vec<(u16, &'a [u8])>> {
        let mut c = self.at(addr, "an object header")?;
        let mut out = Vec::new();
        let mut blocks: Vec<(u64, u64)> = Vec::new();
        let mut seen_blocks = HashSet::new();
        if c.b.get(c.pos..c.pos + 4) == Some(b"OHDR") {
            c.skip(4)?;
            let version = c.u8()?;
            if version != 2 {
                return Err(format!("object header version {version} is not supported"));
            }
            let flags = c.u8()?;
            if flags & 0x20 != 0 {
                c.skip(16)?;
            }
            if flags & 0x10 != 0 {
                c.skip(4)?;
            }
            let size = c.uint(1 << (flags & 3))? as usize;
            let body = c.take(size)?;
            self.v2_messages(body, flags, &mut out, &mut blocks)?;
            while let Some((a, len)) = blocks.pop() {
                if !seen_blocks.insert(a) {
                    return Err("an object header continues into itself".into());
                }
                let mut k = self.at(a, "an object header continuation")?;
                let block = k.take(usize::try_from(len).map_err(|_| "huge block".to_string())?)?;
                if block.len() < 8 || &block[..4] != b"OCHK" {
                    return Err("an object header continuation lacks its signature".into());
                }
                self.v2_messages(&block[4..block.len() - 4], flags, &mut out, &mut blocks)?;
            }
        } else {
            let version = c.u8()?;
            if version != 1 {
                return Err(format!("object header version {version} is not supported"));
            }
            c.skip(1)?;
            let count = c.uint(2)? as usize;
            c.skip(4)?;
            let size = c.uint(4)? as usize;
            c.skip(4)?; // alignment to 8 bytes
            let body = c.take(size)?;
            let mut remaining = count;
            self.v1_messages(body, &mut remaining, &mut out, &mut blocks)?;
            while let Some((a, len)) = blocks.pop() {
                if !seen_blocks.insert(a) {
                    return Err("an object header continues into itself".into());
                }
                let mut k = self.at(a, "an object header continuation")?;
                let block = k.take(usize::try_from(len).map_err(|_| "huge block".to_string())?)?;
                self.v1_messages(block, &mut remaining, &mut out, &mut blocks)?;
            }
        }
        Ok(out)
    }

    fn note_message(&mut self) -> R<()> {
        self.messages += 1;
        if self.messages > MAX_MESSAGES {
            return Err(format!("it holds more than {MAX_MESSAGES} header messages"));
        }
        Ok(())
    }

    fn v1_messages(
        &mut self,
        body: &'a [u8],
        remaining: &mut usize,
        out: &mut Vec<(u16, &'a [u8])>,
        blocks: &mut Vec<(u64, u64)>,
    ) -> R<()> {
        let mut c = Cur {
            b: body,
            pos: 0,
            what: "an object header",
        };
        while *remaining > 0 && c.left() >= 8 {
            *remaining -= 1;
            self.note_message()?;
            let kind = c.uint(2)? as u16;
            let size = c.uint(2)? as usize;
            let flags = c.u8()?;
            c.skip(3)?;
            let data = c.take(size)?;
            self.push_message(kind, flags, data, out, blocks)?;
        }
        Ok(())
    }

    fn v2_messages(
        &mut self,
        body: &'a [u8],
        header_flags: u8,
        out: &mut Vec<(u16, &'a [u8])>,
        blocks: &mut Vec<(u64, u64)>,
    ) -> R<()> {
        let mut c = Cur {
            b: body,
            pos: 0,
            what: "an object header",
        };
        let head = if header_flags & 0x04 != 0 { 6 } else { 4 };
        while c.left() >= head {
            self.note_message()?;
            let kind = c.u8()? as u16;
            let size = c.uint(2)? as usize;
            let flags = c.u8()?;
            if header_flags & 0x04 != 0 {
                c.skip(2)?;
            }
            let data = c.take(size)?;
            self.push_message(kind, flags, data, out, blocks)?;
        }
        Ok(())
    }

    fn push_message(
        &mut self,
        kind: u16,
        flags: u8,
        data: &'a [u8],
        out: &mut Vec<(u16, &'a [u8])>,
        blocks: &mut Vec<(u64, u64)>,
    ) -> R<()> {
        if kind == 0x10 {
            let mut c = Cur {
                b: data,
                pos: 0,
                what: "a continuation message",
            };
            let a = self.offset(&mut c)?;
            let len = self.length(&mut c)?;
            blocks.push((a, len));
            return Ok(());
        }
        // Shared messages (bit 1) live elsewhere; Keras's files have none that matter.
        if flags & 0x02 != 0 && matches!(kind, 0x01 | 0x03 | 0x08) {
            return Err(format!(
                "shared header message (type {kind}) is not supported"
            ));
        }
        out.push((kind, data));
        Ok(())
    }

    /// Parses the object at `addr` and everything below it.
    fn object(&mut self, addr: u64, depth: usize, path: &str) -> R<Node> {
        if depth > MAX_DEPTH {
            return Err(format!("its groups nest deeper than {MAX_DEPTH}"));
        }
        if !self.visiting.insert(addr) {
            return Err(format!(
                "object at address {addr} is reached twice (a cycle or a hard link)"
            ));
        }
        self.count_object()?;
        let msgs = self.messages(addr)?;
        let find = |t: u16| msgs.iter().find(|(k, _)| *k == t).map(|(_, d)| *d);
        if find(0x03).is_none() {
            self.group_attributes(&msgs, path);
        }
        if let Some(st) = find(0x11) {
            let mut c = Cur {
                b: st,
                pos: 0,
                what: "a symbol table message",
            };
            let btree = self.offset(&mut c)?;
            let heap = self.offset(&mut c)?;
            let mut links = Vec::new();
            self.btree_links(btree, heap, 0, &mut links)?;
            return self.group(links, depth, path);
        }
        if let Some(info) = find(0x02) {
            let mut c = Cur {
                b: info,
                pos: 0,
                what: "a link info message",
            };
            c.skip(1)?;
            let flags = c.u8()?;
            if flags & 1 != 0 {
                c.skip(8)?;
            }
            let heap = self.offset(&mut c)?;
            if heap != UNDEFINED {
                return Err(
                    "a group stores its links densely (a fractal heap), which is not supported"
                        .into(),
                );
            }
        }
        if find(0x03).is_some() && find(0x01).is_some() {
            return self.dataset(&msgs).map(Node::Dataset);
        }
        let mut links = Vec::new();
        for (_, d) in msgs.iter().filter(|(k, _)| *k == 0x06) {
            links.push(self.link(d)?);
        }
        self.group(links, depth, path)
    }

    /// Keeps the string attributes among a group's messages; any other attribute, or one this
    /// reader cannot decode, is passed over (only the legacy `.h5` import reads them, and it
    /// names the attribute it misses).
    fn group_attributes(&mut self, msgs: &[(u16, &'a [u8])], path: &str) {
        for (_, d) in msgs.iter().filter(|(k, _)| *k == 0x0C) {
            if let Ok((name, values)) = self.string_attribute(d) {
                let size: usize = values.iter().map(String::len).sum();
                self.attribute_bytes = self.attribute_bytes.saturating_add(size);
                if self.attribute_bytes > self.bytes.len() {
                    return;
                }
                self.attributes
                    .entry(path.to_string())
                    .or_default()
                    .insert(name, values);
            }
        }
    }

    /// An attribute message holding fixed-length or variable-length strings.
    fn string_attribute(&mut self, d: &'a [u8]) -> R<(String, Vec<String>)> {
        let mut c = Cur {
            b: d,
            pos: 0,
            what: "an attribute message",
        };
        let version = c.u8()?;
        c.skip(1)?;
        let name_size = c.uint(2)? as usize;
        let type_size = c.uint(2)? as usize;
        let space_size = c.uint(2)? as usize;
        let pad = |n: usize| if version == 1 { n.div_ceil(8) * 8 } else { n };
        match version {
            1 | 2 => {}
            3 => c.skip(1)?,
            v => return Err(format!("attribute message version {v} is not supported")),
        }
        let name = c.take(pad(name_size))?;
        let name = &name[..name_size.min(name.len())];
        let name = String::from_utf8(name.split(|&b| b == 0).next().unwrap_or(&[]).to_vec())
            .map_err(|_| "an attribute name is not UTF-8")?;
        let dtype = c.take(pad(type_size))?;
        let space = c.take(pad(space_size))?;
        let count: usize = self
            .dataspace(&space[..space_size.min(space.len())])?
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|&n| n <= MAX_OBJECTS)
            .ok_or("an attribute has too many elements")?;
        let data = &d[c.pos..];
        if dtype.len() < 8 {
            return Err("an attribute's datatype is truncated".into());
        }
        let class = dtype[0] & 0x0f;
        let elem = u32::from_le_bytes([dtype[4], dtype[5], dtype[6], dtype[7]]) as usize;
        let text = |b: &[u8]| -> R<String> {
            let end = b.iter().position(|&x| x == 0).unwrap_or(b.len());
            String::from_utf8(b[..end].to_vec())
                .map(|s| s.trim_end_matches(' ').to_string())
                .map_err(|_| "an attribute string is not UTF-8".to_string())
        };
        let values = match class {
            3 => {
                if elem == 0 || data.len() < count.saturating_mul(elem) {
                    return Err("a string attribute is truncated".into());
                }
                data.chunks_exact(elem)
                    .take(count)
                    .map(text)
                    .collect::<R<_>>()?
            }
            // Variable-length strings (the type's low bits say string, not sequence).
            9 if dtype[1] & 0x0f == 1 => {
                let mut c = Cur {
                    b: data,
                    pos: 0,
                    what: "a variable-length string attribute",
                };
                let mut out = Vec::with_capacity(count);
                for _ in 0..count {
                    let len = c.uint(4)? as usize;
                    let heap = self.offset(&mut c)?;
                    let index = c.uint(4)?;
                    out.push(text(self.global_heap_object(heap, index, len)?)?);
                }
                out
            }
            k => return Err(format!("attribute '{name}' has datatype class {k}")),
        };
        Ok((name, values))
    }

    /// Object `index` of the global heap collection at `addr` (variable-length data), which
    /// must hold at least `len` bytes.
    fn global_heap_object(&mut self, addr: u64, index: u64, len: usize) -> R<&'a [u8]> {
        if !self.heaps.contains_key(&addr) {
            let objects = self.global_heap(addr)?;
            self.heaps.insert(addr, objects);
        }
        let range = self.heaps[&addr]
            .get(&index)
            .cloned()
            .ok_or_else(|| format!("the global heap has no object {index}"))?;
        let bytes: &'a [u8] = self.bytes;
        bytes[range]
            .get(..len)
            .ok_or_else(|| "a global heap object is shorter than its string".into())
    }

    /// The objects of the global heap collection at `addr`: each one's byte range in the file.
    fn global_heap(&mut self, addr: u64) -> R<HashMap<u64, std::ops::Range<usize>>> {
        self.count_object()?;
        let mut c = self.at(addr, "a global heap collection")?;
        if c.take(4)? != b"GCOL" {
            return Err("a global heap collection lacks its signature".into());
        }
        c.skip(4)?;
        let size = self.length(&mut c)?;
        let start = c.pos;
        let end = start
            .saturating_sub(8 + self.length_size)
            .saturating_add(usize::try_from(size).unwrap_or(usize::MAX))
            .min(c.b.len());
        let mut objects = HashMap::new();
        while c.pos + 8 + self.length_size <= end {
            let i = c.uint(2)?;
            c.skip(6)?;
            let n = usize::try_from(self.length(&mut c)?).map_err(|_| "huge heap object")?;
            if i == 0 {
                break;
            }
            let at = c.pos;
            c.take(n)?;
            objects.insert(i, at..at + n);
            c.skip((n.div_ceil(8) * 8 - n).min(c.left()))?;
        }
        Ok(objects)
    }

    fn group(&mut self, links: Vec<(String, u64)>, depth: usize, path: &str) -> R<Node> {
        let mut children = BTreeMap::new();
        for (name, addr) in links {
            if children.contains_key(&name) {
                return Err(format!("a group has two links named '{name}'"));
            }
            let child = self.object(addr, depth + 1, &format!("{path}/{name}"))?;
            children.insert(name, child);
        }
        Ok(Node::Group(children))
    }

    fn link(&self, d: &[u8]) -> R<(String, u64)> {
        let mut c = Cur {
            b: d,
            pos: 0,
            what: "a link message",
        };
        let version = c.u8()?;
        if version != 1 {
            return Err(format!("link message version {version} is not supported"));
        }
        let flags = c.u8()?;
        let kind = if flags & 0x08 != 0 { c.u8()? } else { 0 };
        if flags & 0x04 != 0 {
            c.skip(8)?;
        }
        if flags & 0x10 != 0 {
            c.skip(1)?;
        }
        let len = c.uint(1 << (flags & 3))? as usize;
        let name = c.take(len)?;
        let name = String::from_utf8(name.to_vec()).map_err(|_| "a link name is not UTF-8")?;
        if kind != 0 {
            return Err(format!(
                "link '{name}' is a soft or external link, which is not supported"
            ));
        }
        let addr = self.offset(&mut c)?;
        Ok((name, addr))
    }

    /// The (name, object address) entries of a group's B-tree, in key order.
    fn btree_links(
        &mut self,
        node: u64,
        heap: u64,
        level_depth: usize,
        out: &mut Vec<(String, u64)>,
    ) -> R<()> {
        if level_depth > MAX_DEPTH {
            return Err("a group's B-tree is too deep".into());
        }
        self.count_object()?;
        let mut c = self.at(node, "a group B-tree node")?;
        if c.take(4)? != b"TREE" {
            return Err("a group B-tree node lacks its signature".into());
        }
        if c.u8()? != 0 {
            return Err("a group B-tree node is not of the group kind".into());
        }
        let level = c.u8()?;
        let used = c.uint(2)? as usize;
        c.skip(2 * self.offset_size)?;
        let mut children = Vec::with_capacity(used.min(1024));
        self.length(&mut c)?; // key 0
        for _ in 0..used {
            children.push(self.offset(&mut c)?);
            self.length(&mut c)?;
        }
        for child in children {
            if level > 0 {
                self.btree_links(child, heap, level_depth + 1, out)?;
            } else {
                self.symbol_node(child, heap, out)?;
            }
        }
        Ok(())
    }

    fn symbol_node(&mut self, addr: u64, heap: u64, out: &mut Vec<(String, u64)>) -> R<()> {
        self.count_object()?;
        let mut c = self.at(addr, "a symbol table node")?;
        if c.take(4)? != b"SNOD" {
            return Err("a symbol table node lacks its signature".into());
        }
        c.skip(2)?;
        let n = c.uint(2)? as usize;
        for _ in 0..n {
            let name_off = self.offset(&mut c)?;
            let obj = self.offset(&mut c)?;
            c.skip(24)?;
            out.push((self.heap_name(heap, name_off)?, obj));
            if out.len() > MAX_OBJECTS {
                return Err(format!("a group holds more than {MAX_OBJECTS} links"));
            }
        }
        Ok(())
    }

    fn heap_name(&mut self, heap: u64, off: u64) -> R<String> {
        let mut c = self.at(heap, "a local heap")?;
        if c.take(4)? != b"HEAP" {
            return Err("a local heap lacks its signature".into());
        }
        c.skip(4)?;
        let size = self.length(&mut c)?;
        self.length(&mut c)?;
        let data = self.offset(&mut c)?;
        if off >= size {
            return Err("a link name lies outside its heap".into());
        }
        let mut d = self.at(
            data.checked_add(off).ok_or("a heap address overflows")?,
            "a link name",
        )?;
        let avail = (size - off).min(d.left() as u64) as usize;
        let bytes = d.take(avail)?;
        let end = bytes
            .iter()
            .position(|&b| b == 0)
            .ok_or("a link name is not terminated")?;
        self.name_bytes = self.name_bytes.saturating_add(end);
        if self.name_bytes > self.bytes.len() {
            return Err(format!(
                "its link names total more than the file's {} bytes (one name referenced by \
                 many links?)",
                self.bytes.len()
            ));
        }
        String::from_utf8(bytes[..end].to_vec()).map_err(|_| "a link name is not UTF-8".into())
    }

    fn dataset(&self, msgs: &[(u16, &[u8])]) -> R<Dataset> {
        let find = |t: u16| msgs.iter().find(|(k, _)| *k == t).map(|(_, d)| *d);
        let shape = self.dataspace(find(0x01).ok_or("a dataset has no dataspace")?)?;
        let dtype = datatype(find(0x03).ok_or("a dataset has no datatype")?)?;
        if let Some(f) = find(0x0B) {
            // A filter pipeline with any filter means compressed or shuffled chunks.
            if f.get(1).is_some_and(|&n| n > 0) {
                return Err(
                    "a dataset is compressed or filtered, which is not supported (Keras \
                     writes plain contiguous datasets)"
                        .into(),
                );
            }
        }
        let mut numel: usize = 1;
        for &d in &shape {
            numel = numel
                .checked_mul(d)
                .filter(|&n| n <= MAX_ELEMENTS)
                .ok_or_else(|| format!("a dataset of shape {shape:?} is too large"))?;
        }
        let nbytes = numel
            .checked_mul(dtype.size())
            .ok_or("a dataset is too large")?;
        let layout = find(0x08).ok_or("a dataset has no layout message")?;
        let mut c = Cur {
            b: layout,
            pos: 0,
            what: "a layout message",
        };
        let version = c.u8()?;
        let (class, addr, size, compact_pos) = match version {
            1 | 2 => {
                let rank = c.u8()? as usize;
                let class = c.u8()?;
                c.skip(5)?;
                let addr = if class != 0 { self.offset(&mut c)? } else { 0 };
                c.skip(4 * rank)?;
                if class == 0 {
                    let size = c.uint(4)?;
                    (class, 0, size, Some(c.pos))
                } else {
                    (class, addr, nbytes as u64, None)
                }
            }
            3 | 4 => {
                let class = c.u8()?;
                match class {
                    0 => {
                        let size = c.uint(2)?;
                        (class, 0, size, Some(c.pos))
                    }
                    1 => {
                        let addr = self.offset(&mut c)?;
                        let size = self.length(&mut c)?;
                        (class, addr, size, None)
                    }
                    _ => (class, 0, 0, None),
                }
            }
            v => return Err(format!("layout message version {v} is not supported")),
        };
        match class {
            0 | 1 => {}
            2 => {
                return Err(
                    "a dataset is chunked, which is not supported (Keras writes \
                     contiguous datasets)"
                        .into(),
                );
            }
            k => {
                return Err(format!(
                    "a dataset has layout class {k}, which is not supported"
                ));
            }
        }
        if size < nbytes as u64 {
            return Err(format!(
                "a dataset of shape {shape:?} ({}) stores {size} bytes, fewer than its {nbytes}",
                dtype.name()
            ));
        }
        let data = if nbytes == 0 {
            0..0
        } else if let Some(p) = compact_pos {
            let start = layout.as_ptr() as usize - self.bytes.as_ptr() as usize + p;
            let end = start
                .checked_add(nbytes)
                .filter(|&e| e <= start - p + layout.len())
                .ok_or("a compact dataset's data is truncated")?;
            start..end
        } else {
            let start = addr
                .checked_add(self.base)
                .filter(|&a| a != UNDEFINED)
                .ok_or("a dataset's data address is undefined")?;
            let end = start
                .checked_add(nbytes as u64)
                .filter(|&e| e <= self.bytes.len() as u64)
                .ok_or_else(|| {
                    format!("a dataset's data ({nbytes} bytes at {start}) lies outside the file")
                })?;
            start as usize..end as usize
        };
        Ok(Dataset { shape, dtype, data })
    }

    fn dataspace(&self, d: &[u8]) -> R<Vec<usize>> {
        let mut c = Cur {
            b: d,
            pos: 0,
            what: "a dataspace message",
        };
        let version = c.u8()?;
        let rank = c.u8()? as usize;
        let _flags = c.u8()?;
        match version {
            1 => c.skip(5)?,
            2 => {
                let kind = c.u8()?;
                if kind == 2 {
                    return Err("a dataset has a null dataspace".into());
                }
            }
            v => return Err(format!("dataspace version {v} is not supported")),
        }
        if rank > lamina_graph::limits::MAX_RANK {
            return Err(format!("a dataset has rank {rank}"));
        }
        (0..rank)
            .map(|_| {
                let n = self.length(&mut c)?;
                usize::try_from(n).map_err(|_| format!("a dimension of {n} is too large"))
            })
            .collect()
    }
}

fn datatype(d: &[u8]) -> R<ElemType> {
    let mut c = Cur {
        b: d,
        pos: 0,
        what: "a datatype message",
    };
    let cv = c.u8()?;
    let bits = c.take(3)?;
    let size = c.uint(4)? as usize;
    let big_endian = bits[0] & 1 != 0;
    match cv & 0x0f {
        0 if matches!(size, 1 | 2 | 4 | 8) => Ok(ElemType::Int {
            size,
            signed: bits[0] & 0x08 != 0,
            big_endian,
        }),
        1 if matches!(size, 2 | 4 | 8) && bits[0] & 0x40 == 0 => {
            Ok(ElemType::Float { size, big_endian })
        }
        class => Err(format!(
            "a dataset has datatype class {class} of {size} bytes; only integers and IEEE \
             floats are supported"
        )),
    }
}

impl<'a> File<'a> {
    /// Parses a file from its bytes. Errors are plain descriptions (the caller names the file).
    pub fn parse(bytes: &'a [u8]) -> R<File<'a>> {
        const SIG: &[u8; 8] = b"\x89HDF\r\n\x1a\n";
        let mut start = None;
        let mut at = 0usize;
        while at + 8 <= bytes.len() {
            if &bytes[at..at + 8] == SIG {
                start = Some(at);
                break;
            }
            at = if at == 0 { 512 } else { at * 2 };
        }
        let start = start.ok_or("not an HDF5 file (no HDF5 signature)")?;
        let mut c = Cur {
            b: bytes,
            pos: start + 8,
            what: "the superblock",
        };
        let version = c.u8()?;
        let mut r = Reader {
            bytes,
            base: 0,
            offset_size: 8,
            length_size: 8,
            objects: 0,
            messages: 0,
            visiting: HashSet::new(),
            attributes: BTreeMap::new(),
            attribute_bytes: 0,
            name_bytes: 0,
            heaps: HashMap::new(),
        };
        let sizes_ok = |o: usize, l: usize| matches!(o, 2 | 4 | 8) && matches!(l, 2 | 4 | 8);
        let root = match version {
            0 | 1 => {
                c.skip(3)?;
                c.skip(1)?;
                r.offset_size = c.u8()? as usize;
                r.length_size = c.u8()? as usize;
                if !sizes_ok(r.offset_size, r.length_size) {
                    return Err("the superblock declares unsupported sizes".into());
                }
                c.skip(1 + 4 + 4)?;
                if version == 1 {
                    c.skip(4)?;
                }
                r.base = r.offset(&mut c)?;
                r.offset(&mut c)?;
                r.offset(&mut c)?;
                r.offset(&mut c)?;
                r.offset(&mut c)?; // root entry: link name offset
                r.offset(&mut c)?
            }
            2 | 3 => {
                r.offset_size = c.u8()? as usize;
                r.length_size = c.u8()? as usize;
                if !sizes_ok(r.offset_size, r.length_size) {
                    return Err("the superblock declares unsupported sizes".into());
                }
                c.skip(1)?;
                r.base = r.offset(&mut c)?;
                r.offset(&mut c)?;
                r.offset(&mut c)?;
                r.offset(&mut c)?
            }
            v => return Err(format!("superblock version {v} is not supported")),
        };
        if r.base == UNDEFINED {
            r.base = 0;
        }
        if r.base != 0 && r.base != start as u64 {
            return Err("the superblock's base address is not supported".into());
        }
        let root = r.object(root, 0, "")?;
        if !matches!(root, Node::Group(_)) {
            return Err("the root object is not a group".into());
        }
        Ok(File {
            bytes,
            root,
            attributes: r.attributes,
        })
    }

    /// The string attribute `name` of the group at `path` (`""` for the root): its strings, one
    /// for a scalar attribute.
    pub fn string_attribute(&self, path: &str, name: &str) -> Option<&[String]> {
        let path = path.trim_end_matches('/');
        let key = if path.is_empty() || path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        self.attributes
            .get(&key)
            .and_then(|a| a.get(name))
            .map(Vec::as_slice)
    }

    /// The object at a `/`-separated path from the root.
    pub fn get(&self, path: &str) -> Option<&Node> {
        let mut node = &self.root;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            match node {
                Node::Group(children) => node = children.get(part)?,
                Node::Dataset(_) => return None,
            }
        }
        Some(node)
    }

    /// A dataset's values as a host tensor: floats as float32 (float64 rounded, float16
    /// widened), integers as int32 (an out-of-range value is an error).
    pub fn read(&self, d: &Dataset) -> R<HostTensor> {
        let raw = &self.bytes[d.data.clone()];
        let word = |chunk: &[u8], big: bool| -> u64 {
            let mut v = 0u64;
            for (i, &b) in chunk.iter().enumerate() {
                let k = if big { chunk.len() - 1 - i } else { i };
                v |= (b as u64) << (8 * k);
            }
            v
        };
        let t = match d.dtype {
            ElemType::Float { size, big_endian } => {
                let vals: Vec<f32> = raw
                    .chunks_exact(size)
                    .map(|ch| {
                        let w = word(ch, big_endian);
                        match size {
                            2 => half_to_f32(w as u16),
                            4 => f32::from_bits(w as u32),
                            _ => f64::from_bits(w) as f32,
                        }
                    })
                    .collect();
                HostTensor::new(&d.shape, vals)
            }
            ElemType::Int {
                size,
                signed,
                big_endian,
            } => {
                let mut vals = Vec::with_capacity(raw.len() / size);
                for ch in raw.chunks_exact(size) {
                    let w = word(ch, big_endian);
                    let v: i64 = if signed {
                        let shift = 64 - 8 * size as u32;
                        ((w << shift) as i64) >> shift
                    } else if w > i64::MAX as u64 {
                        i64::MAX
                    } else {
                        w as i64
                    };
                    vals.push(
                        i32::try_from(v)
                            .map_err(|_| format!("the integer {v} does not fit in int32"))?,
                    );
                }
                HostTensor::new(&d.shape, vals)
            }
        };
        t.map_err(|e| e.to_string())
    }
}

fn half_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: normalise.
            let mut e = 127 - 15 + 1;
            let mut f = f;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | ((e as u32) << 23) | ((f & 0x3ff) << 13)
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_widen_exactly() {
        assert_eq!(half_to_f32(0x3c00), 1.0);
        assert_eq!(half_to_f32(0xc000), -2.0);
        assert_eq!(half_to_f32(0x0001), 2f32.powi(-24));
        assert!(half_to_f32(0x7e00).is_nan());
        assert_eq!(half_to_f32(0x7c00), f32::INFINITY);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(File::parse(b"").is_err());
        assert!(File::parse(&[0u8; 4096]).is_err());
        let mut b = b"\x89HDF\r\n\x1a\n".to_vec();
        b.extend([0u8; 100]);
        assert!(File::parse(&b).is_err());
    }
}

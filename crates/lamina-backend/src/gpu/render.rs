//! The renderer: the only place where WGSL text is made. It prints a kernel of the IR
//! statement by statement (no recursion over expressions: every operand is a named value),
//! declares the named parameters and bindings, and adds only the helper functions the text
//! calls.

use super::ir::{Binding, Builtin, Expr, Function, IndexOp, Kernel, Lit, Stmt, Val, Var};
use super::wgsl;
use std::fmt::Write;

/// Marks where a template's stand-in declarations begin; the renderer replaces everything
/// up to the end marker with the kernel's own declarations and generated functions.
pub const GENERATED_BEGIN: &str = "// lamina:generated-begin";
/// Marks where a template's stand-in declarations end.
pub const GENERATED_END: &str = "// lamina:generated-end";

fn v(x: Val) -> String {
    format!("v{}", x.0)
}

fn var(x: Var) -> String {
    format!("x{}", x.0)
}

fn lit(l: Lit) -> String {
    match l {
        Lit::F32(f) => wgsl::f32_lit(f),
        Lit::I32(i) if i == i32::MIN => "(-2147483647 - 1)".into(),
        Lit::I32(i) => format!("i32({i})"),
        Lit::U32(u) => format!("{u}u"),
        Lit::Bool(b) => b.to_string(),
    }
}

fn expr(k: &Kernel, e: &Expr) -> String {
    match e {
        Expr::Lit(l) => lit(*l),
        Expr::Param(i) => format!("info.{}", k.params[*i].name),
        Expr::Builtin(Builtin::GlobalIndex) => {
            format!("(gid.x + gid.y * nwg.x * {}u)", k.workgroup_size)
        }
        Expr::Builtin(Builtin::WorkgroupIndex) => "(wid.x + wid.y * nwg.x)".into(),
        Expr::Builtin(Builtin::LocalIndex) => "lid.x".into(),
        Expr::Read(x) => var(*x),
        Expr::Load { binding, index } => {
            let b = &k.bindings[*binding];
            let word = format!("b{binding}[{}]", v(*index));
            if k.stores_f16(b) {
                format!("f32({word})")
            } else {
                wgsl::load(b.dtype, &word)
            }
        }
        Expr::LoadShared { array, index } => format!("s{array}[{}]", v(*index)),
        Expr::Unary(op, d, x) => wgsl::unary(*op, *d, &v(*x)),
        Expr::Binary(op, d, a, b) => wgsl::binary(*op, *d, &v(*a), &v(*b)),
        Expr::Index(op, a, b) => {
            let (a, b) = (v(*a), v(*b));
            match op {
                IndexOp::Add => format!("{a} + {b}"),
                IndexOp::Sub => format!("{a} - {b}"),
                IndexOp::Mul => format!("{a} * {b}"),
                IndexOp::Div => format!("{a} / {b}"),
                IndexOp::Rem => format!("{a} % {b}"),
                IndexOp::Min => format!("min({a}, {b})"),
                IndexOp::Max => format!("max({a}, {b})"),
                IndexOp::Less => format!("{a} < {b}"),
                IndexOp::Shr => format!("{a} >> {b}"),
            }
        }
        Expr::Select {
            cond,
            then,
            otherwise,
        } => format!("select({}, {}, {})", v(*otherwise), v(*then), v(*cond)),
        Expr::Cast { from, to, value } => wgsl::cast(*from, *to, &v(*value)),
        Expr::Bitcast { to, value } => {
            format!("bitcast<{}>({})", wgsl::reg_type(*to), v(*value))
        }
        Expr::Call { function, args } => {
            let args: Vec<String> = args.iter().map(|a| v(*a)).collect();
            format!("{function}({})", args.join(", "))
        }
    }
}

/// Prints a block. Nested blocks are printed from an explicit stack, so the depth of Rust's
/// own stack does not grow with the kernel.
fn block(k: &Kernel, stmts: &[Stmt], depth: usize, out: &mut String) {
    enum Item<'a> {
        Stmt(&'a Stmt, usize),
        Close(usize),
    }
    let mut stack: Vec<Item<'_>> = stmts.iter().rev().map(|s| Item::Stmt(s, depth)).collect();
    while let Some(item) = stack.pop() {
        let (s, d) = match item {
            Item::Close(d) => {
                let _ = writeln!(out, "{}}}", "    ".repeat(d));
                continue;
            }
            Item::Stmt(s, d) => (s, d),
        };
        let pad = "    ".repeat(d);
        match s {
            Stmt::Let { val, ty, expr: e } => {
                let _ = writeln!(
                    out,
                    "{pad}let {}: {} = {};",
                    v(*val),
                    wgsl::reg_type(*ty),
                    expr(k, e)
                );
            }
            Stmt::Var { var: x, ty, init } => {
                let _ = writeln!(
                    out,
                    "{pad}var {}: {} = {};",
                    var(*x),
                    wgsl::reg_type(*ty),
                    v(*init)
                );
            }
            Stmt::Assign { var: x, value } => {
                let _ = writeln!(out, "{pad}{} = {};", var(*x), v(*value));
            }
            Stmt::Loop {
                var: x,
                start,
                end,
                step,
                body,
            } => {
                let i = var(*x);
                let _ = writeln!(
                    out,
                    "{pad}for (var {i}: u32 = {}; {i} < {}; {i} = {i} + {}) {{",
                    v(*start),
                    v(*end),
                    v(*step)
                );
                stack.push(Item::Close(d));
                stack.extend(body.iter().rev().map(|s| Item::Stmt(s, d + 1)));
            }
            Stmt::If { cond, body } => {
                let _ = writeln!(out, "{pad}if ({}) {{", v(*cond));
                stack.push(Item::Close(d));
                stack.extend(body.iter().rev().map(|s| Item::Stmt(s, d + 1)));
            }
            Stmt::ReturnIf(c) => {
                let _ = writeln!(out, "{pad}if ({}) {{ return; }}", v(*c));
            }
            Stmt::Store {
                binding,
                index,
                value,
            } => {
                let b: &Binding = &k.bindings[*binding];
                let word = if k.stores_f16(b) {
                    format!("f16({})", v(*value))
                } else {
                    wgsl::store(b.dtype, &v(*value))
                };
                let _ = writeln!(out, "{pad}b{binding}[{}] = {word};", v(*index));
            }
            Stmt::StoreShared {
                array,
                index,
                value,
            } => {
                let _ = writeln!(out, "{pad}s{array}[{}] = {};", v(*index), v(*value));
            }
            Stmt::Barrier => {
                let _ = writeln!(out, "{pad}workgroupBarrier();");
            }
        }
    }
}

fn function(k: &Kernel, f: &Function, out: &mut String) {
    let args: Vec<String> = f
        .args
        .iter()
        .map(|(a, t)| format!("{}: {}", v(*a), wgsl::reg_type(*t)))
        .collect();
    let ret = match f.result {
        Some((_, t)) => format!(" -> {}", wgsl::reg_type(t)),
        None => String::new(),
    };
    let _ = writeln!(out, "fn {}({}){ret} {{", f.name, args.join(", "));
    block(k, &f.body, 1, out);
    if let Some((r, _)) = f.result {
        let _ = writeln!(out, "    return {};", v(r));
    }
    out.push_str("}\n");
}

/// The declarations every kernel starts with: the parameters' struct and uniform, the storage
/// bindings and the workgroup arrays.
fn declarations(k: &Kernel, out: &mut String) {
    out.push_str("struct Info {\n");
    if k.params.is_empty() {
        out.push_str("    unused: u32,\n");
    }
    for p in &k.params {
        let _ = writeln!(out, "    {}: u32,", p.name);
    }
    out.push_str("};\n@group(0) @binding(0) var<uniform> info: Info;\n");
    for (i, b) in k.bindings.iter().enumerate() {
        let access = if b.writable { "read_write" } else { "read" };
        let elem = if k.stores_f16(b) {
            "f16"
        } else {
            wgsl::store_type(b.dtype)
        };
        let _ = writeln!(
            out,
            "@group(0) @binding({}) var<storage, {access}> b{i}: array<{elem}>;",
            i + 1
        );
    }
    for (i, (t, len)) in k.shared.iter().enumerate() {
        let _ = writeln!(
            out,
            "var<workgroup> s{i}: array<{}, {len}>;",
            wgsl::reg_type(*t)
        );
    }
}

/// The uniform buffer's bytes: the parameters in declaration order, padded to 16 bytes.
pub fn uniform_bytes(k: &Kernel) -> Vec<u8> {
    let mut bytes: Vec<u8> = k
        .params
        .iter()
        .flat_map(|p| p.value.to_le_bytes())
        .collect();
    let padded = bytes.len().div_ceil(16).max(1) * 16;
    bytes.resize(padded, 0);
    bytes
}

/// The WGSL source of a kernel. A kernel with f16 storage declares its float32 node buffers
/// as `array<f16>` (after `enable f16;`), converting to f32 on load and back on store.
pub fn render(k: &Kernel) -> String {
    let mut code = String::new();
    if k.bindings.iter().any(|b| k.stores_f16(b)) {
        code.push_str("enable f16;\n");
    }
    declarations(k, &mut code);
    let mut generated = String::new();
    match &k.template {
        Some(t) => {
            for f in &t.functions {
                function(k, f, &mut generated);
            }
            let (before, rest) = t
                .source
                .split_once(GENERATED_BEGIN)
                .unwrap_or(("", t.source));
            let after = rest
                .split_once(GENERATED_END)
                .map(|(_, a)| a)
                .unwrap_or(rest);
            generated.push_str(before);
            generated.push_str(after);
        }
        None => {
            let _ = writeln!(
                generated,
                "@compute @workgroup_size({})\nfn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{",
                k.workgroup_size
            );
            block(k, &k.body, 1, &mut generated);
            generated.push_str("}\n");
        }
    }
    code.push_str(&lamina_shaders::helpers_for(&generated));
    code.push_str(&generated);
    code
}

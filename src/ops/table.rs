//! The contract tables of docs/OPS.md, generated from [`Spec`](super::Spec): the docs cannot drift from
//! the code (tests/ops.rs compares them).

use super::Op;

/// Markdown: one section per op with its maths, inputs and params.
pub fn markdown() -> String {
    let mut s = String::new();
    for &op in Op::ALL {
        let spec = op.spec();
        s += &format!("### `{}`\n\n{}\n\n", op.name(), spec.doc);
        s += "| input | types | shape | |\n|---|---|---|---|\n";
        for r in spec.inputs {
            s += &format!(
                "| `{}` | {} | {} | {} |\n",
                r.name,
                r.kinds.name(),
                r.shape,
                if r.required { "required" } else { "optional" }
            );
        }
        s += &format!(
            "\nOutputs: {}.\n\n",
            spec.outputs
                .iter()
                .map(|o| format!("`{o}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if !spec.params.is_empty() {
            s += "| param | default | meaning |\n|---|---|---|\n";
            for p in spec.params {
                let d = p
                    .default
                    .map_or("**required**".to_string(), |v| format!("{v}"));
                s += &format!("| `{}` | {} | {} |\n", p.name, d, p.doc);
            }
            s += "\n";
        }
    }
    s
}

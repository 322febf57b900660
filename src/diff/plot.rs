//! SVG heatmaps: layers down, stages across, colour = log10 of a figure (max-abs or ULP), so a person sees
//! at a glance where differences start and how they grow. Written by hand: a few rectangles and labels.

use std::fmt::Write;

/// One cell: (layer, stage name, value). Layer None is drawn as the "global" row.
pub type Cell = (Option<u32>, String, f64);

fn colour(t: f64) -> String {
    // 0 → pale, 1 → dark red; equal cells (value 0) are drawn white.
    let t = t.clamp(0.0, 1.0);
    let r = 255.0 - 90.0 * t;
    let g = 240.0 * (1.0 - t);
    let b = 220.0 * (1.0 - t);
    format!("rgb({},{},{})", r as u8, g as u8, b as u8)
}

/// Draws cells as an SVG document. `what` names the figure (e.g. "log10 max |a-b|").
pub fn heatmap(title: &str, what: &str, cells: &[Cell]) -> String {
    let mut stages: Vec<String> = Vec::new();
    for (_, s, _) in cells {
        if !stages.contains(s) {
            stages.push(s.clone());
        }
    }
    let mut layers: Vec<Option<u32>> = cells.iter().map(|c| c.0).collect();
    layers.sort();
    layers.dedup();
    let logs: Vec<f64> = cells
        .iter()
        .filter(|c| c.2 > 0.0)
        .map(|c| c.2.log10())
        .collect();
    let (lo, hi) = logs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let (cw, ch, left, top) = (34.0, 16.0, 70.0, 110.0);
    let w = left + cw * stages.len() as f64 + 160.0;
    let h = top + ch * layers.len() as f64 + 40.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="monospace" font-size="10">"#
    );
    let _ = writeln!(
        s,
        r#"<text x="10" y="16" font-size="13">{}</text>"#,
        esc(title)
    );
    let _ = writeln!(
        s,
        r#"<text x="10" y="32">colour: {} (white: bit-identical)</text>"#,
        esc(what)
    );
    for (j, st) in stages.iter().enumerate() {
        let x = left + cw * j as f64 + cw / 2.0;
        let _ = writeln!(
            s,
            r#"<text x="{x}" y="{}" transform="rotate(-60 {x} {})">{}</text>"#,
            top - 4.0,
            top - 4.0,
            esc(st)
        );
    }
    for (i, l) in layers.iter().enumerate() {
        let y = top + ch * i as f64;
        let name = l.map_or("global".to_string(), |l| format!("layer {l}"));
        let _ = writeln!(s, r#"<text x="4" y="{}">{name}</text>"#, y + ch - 4.0);
    }
    for (l, st, v) in cells {
        let i = layers.iter().position(|x| x == l).unwrap_or(0);
        let j = stages.iter().position(|x| x == st).unwrap_or(0);
        let fill = if *v > 0.0 {
            let t = if hi > lo {
                (v.log10() - lo) / (hi - lo)
            } else {
                1.0
            };
            colour(0.15 + 0.85 * t)
        } else {
            "white".to_string()
        };
        let _ = writeln!(
            s,
            r##"<rect x="{}" y="{}" width="{cw}" height="{ch}" fill="{fill}" stroke="#ccc"><title>{} {}: {:e}</title></rect>"##,
            left + cw * j as f64,
            top + ch * i as f64,
            l.map_or("global".into(), |l| format!("layer {l}")),
            esc(st),
            v
        );
    }
    let lx = left + cw * stages.len() as f64 + 20.0;
    if lo.is_finite() {
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="{top}" width="14" height="14" fill="{}"/><text x="{}" y="{}">1e{:.1}</text>"#,
            colour(0.15),
            lx + 18.0,
            top + 11.0,
            lo
        );
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="{}" width="14" height="14" fill="{}"/><text x="{}" y="{}">1e{:.1}</text>"#,
            top + 20.0,
            colour(1.0),
            lx + 18.0,
            top + 31.0,
            hi
        );
    }
    s.push_str("</svg>\n");
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

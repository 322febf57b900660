//! One launch through a plugin kernel: the recorded inputs in, the recorded outputs' shapes out, compared
//! with the recorded outputs and with greta's f64 reference on the same inputs.

use super::plugin::{OutputSpec, Plugin};
use super::report::{MatrixCell, merge};
use crate::analysis::Source;
use crate::analysis::exec::{Recorded, against, inputs, recorded};
use crate::launch::Tensor;
use crate::tape::Launch;

/// (recorded outputs, the plugin's outputs, greta's f64 reference outputs)
type Runs = (Vec<Recorded>, Vec<Tensor>, Vec<Tensor>);

/// Runs launch `l` through `plugin` and reports it as a route-matrix cell (backend `plugin:<file>`).
pub fn plugin_cell(src: &Source, l: &Launch, plugin: &Plugin) -> MatrixCell {
    let b = &l.begin;
    let mut cell = MatrixCell {
        route: b.route_name(),
        backend: format!("plugin:{}", plugin.name()),
        vs_recorded: None,
        vs_f64: None,
        error: None,
    };
    let stage = b.stage_name();
    if !plugin.implements(stage) {
        cell.error = Some(format!(
            "not implemented by the plugin (no greta_kernel_{stage})"
        ));
        return cell;
    }
    let run = || -> Result<Runs, String> {
        let ins = inputs(src, l).map_err(|e| e.to_string())?;
        let rec = recorded(src, l).map_err(|e| e.to_string())?;
        let end = l.end.as_ref().ok_or("no recorded outputs")?;
        let specs: Vec<OutputSpec> = end
            .outputs
            .iter()
            .map(|r| OutputSpec {
                role: r.role.clone(),
                dtype: r.dtype,
                shape: r.shape.clone(),
            })
            .collect();
        let named: Vec<(String, &Tensor)> = b
            .inputs
            .iter()
            .zip(&ins)
            .map(|(r, t)| (r.role.clone(), t))
            .collect();
        let outs = plugin
            .run(stage, &b.route_name(), &b.params, &named, &specs)
            .map_err(|e| e.to_string())?;
        let reference = crate::analysis::exec::reference(l, &ins).map_err(|e| e.to_string())?;
        Ok((rec, outs, reference))
    };
    match run() {
        Ok((rec, outs, reference)) => {
            cell.vs_recorded = Some(merge(
                &rec.iter()
                    .zip(&outs)
                    .map(|(r, t)| against(r, t))
                    .collect::<Vec<_>>(),
            ));
            cell.vs_f64 = Some(merge(
                &reference
                    .iter()
                    .zip(&outs)
                    .map(|(rf, t)| {
                        let tb = t
                            .host_bytes()
                            .map(|b| b.as_slice().to_vec())
                            .unwrap_or_default();
                        let fb = rf
                            .host_bytes()
                            .map(|b| b.as_slice().to_vec())
                            .unwrap_or_default();
                        let shape: Vec<u64> = t.shape.iter().map(|&d| d as u64).collect();
                        crate::analysis::compare(t.dtype, &tb, rf.dtype, &fb, &shape)
                    })
                    .collect::<Vec<_>>(),
            ));
        }
        Err(e) => cell.error = Some(e),
    }
    cell
}

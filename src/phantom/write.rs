//! Writing a phantom to a folder: truth, mesh, radiographs, case.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::Phantom;
use crate::error::{Error, Result};
use crate::geometry::TriMesh;

/// Writes `mesh` as binary STL (80-byte header, little-endian f32; normals
/// from the right-hand rule), mm.
///
/// # Errors
/// [`Error::Io`] naming the file.
pub fn write_binary_stl(mesh: &TriMesh, path: &Path) -> Result<()> {
    let mut buf = Vec::with_capacity(84 + 50 * mesh.triangles.len());
    let mut header = [b' '; 80];
    let text = b"avnplan phantom femur, mm";
    header[..text.len()].copy_from_slice(text);
    buf.extend_from_slice(&header);
    let n = u32::try_from(mesh.triangles.len()).map_err(|_| Error::LimitExceeded {
        what: "triangles".into(),
        limit: u32::MAX as usize,
        actual: mesh.triangles.len(),
    })?;
    buf.extend_from_slice(&n.to_le_bytes());
    for i in 0..mesh.triangles.len() {
        let [a, b, c] = mesh.triangle(i);
        let nrm = (b - a)
            .cross(&(c - a))
            .try_normalize(0.0)
            .unwrap_or_default();
        for v in [nrm, a.coords, b.coords, c.coords] {
            for k in 0..3 {
                buf.extend_from_slice(&(v[k] as f32).to_le_bytes());
            }
        }
        buf.extend_from_slice(&0u16.to_le_bytes());
    }
    write_file(path, &buf)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))
}

/// The phantom's case as a contract v1 `case.json` document: views with
/// their geometry as a `projection` (form 1) and the annotations, side,
/// cortical thickness and (when the case has one) the bone mesh `femur.stl`
/// in the world frame. Constraints are left at their defaults.
///
/// (Integrator: once the io module has a case writer, this can be replaced
/// by it; the output must stay equivalent.)
#[must_use]
pub fn case_json(ph: &Phantom) -> serde_json::Value {
    let pt = |p: &nalgebra::Point2<f64>| json!([p.x, p.y]);
    let views: Vec<serde_json::Value> = ph
        .case
        .views
        .iter()
        .map(|v| {
            let m = v.projection.matrix();
            let rows: Vec<[f64; 4]> = (0..3)
                .map(|r| [m[(r, 0)], m[(r, 1)], m[(r, 2)], m[(r, 3)]])
                .collect();
            let a = &v.annotations;
            let mut ann = serde_json::Map::new();
            ann.insert(
                "head_outline_px".into(),
                a.head_outline_px.iter().map(pt).collect(),
            );
            if let Some(e) = &a.neck_edges_px {
                ann.insert(
                    "neck_edges_px".into(),
                    json!([
                        e[0].iter().map(pt).collect::<Vec<_>>(),
                        e[1].iter().map(pt).collect::<Vec<_>>()
                    ]),
                );
            }
            if let Some(e) = &a.shaft_edges_px {
                ann.insert(
                    "shaft_edges_px".into(),
                    json!([
                        e[0].iter().map(pt).collect::<Vec<_>>(),
                        e[1].iter().map(pt).collect::<Vec<_>>()
                    ]),
                );
            }
            if !a.lesion_outline_px.is_empty() {
                ann.insert(
                    "lesion_outline_px".into(),
                    a.lesion_outline_px.iter().map(pt).collect(),
                );
            }
            if let Some(e) = &a.entry_px {
                ann.insert("entry_px".into(), pt(e));
            }
            json!({
                "name": v.name,
                "image_size_px": v.image_size_px,
                "projection": rows,
                "annotations": ann,
            })
        })
        .collect();
    let mut doc = serde_json::Map::new();
    doc.insert("schema".into(), json!("avnplan.case/1"));
    doc.insert("side".into(), json!(ph.case.side));
    doc.insert("views".into(), json!(views));
    if ph.case.bone_mesh.is_some() {
        doc.insert(
            "bone_mesh".into(),
            json!({"path": ph.truth.bone_mesh, "frame": "world"}),
        );
    }
    doc.insert(
        "cortical_thickness_mm".into(),
        json!(ph.case.cortical_thickness_mm),
    );
    serde_json::Value::Object(doc)
}

/// Writes the phantom into `dir` (created if missing): `case.json`,
/// `truth.json`, the bone mesh `femur.stl` (binary STL, world mm) and one
/// radiograph PNG per view (`<view name>.png`). Same phantom, same bytes.
///
/// # Errors
/// [`Error::Io`] naming the file that could not be written.
pub fn write_phantom_dir(ph: &Phantom, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let truth =
        serde_json::to_vec_pretty(&ph.truth).map_err(|e| Error::invalid("truth", e.to_string()))?;
    write_file(&dir.join("truth.json"), &truth)?;
    let case = serde_json::to_vec_pretty(&case_json(ph))
        .map_err(|e| Error::invalid("case", e.to_string()))?;
    write_file(&dir.join("case.json"), &case)?;
    write_binary_stl(&ph.mesh, &dir.join(&ph.truth.bone_mesh))?;
    for (i, v) in ph.truth.views.iter().enumerate() {
        let png = ph.radiograph(i)?.to_png()?;
        write_file(&dir.join(&v.radiograph), &png)?;
    }
    Ok(())
}

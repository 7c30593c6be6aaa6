//! Mesh files (minimal STL reader; the full reader with OBJ, PLY and the
//! contract's mesh checks replaces this module).

use std::path::Path;

use nalgebra::Point3;

use crate::error::{Error, Result};
use crate::geometry::TriMesh;

/// Reads a binary or ASCII STL mesh (mm) from `path`.
///
/// Returns the mesh and warnings (none from this reader).
///
/// # Errors
/// [`Error::Io`] when unreadable, [`Error::LimitExceeded`] above 1 GiB or
/// the triangle limit, [`Error::Mesh`] for another extension or an
/// unparsable or invalid mesh.
pub fn load_mesh(path: &Path) -> Result<(TriMesh, Vec<String>)> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if ext.as_deref() != Some("stl") {
        return Err(Error::mesh(
            path.display().to_string(),
            "unsupported mesh format (expected .stl)",
        ));
    }
    let bytes = super::json::read_limited(path)?;
    let stl = stl_io::read_stl(&mut std::io::Cursor::new(bytes)).map_err(|e| {
        Error::mesh(
            path.display().to_string(),
            format!("not a valid STL file: {e}"),
        )
    })?;
    let vertices = stl
        .vertices
        .iter()
        .map(|v| Point3::new(f64::from(v[0]), f64::from(v[1]), f64::from(v[2])))
        .collect();
    let mut triangles = Vec::with_capacity(stl.faces.len());
    for f in &stl.faces {
        let idx = f.vertices.map(|i| u32::try_from(i).unwrap_or(u32::MAX));
        triangles.push(idx);
    }
    let mesh = TriMesh::new(vertices, triangles)?;
    Ok((mesh, Vec::new()))
}

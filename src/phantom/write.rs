//! Writing a phantom to a folder: case, truth, mesh, radiographs.

use std::io::Write;
use std::path::Path;

use super::Phantom;
use crate::error::{Error, Result};
use crate::io::case::{case_to_file, CaseFile, MeshFileNames};
use crate::io::json::to_json_string;
use crate::io::mesh::write_stl;

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))
}

/// The phantom's case as a contract v1 case file (views as `projection`
/// matrices, form 1; the bone mesh, when the case has one, as
/// [`super::Truth::bone_mesh`] in the world frame, or as
/// [`super::Truth::own_frame_mesh`] in its own frame).
///
/// # Errors
/// As [`case_to_file`] (not expected for a generated phantom).
pub fn case_file(ph: &Phantom) -> Result<CaseFile> {
    case_to_file(
        &ph.case,
        &MeshFileNames {
            bone_mesh: Some(
                ph.truth
                    .own_frame_mesh
                    .clone()
                    .unwrap_or_else(|| ph.truth.bone_mesh.clone()),
            ),
            lesion_mesh: None,
        },
    )
}

/// Writes the phantom into `dir` (created if missing): `case.json`,
/// `truth.json`, the bone mesh `femur.stl` (binary STL, world mm) and one
/// radiograph PNG per view (`<view name>.png`, see
/// [`Phantom::radiograph`]); with a mesh in its own frame, that mesh too
/// ([`super::Truth::own_frame_mesh`]). Same phantom, same bytes.
///
/// # Errors
/// [`Error::Io`] naming the file that could not be written.
pub fn write_phantom_dir(ph: &Phantom, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_file(
        &dir.join("truth.json"),
        to_json_string(&ph.truth)?.as_bytes(),
    )?;
    write_file(
        &dir.join("case.json"),
        to_json_string(&case_file(ph)?)?.as_bytes(),
    )?;
    write_stl(&dir.join(&ph.truth.bone_mesh), &ph.mesh)?;
    if let (Some(name), Some((own, _))) = (&ph.truth.own_frame_mesh, &ph.case.bone_mesh) {
        write_stl(&dir.join(name), own)?;
    }
    for (i, v) in ph.truth.views.iter().enumerate() {
        let png = ph.radiograph(i)?.to_png()?;
        write_file(&dir.join(&v.radiograph), &png)?;
    }
    Ok(())
}

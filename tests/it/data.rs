//! Test data: the real femur meshes, read from `../shared/data/femur` (beside
//! the clone) or `$AVNPLAN_FEMUR_DIR`; never copied into the repository.

use std::path::PathBuf;

use avnplan::geometry::TriMesh;

/// The folder holding `lhdl_ct_right/` and `tlem2_right/`, if present.
pub fn femur_dir() -> Option<PathBuf> {
    let env = std::env::var_os("AVNPLAN_FEMUR_DIR").map(PathBuf::from);
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        manifest.join("../shared/data/femur"),
        manifest.join("../../shared/data/femur"),
    ];
    env.into_iter().chain(candidates).find(|p| p.is_dir())
}

/// One of the real femur meshes (`"lhdl_ct_right"` or `"tlem2_right"`), or
/// `None` (the caller prints that it skipped).
pub fn femur_mesh(name: &str) -> Option<TriMesh> {
    let path = femur_dir()?.join(name).join("femur_r.stl");
    let (mesh, _) = avnplan::io::mesh::load_mesh(&path).ok()?;
    Some(mesh)
}

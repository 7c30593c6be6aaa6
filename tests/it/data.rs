//! Test data: the real femur meshes, read from `../shared/data/femur` (beside
//! the clone) or `$AVNPLAN_FEMUR_DIR`; never copied into the repository.

use std::path::PathBuf;

use nalgebra::{Rotation3, Vector3};

use avnplan::anatomy::{BoneSource, FemurLandmarks, HipModel, Lesion};
use avnplan::geometry::{BoneSurface, Ellipsoid, TriMesh};
use avnplan::{Case, Side};

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

/// A real femur with the anterosuperior 3.7 mL lesion of the planning bench
/// and the plan tests (`speed`, `tlem`), with its landmarks-based axes; `None`
/// when the mesh is absent.
pub fn real_model(name: &str) -> Option<(HipModel, Case)> {
    Some(model_on_mesh(femur_mesh(name)?))
}

/// The model of [`real_model`] on any right femur mesh: landmarks, neck and
/// shaft axes from the mesh, and an ellipsoid lesion (semi-axes 9 x 9 x 11
/// mm, ~3.7 mL) centred 0.4 head radii from the head centre, anterosuperior.
pub fn model_on_mesh(mesh: TriMesh) -> (HipModel, Case) {
    let lm = FemurLandmarks::from_mesh(&mesh, Some(Side::Right)).expect("landmarks");
    let sup = lm.frame.world_from_head.rotation * Vector3::z();
    let ant = lm.frame.anterior().into_inner();
    let dir = (sup * 0.8 + ant * 0.6).normalize();
    let center = lm.head.center + dir * (0.4 * lm.head.radius_mm);
    let rot = Rotation3::face_towards(&dir, &sup);
    let lesion =
        Lesion::Ellipsoid(Ellipsoid::new(center, Vector3::new(9.0, 9.0, 11.0), rot).unwrap());
    let bone = BoneSurface::new(mesh).expect("bone surface");
    let mut model = HipModel::new(Side::Right, bone, BoneSource::Mesh, lm.head, lesion);
    model.neck_axis = Some(lm.neck_axis);
    model.shaft_axis = Some(lm.shaft_axis);
    model.lesser_trochanter_level_mm = Some(lm.lesser_trochanter_level_mm);
    (model, Case::new(Side::Right, Vec::new()))
}

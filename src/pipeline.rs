//! The whole job in one call: a [`Case`] to a [`HipModel`] to a [`Plan`],
//! and the file-level helpers the command line uses.
//!
//! * Bone: the case's mesh (world frame) when given; otherwise the
//!   conservative surface reconstructed from the views' silhouettes
//!   ([`crate::reconstruction`]).
//! * Head, neck and shaft axes, lesser trochanter: found on the mesh
//!   ([`crate::anatomy::FemurLandmarks`]) or reconstructed from the views.
//! * Lesion: the case's explicit lesion when given (ellipsoid, mesh, or
//!   Kerboul arcs placed in the head-neck frame), else the ellipsoid
//!   reconstructed from the lesion outlines.

use crate::anatomy::{BoneSource, FemurLandmarks, HipModel, Lesion};
use crate::case::{Case, LesionSpec, MeshFrame};
use crate::error::{Error, Result};
use crate::geometry::BoneSurface;
use crate::planning::{plan_with, Plan, PlanOptions};
use crate::reconstruction::{reconstruct, Reconstruction, ReconstructionOptions};

/// Options of the whole pipeline.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PipelineOptions {
    /// Reconstruction options.
    pub reconstruction: ReconstructionOptions,
    /// Planner options.
    pub planning: PlanOptions,
}

/// A model with how it was made.
#[derive(Debug)]
#[non_exhaustive]
pub struct BuiltModel {
    /// The model the planner uses.
    pub model: HipModel,
    /// The reconstruction from the views, when the views carried enough
    /// annotations for one.
    pub reconstruction: Option<Reconstruction>,
    /// Warnings for the user.
    pub warnings: Vec<String>,
}

/// Builds the planner's model for a case (see the module docs).
///
/// # Errors
/// [`Error::Invalid`] when the case lacks what a model needs (no mesh and
/// no silhouettes, no lesion), when a mesh is in its own frame
/// (registration is not available in this version), or when the lesion lies
/// outside the femoral head.
pub fn build_model(case: &Case, opts: &PipelineOptions) -> Result<BuiltModel> {
    let mut warnings = Vec::new();
    let recon = match reconstruct(&case.views, &opts.reconstruction) {
        Ok(r) => {
            warnings.extend(r.warnings.iter().cloned());
            Some(r)
        }
        Err(e) => {
            if case.bone_mesh.is_none() {
                return Err(e);
            }
            warnings.push(format!("no reconstruction from the views: {e}"));
            None
        }
    };
    let (bone, source, head, neck, shaft, lt, frame, margin) = match &case.bone_mesh {
        Some((_, MeshFrame::Own)) => {
            return Err(Error::invalid(
                "bone_mesh.frame",
                "\"own\" needs 2D/3D registration to the views, which this version does not provide; give the mesh in the world frame",
            ))
        }
        Some((mesh, MeshFrame::World)) => {
            let lm = FemurLandmarks::from_mesh(mesh, Some(case.side)).map_err(|e| e.in_field("bone_mesh"))?;
            let bone = BoneSurface::new(mesh.clone()).map_err(|e| e.in_field("bone_mesh"))?;
            (
                bone,
                BoneSource::Mesh,
                lm.head,
                Some(lm.neck_axis),
                Some(lm.shaft_axis),
                Some(lm.lesser_trochanter_level_mm),
                Some(lm.frame),
                0.0,
            )
        }
        None => {
            let r = recon.as_ref().ok_or_else(|| Error::invalid("views", "no reconstruction"))?;
            let mesh = r.bone_mesh.clone().ok_or_else(|| {
                Error::invalid(
                    "views",
                    "without bone_mesh, neck_edges_px and shaft_edges_px are needed in two views to reconstruct the femur",
                )
            })?;
            let bone = BoneSurface::new(mesh)?;
            (
                bone,
                BoneSource::Reconstructed,
                r.head.sphere,
                r.neck_axis,
                r.shaft_axis,
                r.lesser_trochanter_level_mm,
                r.frame(case.side),
                0.0,
            )
        }
    };
    let lesion = match &case.lesion {
        Some(LesionSpec::Ellipsoid(e)) => Lesion::Ellipsoid(*e),
        Some(LesionSpec::Mesh(m, MeshFrame::World)) => Lesion::from_mesh(m.clone()).map_err(|e| e.in_field("lesion.mesh"))?,
        Some(LesionSpec::Mesh(_, MeshFrame::Own)) => {
            return Err(Error::invalid(
                "lesion.mesh.frame",
                "\"own\" needs 2D/3D registration, which this version does not provide",
            ))
        }
        Some(LesionSpec::Kerboul(k)) => {
            let frame = frame.ok_or_else(|| {
                Error::invalid("lesion.kerboul", "the head-neck frame is unknown (no neck axis)")
            })?;
            Lesion::kerboul(head, frame, *k).map_err(|e| e.in_field("lesion.kerboul"))?
        }
        None => {
            let e = recon.as_ref().and_then(|r| r.lesion.as_ref()).ok_or_else(|| {
                Error::invalid(
                    "lesion",
                    "no lesion: give `lesion` or `lesion_outline_px` in two or more views",
                )
            })?;
            Lesion::Ellipsoid(e.ellipsoid)
        }
    };
    let c = lesion.centroid_mm();
    if !head.contains(&c) || !bone.contains(&c) {
        return Err(Error::invalid(
            "lesion",
            format!(
                "the lesion's centre lies outside the femoral head ({:.1} mm from the head centre, radius {:.1} mm)",
                (c - head.center).norm(),
                head.radius_mm
            ),
        ));
    }
    let frac = lesion.head_fraction(&head);
    if frac > 0.6 {
        warnings.push(format!("the lesion fills {:.0}% of the head", frac * 100.0));
    }
    let mut model = HipModel::new(case.side, bone, source, head, lesion);
    model.neck_axis = neck;
    model.shaft_axis = shaft;
    model.lesser_trochanter_level_mm = lt;
    model.margin_mm = margin;
    Ok(BuiltModel {
        model,
        reconstruction: recon,
        warnings,
    })
}

/// Builds the model and plans (see [`build_model`] and
/// [`crate::planning::plan_with`]).
///
/// # Errors
/// As [`build_model`].
pub fn plan_case(case: &Case, opts: &PipelineOptions) -> Result<(BuiltModel, Plan)> {
    let built = build_model(case, opts)?;
    let mut plan = plan_with(&built.model, case, &opts.planning)?;
    let mut w = built.warnings.clone();
    w.append(&mut plan.warnings);
    plan.warnings = w;
    Ok((built, plan))
}

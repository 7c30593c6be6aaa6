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

use std::path::Path;

use crate::anatomy::{BoneSource, FemurLandmarks, HeadNeckFrame, HipModel, Lesion, LesionMesh};
use crate::case::{Case, LesionSpec, MeshFrame};
use crate::error::{Error, Result};
use crate::geometry::BoneSurface;
use crate::io::case::EllipsoidWire;
use crate::io::load_case;
use crate::io::model::{AxisWire, ModelFile, ModelHeadWire, ModelLesionWire};
use crate::io::plan::{
    BoneSource as WireBone, DownTheBarrelWire, HeadWire, PlanFile, PlanModelWire,
    PlanStatus as WirePlanStatus, TrajectoryViewWire, TrajectoryWire,
};
use crate::phantom::{write_phantom_dir, Phantom, PhantomOptions};
use crate::planning::{plan_with, Plan, PlanOptions};
use crate::planning::{PlanStatus, Trajectory};
use crate::reconstruction::ellipsoid_outline_px;
use crate::reconstruction::{reconstruct, Reconstruction, ReconstructionOptions};
use crate::render::{scene_svg, view_overlay, Colour, GrayImage, NeedleDraw, Scene3dItem};

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
            let frame = match (r.neck_axis(), r.shaft_axis()) {
                (Some(n), Some(s)) => HeadNeckFrame::new(
                    r.head.sphere.center,
                    &n.direction.into_inner(),
                    &s.direction.into_inner(),
                    case.side,
                )
                .ok(),
                _ => None,
            };
            (
                bone,
                BoneSource::Reconstructed,
                r.head.sphere,
                r.neck_axis(),
                r.shaft_axis(),
                None,
                frame,
                0.0,
            )
        }
    };
    let lesion = match &case.lesion {
        Some(LesionSpec::Ellipsoid(e)) => Lesion::Ellipsoid(*e),
        Some(LesionSpec::Mesh(m, MeshFrame::World)) => LesionMesh::new(m.clone())
            .map(Lesion::Mesh)
            .map_err(|e| e.in_field("lesion.mesh"))?,
        Some(LesionSpec::Mesh(_, MeshFrame::Own)) => {
            return Err(Error::invalid(
                "lesion.mesh.frame",
                "\"own\" needs 2D/3D registration, which this version does not provide",
            ))
        }
        Some(LesionSpec::Kerboul(k)) => {
            let frame = frame.ok_or_else(|| {
                Error::invalid(
                    "lesion.kerboul",
                    "the head-neck frame is unknown (no neck axis)",
                )
            })?;
            Lesion::kerboul(head, frame, *k).map_err(|e| e.in_field("lesion.kerboul"))?
        }
        None => {
            let e = recon
                .as_ref()
                .and_then(|r| r.lesion.as_ref())
                .ok_or_else(|| {
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

/// Pixels per mm of a view at a world point (mean of the projection's two
/// row gains there).
fn px_per_mm(p: &crate::imaging::Projection, at: &nalgebra::Point3<f64>) -> f64 {
    let j = p.jacobian(at);
    0.5 * (j.row(0).norm() + j.row(1).norm())
}

/// The plan's JSON form (contract `avnplan.plan/1`).
#[must_use]
pub fn plan_to_file(built: &BuiltModel, plan: &Plan) -> PlanFile {
    let m = &built.model;
    let traj = |t: &Trajectory| TrajectoryWire {
        entry_mm: t.entry_mm.coords.into(),
        tip_mm: t.tip_mm.coords.into(),
        length_mm: t.length_mm,
        min_clearance_mm: t.min_clearance_mm,
        tip_to_surface_mm: t.tip_to_surface_mm,
        incidence_deg: t.incidence_rad.to_degrees(),
        views: t
            .views
            .iter()
            .map(|v| TrajectoryViewWire {
                name: v.name.clone(),
                entry_px: [v.entry_px.x, v.entry_px.y],
                tip_px: [v.tip_px.x, v.tip_px.y],
            })
            .collect(),
        down_the_barrel: DownTheBarrelWire {
            primary_deg: t.down_the_barrel_rad.0.to_degrees(),
            secondary_deg: t.down_the_barrel_rad.1.to_degrees(),
        },
        breach_probability: t.breach_probability,
        clearance_p05_mm: t.clearance_p05_mm,
    };
    PlanFile {
        schema: crate::io::plan::PLAN_SCHEMA.to_string(),
        status: match plan.status {
            PlanStatus::Ok => WirePlanStatus::Ok,
            PlanStatus::NoSafeTrajectory => WirePlanStatus::NoSafeTrajectory,
        },
        reasons: plan
            .reasons
            .iter()
            .map(|(r, n)| (r.as_str().to_string(), *n))
            .collect(),
        trajectories: plan.trajectories.iter().map(traj).collect(),
        coverage: plan.coverage.clamp(0.0, 1.0),
        model: PlanModelWire {
            head: HeadWire {
                center_mm: m.head.center.coords.into(),
                radius_mm: m.head.radius_mm,
            },
            lesion_volume_ml: m.lesion.volume_ml(),
            bone: match m.bone_source {
                BoneSource::Mesh => WireBone::Mesh,
                _ => WireBone::Reconstructed,
            },
            world_from_mesh: None,
            registration_margin_mm: None,
        },
        warnings: plan.warnings.clone(),
        entry_zone_rule: plan.entry_zone.map(|z| z.rule.as_str().to_string()),
    }
}

/// One picture to write: a file name and its bytes.
#[derive(Debug, Clone)]
pub struct Picture {
    /// File name, e.g. `AP.svg`.
    pub name: String,
    /// The file's bytes.
    pub bytes: Vec<u8>,
}

/// A file name made from a view name: letters, digits, `-` and `_` kept,
/// anything else replaced by `_`.
#[must_use]
pub fn safe_file_stem(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "view".into()
    } else {
        s
    }
}

/// One overlay per view of the case (bone silhouette of the model, the
/// view's annotations, the model's lesion outline, each planned needle with
/// entry and tip, scale bar), plus a 3D view, as SVG. `backgrounds` gives an
/// optional radiograph per view (same order as `case.views`).
#[must_use]
pub fn overlays(
    case: &Case,
    built: &BuiltModel,
    plan: &Plan,
    backgrounds: &[Option<GrayImage>],
    png: bool,
) -> Vec<Picture> {
    let m = &built.model;
    let lesion_e = m.lesion.equivalent_ellipsoid();
    let mut out = Vec::new();
    for (k, view) in case.views.iter().enumerate() {
        let p = &view.projection;
        let scale = px_per_mm(p, &m.head.center);
        let needles: Vec<NeedleDraw> = plan
            .trajectories
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let mid = nalgebra::center(&t.entry_mm, &t.tip_mm);
                Some(NeedleDraw {
                    entry_px: p.try_project(&t.entry_mm)?,
                    tip_px: p.try_project(&t.tip_mm)?,
                    width_px: case.constraints.needle_diameter_mm * px_per_mm(p, &mid),
                    label: format!("N{}", i + 1),
                    colour: Colour::NEEDLES[i % Colour::NEEDLES.len()],
                })
            })
            .collect();
        let outline = ellipsoid_outline_px(p, &lesion_e, 96).ok();
        let bg = backgrounds.get(k).and_then(|b| b.as_ref());
        let o = view_overlay(
            view,
            Some(m.bone.mesh()),
            outline.as_deref(),
            &needles,
            bg,
            if scale > 0.0 { 1.0 / scale } else { f64::NAN },
        );
        let stem = safe_file_stem(&view.name);
        out.push(Picture {
            name: format!("{stem}.svg"),
            bytes: o.to_svg().into_bytes(),
        });
        if png {
            if let Ok(b) = o.to_png() {
                out.push(Picture {
                    name: format!("{stem}.png"),
                    bytes: b,
                });
            }
        }
    }
    // 3D: looking from anterior (-y in LPS) with superior up.
    let mut items: Vec<Scene3dItem> = plan
        .trajectories
        .iter()
        .enumerate()
        .map(|(i, t)| Scene3dItem::Segment {
            a: t.entry_mm,
            b: t.tip_mm,
            radius_mm: case.constraints.needle_radius_mm(),
            colour: Colour::NEEDLES[i % Colour::NEEDLES.len()],
            label: Some(format!("N{}", i + 1)),
        })
        .collect();
    items.push(Scene3dItem::Sphere {
        center: m.head.center,
        radius_mm: m.head.radius_mm,
        colour: Colour::ANNOTATION,
        label: Some("head".into()),
    });
    for f in &case.forbidden_zones {
        items.push(Scene3dItem::Sphere {
            center: f.center,
            radius_mm: f.radius_mm,
            colour: Colour::LESION,
            label: Some("forbidden".into()),
        });
    }
    items.push(Scene3dItem::Ellipsoid {
        ellipsoid: lesion_e,
        colour: Colour::LESION,
        label: Some("lesion".into()),
    });
    let view_dir = nalgebra::Unit::new_normalize(nalgebra::Vector3::new(0.0, 1.0, 0.0));
    out.push(Picture {
        name: "scene3d.svg".into(),
        bytes: scene_svg(
            m.bone.mesh(),
            &view_dir,
            &nalgebra::Vector3::z(),
            &items,
            [900, 900],
        )
        .into_bytes(),
    });
    out
}

/// Reads a case file, plans, and returns the plan file and (when
/// `pictures`) one SVG overlay per view plus a 3D view.
///
/// # Errors
/// As [`crate::io::load_case`] and [`build_model`].
pub fn plan_file(path: &Path, pictures: bool) -> Result<(PlanFile, Vec<Picture>)> {
    let (case, mut warnings) = load_case(path)?;
    let (built, mut plan) = plan_case(&case, &PipelineOptions::default())?;
    warnings.append(&mut plan.warnings);
    plan.warnings = warnings;
    let file = plan_to_file(&built, &plan);
    let pics = if pictures {
        // Views that name a DICOM file are drawn on its pixels.
        let backgrounds = crate::io::dicom::case_view_images(path)?;
        overlays(&case, &built, &plan, &backgrounds, false)
    } else {
        Vec::new()
    };
    Ok((file, pics))
}

/// Writes pictures into `dir` (created if needed).
///
/// # Errors
/// [`Error::Io`] when the folder or a file cannot be written.
pub fn write_pictures(dir: &Path, pictures: &[Picture]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for p in pictures {
        let f = dir.join(&p.name);
        std::fs::write(&f, &p.bytes).map_err(|e| Error::io(&f, e))?;
    }
    Ok(())
}

fn axis_wire(a: &crate::geometry::Axis) -> AxisWire {
    AxisWire {
        point_mm: a.point.coords.into(),
        direction: a.direction.into_inner().into(),
    }
}

/// The reconstruction's JSON form (contract `avnplan.model/1`).
#[must_use]
pub fn model_to_file(r: &Reconstruction) -> ModelFile {
    ModelFile {
        schema: crate::io::model::MODEL_SCHEMA.to_string(),
        head: ModelHeadWire {
            center_mm: r.head.sphere.center.coords.into(),
            radius_mm: r.head.sphere.radius_mm,
            rms_px: r.head.rms_px,
            center_sd_mm: r.head.center_sd_mm,
        },
        neck_axis: r.neck_axis().as_ref().map(axis_wire),
        shaft_axis: r.shaft_axis().as_ref().map(axis_wire),
        lesion: r.lesion.as_ref().map(|l| ModelLesionWire {
            center_mm: l.ellipsoid.center.coords.into(),
            volume_ml: l.volume_ml,
            ellipsoid: EllipsoidWire {
                center_mm: l.ellipsoid.center.coords.into(),
                semi_axes_mm: l.ellipsoid.semi_axes_mm.into(),
                rotation: {
                    let m = l.ellipsoid.rotation.matrix();
                    [
                        [m[(0, 0)], m[(0, 1)], m[(0, 2)]],
                        [m[(1, 0)], m[(1, 1)], m[(1, 2)]],
                        [m[(2, 0)], m[(2, 1)], m[(2, 2)]],
                    ]
                },
            },
        }),
        entry_mm: r.entry.as_ref().map(|e| e.point.coords.into()),
    }
}

/// Reads a case file and returns its reconstruction as a model file.
///
/// # Errors
/// As [`crate::io::load_case`] and [`reconstruct`].
pub fn model_file(path: &Path) -> Result<ModelFile> {
    let (case, _) = load_case(path)?;
    let opts = ReconstructionOptions {
        build_mesh: false,
        ..ReconstructionOptions::default()
    };
    let r = reconstruct(&case.views, &opts)?;
    Ok(model_to_file(&r))
}

/// Generates phantom `seed` and writes it into `dir` (see
/// [`crate::phantom::write_phantom_dir`]).
///
/// # Errors
/// As [`crate::phantom::Phantom::generate`] and the writer.
pub fn write_phantom(seed: u64, noise_px: f64, with_mesh: bool, dir: &Path) -> Result<()> {
    let opts = PhantomOptions {
        noise_px,
        with_mesh,
        ..PhantomOptions::default()
    };
    let ph = Phantom::generate(seed, &opts)?;
    write_phantom_dir(&ph, dir)
}

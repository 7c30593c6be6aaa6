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
//! * A bone mesh in its own frame (`bone_mesh.frame = "own"`) is first
//!   registered to the views ([`crate::registration::register`]); the
//!   planner's margin is then widened by [`registration_margin_mm`], and a
//!   registration that did not converge gives `no_safe_trajectory` with the
//!   reason `registration_not_converged`, never a plan on that pose.

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
use crate::reconstruction::{reconstruct, Reconstruction, ReconstructionOptions, K_SIGMA};
use crate::registration::{register, Registration, RegistrationOptions, RegistrationStatus};
use crate::render::{scene_svg, view_overlay, Colour, GrayImage, NeedleDraw, Scene3dItem};

/// Options of the whole pipeline.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PipelineOptions {
    /// Reconstruction options.
    pub reconstruction: ReconstructionOptions,
    /// Planner options.
    pub planning: PlanOptions,
    /// Registration options (for a bone mesh in its own frame; the side and
    /// the noise are taken from the case).
    pub registration: RegistrationOptions,
    /// Monte Carlo of the breach probability ([`crate::uncertainty`]).
    /// Default: `samples = 0`, i.e. run only when the case sets
    /// `constraints.max_breach_probability` (then with
    /// [`crate::uncertainty::DEFAULT_SAMPLES`] samples: a constraint is
    /// never skipped). Opt-in otherwise because on views-only models the
    /// estimate is still pessimistic (see the README's limits).
    pub uncertainty: crate::uncertainty::UncertaintyOptions,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            reconstruction: ReconstructionOptions::default(),
            planning: PlanOptions::default(),
            registration: RegistrationOptions::default(),
            uncertainty: crate::uncertainty::UncertaintyOptions {
                samples: 0,
                ..Default::default()
            },
        }
    }
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
    /// The registration of a bone mesh given in its own frame.
    pub registration: Option<Registration>,
    /// The margin added to the planner's rules for the registration's
    /// uncertainty, mm ([`registration_margin_mm`]).
    pub registration_margin_mm: Option<f64>,
}

/// The plan's reason when the registration of the bone mesh did not converge.
pub const REGISTRATION_NOT_CONVERGED: &str = "registration_not_converged";

/// The margin the planner adds for a registration's uncertainty, mm:
/// [`K_SIGMA`] (3) times the largest one-sigma displacement
/// ([`Registration::displacement_sd_mm`]) over the points that matter: the
/// head sphere (26 directions) and the neck walls (rings of radius 0.7 r
/// around the neck axis, 0.5 r to r + 10 mm from the head centre, 8 points
/// each). The displacement's variance is a quadratic function of the point,
/// so its maximum over these extremes bounds the region between them.
#[must_use]
pub fn registration_margin_mm(reg: &Registration) -> f64 {
    let lm = &reg.landmarks;
    let pose = &reg.world_from_mesh;
    let h = pose * lm.head.center;
    let r = lm.head.radius_mm;
    let n = pose.rotation * lm.neck_axis.direction.into_inner();
    let mut pts = Vec::new();
    for i in -1..=1 {
        for j in -1..=1 {
            for k in -1..=1 {
                if let Some(d) = nalgebra::Vector3::new(f64::from(i), f64::from(j), f64::from(k))
                    .try_normalize(1e-9)
                {
                    pts.push(h + d * r);
                }
            }
        }
    }
    let a = if n.x.abs() < 0.6 {
        nalgebra::Vector3::x()
    } else {
        nalgebra::Vector3::y()
    };
    let e1 = n.cross(&a).normalize();
    let e2 = n.cross(&e1);
    for s in 0..5 {
        let t = 0.5 * r + (0.5 * r + 10.0) * f64::from(s) / 4.0;
        for q in 0..8 {
            let th = std::f64::consts::TAU * f64::from(q) / 8.0;
            pts.push(h - n * t + (e1 * th.cos() + e2 * th.sin()) * (0.7 * r));
        }
    }
    let sd = pts
        .iter()
        .map(|p| reg.displacement_sd_mm(p))
        .fold(0.0, f64::max);
    K_SIGMA * sd
}

/// Builds the planner's model for a case (see the module docs).
///
/// # Errors
/// [`Error::Invalid`] when the case lacks what a model needs (no mesh and
/// no silhouettes, no lesion), or when the lesion lies outside the femoral
/// head (only a warning when the registration did not converge); the
/// errors of [`register`] for a mesh in its own frame.
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
    let mut registration: Option<Registration> = None;
    let mut reg_margin: Option<f64> = None;
    let (bone, source, head, neck, shaft, lt, frame, margin) = match &case.bone_mesh {
        Some((own, MeshFrame::Own)) => {
            let mut ro = opts.registration.clone();
            ro.side = Some(case.side);
            ro.noise_px = case.annotation_noise_px;
            let reg = register(own, &case.views, &ro)?;
            let mesh = own.transformed(&reg.world_from_mesh);
            let lm = reg.landmarks.clone();
            let pose = reg.world_from_mesh;
            let bone = BoneSurface::new(mesh).map_err(|e| e.in_field("bone_mesh"))?;
            let margin = registration_margin_mm(&reg);
            if reg.status == RegistrationStatus::Ok {
                warnings.push(format!(
                    "bone mesh registered to the views: rms {:.2} px, head centre sd {:.2} mm, rotation sd {:.2} deg; margin widened by {margin:.2} mm",
                    reg.rms_px,
                    reg.head_center_sd_mm,
                    reg.rotation_sd_rad.to_degrees()
                ));
            } else {
                warnings.push(format!(
                    "registration not converged (rms {:.2} px over {:.0}% inliers): no plan on this pose",
                    reg.rms_px,
                    reg.inlier_fraction * 100.0
                ));
                warnings.extend(reg.warnings.iter().cloned());
            }
            let frame = lm.frame.transformed(&pose);
            let head = crate::geometry::Sphere {
                center: pose * lm.head.center,
                radius_mm: lm.head.radius_mm,
            };
            let axis = |a: &crate::geometry::Axis| crate::geometry::Axis {
                point: pose * a.point,
                direction: pose.rotation * a.direction,
            };
            let (neck, shaft) = (axis(&lm.neck_axis), axis(&lm.shaft_axis));
            reg_margin = Some(margin);
            registration = Some(reg);
            (
                bone,
                BoneSource::Mesh,
                head,
                Some(neck),
                Some(shaft),
                Some(lm.lesser_trochanter_level_mm),
                Some(frame),
                margin,
            )
        }
        Some((mesh, MeshFrame::World)) => {
            let lm = FemurLandmarks::from_mesh(mesh, Some(case.side))
                .map_err(|e| e.in_field("bone_mesh"))?;
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
            let r = recon
                .as_ref()
                .ok_or_else(|| Error::invalid("views", "no reconstruction"))?;
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
        Some(LesionSpec::Mesh(m, MeshFrame::Own)) => {
            let pose = registration.as_ref().map(|r| r.world_from_mesh).ok_or_else(|| {
                Error::invalid(
                    "lesion.mesh.frame",
                    "\"own\" moves with the bone mesh, which must then be given with frame \"own\" too",
                )
            })?;
            LesionMesh::new(m.transformed(&pose))
                .map(Lesion::Mesh)
                .map_err(|e| e.in_field("lesion.mesh"))?
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
    let unregistered = registration
        .as_ref()
        .is_some_and(|r| r.status != RegistrationStatus::Ok);
    if (!head.contains(&c) || !bone.contains(&c)) && unregistered {
        warnings.push(
            "the lesion's centre lies outside the femoral head on the unregistered pose".into(),
        );
    } else if !head.contains(&c) || !bone.contains(&c) {
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
    if source == BoneSource::Reconstructed {
        model.entry_landmark_mm = recon
            .as_ref()
            .filter(|r| r.femur.as_ref().is_some_and(|f| f.lateral.is_some()))
            .and_then(|r| r.entry.as_ref())
            .map(|e| e.point);
    }
    Ok(BuiltModel {
        model,
        reconstruction: recon,
        warnings,
        registration,
        registration_margin_mm: reg_margin,
    })
}

/// Builds the model and plans (see [`build_model`] and
/// [`crate::planning::plan_with`]), then estimates each returned
/// trajectory's breach probability and applies the case's
/// `max_breach_probability` ([`crate::uncertainty::assess_plan`], unless
/// `opts.uncertainty.samples` is 0).
///
/// # Errors
/// As [`build_model`] and [`crate::uncertainty::assess_plan`].
pub fn plan_case(case: &Case, opts: &PipelineOptions) -> Result<(BuiltModel, Plan)> {
    let built = build_model(case, opts)?;
    if built
        .registration
        .as_ref()
        .is_some_and(|r| r.status != RegistrationStatus::Ok)
    {
        // Never a plan on a pose that does not fit (the reason
        // `registration_not_converged` is added by `plan_to_file`).
        let plan = Plan {
            status: PlanStatus::NoSafeTrajectory,
            reasons: std::collections::BTreeMap::new(),
            trajectories: Vec::new(),
            alternatives: Vec::new(),
            coverage: 0.0,
            entry_zone: None,
            candidates: 0,
            safe_candidates: 0,
            warnings: built.warnings.clone(),
            recommended_margin_mm: None,
        };
        return Ok((built, plan));
    }
    let mut plan = plan_with(&built.model, case, &opts.planning)?;
    let mut uncertainty = opts.uncertainty.clone();
    if uncertainty.samples == 0 && case.constraints.max_breach_probability.is_some() {
        // The case asks for a limit: it is applied, never skipped.
        uncertainty.samples = crate::uncertainty::DEFAULT_SAMPLES;
    }
    crate::uncertainty::assess_plan(
        case,
        &built.model,
        &mut plan,
        &opts.reconstruction,
        &uncertainty,
    )?;
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
        tip_depth_sd_mm: built
            .reconstruction
            .as_ref()
            .filter(|_| m.bone_source == crate::anatomy::BoneSource::Reconstructed)
            .map(|r| crate::uncertainty::tip_depth_sd_first_order_mm(&r.head, &t.tip_mm))
            .filter(|s| s.is_finite()),
        check_views: None,
    };
    PlanFile {
        schema: crate::io::plan::PLAN_SCHEMA.to_string(),
        status: match plan.status {
            PlanStatus::Ok => WirePlanStatus::Ok,
            PlanStatus::NoSafeTrajectory => WirePlanStatus::NoSafeTrajectory,
        },
        reasons: {
            let mut reasons: std::collections::BTreeMap<String, u64> = plan
                .reasons
                .iter()
                .map(|(r, n)| (r.as_str().to_string(), *n))
                .collect();
            if built
                .registration
                .as_ref()
                .is_some_and(|r| r.status != RegistrationStatus::Ok)
            {
                reasons.insert(REGISTRATION_NOT_CONVERGED.to_string(), 1);
            }
            reasons
        },
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
            world_from_mesh: built
                .registration
                .as_ref()
                .map(|r| crate::io::registration::isometry_to_rows(&r.world_from_mesh)),
            registration_margin_mm: built.registration_margin_mm,
        },
        warnings: plan.warnings.clone(),
        entry_zone_rule: plan.entry_zone.map(|z| z.rule.as_str().to_string()),
        recommended_margin_mm: plan.recommended_margin_mm.filter(|m| m.is_finite()),
    }
}

/// Fills `check_views` of every trajectory of a plan file (see
/// [`crate::guidance::check_views`]) on the model's bone and side with the
/// case's constraints.
pub fn add_check_views(file: &mut PlanFile, built: &BuiltModel, case: &Case) {
    let m = &built.model;
    for t in &mut file.trajectories {
        let e = nalgebra::Point3::from(t.entry_mm);
        let p = nalgebra::Point3::from(t.tip_mm);
        let views = crate::guidance::check_views(&m.bone, m.side, &case.constraints, &e, &p);
        t.check_views = Some(
            views
                .iter()
                .map(|v| crate::io::plan::CheckViewWire {
                    kind: v.kind.as_str().to_string(),
                    primary_deg: v.primary_rad.to_degrees(),
                    secondary_deg: v.secondary_rad.to_degrees(),
                    wall_clearance_mm: v.wall_clearance_mm,
                })
                .collect(),
        );
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
    let mut file = plan_to_file(&built, &plan);
    add_check_views(&mut file, &built, &case);
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

/// Reads a case whose bone mesh is in its own frame and registers the mesh
/// to the views (`avnplan register`).
///
/// # Errors
/// [`Error::Invalid`] (`bone_mesh.frame`) when the case has no bone mesh or
/// it is already in the world frame; as [`crate::io::load_case`] and
/// [`register`].
pub fn registration_file(path: &Path) -> Result<crate::io::registration::RegistrationFile> {
    let (case, _) = load_case(path)?;
    let mesh = match &case.bone_mesh {
        Some((m, MeshFrame::Own)) => m,
        Some((_, MeshFrame::World)) => {
            return Err(Error::invalid(
                "bone_mesh.frame",
                "the mesh is already in the world frame: nothing to register",
            ))
        }
        None => return Err(Error::invalid("bone_mesh", "no bone mesh to register")),
    };
    let opts = RegistrationOptions {
        side: Some(case.side),
        noise_px: case.annotation_noise_px,
        ..RegistrationOptions::default()
    };
    Ok(register(mesh, &case.views, &opts)?.to_file())
}

/// Builds a phantom around the mesh file `mesh_path` and writes it into
/// `dir` (see [`crate::phantom::Phantom::around_mesh`] and
/// [`crate::phantom::write_phantom_dir`]); `own_frame` gives the case's
/// mesh in its own frame (and implies `with_mesh`).
///
/// # Errors
/// As [`crate::io::mesh::load_mesh`] (naming the mesh file),
/// [`crate::phantom::Phantom::around_mesh`] and the writer.
pub fn write_phantom_around_mesh(
    seed: u64,
    noise_px: f64,
    with_mesh: bool,
    own_frame: bool,
    mesh_path: &Path,
    dir: &Path,
) -> Result<()> {
    let (mesh, _) = crate::io::mesh::load_mesh(mesh_path)?;
    let opts = PhantomOptions {
        noise_px,
        with_mesh: with_mesh || own_frame,
        own_frame,
        source_name: mesh_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned()),
        ..PhantomOptions::default()
    };
    let ph = Phantom::around_mesh(&mesh, seed, &opts)?;
    write_phantom_dir(&ph, dir)
}

/// The bone surface a needle check runs on: the case's mesh (in the world
/// frame, or in its own frame placed by the plan's
/// `model.world_from_mesh`), else the surface reconstructed from the
/// views, as the planner used it.
///
/// # Errors
/// [`Error::Invalid`] for a mesh in its own frame when the plan carries no
/// `world_from_mesh`; as [`BoneSurface::new`] and [`reconstruct`].
pub fn check_bone(case: &Case, plan: &PlanFile) -> Result<BoneSurface> {
    match &case.bone_mesh {
        Some((mesh, MeshFrame::World)) => {
            BoneSurface::new(mesh.clone()).map_err(|e| e.in_field("bone_mesh"))
        }
        Some((mesh, MeshFrame::Own)) => {
            let rows = plan.model.world_from_mesh.as_ref().ok_or_else(|| {
                Error::invalid(
                    "bone_mesh.frame",
                    "\"own\": the plan must give model.world_from_mesh (the registered pose)",
                )
            })?;
            let pose = crate::io::registration::isometry_from_rows("model.world_from_mesh", rows)?;
            BoneSurface::new(mesh.transformed(&pose)).map_err(|e| e.in_field("bone_mesh"))
        }
        None => {
            let r = reconstruct(&case.views, &ReconstructionOptions::default())?;
            let mesh = r.bone_mesh.ok_or_else(|| {
                Error::invalid(
                    "views",
                    "without bone_mesh, neck_edges_px and shaft_edges_px are needed in two views to reconstruct the femur",
                )
            })?;
            BoneSurface::new(mesh)
        }
    }
}

/// The planned trajectories of a plan file as [`crate::guidance::PlannedPath`]s.
///
/// # Errors
/// [`Error::TooFew`] naming `trajectories` when the plan has none (a
/// `no_safe_trajectory` plan gives nothing to check against).
pub fn planned_paths(plan: &PlanFile) -> Result<Vec<crate::guidance::PlannedPath>> {
    if plan.trajectories.is_empty() {
        return Err(Error::too_few("trajectories", 1, 0));
    }
    Ok(plan
        .trajectories
        .iter()
        .map(|t| crate::guidance::PlannedPath {
            entry_mm: nalgebra::Point3::from(t.entry_mm),
            tip_mm: nalgebra::Point3::from(t.tip_mm),
        })
        .collect())
}

/// The needle file's views matched to the case's views (by name), as
/// observations for [`crate::guidance::check_needle`].
///
/// # Errors
/// As [`crate::io::needle::NeedleFile::check_against`].
pub fn needle_observations(
    case: &Case,
    needle: &crate::io::needle::NeedleFile,
) -> Result<Vec<crate::guidance::NeedleObservation>> {
    needle.check_against(case)?;
    let mut out = Vec::with_capacity(needle.views.len());
    for (i, v) in needle.views.iter().enumerate() {
        let cv = case
            .views
            .iter()
            .find(|cv| cv.name == v.name)
            .ok_or_else(|| {
                Error::invalid(format!("views[{i}].name"), "no such view in the case")
            })?;
        let pt = |p: &[f64; 2]| nalgebra::Point2::new(p[0], p[1]);
        out.push(crate::guidance::NeedleObservation {
            view_name: v.name.clone(),
            image: crate::reconstruction::NeedleImage {
                projection: cv.projection,
                tip_px: pt(&v.tip_px),
                shaft_px: v.shaft_px.iter().map(pt).collect(),
            },
        });
    }
    Ok(out)
}

/// A needle check in the contract's `avnplan.check/1` form.
#[must_use]
pub fn check_to_file(c: &crate::guidance::NeedleCheck) -> crate::io::needle::CheckFile {
    crate::io::needle::CheckFile {
        schema: crate::io::needle::CHECK_SCHEMA.to_string(),
        tip_mm: c.tip_mm.coords.into(),
        direction: c.direction.into_inner().into(),
        tip_to_target_mm: c.tip_to_target_mm,
        angle_error_deg: c.angle_error_rad.to_degrees(),
        entry_offset_mm: c.entry_offset_mm,
        min_clearance_mm: c.state.min_clearance_mm,
        breach: c.state.breach,
        advance_safe_mm: c.state.advance_safe_mm,
        advice: c.advice.clone(),
        trajectory_index: c.trajectory_index,
    }
}

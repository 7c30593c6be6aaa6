//! Multi-view reconstruction: the 2D annotations of two or more calibrated
//! views -> a 3D model of the hip with its uncertainty.
//!
//! Entry points:
//! * [`reconstruct`] — everything from a set of [`View`]s;
//! * [`triangulate`] — a landmark from two or more views (DLT + reprojection
//!   least squares, with covariance);
//! * [`fit_head`] — the head sphere fitted to the silhouette rays under
//!   exact perspective;
//! * [`fit_tube`] — the neck and shaft axes and elliptical sections from
//!   silhouette edges;
//! * [`fit_lesion`] — the lesion ellipsoid from its outlines (dual quadric,
//!   then tangency least squares); [`ellipsoid_outline_px`] — the outline an
//!   ellipsoid (or sphere) casts in a view;
//! * [`ReconstructedFemur`] — the conservative closed bone surface;
//! * [`reconstruct_needle`] — a needle's line and tip from its images.
//!
//! All fits minimise errors in pixels, so `sigma^2 (J^T J)^-1` with the
//! annotation noise `sigma` (px) is the covariance of the estimate.

// `!(x > 0.0)` is deliberate throughout: it is also true for NaN.
#![allow(
    clippy::neg_cmp_op_on_partial_ord,
    reason = "NaN-rejecting comparisons are intended"
)]

mod femur;
mod head;
mod lesion;
mod lm;
mod needle;
mod triangulate;
mod tube;

pub use femur::{
    automatic_shrink_mm, LateralBody, ReconstructedFemur, BLEND_MM, K_SIGMA, LATERAL_TIP_RADIUS_MM,
    MODEL_MARGIN_MM, NECK_DISTAL_EXTENSION_MM, NECK_LATERAL_EXTENSION_MAX_MM,
    SHAFT_PROXIMAL_EXTENSION_MM,
};
pub use head::{fit_head, HeadFit, MIN_HEAD_POINTS_PER_VIEW};
pub use lesion::{
    ellipsoid_outline_px, fit_lesion, LesionFit, ECCENTRICITY_WEIGHT_PX, MIN_LESION_POINTS_PER_VIEW,
};
pub use needle::{reconstruct_needle, Needle3d, NeedleImage};
pub use triangulate::{triangulate, Triangulated, MIN_TRIANGULATION_ANGLE_RAD};
pub use tube::{
    fit_tube, fit_tube_through, Tube, TubeSection, LOCAL_HALF_WINDOW_PX, MAX_SECTION_ASPECT,
};

use nalgebra::Point2;

use crate::error::{Error, Result};
use crate::geometry::{Axis, TriMesh};
use crate::imaging::{Projection, View};

/// Selects a view's silhouette edges (neck or shaft).
type EdgeGetter = dyn Fn(&View) -> Option<&[Vec<Point2<f64>>; 2]>;

/// Options of [`reconstruct`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ReconstructionOptions {
    /// Annotation noise, px (standard deviation per image axis); sets the
    /// reported uncertainties and the automatic margin. Default 1.0 px.
    pub noise_px: f64,
    /// Inward margin of the reconstructed femur, mm; `None` (default) for
    /// [`automatic_shrink_mm`].
    pub shrink_mm: Option<f64>,
    /// Grid step of the femur mesh, mm. Default 1.0 mm.
    pub mesh_step_mm: f64,
    /// Spacing of the neck and shaft cross-sections, mm. Default 2.0 mm.
    pub station_step_mm: f64,
    /// Whether to mesh the reconstructed femur. Default true.
    pub build_mesh: bool,
}

impl Default for ReconstructionOptions {
    fn default() -> Self {
        Self {
            noise_px: 1.0,
            shrink_mm: None,
            mesh_step_mm: 1.0,
            station_step_mm: 2.0,
            build_mesh: true,
        }
    }
}

/// The 3D model built from the views.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Reconstruction {
    /// The femoral head.
    pub head: HeadFit,
    /// The neck (axis from the neck into the head), when neck edges are
    /// annotated in two or more views.
    pub neck: Option<Tube>,
    /// The shaft (axis distal to proximal), when shaft edges are annotated
    /// in two or more views.
    pub shaft: Option<Tube>,
    /// The lesion, when outlined in two or more views.
    pub lesion: Option<LesionFit>,
    /// The entry point, when `entry_px` is annotated in two or more views.
    pub entry: Option<Triangulated>,
    /// The conservative reconstructed femur (needs neck and shaft).
    pub femur: Option<ReconstructedFemur>,
    /// Its mesh (when [`ReconstructionOptions::build_mesh`]).
    pub bone_mesh: Option<TriMesh>,
    /// The inward margin used, mm.
    pub shrink_mm: f64,
    /// Non-fatal remarks.
    pub warnings: Vec<String>,
}

impl Reconstruction {
    /// The neck axis, if reconstructed.
    #[must_use]
    pub fn neck_axis(&self) -> Option<Axis> {
        self.neck.as_ref().map(|t| t.axis)
    }

    /// The shaft axis, if reconstructed.
    #[must_use]
    pub fn shaft_axis(&self) -> Option<Axis> {
        self.shaft.as_ref().map(|t| t.axis)
    }
}

/// Reconstructs the hip model from two or more annotated views.
///
/// # Errors
/// * [`Error::Invalid`] for bad options (`noise_px`, `shrink_mm`,
///   `mesh_step_mm`);
/// * the errors of [`fit_head`] (the head outline is required), and of the
///   other fits when their annotations are present in two or more views,
///   with the field path `views[k]....` of the view list given here.
///
/// # Example
/// ```
/// use avnplan::imaging::{CArm, View};
/// use avnplan::geometry::Ellipsoid;
/// use avnplan::reconstruction::{ellipsoid_outline_px, reconstruct, ReconstructionOptions};
/// use nalgebra::Point3;
/// let carm = |primary_deg: f64| CArm {
///     sid_mm: 1000.0, sod_mm: 650.0, primary_angle_rad: primary_deg.to_radians(),
///     secondary_angle_rad: 0.0, pixel_spacing_mm: [0.3, 0.3],
///     isocenter_mm: Point3::origin(), principal_point_px: None, image_size_px: [1024, 1024],
/// }.projection().unwrap();
/// let head = Ellipsoid::sphere(Point3::new(30.0, 0.0, 10.0), 24.0)?;
/// let views: Vec<View> = [("AP", 0.0), ("LAT", 90.0)].iter().map(|&(n, a)| {
///     let p = carm(a);
///     let mut v = View::new(n, [1024, 1024], p);
///     v.annotations.head_outline_px = ellipsoid_outline_px(&p, &head, 20).unwrap();
///     v
/// }).collect();
/// let model = reconstruct(&views, &ReconstructionOptions::default())?;
/// approx::assert_relative_eq!(model.head.sphere.radius_mm, 24.0, epsilon = 1e-5);
/// assert!(model.bone_mesh.is_none()); // no neck or shaft edges
/// # Ok::<(), avnplan::Error>(())
/// ```
pub fn reconstruct(views: &[View], opts: &ReconstructionOptions) -> Result<Reconstruction> {
    if !(opts.noise_px.is_finite() && opts.noise_px >= 0.0) {
        return Err(Error::invalid("noise_px", "must be a finite number >= 0"));
    }
    if let Some(s) = opts.shrink_mm {
        if !(s.is_finite() && s >= 0.0) {
            return Err(Error::invalid("shrink_mm", "must be a finite number >= 0"));
        }
    }
    if !(opts.mesh_step_mm.is_finite() && opts.mesh_step_mm > 0.0) {
        return Err(Error::invalid(
            "mesh_step_mm",
            "must be a finite number > 0",
        ));
    }
    let mut warnings = Vec::new();
    // Field paths keep the caller's view indices.
    let select = |f: &dyn Fn(&View) -> bool| -> Vec<usize> {
        (0..views.len()).filter(|&k| f(&views[k])).collect()
    };
    let remap = |e: Error, idx: &[usize]| -> Error {
        // Errors name "views[j]" within the selection; rename to the caller's index.
        let msg_fix = |s: String| {
            let mut s = s;
            for (j, &k) in idx.iter().enumerate().rev() {
                s = s.replace(&format!("views[{j}]"), &format!("views[#{k}]"));
            }
            s.replace("views[#", "views[")
        };
        match e {
            Error::TooFew {
                what,
                required,
                actual,
            } => Error::TooFew {
                what: msg_fix(what),
                required,
                actual,
            },
            Error::Invalid { field, reason } => Error::Invalid {
                field: msg_fix(field),
                reason,
            },
            Error::Degenerate { what, reason } => Error::Degenerate {
                what: msg_fix(what),
                reason,
            },
            other => other,
        }
    };

    let hidx = select(&|v| !v.annotations.head_outline_px.is_empty());
    let outlines: Vec<(Projection, Vec<Point2<f64>>)> = hidx
        .iter()
        .map(|&k| {
            (
                views[k].projection,
                views[k].annotations.head_outline_px.clone(),
            )
        })
        .collect();
    let head = fit_head(&outlines, opts.noise_px).map_err(|e| remap(e, &hidx))?;
    if opts.noise_px > 0.0 && head.rms_px > 3.0 * opts.noise_px {
        warnings.push(format!(
            "head outline residual {:.2} px is more than 3 times the stated noise {:.2} px: the outline may not be circular or the calibration may be off",
            head.rms_px, opts.noise_px
        ));
    }
    let c = head.sphere.center;

    let tube = |get: &EdgeGetter, what: &str, warnings: &mut Vec<String>| -> Result<Option<Tube>> {
        let idx = select(&|v| get(v).is_some());
        match idx.len() {
            0 => Ok(None),
            1 => {
                warnings.push(format!(
                    "{what} annotated in one view only (views[{}]): not reconstructed",
                    idx[0]
                ));
                Ok(None)
            }
            _ => {
                let data: Vec<_> = idx
                    .iter()
                    .filter_map(|&k| get(&views[k]).map(|e| (views[k].projection, e.clone())))
                    .collect();
                if what == "neck_edges_px" {
                    fit_tube_through(&data, what, &c, opts.station_step_mm)
                } else {
                    fit_tube(&data, what, &c, opts.station_step_mm)
                }
                .map(Some)
                .map_err(|e| remap(e, &idx))
            }
        }
    };
    let neck = tube(
        &|v| v.annotations.neck_edges_px.as_ref(),
        "neck_edges_px",
        &mut warnings,
    )?;
    let shaft = tube(
        &|v| v.annotations.shaft_edges_px.as_ref(),
        "shaft_edges_px",
        &mut warnings,
    )?;

    let lidx = select(&|v| !v.annotations.lesion_outline_px.is_empty());
    let lesion = match lidx.len() {
        0 => None,
        1 => {
            warnings.push(format!(
                "lesion_outline_px in one view only (views[{}]): lesion not reconstructed",
                lidx[0]
            ));
            None
        }
        _ => {
            let data: Vec<_> = lidx
                .iter()
                .map(|&k| {
                    (
                        views[k].projection,
                        views[k].annotations.lesion_outline_px.clone(),
                    )
                })
                .collect();
            Some(fit_lesion(&data).map_err(|e| remap(e, &lidx))?)
        }
    };

    let eidx = select(&|v| v.annotations.entry_px.is_some());
    let entry = match eidx.len() {
        0 => None,
        1 => {
            warnings.push(format!(
                "entry_px in one view only (views[{}]): entry point not reconstructed",
                eidx[0]
            ));
            None
        }
        _ => {
            let obs: Vec<_> = eidx
                .iter()
                .filter_map(|&k| {
                    views[k]
                        .annotations
                        .entry_px
                        .map(|e| (views[k].projection, e))
                })
                .collect();
            let t = triangulate(&obs, opts.noise_px)
                .map_err(|e| remap(e.in_field("entry_px"), &eidx))?;
            warnings.extend(t.warnings.iter().cloned());
            Some(t)
        }
    };

    let mm_px = outlines
        .iter()
        .map(|(p, _)| triangulate::mm_per_px(p, &c))
        .sum::<f64>()
        / outlines.len() as f64;
    let shrink_mm = opts
        .shrink_mm
        .unwrap_or_else(|| automatic_shrink_mm(opts.noise_px, mm_px));
    let femur = match (&neck, &shaft) {
        (Some(n), Some(s)) => {
            let f = ReconstructedFemur::new(head.sphere, n.clone(), s.clone(), shrink_mm)?;
            Some(match &entry {
                Some(e) => match f.clone().with_entry(&e.point) {
                    Ok(g) => g,
                    Err(err) => {
                        warnings.push(format!(
                            "reconstructed femur without a trochanteric body: {err}"
                        ));
                        f
                    }
                },
                None => f,
            })
        }
        _ => None,
    };
    let bone_mesh = match (&femur, opts.build_mesh) {
        (Some(f), true) => Some(f.mesh(opts.mesh_step_mm)?),
        _ => None,
    };
    Ok(Reconstruction {
        head,
        neck,
        shaft,
        lesion,
        entry,
        femur,
        bone_mesh,
        shrink_mm,
        warnings,
    })
}

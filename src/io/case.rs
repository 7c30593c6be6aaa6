//! The case file (`"schema": "avnplan.case/1"`): wire types, validation of
//! every rule of the contract, and conversion to and from [`crate::Case`].
//!
//! [`load_case`] reads a case file strictly ([`super::json`]), checks it and
//! returns the domain [`Case`] with warnings. [`case_to_file`] goes the other
//! way, writing every view's geometry as a projection matrix (form 1).
//!
//! # Rules checked (each error names the field path)
//!
//! * `schema` is `"avnplan.case/1"`; unknown fields, duplicate keys, `null`,
//!   a byte-order mark and invalid UTF-8 are refused.
//! * 2 to [`MAX_VIEWS`] views; names unique, non-empty, at most
//!   [`MAX_VIEW_NAME_CHARS`] characters.
//! * Each view has exactly one of `projection`, `geometry`, `carm`, or
//!   `dicom` — `dicom` may be combined with `projection` or `geometry`
//!   (the explicit geometry wins). The view-level `isocenter_mm`, `frame`
//!   and `principal_point_px` belong to the `dicom` form only.
//! * Form 4 (`dicom`, read with [`super::dicom::DicomView`]): the path is
//!   relative to the case file; `image_size_px` may be left out (Columns,
//!   Rows) and must equal them when given; `frame` (0-based, default 0)
//!   must exist; without explicit geometry the C-arm comes from the file's
//!   five positioner tags with `isocenter_mm` (default the origin) and
//!   `principal_point_px` (default the image centre), and a file without
//!   them is an error naming the missing tags; with `projection` or
//!   `geometry` beside it, the explicit geometry wins (a warning says the
//!   file's tags were ignored). Pixel data that cannot be decoded
//!   (compressed transfer syntax) is refused by name.
//! * `distortion` (crate addition, [`crate::imaging::distortion`]): the
//!   view's annotations are given in **distorted** pixels, as measured on
//!   the raw image; each point is dewarped with
//!   [`PolynomialDistortion::undistort`] before it reaches the [`View`],
//!   whose projection is the undistorted pinhole. Out-of-image warnings
//!   refer to the raw (distorted) pixels.
//! * `image_size_px` integers >= 1; lengths, radii, diameters, distances
//!   and spacings > 0 with `sod_mm < sid_mm`; `passes` an integer 1-16;
//!   `min_incidence_deg` in [0, 90]; `max_breach_probability` in [0, 1];
//!   `annotation_noise_px` >= 0; rotations orthonormal within
//!   [`ROTATION_TOLERANCE`] with determinant +1.
//! * Annotations: `head_outline_px` at least [`MIN_HEAD_OUTLINE_POINTS`]
//!   points, each neck or shaft edge at least 2, `lesion_outline_px` at
//!   least 3; at most [`MAX_ANNOTATION_POINTS`] points per annotation.
//! * At least two views whose viewing directions differ by at least
//!   [`MIN_VIEW_ANGLE_DEG`]. The angle is measured between the viewing
//!   *lines* (`acos |d1 . d2|`): opposite views (AP and PA) look along the
//!   same line and give no depth, so they do not count as different.
//! * Kerboul arcs: `from < to`, spanning at most 180 degrees; `depth_mm` > 0.
//! * `lesion.mesh.frame = "own"` needs `bone_mesh.frame = "own"`.
//!
//! Meshes are read with [`super::mesh::load_mesh`], paths relative to the
//! case file's folder (or absolute).

use std::path::Path;

use nalgebra::{Matrix3, Matrix3x4, Point2, Point3, Rotation3, Vector3};
use serde::{Deserialize, Serialize};

use super::dicom::DicomView;
use super::json::{read_json_with_schema, Integer};
use super::mesh::load_mesh;
use crate::case::{Case, Constraints, Kerboul, LesionSpec, MeshFrame, Side};
use crate::error::{ensure_finite, ensure_positive, Error, Result};
use crate::geometry::{Ellipsoid, Sphere, TriMesh};
use crate::imaging::{Annotations, CArm, DistortionParams, PolynomialDistortion, Projection, View};

/// The schema string of a case file.
pub const CASE_SCHEMA: &str = "avnplan.case/1";
/// Most views in one case (contract limit).
pub const MAX_VIEWS: usize = 64;
/// Most points in one annotation (contract limit: 10^5).
pub const MAX_ANNOTATION_POINTS: usize = 100_000;
/// Longest view name, characters (contract).
pub const MAX_VIEW_NAME_CHARS: usize = 64;
/// Fewest points on a head outline (contract).
pub const MIN_HEAD_OUTLINE_POINTS: usize = 5;
/// Largest semi-axis of a case's ellipsoid lesion, mm. A lesion lies in the
/// femoral head (radius 20-27 mm, domain.md §7); a larger axis is a unit
/// error (metres for millimetres, say), refused when the case is read.
pub const MAX_LESION_SEMI_AXIS_MM: f64 = 100.0;
/// Smallest angle between the viewing lines of the two most different
/// views, degrees (contract).
pub const MIN_VIEW_ANGLE_DEG: f64 = 10.0;
/// Largest entry of `|R R^T - I|` for a rotation (contract: 1e-6).
pub const ROTATION_TOLERANCE: f64 = 1e-6;
/// Default annotation noise, px (crate addition; the contract's 1 px).
pub const DEFAULT_ANNOTATION_NOISE_PX: f64 = 1.0;
/// Default cortical thickness, mm (contract; domain.md).
pub const DEFAULT_CORTICAL_THICKNESS_MM: f64 = 3.0;

/// The case file as written (contract `avnplan.case/1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// Always [`CASE_SCHEMA`].
    pub schema: String,
    /// `"left"` or `"right"`.
    pub side: Side,
    /// The views (2 to 64).
    pub views: Vec<ViewWire>,
    /// The outer bone surface mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bone_mesh: Option<BoneMeshWire>,
    /// Cortical thickness, mm; default 3.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cortical_thickness_mm: Option<f64>,
    /// An explicit lesion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lesion: Option<LesionWire>,
    /// Where the entry may be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_zone: Option<SphereWire>,
    /// Spheres to keep away from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forbidden_zones: Option<Vec<SphereWire>>,
    /// Safety constraints; every field has a default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<ConstraintsWire>,
    /// Crate addition: annotation noise sigma, px, default 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation_noise_px: Option<f64>,
}

/// One view as written (contract `VIEW`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewWire {
    /// Unique, non-empty name, at most 64 characters.
    pub name: String,
    /// `[width, height]`, pixels, integers >= 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size_px: Option<[Integer; 2]>,
    /// Form 1: the 3x4 projection matrix, row-major, any scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection: Option<[[f64; 4]; 3]>,
    /// Form 2: explicit detector geometry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geometry: Option<GeometryWire>,
    /// Form 3: C-arm positioner (DICOM XA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carm: Option<CArmWire>,
    /// Form 4: a DICOM file, relative to the case file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dicom: Option<String>,
    /// Form 4 only: the isocentre, world mm; default the origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isocenter_mm: Option<[f64; 3]>,
    /// Form 4 only: 0-based frame of a multi-frame file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<Integer>,
    /// Form 4 only: the principal point, px; default the image centre.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_point_px: Option<[f64; 2]>,
    /// Image distortion of this view (crate addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distortion: Option<DistortionWire>,
    /// The 2D annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<AnnotationsWire>,
}

/// Contract form 2.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeometryWire {
    /// X-ray source, world mm.
    pub source_mm: [f64; 3],
    /// Centre of pixel (0, 0), world mm.
    pub detector_origin_mm: [f64; 3],
    /// World step of +1 pixel in `u`, mm.
    pub u_axis_mm: [f64; 3],
    /// World step of +1 pixel in `v`, mm.
    pub v_axis_mm: [f64; 3],
}

/// Contract form 3 (DICOM XA positioner); also the `carm` of
/// `avnplan.dicom-info/1`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CArmWire {
    /// Source to detector distance, mm.
    pub sid_mm: f64,
    /// Source to isocentre distance, mm (< `sid_mm`).
    pub sod_mm: f64,
    /// Positioner primary angle, degrees, + towards LAO.
    pub primary_angle_deg: f64,
    /// Positioner secondary angle, degrees, + towards CRA.
    pub secondary_angle_deg: f64,
    /// Detector pixel spacing, mm, `[row, column]`.
    pub pixel_spacing_mm: [f64; 2],
    /// Isocentre, world mm.
    pub isocenter_mm: [f64; 3],
    /// Principal point, px; default the image centre.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_point_px: Option<[f64; 2]>,
}

impl CArmWire {
    /// The positioner in the Rust API (angles in radians) for an image of
    /// `image_size_px`.
    #[must_use]
    pub fn to_carm(&self, image_size_px: [u32; 2]) -> CArm {
        CArm {
            sid_mm: self.sid_mm,
            sod_mm: self.sod_mm,
            primary_angle_rad: self.primary_angle_deg.to_radians(),
            secondary_angle_rad: self.secondary_angle_deg.to_radians(),
            pixel_spacing_mm: self.pixel_spacing_mm,
            isocenter_mm: Point3::from(self.isocenter_mm),
            principal_point_px: self.principal_point_px.map(Point2::from),
            image_size_px,
        }
    }

    /// The wire form of a positioner (angles in degrees).
    #[must_use]
    pub fn from_carm(c: &CArm) -> Self {
        Self {
            sid_mm: c.sid_mm,
            sod_mm: c.sod_mm,
            primary_angle_deg: c.primary_angle_rad.to_degrees(),
            secondary_angle_deg: c.secondary_angle_rad.to_degrees(),
            pixel_spacing_mm: c.pixel_spacing_mm,
            isocenter_mm: c.isocenter_mm.coords.into(),
            principal_point_px: c.principal_point_px.map(|p| p.coords.into()),
        }
    }
}

/// Image distortion of one view as written (crate addition): a polynomial
/// displacement model, interpreted by the imaging module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistortionWire {
    /// Model name.
    pub model: String,
    /// Polynomial degree.
    pub degree: u32,
    /// Centre of the normalised coordinates, px.
    pub center_px: [f64; 2],
    /// Normalisation scale, px (> 0).
    pub scale_px: f64,
    /// Coefficients of the `u` displacement.
    pub coeffs_u: Vec<f64>,
    /// Coefficients of the `v` displacement.
    pub coeffs_v: Vec<f64>,
}

/// The annotations of one view, pixels (contract `annotations`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnotationsWire {
    /// Points on the head silhouette (>= 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_outline_px: Option<Vec<[f64; 2]>>,
    /// The two neck silhouette edges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neck_edges_px: Option<[Vec<[f64; 2]>; 2]>,
    /// The two shaft cortex silhouettes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shaft_edges_px: Option<[Vec<[f64; 2]>; 2]>,
    /// Closed polygon around the lesion (>= 3 points).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lesion_outline_px: Option<Vec<[f64; 2]>>,
    /// Preferred entry as seen in this view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_px: Option<[f64; 2]>,
}

/// The frame a mesh file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MeshFrameWire {
    /// The case's world frame.
    #[default]
    World,
    /// The mesh's own CT/MRI frame.
    Own,
}

impl From<MeshFrameWire> for MeshFrame {
    fn from(f: MeshFrameWire) -> Self {
        match f {
            MeshFrameWire::World => MeshFrame::World,
            MeshFrameWire::Own => MeshFrame::Own,
        }
    }
}

impl From<MeshFrame> for MeshFrameWire {
    fn from(f: MeshFrame) -> Self {
        match f {
            MeshFrame::World => MeshFrameWire::World,
            MeshFrame::Own => MeshFrameWire::Own,
        }
    }
}

/// `bone_mesh`: a mesh file and its frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoneMeshWire {
    /// Mesh file, relative to the case file or absolute.
    pub path: String,
    /// `"world"` (default) or `"own"`.
    #[serde(default)]
    pub frame: MeshFrameWire,
}

/// `LESION`: exactly one of three forms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum LesionWire {
    /// An ellipsoid in the world frame.
    Ellipsoid(EllipsoidWire),
    /// A mesh file.
    Mesh(LesionMeshWire),
    /// The Kerboul arcs.
    Kerboul(KerboulWire),
}

/// `lesion.ellipsoid`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EllipsoidWire {
    /// Centre, world mm.
    pub center_mm: [f64; 3],
    /// Semi-axes along the local axes, mm (> 0).
    pub semi_axes_mm: [f64; 3],
    /// `world_from_local` rotation, row-major; columns are the local axes.
    pub rotation: [[f64; 3]; 3],
}

/// `lesion.mesh`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LesionMeshWire {
    /// Mesh file, relative to the case file or absolute.
    pub path: String,
    /// `"world"` (default) or `"own"` (moves with the bone mesh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<MeshFrameWire>,
}

/// `lesion.kerboul`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KerboulWire {
    /// Coronal arc `[from, to]`, degrees.
    pub coronal_arc_deg: [f64; 2],
    /// Sagittal arc `[from, to]`, degrees.
    pub sagittal_arc_deg: [f64; 2],
    /// Depth below the articular surface, mm (> 0).
    pub depth_mm: f64,
}

/// A sphere (`entry_zone`, `forbidden_zones[i]`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SphereWire {
    /// Centre, world mm.
    pub center_mm: [f64; 3],
    /// Radius, mm (> 0).
    pub radius_mm: f64,
}

/// `CONSTRAINTS`: every field optional, with the contract's default
/// (see [`Constraints`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstraintsWire {
    /// mm, default 3.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needle_diameter_mm: Option<f64>,
    /// mm, default 2.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cortical_clearance_mm: Option<f64>,
    /// mm, default 5.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subchondral_margin_mm: Option<f64>,
    /// mm, default 10.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_allowance_mm: Option<f64>,
    /// mm, default 130.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length_mm: Option<f64>,
    /// Degrees, default 30.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_incidence_deg: Option<f64>,
    /// Integer 1-16, default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passes: Option<Integer>,
    /// mm, default 5.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage_radius_mm: Option<f64>,
    /// Crate addition: in [0, 1]; no limit when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_breach_probability: Option<f64>,
}

impl ConstraintsWire {
    /// The checked constraints, each absent field at its default.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field (without the `constraints.`
    /// prefix).
    pub fn to_constraints(&self) -> Result<Constraints> {
        let d = Constraints::default();
        let pos = |name: &str, v: Option<f64>, def: f64| -> Result<f64> {
            let v = v.unwrap_or(def);
            ensure_positive(name, v)?;
            Ok(v)
        };
        let min_incidence_deg = self.min_incidence_deg.unwrap_or(d.min_incidence_deg);
        if !(0.0..=90.0).contains(&min_incidence_deg) {
            return Err(Error::invalid(
                "min_incidence_deg",
                "must be in [0, 90] degrees",
            ));
        }
        let passes = match self.passes {
            None => d.passes,
            Some(Integer(p)) if (1..=16).contains(&p) => p as u32,
            Some(_) => return Err(Error::invalid("passes", "must be an integer 1-16")),
        };
        if let Some(p) = self.max_breach_probability {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::invalid(
                    "max_breach_probability",
                    "must be in [0, 1]",
                ));
            }
        }
        Ok(Constraints {
            needle_diameter_mm: pos(
                "needle_diameter_mm",
                self.needle_diameter_mm,
                d.needle_diameter_mm,
            )?,
            cortical_clearance_mm: pos(
                "cortical_clearance_mm",
                self.cortical_clearance_mm,
                d.cortical_clearance_mm,
            )?,
            subchondral_margin_mm: pos(
                "subchondral_margin_mm",
                self.subchondral_margin_mm,
                d.subchondral_margin_mm,
            )?,
            entry_allowance_mm: pos(
                "entry_allowance_mm",
                self.entry_allowance_mm,
                d.entry_allowance_mm,
            )?,
            max_length_mm: pos("max_length_mm", self.max_length_mm, d.max_length_mm)?,
            min_incidence_deg,
            passes,
            coverage_radius_mm: pos(
                "coverage_radius_mm",
                self.coverage_radius_mm,
                d.coverage_radius_mm,
            )?,
            max_breach_probability: self.max_breach_probability,
        })
    }

    /// Every field written explicitly.
    #[must_use]
    pub fn from_constraints(c: &Constraints) -> Self {
        Self {
            needle_diameter_mm: Some(c.needle_diameter_mm),
            cortical_clearance_mm: Some(c.cortical_clearance_mm),
            subchondral_margin_mm: Some(c.subchondral_margin_mm),
            entry_allowance_mm: Some(c.entry_allowance_mm),
            max_length_mm: Some(c.max_length_mm),
            min_incidence_deg: Some(c.min_incidence_deg),
            passes: Some(Integer(i64::from(c.passes))),
            coverage_radius_mm: Some(c.coverage_radius_mm),
            max_breach_probability: c.max_breach_probability,
        }
    }
}

/// Reads, checks and converts a case file; meshes are read relative to its
/// folder. Returns the case and warnings (each naming its field).
///
/// # Errors
/// Any [`Error`] naming the field path, e.g.
/// `views[1].carm.sod_mm: must be < sid_mm`; see the module docs for the
/// rules.
///
/// # Example
/// ```
/// use avnplan::io::case::load_case;
/// let dir = std::env::temp_dir().join("avnplan_doc_load_case");
/// std::fs::create_dir_all(&dir).unwrap();
/// let view = |name: &str, primary: f64| format!(
///     r#"{{"name": "{name}", "image_size_px": [1024, 1024],
///         "carm": {{"sid_mm": 1000, "sod_mm": 600, "primary_angle_deg": {primary},
///                  "secondary_angle_deg": 0, "pixel_spacing_mm": [0.3, 0.3],
///                  "isocenter_mm": [0, 0, 0]}}}}"#);
/// let text = format!(r#"{{"schema": "avnplan.case/1", "side": "right",
///     "views": [{}, {}]}}"#, view("AP", 0.0), view("LAT", 90.0));
/// std::fs::write(dir.join("case.json"), text).unwrap();
/// let (case, warnings) = load_case(&dir.join("case.json")).unwrap();
/// assert!(warnings.is_empty());
/// approx::assert_relative_eq!(case.constraints.needle_diameter_mm, 3.2);
/// approx::assert_relative_eq!(case.views[0].projection.source_mm().y, 600.0, epsilon = 1e-9);
/// ```
pub fn load_case(path: &Path) -> Result<(Case, Vec<String>)> {
    let file: CaseFile = read_json_with_schema(path, CASE_SCHEMA)?;
    let base = path.parent().unwrap_or(Path::new("."));
    file.to_case(base)
}

/// What [`CaseFile::to_case`] reads from outside the case file.
fn resolve(base_dir: &Path, p: &str) -> std::path::PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir.join(p)
    }
}

/// A row-major 3x3 matrix checked to be a rotation: orthonormal within
/// [`ROTATION_TOLERANCE`] (largest entry of `|R R^T - I|`) and determinant
/// +1 (not a reflection).
///
/// # Errors
/// [`Error::Invalid`] naming `field`.
pub fn rotation_from_rows(field: &str, rows: &[[f64; 3]; 3]) -> Result<Rotation3<f64>> {
    let m = Matrix3::from_fn(|i, j| rows[i][j]);
    ensure_finite(field, m.as_slice())?;
    let err = (m * m.transpose() - Matrix3::identity()).amax();
    if err.is_nan() || err > ROTATION_TOLERANCE {
        return Err(Error::invalid(
            field,
            format!("must be orthonormal within 1e-6 (off by {err:.1e})"),
        ));
    }
    if m.determinant() <= 0.0 {
        return Err(Error::invalid(
            field,
            "must be a rotation (determinant +1), not a reflection",
        ));
    }
    Ok(Rotation3::from_matrix_unchecked(m))
}

fn check_name(field: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    let n = name.chars().count();
    if n > MAX_VIEW_NAME_CHARS {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_VIEW_NAME_CHARS} characters (got {n})"),
        ));
    }
    Ok(())
}

/// Checks a file's list of views by name: 2 to [`MAX_VIEWS`] of them,
/// names as [`check_view_names`] (fields `views[i].name`).
pub(crate) fn check_view_list<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> Result<()> {
    let n = names.len();
    if n > MAX_VIEWS {
        return Err(Error::LimitExceeded {
            what: "views".into(),
            limit: MAX_VIEWS,
            actual: n,
        });
    }
    if n < 2 {
        return Err(Error::too_few("views", 2, n));
    }
    check_view_names(
        names
            .enumerate()
            .map(|(i, name)| (format!("views[{i}].name"), name)),
    )
}

/// Checks view names: non-empty, at most 64 characters, unique.
/// `names` are `(field, name)` pairs.
pub(crate) fn check_view_names<'a>(names: impl Iterator<Item = (String, &'a str)>) -> Result<()> {
    let mut seen: Vec<(&str, String)> = Vec::new();
    for (field, name) in names {
        check_name(&field, name)?;
        if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
            return Err(Error::invalid(
                field,
                format!("duplicate view name (also {first})"),
            ));
        }
        seen.push((name, field));
    }
    Ok(())
}

fn image_size(field: &str, v: &[Integer; 2]) -> Result<[u32; 2]> {
    let mut out = [0u32; 2];
    for (k, Integer(x)) in v.iter().enumerate() {
        if *x < 1 {
            return Err(Error::invalid(
                format!("{field}[{k}]"),
                "must be an integer >= 1",
            ));
        }
        out[k] = u32::try_from(*x)
            .map_err(|_| Error::invalid(format!("{field}[{k}]"), "is too large"))?;
    }
    Ok(out)
}

fn points(field: &str, pts: &[[f64; 2]], min: usize) -> Result<Vec<Point2<f64>>> {
    if pts.len() > MAX_ANNOTATION_POINTS {
        return Err(Error::LimitExceeded {
            what: field.to_string(),
            limit: MAX_ANNOTATION_POINTS,
            actual: pts.len(),
        });
    }
    if pts.len() < min {
        return Err(Error::too_few(field, min, pts.len()));
    }
    for (i, p) in pts.iter().enumerate() {
        ensure_finite(&format!("{field}[{i}]"), p)?;
    }
    Ok(pts.iter().map(|p| Point2::from(*p)).collect())
}

fn edges(field: &str, e: &[Vec<[f64; 2]>; 2]) -> Result<[Vec<Point2<f64>>; 2]> {
    Ok([
        points(&format!("{field}[0]"), &e[0], 2)?,
        points(&format!("{field}[1]"), &e[1], 2)?,
    ])
}

fn outside_warning(field: &str, pts: &[Point2<f64>], size: [u32; 2], warnings: &mut Vec<String>) {
    let (w, h) = (f64::from(size[0]), f64::from(size[1]));
    let n = pts
        .iter()
        .filter(|p| !(p.x >= -0.5 && p.x <= w - 0.5 && p.y >= -0.5 && p.y <= h - 0.5))
        .count();
    if n > 0 {
        warnings.push(format!(
            "{field}: {n} of {} points lie outside the image",
            pts.len()
        ));
    }
}

impl AnnotationsWire {
    /// The checked annotations; `prefix` is the field path of this object.
    fn to_annotations(
        &self,
        prefix: &str,
        size: [u32; 2],
        warnings: &mut Vec<String>,
    ) -> Result<Annotations> {
        let mut a = Annotations::default();
        if let Some(h) = &self.head_outline_px {
            let f = format!("{prefix}.head_outline_px");
            a.head_outline_px = points(&f, h, MIN_HEAD_OUTLINE_POINTS)?;
            outside_warning(&f, &a.head_outline_px, size, warnings);
        }
        if let Some(e) = &self.neck_edges_px {
            let f = format!("{prefix}.neck_edges_px");
            let e = edges(&f, e)?;
            outside_warning(&f, &[e[0].clone(), e[1].clone()].concat(), size, warnings);
            a.neck_edges_px = Some(e);
        }
        if let Some(e) = &self.shaft_edges_px {
            let f = format!("{prefix}.shaft_edges_px");
            let e = edges(&f, e)?;
            outside_warning(&f, &[e[0].clone(), e[1].clone()].concat(), size, warnings);
            a.shaft_edges_px = Some(e);
        }
        if let Some(l) = &self.lesion_outline_px {
            let f = format!("{prefix}.lesion_outline_px");
            a.lesion_outline_px = points(&f, l, 3)?;
            outside_warning(&f, &a.lesion_outline_px, size, warnings);
        }
        if let Some(e) = &self.entry_px {
            let f = format!("{prefix}.entry_px");
            let p = points(&f, std::slice::from_ref(e), 1)?;
            outside_warning(&f, &p, size, warnings);
            a.entry_px = Some(p[0]);
        }
        Ok(a)
    }

    fn from_annotations(a: &Annotations) -> Self {
        let pts = |v: &[Point2<f64>]| v.iter().map(|p| [p.x, p.y]).collect::<Vec<_>>();
        let opt = |v: &[Point2<f64>]| (!v.is_empty()).then(|| pts(v));
        Self {
            head_outline_px: opt(&a.head_outline_px),
            neck_edges_px: a.neck_edges_px.as_ref().map(|e| [pts(&e[0]), pts(&e[1])]),
            shaft_edges_px: a.shaft_edges_px.as_ref().map(|e| [pts(&e[0]), pts(&e[1])]),
            lesion_outline_px: opt(&a.lesion_outline_px),
            entry_px: a.entry_px.map(|p| [p.x, p.y]),
        }
    }
}

impl ViewWire {
    /// The checked view; `i` is its index in `views`.
    fn to_view(&self, i: usize, base_dir: &Path, warnings: &mut Vec<String>) -> Result<View> {
        let p = format!("views[{i}]");
        // Form 4: the file's image size and, without explicit geometry, its C-arm.
        let mut dicom: Option<([u32; 2], Option<CArm>)> = None;
        let explicit = [
            self.projection.is_some(),
            self.geometry.is_some(),
            self.carm.is_some(),
        ]
        .iter()
        .filter(|&&b| b)
        .count();
        if explicit > 1 {
            return Err(Error::invalid(
                &p,
                "gives more than one of projection, geometry and carm: give exactly one geometry form",
            ));
        }
        match &self.dicom {
            None => {
                if explicit == 0 {
                    return Err(Error::invalid(
                        &p,
                        "has no geometry: give one of projection, geometry, carm or dicom",
                    ));
                }
                for (set, name) in [
                    (self.isocenter_mm.is_some(), "isocenter_mm"),
                    (self.frame.is_some(), "frame"),
                    (self.principal_point_px.is_some(), "principal_point_px"),
                ] {
                    if set {
                        return Err(Error::invalid(
                            format!("{p}.{name}"),
                            "is only allowed with dicom (form 3 puts it inside carm)",
                        ));
                    }
                }
            }
            Some(d) => {
                let f = format!("{p}.dicom");
                if self.carm.is_some() {
                    return Err(Error::invalid(
                        &p,
                        "dicom may be combined with projection or geometry, not with carm",
                    ));
                }
                if d.is_empty() {
                    return Err(Error::invalid(&f, "must not be empty"));
                }
                let frame = match self.frame {
                    None => 0,
                    Some(Integer(n)) => u32::try_from(n).map_err(|_| {
                        Error::invalid(format!("{p}.frame"), "must be an integer >= 0")
                    })?,
                };
                let iso = match &self.isocenter_mm {
                    Some(c) => {
                        ensure_finite(&format!("{p}.isocenter_mm"), c)?;
                        Point3::from(*c)
                    }
                    None => Point3::origin(),
                };
                let pp = match &self.principal_point_px {
                    Some(c) => {
                        ensure_finite(&format!("{p}.principal_point_px"), c)?;
                        Some(Point2::from(*c))
                    }
                    None => None,
                };
                let dv = open_dicom_field(&f, base_dir, d)?;
                if frame >= dv.frames {
                    return Err(Error::invalid(
                        format!("{p}.frame"),
                        format!(
                            "`{}` has {} frame(s); frame is 0-based",
                            short_name(d),
                            dv.frames
                        ),
                    ));
                }
                dv.require_pixels()
                    .map_err(|e| dicom_field_error(&f, d, e))?;
                let file_size = dv.image_size_px();
                if let Some(s) = &self.image_size_px {
                    let given = image_size(&format!("{p}.image_size_px"), s)?;
                    if given != file_size {
                        return Err(Error::invalid(
                            format!("{p}.image_size_px"),
                            format!(
                                "[{}, {}] differs from the DICOM file's Columns x Rows [{}, {}]",
                                given[0], given[1], file_size[0], file_size[1]
                            ),
                        ));
                    }
                }
                if explicit == 0 {
                    let c = dv
                        .carm_for_frame(frame, iso, pp)
                        .map_err(|e| dicom_field_error(&f, d, e))?;
                    dicom = Some((file_size, Some(c)));
                } else {
                    dicom = Some((file_size, None));
                    if self.isocenter_mm.is_some() || self.principal_point_px.is_some() {
                        warnings.push(format!(
                            "{p}: isocenter_mm and principal_point_px are ignored: the explicit geometry wins over the DICOM file"
                        ));
                    }
                    if dv.missing.is_empty() {
                        warnings.push(format!(
                            "{f}: the explicit geometry is used; the file's positioner tags are ignored"
                        ));
                    }
                }
            }
        }
        let size = match (&self.image_size_px, &dicom) {
            (_, Some((s, _))) => *s,
            (Some(s), None) => image_size(&format!("{p}.image_size_px"), s)?,
            (None, None) => {
                return Err(Error::invalid(
                    format!("{p}.image_size_px"),
                    "missing (required unless the view names a DICOM file)",
                ))
            }
        };
        let projection = if let Some(rows) = &self.projection {
            let m = Matrix3x4::from_fn(|r, c| rows[r][c]);
            Projection::from_matrix(&m).map_err(|e| e.in_field(&p))?
        } else if let Some(g) = &self.geometry {
            Projection::from_geometry(
                &Point3::from(g.source_mm),
                &Point3::from(g.detector_origin_mm),
                &Vector3::from(g.u_axis_mm),
                &Vector3::from(g.v_axis_mm),
            )
            .map_err(|e| e.in_field(&p))?
        } else if let Some(c) = &self.carm {
            c.to_carm(size)
                .projection()
                .map_err(|e| e.in_field(&format!("{p}.carm")))?
        } else if let Some((_, Some(c))) = &dicom {
            c.projection()
                .map_err(|e| e.in_field(&format!("{p}.dicom")))?
        } else {
            return Err(Error::invalid(&p, "has no geometry"));
        };
        let distortion = match &self.distortion {
            Some(d) => {
                let f = format!("{p}.distortion");
                d.validate().map_err(|e| e.in_field(&f))?;
                Some(d.to_model().map_err(|e| e.in_field(&f))?)
            }
            None => None,
        };
        let mut annotations = match &self.annotations {
            Some(a) => a.to_annotations(&format!("{p}.annotations"), size, warnings)?,
            None => Annotations::default(),
        };
        if let Some(m) = &distortion {
            undistort_annotations(&mut annotations, m);
        }
        let mut view = View::new(self.name.clone(), size, projection);
        view.annotations = annotations;
        Ok(view)
    }
}

/// Opens a view's DICOM file; errors name the field and the file.
fn open_dicom_field(field: &str, base_dir: &Path, path: &str) -> Result<DicomView> {
    let full = resolve(base_dir, path);
    DicomView::open(&full).map_err(|e| match e {
        Error::Io { source, .. } => Error::invalid(
            field,
            format!("cannot read `{}`: {source}", short_name(path)),
        ),
        other => dicom_field_error(field, path, other),
    })
}

/// A DICOM error placed in the case: `views[i].dicom: `file`: TAG: reason`.
fn dicom_field_error(field: &str, path: &str, e: Error) -> Error {
    match e {
        Error::Dicom { what, reason } => {
            let what = if what == "." {
                String::new()
            } else {
                format!("{what}: ")
            };
            Error::Dicom {
                what: field.to_string(),
                reason: format!("`{}`: {what}{reason}", short_name(path)),
            }
        }
        other => other.in_field(field),
    }
}

/// A file name short enough for a one-line error (at most 40 characters,
/// the end kept).
fn short_name(path: &str) -> String {
    let n = path.chars().count();
    if n <= 40 {
        path.to_string()
    } else {
        format!("...{}", path.chars().skip(n - 37).collect::<String>())
    }
}

/// Maps every annotated point from distorted (as measured) to undistorted
/// pixels.
fn undistort_annotations(a: &mut Annotations, m: &PolynomialDistortion) {
    let f = |pts: &mut Vec<Point2<f64>>| {
        for q in pts.iter_mut() {
            *q = m.undistort(q);
        }
    };
    f(&mut a.head_outline_px);
    f(&mut a.lesion_outline_px);
    for e in [&mut a.neck_edges_px, &mut a.shaft_edges_px]
        .into_iter()
        .flatten()
    {
        f(&mut e[0]);
        f(&mut e[1]);
    }
    if let Some(q) = &mut a.entry_px {
        *q = m.undistort(q);
    }
}

impl DistortionWire {
    /// The imaging module's model of this wire form.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field (`model`, `degree`,
    /// `coeffs_u`, ...) as [`PolynomialDistortion`]'s `TryFrom` does.
    pub fn to_model(&self) -> Result<PolynomialDistortion> {
        PolynomialDistortion::try_from(DistortionParams {
            model: self.model.clone(),
            degree: self.degree,
            center_px: self.center_px,
            scale_px: self.scale_px,
            coeffs_u: self.coeffs_u.clone(),
            coeffs_v: self.coeffs_v.clone(),
        })
    }

    /// The wire form of a model.
    #[must_use]
    pub fn from_model(m: &PolynomialDistortion) -> Self {
        let p = m.params();
        Self {
            model: p.model,
            degree: p.degree,
            center_px: p.center_px,
            scale_px: p.scale_px,
            coeffs_u: p.coeffs_u,
            coeffs_v: p.coeffs_v,
        }
    }

    /// Checks the parts that do not depend on the model: a non-empty model
    /// name, `scale_px` > 0, as many `u` as `v` coefficients.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field.
    pub fn validate(&self) -> Result<()> {
        if self.model.is_empty() {
            return Err(Error::invalid("model", "must not be empty"));
        }
        ensure_finite("center_px", &self.center_px)?;
        ensure_positive("scale_px", self.scale_px)?;
        if self.coeffs_u.len() != self.coeffs_v.len() {
            return Err(Error::invalid(
                "coeffs_v",
                "must have as many entries as coeffs_u",
            ));
        }
        Ok(())
    }
}

impl SphereWire {
    fn to_sphere(self, field: &str) -> Result<Sphere> {
        Sphere::new(Point3::from(self.center_mm), self.radius_mm).map_err(|e| e.in_field(field))
    }

    fn from_sphere(s: &Sphere) -> Self {
        Self {
            center_mm: s.center.coords.into(),
            radius_mm: s.radius_mm,
        }
    }
}

fn load_mesh_field(field: &str, base_dir: &Path, path: &str) -> Result<(TriMesh, Vec<String>)> {
    if path.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    let full = resolve(base_dir, path);
    load_mesh(&full)
        .map(|(m, w)| (m, w.into_iter().map(|s| format!("{field}: {s}")).collect()))
        .map_err(|e| match e {
            Error::Io { source, .. } => {
                Error::invalid(field, format!("cannot read `{path}`: {source}"))
            }
            Error::Mesh { reason, .. } => Error::mesh(field, format!("`{path}`: {reason}")),
            Error::LimitExceeded {
                what,
                limit,
                actual,
            } => Error::LimitExceeded {
                what: format!("{field} {what}"),
                limit,
                actual,
            },
            other => other.in_field(field),
        })
}

impl KerboulWire {
    fn to_kerboul(self) -> Result<Kerboul> {
        for (name, arc) in [
            ("coronal_arc_deg", self.coronal_arc_deg),
            ("sagittal_arc_deg", self.sagittal_arc_deg),
        ] {
            let f = format!("lesion.kerboul.{name}");
            if arc[0].is_nan() || arc[1].is_nan() || arc[0] >= arc[1] {
                return Err(Error::invalid(f, "must be [from, to] with from < to"));
            }
            if arc[1] - arc[0] > 180.0 {
                return Err(Error::invalid(f, "must span at most 180 degrees"));
            }
        }
        ensure_positive("lesion.kerboul.depth_mm", self.depth_mm)?;
        Ok(Kerboul {
            coronal_arc_deg: self.coronal_arc_deg,
            sagittal_arc_deg: self.sagittal_arc_deg,
            depth_mm: self.depth_mm,
        })
    }
}

/// The angle between the viewing lines of two views, degrees, in [0, 90].
#[must_use]
pub fn view_line_angle_deg(a: &Projection, b: &Projection) -> f64 {
    let c = a
        .viewing_direction()
        .dot(&b.viewing_direction())
        .abs()
        .min(1.0);
    c.acos().to_degrees()
}

/// Checks that at least two views' viewing lines differ by at least
/// [`MIN_VIEW_ANGLE_DEG`].
///
/// # Errors
/// [`Error::Invalid`] on `views`, naming the two most different views.
pub fn check_view_directions(views: &[View]) -> Result<()> {
    let mut best: Option<(f64, usize, usize)> = None;
    for i in 0..views.len() {
        for j in i + 1..views.len() {
            let a = view_line_angle_deg(&views[i].projection, &views[j].projection);
            if best.is_none_or(|(b, _, _)| a > b) {
                best = Some((a, i, j));
            }
        }
    }
    match best {
        Some((a, _, _)) if a >= MIN_VIEW_ANGLE_DEG - 1e-9 => Ok(()),
        Some((a, i, j)) => Err(Error::invalid(
            "views",
            format!(
                "no two views look along directions {MIN_VIEW_ANGLE_DEG} degrees or more apart: the most different, `{}` (views[{i}]) and `{}` (views[{j}]), differ by {a:.2} degrees",
                views[i].name, views[j].name
            ),
        )),
        None => Err(Error::too_few("views", 2, views.len())),
    }
}

impl CaseFile {
    /// Checks every rule and builds the domain case; meshes are read from
    /// paths relative to `base_dir` (the case file's folder). Returns the
    /// case and warnings.
    ///
    /// # Errors
    /// As [`load_case`].
    pub fn to_case(&self, base_dir: &Path) -> Result<(Case, Vec<String>)> {
        let mut warnings = Vec::new();
        if self.schema != CASE_SCHEMA {
            return Err(Error::invalid(
                "schema",
                format!("expected \"{CASE_SCHEMA}\", got \"{}\"", self.schema),
            ));
        }
        check_view_list(self.views.iter().map(|v| v.name.as_str()))?;
        let views = self
            .views
            .iter()
            .enumerate()
            .map(|(i, v)| v.to_view(i, base_dir, &mut warnings))
            .collect::<Result<Vec<_>>>()?;
        check_view_directions(&views)?;

        let mut case = Case::new(self.side, views);
        if let Some(t) = self.cortical_thickness_mm {
            ensure_positive("cortical_thickness_mm", t)?;
            case.cortical_thickness_mm = t;
        }
        if let Some(s) = self.annotation_noise_px {
            if !(s.is_finite() && s >= 0.0) {
                return Err(Error::invalid(
                    "annotation_noise_px",
                    "must be a finite number >= 0",
                ));
            }
            case.annotation_noise_px = s;
        }
        if let Some(c) = &self.constraints {
            case.constraints = c.to_constraints().map_err(|e| e.in_field("constraints"))?;
        }
        if let Some(z) = self.entry_zone {
            case.entry_zone = Some(z.to_sphere("entry_zone")?);
        }
        if let Some(zs) = &self.forbidden_zones {
            case.forbidden_zones = zs
                .iter()
                .enumerate()
                .map(|(i, z)| z.to_sphere(&format!("forbidden_zones[{i}]")))
                .collect::<Result<_>>()?;
        }
        if let Some(b) = &self.bone_mesh {
            let (mesh, w) = load_mesh_field("bone_mesh.path", base_dir, &b.path)?;
            warnings.extend(w);
            case.bone_mesh = Some((mesh, b.frame.into()));
        }
        if let Some(l) = &self.lesion {
            case.lesion = Some(match l {
                LesionWire::Ellipsoid(e) => {
                    let f = "lesion.ellipsoid";
                    let r = rotation_from_rows(&format!("{f}.rotation"), &e.rotation)?;
                    for (k, a) in e.semi_axes_mm.iter().enumerate() {
                        ensure_positive(&format!("{f}.semi_axes_mm[{k}]"), *a)?;
                        if *a > MAX_LESION_SEMI_AXIS_MM {
                            return Err(Error::invalid(
                                format!("{f}.semi_axes_mm[{k}]"),
                                format!(
                                    "{a} mm is larger than any femoral head (at most {MAX_LESION_SEMI_AXIS_MM} mm; lengths are in mm)"
                                ),
                            ));
                        }
                    }
                    LesionSpec::Ellipsoid(
                        Ellipsoid::new(Point3::from(e.center_mm), Vector3::from(e.semi_axes_mm), r)
                            .map_err(|e| e.in_field(f))?,
                    )
                }
                LesionWire::Mesh(m) => {
                    let frame = m.frame.unwrap_or_default();
                    if frame == MeshFrameWire::Own
                        && self.bone_mesh.as_ref().map(|b| b.frame) != Some(MeshFrameWire::Own)
                    {
                        return Err(Error::invalid(
                            "lesion.mesh.frame",
                            "\"own\" needs a bone_mesh whose frame is \"own\" (the lesion moves with it)",
                        ));
                    }
                    let (mesh, w) = load_mesh_field("lesion.mesh.path", base_dir, &m.path)?;
                    warnings.extend(w);
                    LesionSpec::Mesh(mesh, frame.into())
                }
                LesionWire::Kerboul(k) => LesionSpec::Kerboul(k.to_kerboul()?),
            });
        }
        Ok((case, warnings))
    }
}

/// File names under which [`case_to_file`] refers to a case's meshes
/// (relative to the case file; the caller writes the mesh files).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeshFileNames {
    /// File name of the bone mesh, needed when the case has one.
    pub bone_mesh: Option<String>,
    /// File name of the lesion mesh, needed when the lesion is a mesh.
    pub lesion_mesh: Option<String>,
}

/// The case file of a domain case: every view's geometry as a normalised
/// projection matrix (form 1), every constraint written explicitly.
///
/// # Errors
/// [`Error::Invalid`] when the case has a bone or lesion mesh and `meshes`
/// has no file name for it.
///
/// # Example
/// ```
/// use avnplan::io::case::{case_to_file, MeshFileNames};
/// use avnplan::imaging::{CArm, View};
/// use avnplan::{Case, Side};
/// let carm = |a: f64| CArm {
///     sid_mm: 1000.0, sod_mm: 600.0, primary_angle_rad: a, secondary_angle_rad: 0.0,
///     pixel_spacing_mm: [0.3, 0.3], isocenter_mm: nalgebra::Point3::origin(),
///     principal_point_px: None, image_size_px: [1024, 1024],
/// };
/// let views = vec![
///     View::new("AP", [1024, 1024], carm(0.0).projection().unwrap()),
///     View::new("LAT", [1024, 1024], carm(1.2).projection().unwrap()),
/// ];
/// let file = case_to_file(&Case::new(Side::Left, views), &MeshFileNames::default()).unwrap();
/// let p = file.views[1].projection.unwrap();
/// // The third row's first three entries have unit norm.
/// approx::assert_relative_eq!((p[2][0].powi(2) + p[2][1].powi(2) + p[2][2].powi(2)).sqrt(), 1.0, epsilon = 1e-12);
/// ```
pub fn case_to_file(case: &Case, meshes: &MeshFileNames) -> Result<CaseFile> {
    let views = case
        .views
        .iter()
        .map(|v| {
            let m = v.projection.matrix();
            let projection: [[f64; 4]; 3] =
                std::array::from_fn(|r| std::array::from_fn(|c| m[(r, c)]));
            let a = AnnotationsWire::from_annotations(&v.annotations);
            ViewWire {
                name: v.name.clone(),
                image_size_px: Some(v.image_size_px.map(|s| Integer(i64::from(s)))),
                projection: Some(projection),
                geometry: None,
                carm: None,
                dicom: None,
                isocenter_mm: None,
                frame: None,
                principal_point_px: None,
                distortion: None,
                annotations: (a != AnnotationsWire::default()).then_some(a),
            }
        })
        .collect();
    let bone_mesh = match &case.bone_mesh {
        None => None,
        Some((_, frame)) => Some(BoneMeshWire {
            path: meshes.bone_mesh.clone().ok_or_else(|| {
                Error::invalid("bone_mesh.path", "no file name given for the bone mesh")
            })?,
            frame: (*frame).into(),
        }),
    };
    let lesion = match &case.lesion {
        None => None,
        Some(LesionSpec::Ellipsoid(e)) => {
            let r = e.rotation.matrix();
            Some(LesionWire::Ellipsoid(EllipsoidWire {
                center_mm: e.center.coords.into(),
                semi_axes_mm: e.semi_axes_mm.into(),
                rotation: std::array::from_fn(|i| std::array::from_fn(|j| r[(i, j)])),
            }))
        }
        Some(LesionSpec::Mesh(_, frame)) => Some(LesionWire::Mesh(LesionMeshWire {
            path: meshes.lesion_mesh.clone().ok_or_else(|| {
                Error::invalid("lesion.mesh.path", "no file name given for the lesion mesh")
            })?,
            frame: Some((*frame).into()),
        })),
        Some(LesionSpec::Kerboul(k)) => Some(LesionWire::Kerboul(KerboulWire {
            coronal_arc_deg: k.coronal_arc_deg,
            sagittal_arc_deg: k.sagittal_arc_deg,
            depth_mm: k.depth_mm,
        })),
    };
    Ok(CaseFile {
        schema: CASE_SCHEMA.to_string(),
        side: case.side,
        views,
        bone_mesh,
        cortical_thickness_mm: Some(case.cortical_thickness_mm),
        lesion,
        entry_zone: case.entry_zone.as_ref().map(SphereWire::from_sphere),
        forbidden_zones: (!case.forbidden_zones.is_empty()).then(|| {
            case.forbidden_zones
                .iter()
                .map(SphereWire::from_sphere)
                .collect()
        }),
        constraints: Some(ConstraintsWire::from_constraints(&case.constraints)),
        annotation_noise_px: Some(case.annotation_noise_px),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_rules() {
        let id = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        assert!(rotation_from_rows("r", &id).is_ok());
        let mut off = id;
        off[0][0] = 1.0 + 2e-6;
        assert!(rotation_from_rows("r", &off).is_err());
        off[0][0] = 1.0 + 2e-7;
        assert!(rotation_from_rows("r", &off).is_ok());
        let mut refl = id;
        refl[2][2] = -1.0;
        let e = rotation_from_rows("r", &refl).unwrap_err();
        assert!(e.to_string().contains("reflection"), "{e}");
    }

    #[test]
    fn constraint_defaults() {
        let c = ConstraintsWire::default().to_constraints().unwrap();
        assert_eq!(c, Constraints::default());
        let w = ConstraintsWire {
            passes: Some(Integer(17)),
            ..Default::default()
        };
        assert_eq!(
            w.to_constraints().unwrap_err().to_string(),
            "passes: must be an integer 1-16"
        );
    }
}

//! The validated input of one hip: views, optional bone mesh and lesion,
//! zones and constraints (the domain form of the contract's case file;
//! [`crate::io`] reads it from JSON).

use crate::geometry::{Ellipsoid, Sphere, TriMesh};
use crate::imaging::View;

/// Which femur.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The patient's left femur.
    Left,
    /// The patient's right femur.
    Right,
}

/// The frame a bone mesh is given in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MeshFrame {
    /// Already in the case's world frame.
    #[default]
    World,
    /// In its own CT/MRI frame: to be registered to the views first.
    Own,
}

/// The necrotic arcs of the modified Kerboul method (contract `kerboul`).
///
/// Arcs are measured at the head centre in the head-neck frame of
/// [`crate::anatomy::HeadNeckFrame`]: a direction's coronal angle is
/// `atan2(d . x, d . z)` (0 at the superior pole, + towards medial) and its
/// sagittal angle `atan2(d . anterior, d . z)` (0 at the superior pole, +
/// towards anterior); `depth_mm` is how deep the lesion reaches below the
/// head surface (see [`crate::anatomy::Lesion`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kerboul {
    /// Coronal arc `[from, to]`, degrees.
    pub coronal_arc_deg: [f64; 2],
    /// Sagittal arc `[from, to]`, degrees.
    pub sagittal_arc_deg: [f64; 2],
    /// Depth below the articular surface, mm.
    pub depth_mm: f64,
}

/// A lesion given explicitly in the case.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LesionSpec {
    /// An ellipsoid in the world frame.
    Ellipsoid(Ellipsoid),
    /// A closed mesh, with the frame it is in (`Own` moves with the bone mesh).
    Mesh(TriMesh, MeshFrame),
    /// The Kerboul description, placed on the reconstructed head.
    Kerboul(Kerboul),
}

/// The safety constraints of the contract, with its defaults.
///
/// Defaults follow `CONTRACT.md` and the rationale in `domain.md` §7: a
/// 3.2 mm Steinmann pin, 2 mm cortical clearance, 5 mm subchondral margin
/// ("within ~5 mm of the articular surface").
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Constraints {
    /// Needle (tool) diameter, mm. Default 3.2 (Steinmann pin, domain.md §1).
    pub needle_diameter_mm: f64,
    /// Clearance from the tool surface to the outer cortex, mm. Default 2.0.
    pub cortical_clearance_mm: f64,
    /// Tip distance to the outer surface (articular surface), mm. Default 5.0.
    pub subchondral_margin_mm: f64,
    /// Axis length past the entry over which clearance is not required, mm.
    /// Default 10.0.
    pub entry_allowance_mm: f64,
    /// Largest needle length inside bone, mm. Default 130.0.
    pub max_length_mm: f64,
    /// Smallest angle between the needle axis and the entry tangent plane,
    /// degrees. Default 30.0.
    pub min_incidence_deg: f64,
    /// Number of passes through one entry (1-16). Default 1.
    pub passes: u32,
    /// Radius around the intralesional part of a pass that counts as
    /// covered, mm. Default 5.0.
    pub coverage_radius_mm: f64,
    /// Optional (crate addition): largest acceptable breach probability per
    /// trajectory under the annotation noise model, in [0, 1].
    pub max_breach_probability: Option<f64>,
}

impl Default for Constraints {
    fn default() -> Self {
        Self {
            needle_diameter_mm: 3.2,
            cortical_clearance_mm: 2.0,
            subchondral_margin_mm: 5.0,
            entry_allowance_mm: 10.0,
            max_length_mm: 130.0,
            min_incidence_deg: 30.0,
            passes: 1,
            coverage_radius_mm: 5.0,
            max_breach_probability: None,
        }
    }
}

impl Constraints {
    /// Needle radius `R`, mm.
    #[must_use]
    pub fn needle_radius_mm(&self) -> f64 {
        self.needle_diameter_mm / 2.0
    }

    /// Required axis-to-surface distance past the entry allowance:
    /// `R + cortical_clearance_mm`.
    #[must_use]
    pub fn required_axis_distance_mm(&self) -> f64 {
        self.needle_radius_mm() + self.cortical_clearance_mm
    }
}

/// A sphere that the needle must keep away from (e.g. vessels).
pub type ForbiddenZone = Sphere;

/// One hip case: everything known before planning.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Case {
    /// Which femur.
    pub side: Side,
    /// The calibrated views (at least 2 with different directions).
    pub views: Vec<View>,
    /// The outer (periosteal) bone surface, if a mesh was given.
    pub bone_mesh: Option<(TriMesh, MeshFrame)>,
    /// Cortical thickness, mm. Default 3.0.
    pub cortical_thickness_mm: f64,
    /// An explicit lesion, overriding the one seen in the views.
    pub lesion: Option<LesionSpec>,
    /// Where the entry point may be: a sphere on the lateral cortex.
    pub entry_zone: Option<Sphere>,
    /// Spheres the needle axis must keep `R + cortical_clearance_mm` from.
    pub forbidden_zones: Vec<ForbiddenZone>,
    /// The safety constraints.
    pub constraints: Constraints,
    /// One-sigma annotation noise, px, that plans must be robust to
    /// (crate addition to the contract, case field `annotation_noise_px`).
    /// Default 1.0: the contract's "annotation noise of 1 px".
    pub annotation_noise_px: f64,
}

impl Case {
    /// A case with the given side and views and every optional part at its default.
    #[must_use]
    pub fn new(side: Side, views: Vec<View>) -> Self {
        Self {
            side,
            views,
            bone_mesh: None,
            cortical_thickness_mm: 3.0,
            lesion: None,
            entry_zone: None,
            forbidden_zones: Vec::new(),
            constraints: Constraints::default(),
            annotation_noise_px: 1.0,
        }
    }
}

//! The model file (`"schema": "avnplan.model/1"`), output of
//! `avnplan reconstruct`: the hip model built from the views.

use serde::{Deserialize, Serialize};

use super::case::EllipsoidWire;

/// The schema string of a model file.
pub const MODEL_SCHEMA: &str = "avnplan.model/1";

/// The model file.
///
/// `neck_axis`, `shaft_axis` and `lesion` are left out when the
/// annotations do not allow them to be reconstructed; `entry_mm` when no
/// view has `entry_px`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// Always [`MODEL_SCHEMA`].
    pub schema: String,
    /// The femoral head sphere with its fit figures.
    pub head: ModelHeadWire,
    /// The neck axis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neck_axis: Option<AxisWire>,
    /// The shaft axis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shaft_axis: Option<AxisWire>,
    /// The lesion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lesion: Option<ModelLesionWire>,
    /// The annotated entry, triangulated, world mm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_mm: Option<[f64; 3]>,
}

/// The reconstructed head.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelHeadWire {
    /// Centre, world mm.
    pub center_mm: [f64; 3],
    /// Radius, mm.
    pub radius_mm: f64,
    /// Root mean square distance of the outline points to the projected
    /// sphere's silhouette, px.
    pub rms_px: f64,
    /// One-sigma uncertainty of the centre along world x, y, z, mm.
    pub center_sd_mm: [f64; 3],
}

/// A line: a point on it and its unit direction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AxisWire {
    /// A point on the axis, world mm.
    pub point_mm: [f64; 3],
    /// Unit direction.
    pub direction: [f64; 3],
}

/// The reconstructed lesion.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelLesionWire {
    /// Centre, world mm.
    pub center_mm: [f64; 3],
    /// Volume, mL.
    pub volume_ml: f64,
    /// The ellipsoid fitted to the lesion outlines.
    pub ellipsoid: EllipsoidWire,
}

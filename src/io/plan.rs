//! The plan file (`"schema": "avnplan.plan/1"`): what `avnplan plan`
//! writes and `avnplan check` reads back.
//!
//! Unlike every other input, a plan is read **ignoring unknown fields** at
//! every level (plans may come from a newer version of the contract, which
//! only ever adds fields); duplicate keys, `null`, a byte-order mark and
//! invalid UTF-8 are still refused. Optional fields are left out when
//! absent, never `null`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::json::read_json_with_schema;
use crate::error::{Error, Result};

/// The schema string of a plan file.
pub const PLAN_SCHEMA: &str = "avnplan.plan/1";

/// Whether the planner found safe trajectories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    /// At least one trajectory is safe against the planner's model.
    Ok,
    /// No candidate met every rule (see `reasons`); not an error.
    NoSafeTrajectory,
}

/// The plan file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanFile {
    /// Always [`PLAN_SCHEMA`].
    pub schema: String,
    /// `ok` or `no_safe_trajectory`.
    pub status: PlanStatus,
    /// Rejection reason -> number of candidates rejected for it (sorted by
    /// reason, so the output is deterministic).
    pub reasons: BTreeMap<String, u64>,
    /// Best first; empty unless `status` is `ok`.
    pub trajectories: Vec<TrajectoryWire>,
    /// Fraction of the lesion volume within `coverage_radius_mm` of the
    /// intralesional part of any trajectory, in [0, 1].
    pub coverage: f64,
    /// The model the plan was made on.
    pub model: PlanModelWire,
    /// Human-readable warnings.
    pub warnings: Vec<String>,
    /// Crate addition: which rule placed the entry zone (e.g. the case's
    /// `entry_zone`, the annotated entry, or the default lateral zone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_zone_rule: Option<String>,
    /// Crate addition: the extra margin, mm, that the Monte Carlo of the
    /// annotation noise recommends (see [`crate::uncertainty`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended_margin_mm: Option<f64>,
}

/// One planned trajectory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrajectoryWire {
    /// Entry on the outer bone surface, world mm.
    pub entry_mm: [f64; 3],
    /// Tip, world mm.
    pub tip_mm: [f64; 3],
    /// `|tip - entry|`, mm.
    pub length_mm: f64,
    /// Smallest axis-to-outer-surface distance minus the needle radius over
    /// the part the safety rule covers, mm.
    pub min_clearance_mm: f64,
    /// Tip distance to the outer surface, mm.
    pub tip_to_surface_mm: f64,
    /// Angle between the axis and the entry tangent plane, degrees.
    pub incidence_deg: f64,
    /// Where entry and tip appear in each view.
    pub views: Vec<TrajectoryViewWire>,
    /// C-arm angles that look down the needle.
    pub down_the_barrel: DownTheBarrelWire,
    /// Crate addition: probability of breaching the rules under the
    /// annotation noise, in [0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breach_probability: Option<f64>,
    /// Crate addition: 5th percentile of `min_clearance_mm` under the
    /// annotation noise, mm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clearance_p05_mm: Option<f64>,
    /// Crate addition: first-order standard deviation of the tip's depth
    /// below the head sphere under the annotation noise, mm (linearised
    /// head-sphere fit, [`crate::uncertainty::tip_depth_sd_first_order_mm`];
    /// views-only models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tip_depth_sd_mm: Option<f64>,
    /// Crate addition: C-arm positions for checking this needle (see
    /// [`crate::guidance::check_views`]): `perpendicular_ap` and
    /// `perpendicular_lateral` show it at full length, `anterior_wall` and
    /// `posterosuperior_wall` show that neck wall edge-on beside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_views: Option<Vec<CheckViewWire>>,
}

/// Crate addition: one C-arm position for checking a planned needle,
/// degrees (DICOM XA signs, as [`DownTheBarrelWire`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckViewWire {
    /// `perpendicular_ap`, `perpendicular_lateral`, `anterior_wall` or
    /// `posterosuperior_wall`.
    pub kind: String,
    /// Primary angle, degrees, + towards LAO.
    pub primary_deg: f64,
    /// Secondary angle, degrees, + towards CRA.
    pub secondary_deg: f64,
    /// For a wall view: the gap between the needle's surface and the wall
    /// seen edge-on, mm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_clearance_mm: Option<f64>,
}

/// A trajectory as seen in one view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrajectoryViewWire {
    /// The view's name.
    pub name: String,
    /// Entry, px.
    pub entry_px: [f64; 2],
    /// Tip, px.
    pub tip_px: [f64; 2],
}

/// Positioner angles for a down-the-barrel view, degrees (DICOM XA signs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DownTheBarrelWire {
    /// Primary angle, degrees, + towards LAO.
    pub primary_deg: f64,
    /// Secondary angle, degrees, + towards CRA.
    pub secondary_deg: f64,
}

/// Where the bone model came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BoneSource {
    /// The case's bone mesh.
    Mesh,
    /// Reconstructed from the views.
    Reconstructed,
}

/// The femoral head sphere.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeadWire {
    /// Centre, world mm.
    pub center_mm: [f64; 3],
    /// Radius, mm.
    pub radius_mm: f64,
}

/// `model` of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanModelWire {
    /// The femoral head.
    pub head: HeadWire,
    /// Lesion volume, mL.
    pub lesion_volume_ml: f64,
    /// `mesh` or `reconstructed`.
    pub bone: BoneSource,
    /// The registered pose of a bone mesh given in its own frame: 4x4,
    /// row-major, mesh mm -> world mm (see
    /// [`super::registration::isometry_to_rows`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub world_from_mesh: Option<[[f64; 4]; 4]>,
    /// Margin added for the registration's uncertainty, mm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_margin_mm: Option<f64>,
}

impl PlanFile {
    /// Checks the plan's internal consistency: the schema, `trajectories`
    /// non-empty exactly when `status` is `ok`, `coverage` in [0, 1],
    /// entry and tip distinct, `length_mm` > 0, a well-formed
    /// `world_from_mesh`.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field.
    pub fn validate(&self) -> Result<()> {
        if self.schema != PLAN_SCHEMA {
            return Err(Error::invalid(
                "schema",
                format!("expected \"{PLAN_SCHEMA}\", got \"{}\"", self.schema),
            ));
        }
        match (self.status, self.trajectories.is_empty()) {
            (PlanStatus::Ok, true) => {
                return Err(Error::invalid(
                    "trajectories",
                    "must not be empty when status is ok",
                ))
            }
            (PlanStatus::NoSafeTrajectory, false) => {
                return Err(Error::invalid(
                    "trajectories",
                    "must be empty unless status is ok",
                ))
            }
            _ => {}
        }
        if !(0.0..=1.0).contains(&self.coverage) {
            return Err(Error::invalid("coverage", "must be in [0, 1]"));
        }
        for (i, t) in self.trajectories.iter().enumerate() {
            let d: f64 = (0..3)
                .map(|k| (t.tip_mm[k] - t.entry_mm[k]).powi(2))
                .sum::<f64>()
                .sqrt();
            if d.is_nan() || d <= 0.0 {
                return Err(Error::invalid(
                    format!("trajectories[{i}].tip_mm"),
                    "must differ from entry_mm",
                ));
            }
            if t.length_mm.is_nan() || t.length_mm <= 0.0 {
                return Err(Error::invalid(
                    format!("trajectories[{i}].length_mm"),
                    "must be > 0",
                ));
            }
        }
        if let Some(m) = &self.model.world_from_mesh {
            super::registration::isometry_from_rows("model.world_from_mesh", m)?;
        }
        Ok(())
    }
}

/// Reads a plan file for `check`: strict about the document (duplicate
/// keys, `null`, byte-order mark, UTF-8, schema), lenient about unknown
/// fields, then [`PlanFile::validate`].
///
/// # Errors
/// As [`super::json::read_json`] and [`PlanFile::validate`].
///
/// # Example
/// ```
/// use avnplan::io::plan::{load_plan, PlanStatus};
/// let dir = std::env::temp_dir().join("avnplan_doc_load_plan");
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("plan.json");
/// std::fs::write(&path, r#"{"schema": "avnplan.plan/1", "status": "no_safe_trajectory",
///   "reasons": {"cortical_clearance": 12}, "trajectories": [], "coverage": 0,
///   "model": {"head": {"center_mm": [0, 0, 0], "radius_mm": 24}, "lesion_volume_ml": 6.5,
///             "bone": "reconstructed", "from_a_newer_version": 1},
///   "warnings": []}"#).unwrap();
/// let plan = load_plan(&path).unwrap();
/// assert_eq!(plan.status, PlanStatus::NoSafeTrajectory);
/// approx::assert_relative_eq!(plan.model.head.radius_mm, 24.0);
/// ```
pub fn load_plan(path: &Path) -> Result<PlanFile> {
    let plan: PlanFile = read_json_with_schema(path, PLAN_SCHEMA)?;
    plan.validate()?;
    Ok(plan)
}

//! The needle file (`"schema": "avnplan.needle/1"`), input of
//! `avnplan check`, and the check file (`"schema": "avnplan.check/1"`), its
//! output.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::case::{check_view_directions, check_view_list};
use super::json::read_json_with_schema;
use crate::case::Case;
use crate::error::{Error, Result};

/// The schema string of a needle file.
pub const NEEDLE_SCHEMA: &str = "avnplan.needle/1";
/// The schema string of a check file.
pub const CHECK_SCHEMA: &str = "avnplan.check/1";

/// A needle seen intra-operatively in two or more views.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeedleFile {
    /// Always [`NEEDLE_SCHEMA`].
    pub schema: String,
    /// The needle in each view (2 to 64).
    pub views: Vec<NeedleViewWire>,
}

/// The needle in one view, pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeedleViewWire {
    /// The name of a view of the case.
    pub name: String,
    /// The needle tip, px.
    pub tip_px: [f64; 2],
    /// Two distinct points on the needle's image away from the tip, px, in
    /// either order.
    pub shaft_px: [[f64; 2]; 2],
}

fn dist_px(a: &[f64; 2], b: &[f64; 2]) -> f64 {
    (a[0] - b[0]).hypot(a[1] - b[1])
}

impl NeedleFile {
    /// Checks the file on its own: the schema, 2 to 64 views, names
    /// non-empty, unique and at most 64 characters, both shaft points
    /// distinct from each other and from the tip.
    ///
    /// # Errors
    /// [`Error`] naming the field.
    pub fn validate(&self) -> Result<()> {
        if self.schema != NEEDLE_SCHEMA {
            return Err(Error::invalid(
                "schema",
                format!("expected \"{NEEDLE_SCHEMA}\", got \"{}\"", self.schema),
            ));
        }
        check_view_list(self.views.iter().map(|v| v.name.as_str()))?;
        for (i, v) in self.views.iter().enumerate() {
            if dist_px(&v.shaft_px[0], &v.shaft_px[1]) <= 0.0 {
                return Err(Error::invalid(
                    format!("views[{i}].shaft_px"),
                    "the two points must differ",
                ));
            }
            for k in 0..2 {
                if dist_px(&v.shaft_px[k], &v.tip_px) <= 0.0 {
                    return Err(Error::invalid(
                        format!("views[{i}].shaft_px[{k}]"),
                        "must differ from tip_px (a point away from the tip)",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks the file against the case: every view name is a view of the
    /// case, and the needle's views look along directions at least 10
    /// degrees apart.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field.
    pub fn check_against(&self, case: &Case) -> Result<()> {
        let mut seen = Vec::with_capacity(self.views.len());
        for (i, v) in self.views.iter().enumerate() {
            match case.views.iter().find(|cv| cv.name == v.name) {
                Some(cv) => seen.push(cv.clone()),
                None => {
                    return Err(Error::invalid(
                        format!("views[{i}].name"),
                        format!("no view named `{}` in the case", v.name),
                    ))
                }
            }
        }
        check_view_directions(&seen)
    }
}

/// Reads and checks a needle file on its own ([`NeedleFile::validate`]).
///
/// # Errors
/// As [`super::json::read_json`] and [`NeedleFile::validate`].
///
/// # Example
/// ```
/// use avnplan::io::needle::load_needle;
/// let dir = std::env::temp_dir().join("avnplan_doc_load_needle");
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("needle.json");
/// std::fs::write(&path, r#"{"schema": "avnplan.needle/1", "views": [
///   {"name": "AP", "tip_px": [500, 400], "shaft_px": [[600, 450], [700, 500]]},
///   {"name": "LAT", "tip_px": [510, 420], "shaft_px": [[610, 430], [710, 440]]}]}"#).unwrap();
/// let needle = load_needle(&path).unwrap();
/// approx::assert_relative_eq!(needle.views[1].shaft_px[1][0], 710.0);
/// ```
pub fn load_needle(path: &Path) -> Result<NeedleFile> {
    let n: NeedleFile = read_json_with_schema(path, NEEDLE_SCHEMA)?;
    n.validate()?;
    Ok(n)
}

/// The check file: a seen needle against the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckFile {
    /// Always [`CHECK_SCHEMA`].
    pub schema: String,
    /// The needle tip, world mm.
    pub tip_mm: [f64; 3],
    /// Unit vector from the needle's entry towards its tip.
    pub direction: [f64; 3],
    /// Distance from the tip to the planned tip, mm.
    pub tip_to_target_mm: f64,
    /// Angle between the needle and the planned trajectory, degrees.
    pub angle_error_deg: f64,
    /// Distance from where the needle's axis crosses the outer surface to
    /// the planned entry, mm; left out when the axis does not cross it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_offset_mm: Option<f64>,
    /// Signed clearance (negative once the body is outside), mm.
    pub min_clearance_mm: f64,
    /// True exactly when `min_clearance_mm` < 0.
    pub breach: bool,
    /// How much farther the needle may go on its current line, mm (>= 0).
    pub advance_safe_mm: f64,
    /// Advice in words.
    pub advice: String,
    /// The planned trajectory compared against (0-based).
    pub trajectory_index: usize,
}

//! The registration file (`"schema": "avnplan.registration/1"`), output of
//! `avnplan register`, and the 4x4 row-major form of rigid maps used by it
//! and by the plan's `model.world_from_mesh`.

use nalgebra::{Isometry3, Matrix4, Translation3, UnitQuaternion, Vector3};
use serde::{Deserialize, Serialize};

use super::case::rotation_from_rows;
use crate::error::{ensure_finite, Error, Result};

/// The schema string of a registration file.
pub const REGISTRATION_SCHEMA: &str = "avnplan.registration/1";

/// Whether the registration converged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationStatus {
    /// Converged.
    Ok,
    /// Did not converge; `world_from_mesh` is the best pose found.
    NotConverged,
}

/// The registration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationFile {
    /// Always [`REGISTRATION_SCHEMA`].
    pub schema: String,
    /// `ok` or `not_converged`.
    pub status: RegistrationStatus,
    /// Mesh mm -> world mm, 4x4 row-major, last row `[0, 0, 0, 1]`;
    /// present in both statuses.
    pub world_from_mesh: [[f64; 4]; 4],
    /// Root mean square reprojection error over every annotated head, neck
    /// and shaft point used, px.
    pub rms_px: f64,
    /// Per-view figures.
    pub views: Vec<RegistrationViewWire>,
    /// Human-readable warnings.
    pub warnings: Vec<String>,
    /// One-sigma uncertainty of the pose.
    pub uncertainty: RegistrationUncertaintyWire,
}

/// Per-view reprojection error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationViewWire {
    /// The view's name.
    pub name: String,
    /// Root mean square reprojection error in this view, px.
    pub rms_px: f64,
}

/// One-sigma figures of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationUncertaintyWire {
    /// At the head centre, mm.
    pub head_center_sd_mm: f64,
    /// Of the rotation angle, degrees.
    pub rotation_sd_deg: f64,
}

/// A rigid map as a 4x4 row-major matrix (`[R | t; 0 0 0 1]`).
///
/// # Example
/// ```
/// use avnplan::io::registration::{isometry_from_rows, isometry_to_rows};
/// use nalgebra::{Isometry3, Vector3};
/// let iso = Isometry3::new(Vector3::new(1.0, 2.0, 3.0), Vector3::new(0.1, -0.2, 0.3));
/// let rows = isometry_to_rows(&iso);
/// approx::assert_relative_eq!(rows[1][3], 2.0);
/// let back = isometry_from_rows("world_from_mesh", &rows).unwrap();
/// approx::assert_relative_eq!(back.to_homogeneous(), iso.to_homogeneous(), epsilon = 1e-12);
/// ```
#[must_use]
pub fn isometry_to_rows(iso: &Isometry3<f64>) -> [[f64; 4]; 4] {
    let m: Matrix4<f64> = iso.to_homogeneous();
    std::array::from_fn(|i| std::array::from_fn(|j| m[(i, j)]))
}

/// Reads a 4x4 row-major rigid map: the 3x3 block a rotation (orthonormal
/// within 1e-6, determinant +1), the last row `[0, 0, 0, 1]`.
///
/// # Errors
/// [`Error::Invalid`] naming `field`.
pub fn isometry_from_rows(field: &str, rows: &[[f64; 4]; 4]) -> Result<Isometry3<f64>> {
    for r in rows {
        ensure_finite(field, r)?;
    }
    if rows[3] != [0.0, 0.0, 0.0, 1.0] {
        return Err(Error::invalid(
            format!("{field}[3]"),
            "must be [0, 0, 0, 1]",
        ));
    }
    let r3: [[f64; 3]; 3] = std::array::from_fn(|i| [rows[i][0], rows[i][1], rows[i][2]]);
    let rot = rotation_from_rows(field, &r3)?;
    Ok(Isometry3::from_parts(
        Translation3::from(Vector3::new(rows[0][3], rows[1][3], rows[2][3])),
        UnitQuaternion::from_rotation_matrix(&rot),
    ))
}

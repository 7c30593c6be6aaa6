//! Decomposition of a projection into intrinsics and pose (RQ), and back.
//!
//! A normalised projection (third row's first three entries of unit norm,
//! `w > 0` in front of the source, as [`Projection`] keeps it) factors as
//!
//! ```text
//!   P = K S [R | t]        K = | fu  s  u0 |     S = diag(m, 1, 1)
//!                              |  0 fv  v0 |     m = -1 if mirrored, else +1
//!                              |  0  0   1 |
//! ```
//!
//! with focal lengths `fu, fv > 0` (pixels), skew `s` (pixels), principal
//! point `(u0, v0)` (pixels), a proper rotation `R` (det +1) and translation
//! `t` (mm): `x_cam = R X + t` maps world mm to the camera frame, whose origin
//! is the X-ray source, whose `z` axis is the viewing direction (source
//! towards detector) and whose `x`, `y` axes are the image's `u`, `v`
//! directions, except that with `mirrored` the image `u` axis runs along
//! `-x_cam`.
//!
//! # Why a mirror flag
//!
//! The left 3x3 block `M` of a pinhole camera seen from the source has
//! `det M > 0`. A radiograph is displayed as seen from the detector's side,
//! looking towards the source (DICOM PS3.3 C.8.19.6.13.1.2: the detector
//! row axis runs "from left to right of the detector plane looking towards
//! the source"), which is the mirror image of the pinhole view: the DICOM
//! XA form of [`super::CArm`] therefore yields `det M < 0`. RQ decomposition
//! with positive diagonal then gives an orthogonal factor with det -1. Rather
//! than report a negative focal length or an improper rotation, this crate
//! reports `mirrored = true` and flips the camera `x` axis: the rotation stays
//! proper and both focal lengths stay positive.
//!
//! The RQ factorisation with a positive diagonal is unique for a
//! non-singular `M`, so `decompose` then [`Projection::from_intrinsics_pose`]
//! gives back the same normalised matrix (to rounding).

use nalgebra::{Isometry3, Matrix3, Matrix3x4, Point2, Rotation3, Translation3, UnitQuaternion};

use super::Projection;
use crate::error::{ensure_finite, ensure_positive, Error, Result};

/// Intrinsic parameters of a view (the `K` of the module docs), pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Intrinsics {
    /// Focal lengths `[fu, fv]`, pixels, both `> 0`: the source to detector
    /// distance divided by the pixel spacing along `u` and `v`.
    pub focal_px: [f64; 2],
    /// Principal point (foot of the perpendicular from the source on the
    /// detector), pixels.
    pub principal_point_px: Point2<f64>,
    /// Skew, pixels (`K[0][1]`); zero for rectangular pixels.
    pub skew: f64,
}

impl Intrinsics {
    /// The upper-triangular matrix `K`.
    #[must_use]
    pub fn matrix(&self) -> Matrix3<f64> {
        Matrix3::new(
            self.focal_px[0],
            self.skew,
            self.principal_point_px.x,
            0.0,
            self.focal_px[1],
            self.principal_point_px.y,
            0.0,
            0.0,
            1.0,
        )
    }

    /// Checks that all entries are finite and both focal lengths are `> 0`.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `focal_px[i]`, `principal_point_px` or `skew`.
    pub fn validate(&self) -> Result<()> {
        ensure_positive("focal_px[0]", self.focal_px[0])?;
        ensure_positive("focal_px[1]", self.focal_px[1])?;
        ensure_finite(
            "principal_point_px",
            self.principal_point_px.coords.as_slice(),
        )?;
        ensure_finite("skew", &[self.skew])
    }
}

/// Pose of a view: the rigid map from world to camera coordinates, and the
/// mirror flag (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    /// Maps world mm to the camera frame (origin at the source, `z` along the
    /// viewing direction), mm. Its rotation is proper.
    pub camera_from_world: Isometry3<f64>,
    /// `true` when the image `u` axis runs along the camera's `-x` axis
    /// (the DICOM display convention; `det M < 0`).
    pub mirrored: bool,
}

/// RQ decomposition of a non-singular 3x3 matrix: `m = k q`, `k` upper
/// triangular with a positive diagonal, `q` orthogonal (det +-1).
///
/// Gram-Schmidt on the rows from the bottom up, with one re-orthogonalisation
/// pass (enough for 3x3 camera matrices, whose condition is modest).
fn rq3(m: &Matrix3<f64>) -> Option<(Matrix3<f64>, Matrix3<f64>)> {
    let r0 = m.row(0).transpose();
    let r1 = m.row(1).transpose();
    let r2 = m.row(2).transpose();
    let k22 = r2.norm();
    if !(k22 > 0.0) {
        return None;
    }
    let q2 = r2 / k22;
    let mut k12 = q2.dot(&r1);
    let mut w1 = r1 - q2 * k12;
    let c = q2.dot(&w1);
    k12 += c;
    w1 -= q2 * c;
    let k11 = w1.norm();
    if !(k11 > 0.0) {
        return None;
    }
    let q1 = w1 / k11;
    let mut k02 = q2.dot(&r0);
    let mut k01 = q1.dot(&r0);
    let mut w0 = r0 - q2 * k02 - q1 * k01;
    let (c2, c1) = (q2.dot(&w0), q1.dot(&w0));
    k02 += c2;
    k01 += c1;
    w0 -= q2 * c2 + q1 * c1;
    let k00 = w0.norm();
    if !(k00 > 0.0) {
        return None;
    }
    let q0 = w0 / k00;
    let k = Matrix3::new(k00, k01, k02, 0.0, k11, k12, 0.0, 0.0, k22);
    let q = Matrix3::from_rows(&[q0.transpose(), q1.transpose(), q2.transpose()]);
    Some((k, q))
}

impl Projection {
    /// Splits the projection into intrinsics `K` and pose `(R, t, mirrored)`
    /// so that `P = K S [R | t]` (module docs), with `fu, fv > 0` and `R` a
    /// proper rotation.
    ///
    /// # Units
    /// Focal lengths, principal point and skew in pixels; the translation in
    /// mm. `K[2][2] = 1` because the stored matrix is normalised.
    ///
    /// # Example
    /// ```
    /// use avnplan::imaging::CArm;
    /// use nalgebra::Point3;
    /// use approx::assert_relative_eq;
    /// let carm = CArm {
    ///     sid_mm: 1000.0, sod_mm: 600.0,
    ///     primary_angle_rad: 0.3, secondary_angle_rad: -0.2,
    ///     pixel_spacing_mm: [0.25, 0.5],
    ///     isocenter_mm: Point3::new(10.0, 20.0, 30.0),
    ///     principal_point_px: None, image_size_px: [1024, 768],
    /// };
    /// let p = carm.projection().unwrap();
    /// let (k, pose) = p.decompose();
    /// // SID / spacing: 1000 / 0.5 along u (columns), 1000 / 0.25 along v.
    /// assert_relative_eq!(k.focal_px[0], 2000.0, epsilon = 1e-8);
    /// assert_relative_eq!(k.focal_px[1], 4000.0, epsilon = 1e-8);
    /// assert_relative_eq!(k.principal_point_px.x, 511.5, epsilon = 1e-8);
    /// assert!(pose.mirrored); // the DICOM display convention
    /// let back = avnplan::imaging::Projection::from_intrinsics_pose(&k, &pose).unwrap();
    /// assert_relative_eq!(back.matrix(), p.matrix(), epsilon = 1e-9 * p.matrix().norm());
    /// ```
    #[must_use]
    pub fn decompose(&self) -> (Intrinsics, Pose) {
        let p = self.matrix();
        let m: Matrix3<f64> = p.fixed_view::<3, 3>(0, 0).into_owned();
        // `from_matrix` guarantees a non-singular, finite, normalised M.
        let (k, q) = rq3(&m).unwrap_or_else(|| (Matrix3::identity(), Matrix3::identity()));
        let mirrored = q.determinant() < 0.0;
        let mut r = q;
        if mirrored {
            // Q = S R with S = diag(-1, 1, 1): R = S Q.
            r.row_mut(0).neg_mut();
        }
        // Scale K so that K[2][2] = 1 (it already is up to rounding).
        let k = k / k[(2, 2)];
        // t = (K S)^-1 p4 = S K^-1 p4.
        let p4 = p.column(3).into_owned();
        let mut t = k
            .solve_upper_triangular(&p4)
            .unwrap_or_else(|| -(r * self.source_mm().coords));
        if mirrored {
            t.x = -t.x;
        }
        let rot = Rotation3::from_matrix_unchecked(r);
        let intr = Intrinsics {
            focal_px: [k[(0, 0)], k[(1, 1)]],
            principal_point_px: Point2::new(k[(0, 2)], k[(1, 2)]),
            skew: k[(0, 1)],
        };
        let pose = Pose {
            camera_from_world: Isometry3::from_parts(
                Translation3::from(t),
                UnitQuaternion::from_rotation_matrix(&rot),
            ),
            mirrored,
        };
        (intr, pose)
    }

    /// Builds the projection `P = K S [R | t]` from intrinsics and pose (the
    /// inverse of [`Projection::decompose`]).
    ///
    /// # Errors
    /// [`Error::Invalid`] for non-positive focal lengths or non-finite
    /// values (see [`Intrinsics::validate`]), [`Error::Invalid`] naming
    /// `camera_from_world` for a non-finite pose.
    pub fn from_intrinsics_pose(k: &Intrinsics, pose: &Pose) -> Result<Self> {
        k.validate()?;
        let iso = &pose.camera_from_world;
        ensure_finite("camera_from_world", iso.translation.vector.as_slice())?;
        ensure_finite("camera_from_world", iso.rotation.coords.as_slice())?;
        let mut r = iso.rotation.to_rotation_matrix().into_inner();
        let mut t = iso.translation.vector;
        if pose.mirrored {
            r.row_mut(0).neg_mut();
            t.x = -t.x;
        }
        let km = k.matrix();
        let mut rt = Matrix3x4::zeros();
        rt.fixed_view_mut::<3, 3>(0, 0).copy_from(&r);
        rt.set_column(3, &t);
        Self::from_matrix(&(km * rt)).map_err(|e| match e {
            Error::Degenerate { reason, .. } => Error::degenerate("intrinsics", reason),
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use nalgebra::{Point3, Vector3};

    #[test]
    fn rq_of_upper_triangular_times_rotation() {
        let k = Matrix3::new(2000.0, 3.0, 500.0, 0.0, 2100.0, 400.0, 0.0, 0.0, 1.0);
        let r = Rotation3::from_euler_angles(0.3, -1.1, 2.0).into_inner();
        let (k2, q2) = rq3(&(k * r)).unwrap();
        assert_relative_eq!(k2, k, epsilon = 1e-9);
        assert_relative_eq!(q2, r, epsilon = 1e-12);
    }

    #[test]
    fn decompose_plain_camera() {
        let k = Intrinsics {
            focal_px: [3000.0, 3100.0],
            principal_point_px: Point2::new(512.0, 480.0),
            skew: 0.5,
        };
        let pose = Pose {
            camera_from_world: Isometry3::new(
                Vector3::new(5.0, -3.0, 650.0),
                Vector3::new(0.1, 0.2, -0.3),
            ),
            mirrored: false,
        };
        let p = Projection::from_intrinsics_pose(&k, &pose).unwrap();
        let (k2, pose2) = p.decompose();
        assert!(!pose2.mirrored);
        assert_relative_eq!(k2.focal_px[0], 3000.0, epsilon = 1e-8);
        assert_relative_eq!(k2.focal_px[1], 3100.0, epsilon = 1e-8);
        assert_relative_eq!(k2.skew, 0.5, epsilon = 1e-8);
        assert_relative_eq!(
            pose2.camera_from_world.translation.vector,
            pose.camera_from_world.translation.vector,
            epsilon = 1e-8
        );
        // The source is the camera centre.
        let c = pose.camera_from_world.inverse() * Point3::origin();
        assert_relative_eq!(p.source_mm(), c, epsilon = 1e-8);
    }

    #[test]
    fn bad_intrinsics_are_errors() {
        let pose = Pose {
            camera_from_world: Isometry3::identity(),
            mirrored: false,
        };
        let mut k = Intrinsics {
            focal_px: [0.0, 1.0],
            principal_point_px: Point2::origin(),
            skew: 0.0,
        };
        let e = Projection::from_intrinsics_pose(&k, &pose).unwrap_err();
        assert!(e.to_string().contains("focal_px[0]"), "{e}");
        k.focal_px = [1.0, 1.0];
        k.skew = f64::NAN;
        assert!(Projection::from_intrinsics_pose(&k, &pose).is_err());
    }
}

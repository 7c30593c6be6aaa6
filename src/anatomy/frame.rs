//! The head-neck frame: the frame the crate measures the femoral head in.
//!
//! ```text
//!                 +z (shaft axis towards proximal, made orthogonal to x)
//!                  ^
//!                  |   . superior pole (coronal = sagittal = 0)
//!                  | .
//!          neck ===O-----> +x (neck axis, from the neck into the head:
//!                 / head      lateral -> medial)
//!               +y = z x x  (posterior for a right femur, anterior for a
//!                            left femur, in patient LPS)
//! ```
//!
//! * **origin**: the head centre;
//! * **+x**: the neck axis direction, pointing from the neck into the head
//!   (lateral to medial);
//! * **+z**: the shaft axis direction towards proximal, with its component
//!   along x removed (Gram-Schmidt), so that the x-z plane is the neck-shaft
//!   plane (close to the coronal plane);
//! * **+y** = z x x (right-handed). For a right femur in LPS it points
//!   posterior, for a left femur anterior; [`HeadNeckFrame::anterior`] gives
//!   the side-independent anterior direction `a` (`-y` right, `+y` left).
//!
//! # Kerboul angles
//!
//! A direction `d` from the head centre has
//! * coronal angle `atan2(d.x, d.z)`: 0 at the superior pole (+z), positive
//!   towards medial (+x);
//! * sagittal angle `atan2(d.a, d.z)`: 0 at the superior pole, positive
//!   towards anterior (`a` = [`HeadNeckFrame::anterior`]).
//!
//! Both are in `(-pi, pi]`. A Kerboul lesion (see
//! [`crate::anatomy::Lesion::Kerboul`]) is the set of points of the head at
//! radius `[R - depth_mm, R)` whose coronal angle lies in `coronal_arc` and
//! whose sagittal angle lies in `sagittal_arc`. This is our
//! operationalisation of the modified Kerboul method (Ha et al., JBJS Am
//! 2006;88(S3):35; domain.md §3), whose arcs are read on the mid-coronal and
//! mid-sagittal MRI slices through the head centre.

use nalgebra::{Isometry3, Point3, Rotation3, Translation3, Unit, UnitQuaternion, Vector3};

use crate::case::Side;
use crate::error::{ensure_finite, Error, Result};

pub use crate::geometry::Axis;

/// The head-neck frame (see the module documentation for the axes).
///
/// `world_from_head` maps head-frame coordinates (mm, origin at the head
/// centre) to world coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadNeckFrame {
    /// `world_from_head` rigid map.
    pub world_from_head: Isometry3<f64>,
    /// Which femur (fixes which of `+-y` is anterior).
    pub side: Side,
}

impl HeadNeckFrame {
    /// Builds the frame from the head centre, the neck direction (from the
    /// neck into the head) and the shaft direction (distal to proximal).
    ///
    /// # Errors
    /// [`Error::Invalid`] for non-finite or zero vectors,
    /// [`Error::Degenerate`] (`head_neck_frame`) when the neck and shaft
    /// directions are within 1 degree of parallel.
    ///
    /// # Example
    /// ```
    /// use avnplan::anatomy::HeadNeckFrame;
    /// use avnplan::Side;
    /// use nalgebra::{Point3, Vector3};
    /// // A right femur in LPS: neck points medial (+x) and up, shaft up (+z).
    /// let f = HeadNeckFrame::new(
    ///     Point3::new(-80.0, 0.0, 0.0),
    ///     &Vector3::new(1.0, 0.0, 0.7),
    ///     &Vector3::z(),
    ///     Side::Right,
    /// )?;
    /// approx::assert_relative_eq!(f.anterior().into_inner(), -Vector3::y(), epsilon = 1e-12);
    /// let (cor, sag) = f.kerboul_angles_rad(&(f.origin() + f.z_axis().into_inner()));
    /// approx::assert_relative_eq!(cor, 0.0, epsilon = 1e-12);
    /// approx::assert_relative_eq!(sag, 0.0, epsilon = 1e-12);
    /// # Ok::<(), avnplan::Error>(())
    /// ```
    pub fn new(
        head_center: Point3<f64>,
        neck_direction: &Vector3<f64>,
        shaft_direction: &Vector3<f64>,
        side: Side,
    ) -> Result<Self> {
        ensure_finite(
            "head_neck_frame.head_center_mm",
            head_center.coords.as_slice(),
        )?;
        ensure_finite("head_neck_frame.neck_direction", neck_direction.as_slice())?;
        ensure_finite(
            "head_neck_frame.shaft_direction",
            shaft_direction.as_slice(),
        )?;
        let x = Unit::try_new(*neck_direction, 1e-12)
            .ok_or_else(|| Error::invalid("head_neck_frame.neck_direction", "must not be zero"))?;
        let s = Unit::try_new(*shaft_direction, 1e-12)
            .ok_or_else(|| Error::invalid("head_neck_frame.shaft_direction", "must not be zero"))?;
        let zr = s.into_inner() - x.into_inner() * s.dot(&x);
        if zr.norm() < 1f64.to_radians().sin() {
            return Err(Error::degenerate(
                "head_neck_frame",
                "neck and shaft directions are parallel",
            ));
        }
        let z = zr.normalize();
        let y = z.cross(&x);
        let rot = Rotation3::from_basis_unchecked(&[x.into_inner(), y, z]);
        Ok(Self {
            world_from_head: Isometry3::from_parts(
                Translation3::from(head_center.coords),
                UnitQuaternion::from_rotation_matrix(&rot),
            ),
            side,
        })
    }

    /// The head centre (frame origin), world mm.
    #[must_use]
    pub fn origin(&self) -> Point3<f64> {
        Point3::from(self.world_from_head.translation.vector)
    }

    /// +x: the neck axis direction, from the neck into the head (medial), world.
    #[must_use]
    pub fn x_axis(&self) -> Unit<Vector3<f64>> {
        self.world_from_head.rotation * Vector3::x_axis()
    }

    /// +y = z x x, world (posterior for a right femur, anterior for a left one).
    #[must_use]
    pub fn y_axis(&self) -> Unit<Vector3<f64>> {
        self.world_from_head.rotation * Vector3::y_axis()
    }

    /// +z: superior (the proximal shaft direction orthogonalised to x), world.
    #[must_use]
    pub fn z_axis(&self) -> Unit<Vector3<f64>> {
        self.world_from_head.rotation * Vector3::z_axis()
    }

    /// The anterior direction (side-independent): `-y` for a right femur,
    /// `+y` for a left femur, world.
    #[must_use]
    pub fn anterior(&self) -> Unit<Vector3<f64>> {
        match self.side {
            Side::Right => -self.y_axis(),
            Side::Left => self.y_axis(),
        }
    }

    /// The point in head-frame coordinates (`head_from_world * p`), mm.
    #[must_use]
    pub fn to_head(&self, p: &Point3<f64>) -> Point3<f64> {
        self.world_from_head.inverse_transform_point(p)
    }

    /// The Kerboul `(coronal, sagittal)` angles of the direction from the
    /// head centre to `p`, radians in `(-pi, pi]` (module docs). Both are 0 at
    /// the head centre itself.
    #[must_use]
    pub fn kerboul_angles_rad(&self, p: &Point3<f64>) -> (f64, f64) {
        let d = p - self.origin();
        let (x, z, a) = (
            d.dot(&self.x_axis()),
            d.dot(&self.z_axis()),
            d.dot(&self.anterior()),
        );
        (x.atan2(z), a.atan2(z))
    }

    /// The unit direction (world) with the given Kerboul angles, radians.
    ///
    /// Only pairs whose cosines have the same sign exist (both within
    /// +-90 degrees of the superior pole, or both beyond); for a mixed pair
    /// the direction in the x-z (or a-z) plane nearest to it is returned.
    #[must_use]
    pub fn direction_from_kerboul_rad(
        &self,
        coronal_rad: f64,
        sagittal_rad: f64,
    ) -> Unit<Vector3<f64>> {
        let (sc, cc) = coronal_rad.sin_cos();
        let (ss, cs) = sagittal_rad.sin_cos();
        // d ~ (sc |cs|, ss |cc|, cc |cs|) in (x, a, z): atan2 gives back both angles.
        let v = self.x_axis().into_inner() * (sc * cs.abs())
            + self.anterior().into_inner() * (ss * cc.abs())
            + self.z_axis().into_inner() * (cc * cs.abs());
        Unit::try_new(v, 1e-15).unwrap_or(self.x_axis())
    }

    /// The frame moved by a rigid map (`world_from_old`).
    #[must_use]
    pub fn transformed(&self, world_from_old: &Isometry3<f64>) -> Self {
        Self {
            world_from_head: world_from_old * self.world_from_head,
            side: self.side,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn lps_axes_right_and_left() {
        // Right femur: medial is +x (towards the patient's left), superior +z.
        let r = HeadNeckFrame::new(
            Point3::origin(),
            &Vector3::new(1.0, -0.2, 0.6),
            &Vector3::new(0.1, 0.0, 1.0),
            Side::Right,
        )
        .unwrap();
        assert!(r.y_axis().y > 0.9, "y posterior for a right femur");
        assert!(r.anterior().y < -0.9);
        let l = HeadNeckFrame::new(
            Point3::origin(),
            &Vector3::new(-1.0, -0.2, 0.6),
            &Vector3::new(-0.1, 0.0, 1.0),
            Side::Left,
        )
        .unwrap();
        assert!(l.y_axis().y < -0.9, "y anterior for a left femur");
        assert!(l.anterior().y < -0.9);
        // Right-handed and orthonormal.
        let m = r.world_from_head.rotation.to_rotation_matrix();
        assert_relative_eq!(m.matrix().determinant(), 1.0, epsilon = 1e-12);
    }

    #[test]
    fn kerboul_round_trip() {
        let f = HeadNeckFrame::new(
            Point3::new(1.0, 2.0, 3.0),
            &Vector3::new(0.8, 0.3, 0.5),
            &Vector3::new(0.0, 0.1, 1.0),
            Side::Left,
        )
        .unwrap();
        for &(c, s) in &[
            (0.3, -0.4),
            (-1.2, 0.9),
            (2.0, 2.5),
            (-2.9, 1.7),
            (0.0, 0.0),
        ] {
            let d = f.direction_from_kerboul_rad(c, s);
            let (c2, s2) = f.kerboul_angles_rad(&(f.origin() + d.into_inner() * 10.0));
            assert_relative_eq!(c, c2, epsilon = 1e-12);
            assert_relative_eq!(s, s2, epsilon = 1e-12);
        }
        assert!(
            HeadNeckFrame::new(Point3::origin(), &Vector3::z(), &Vector3::z(), Side::Left).is_err()
        );
    }
}

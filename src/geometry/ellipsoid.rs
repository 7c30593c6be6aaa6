//! Ellipsoids (lesion models).

use nalgebra::{Point3, Rotation3, Vector3};

use crate::error::{ensure_finite, Error, Result};

/// An ellipsoid `{ x : |D^-1 R^T (x - c)| <= 1 }`, world mm.
///
/// `rotation` is `world_from_local`: its columns are the world directions of
/// the local axes, along which the semi-axes are measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ellipsoid {
    /// Centre, mm.
    pub center: Point3<f64>,
    /// Semi-axes along the local x, y, z axes, mm (> 0).
    pub semi_axes_mm: Vector3<f64>,
    /// `world_from_local` rotation.
    pub rotation: Rotation3<f64>,
}

impl Ellipsoid {
    /// A checked ellipsoid.
    ///
    /// # Errors
    /// [`Error::Invalid`] for non-finite values or semi-axes <= 0.
    pub fn new(
        center: Point3<f64>,
        semi_axes_mm: Vector3<f64>,
        rotation: Rotation3<f64>,
    ) -> Result<Self> {
        ensure_finite("center_mm", center.coords.as_slice())?;
        ensure_finite("semi_axes_mm", semi_axes_mm.as_slice())?;
        if semi_axes_mm.iter().any(|&a| a <= 0.0) {
            return Err(Error::invalid("semi_axes_mm", "must all be > 0"));
        }
        ensure_finite("rotation", rotation.matrix().as_slice())?;
        Ok(Self {
            center,
            semi_axes_mm,
            rotation,
        })
    }

    /// A sphere as an ellipsoid.
    ///
    /// # Errors
    /// As [`Ellipsoid::new`].
    pub fn sphere(center: Point3<f64>, radius_mm: f64) -> Result<Self> {
        Self::new(center, Vector3::repeat(radius_mm), Rotation3::identity())
    }

    /// The point in the ellipsoid's local, unit-sphere-normalised coordinates.
    #[must_use]
    pub fn to_unit(&self, p: &Point3<f64>) -> Vector3<f64> {
        let l = self.rotation.inverse() * (p - self.center);
        l.component_div(&self.semi_axes_mm)
    }

    /// The world point for unit-sphere coordinates `q`.
    #[must_use]
    pub fn from_unit(&self, q: &Vector3<f64>) -> Point3<f64> {
        self.center + self.rotation * q.component_mul(&self.semi_axes_mm)
    }

    /// Whether `p` is inside or on the ellipsoid.
    #[must_use]
    pub fn contains(&self, p: &Point3<f64>) -> bool {
        self.to_unit(p).norm_squared() <= 1.0
    }

    /// Volume, mL.
    #[must_use]
    pub fn volume_ml(&self) -> f64 {
        4.0 / 3.0 * std::f64::consts::PI * self.semi_axes_mm.product() / 1000.0
    }

    /// Axis-aligned bounding box `(min, max)`, mm.
    #[must_use]
    pub fn bounds_mm(&self) -> (Point3<f64>, Point3<f64>) {
        let m = self.rotation.matrix();
        let mut h = Vector3::zeros();
        for i in 0..3 {
            h[i] = (0..3)
                .map(|j| (m[(i, j)] * self.semi_axes_mm[j]).powi(2))
                .sum::<f64>()
                .sqrt();
        }
        (self.center - h, self.center + h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn contains_and_bounds() {
        let e = Ellipsoid::new(
            Point3::new(1.0, 2.0, 3.0),
            Vector3::new(5.0, 2.0, 1.0),
            Rotation3::from_axis_angle(&Vector3::z_axis(), std::f64::consts::FRAC_PI_2),
        )
        .unwrap();
        // Local x (5 mm) now points along world y.
        assert!(e.contains(&Point3::new(1.0, 6.9, 3.0)));
        assert!(!e.contains(&Point3::new(5.9, 2.0, 3.0)));
        let (lo, hi) = e.bounds_mm();
        assert_relative_eq!(hi.y - lo.y, 10.0, epsilon = 1e-12);
        assert_relative_eq!(hi.x - lo.x, 4.0, epsilon = 1e-12);
        let q = Vector3::new(0.3, -0.2, 0.5);
        assert_relative_eq!(e.to_unit(&e.from_unit(&q)), q, epsilon = 1e-12);
    }
}

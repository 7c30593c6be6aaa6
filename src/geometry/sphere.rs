//! Spheres.

use nalgebra::Point3;
use serde::{Deserialize, Serialize};

use crate::error::{ensure_finite, ensure_positive, Result};

/// A sphere, world mm.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sphere {
    /// Centre, mm.
    pub center: Point3<f64>,
    /// Radius, mm (> 0).
    pub radius_mm: f64,
}

impl Sphere {
    /// A checked sphere: finite centre, finite radius > 0.
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] naming `center_mm` or `radius_mm`.
    pub fn new(center: Point3<f64>, radius_mm: f64) -> Result<Self> {
        ensure_finite("center_mm", center.coords.as_slice())?;
        ensure_positive("radius_mm", radius_mm)?;
        Ok(Self { center, radius_mm })
    }

    /// Signed distance from `p` to the sphere's surface, mm (negative inside).
    #[must_use]
    pub fn signed_distance_mm(&self, p: &Point3<f64>) -> f64 {
        (p - self.center).norm() - self.radius_mm
    }

    /// Whether `p` is inside or on the sphere.
    #[must_use]
    pub fn contains(&self, p: &Point3<f64>) -> bool {
        (p - self.center).norm_squared() <= self.radius_mm * self.radius_mm
    }

    /// Distance from the segment `[a, b]` to the sphere's centre, mm.
    #[must_use]
    pub fn segment_center_distance_mm(&self, a: &Point3<f64>, b: &Point3<f64>) -> f64 {
        let ab = b - a;
        let l2 = ab.norm_squared();
        let t = if l2 > 0.0 {
            ((self.center - a).dot(&ab) / l2).clamp(0.0, 1.0)
        } else {
            0.0
        };
        (a + ab * t - self.center).norm()
    }

    /// Volume, mL (1 mL = 1000 mm^3).
    #[must_use]
    pub fn volume_ml(&self) -> f64 {
        4.0 / 3.0 * std::f64::consts::PI * self.radius_mm.powi(3) / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn segment_distance() {
        let s = Sphere::new(Point3::new(0.0, 0.0, 0.0), 1.0).unwrap();
        let d =
            s.segment_center_distance_mm(&Point3::new(-5.0, 2.0, 0.0), &Point3::new(5.0, 2.0, 0.0));
        assert_relative_eq!(d, 2.0, epsilon = 1e-12);
        let d =
            s.segment_center_distance_mm(&Point3::new(3.0, 0.0, 0.0), &Point3::new(5.0, 0.0, 0.0));
        assert_relative_eq!(d, 3.0, epsilon = 1e-12);
        assert!(Sphere::new(Point3::origin(), 0.0).is_err());
        // 46 mm head: about 51 mL (domain.md §3).
        assert_relative_eq!(
            Sphere::new(Point3::origin(), 23.0).unwrap().volume_ml(),
            50.97,
            epsilon = 0.01
        );
    }
}

//! The pinhole projection of one C-arm view.
//!
//! ```text
//!            source S
//!              *
//!             /|\        a world point X on the ray S + t (D - S), t in (0, 1]
//!            / | \       projects to the detector pixel D = O + u a + v b
//!           /  X  \
//!  --------+---+---+-------  detector plane
//!          O -> a (u)
//!          |
//!          v b (v)
//! ```
//!
//! The contract's 3x4 matrix `P` maps homogeneous world points to homogeneous
//! pixels: `[u w, v w, w]^T = P [X, Y, Z, 1]^T` with `w > 0` for points in
//! front of the source. [`Projection`] stores `P` scaled so that the third
//! row's first three entries have unit norm, which makes `w` the depth of the
//! point along the principal (viewing) axis, in mm.

use nalgebra::{Matrix3, Matrix3x4, Point2, Point3, Unit, Vector3, Vector4};

use crate::error::{ensure_finite, Error, Result};

/// Smallest `w` (depth along the viewing axis, mm) for which a point counts
/// as in front of the source.
pub const MIN_DEPTH_MM: f64 = 1e-6;

/// A world ray from the X-ray source through a pixel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ray {
    /// Ray origin (the X-ray source), world mm.
    pub origin: Point3<f64>,
    /// Unit direction from the source towards the detector.
    pub dir: Unit<Vector3<f64>>,
}

impl Ray {
    /// The point `t` mm along the ray.
    #[must_use]
    pub fn at(&self, t_mm: f64) -> Point3<f64> {
        self.origin + self.dir.into_inner() * t_mm
    }
}

/// A calibrated view: the 3x4 projection matrix of the contract, normalised.
///
/// # Frames
/// World mm in, pixels out (`u` right, `v` down, `(0,0)` the centre of the
/// top-left pixel).
///
/// # Example
/// ```
/// use avnplan::imaging::Projection;
/// use nalgebra::{Point3, Vector3};
/// use approx::assert_relative_eq;
/// // Source 600 mm above the origin, detector 400 mm below, 0.3 mm pixels.
/// let p = Projection::from_geometry(
///     &Point3::new(0.0, 0.0, 600.0),
///     &Point3::new(-150.0, -150.0, -400.0),
///     &Vector3::new(0.3, 0.0, 0.0),
///     &Vector3::new(0.0, 0.3, 0.0),
/// ).unwrap();
/// let uv = p.project(&Point3::new(0.0, 0.0, 0.0)).unwrap();
/// assert_relative_eq!(uv.x, 500.0, epsilon = 1e-9);
/// assert_relative_eq!(uv.y, 500.0, epsilon = 1e-9);
/// assert_relative_eq!(p.source_mm(), Point3::new(0.0, 0.0, 600.0), epsilon = 1e-9);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projection {
    p: Matrix3x4<f64>,
    source: Point3<f64>,
    m_inv: Matrix3<f64>,
}

impl Projection {
    /// Builds a view from a raw 3x4 matrix of any scale, as in contract form 1.
    ///
    /// The sign of the matrix is kept: by the contract, `w > 0` for points in
    /// front of the source. The matrix is rescaled so that its third row's
    /// first three entries have unit norm.
    ///
    /// # Errors
    /// [`Error::Invalid`] for non-finite entries; [`Error::Degenerate`] when
    /// the left 3x3 block is singular (no finite source).
    pub fn from_matrix(p: &Matrix3x4<f64>) -> Result<Self> {
        ensure_finite("projection", p.as_slice())?;
        let m: Matrix3<f64> = p.fixed_view::<3, 3>(0, 0).into_owned();
        let n3 = m.row(2).norm();
        if n3 == 0.0 || !n3.is_finite() {
            return Err(Error::degenerate(
                "projection",
                "third row's first three entries are zero",
            ));
        }
        let p = p / n3;
        let m = m / n3;
        // Condition check relative to the matrix scale.
        let scale = m.norm();
        let det = m.determinant();
        if !(det.abs() > 1e-12 * scale.powi(3)) {
            return Err(Error::degenerate(
                "projection",
                "left 3x3 block is singular: the source is at infinity",
            ));
        }
        let m_inv = m
            .try_inverse()
            .ok_or_else(|| Error::degenerate("projection", "left 3x3 block is singular"))?;
        let p4 = p.column(3).into_owned();
        let source = Point3::from(-(m_inv * p4));
        ensure_finite("projection", source.coords.as_slice())?;
        Ok(Self { p, source, m_inv })
    }

    /// Builds a view from explicit geometry, contract form 2.
    ///
    /// * `source_mm` — the X-ray focal spot, world mm.
    /// * `detector_origin_mm` — the world position of the centre of pixel (0,0).
    /// * `u_axis_mm`, `v_axis_mm` — the world step of +1 pixel in `u` and `v`.
    ///
    /// A pixel `(u, v)` sits at `O + u a + v b`. Writing `A = [a | b | O - S]`,
    /// `P = [A^-1 | -A^-1 S]`, so `w` is the fraction of the way from the
    /// source to the detector plane before normalisation.
    ///
    /// # Errors
    /// [`Error::Invalid`] for non-finite input, [`Error::Degenerate`] when
    /// the source lies on the detector plane or the pixel axes are parallel.
    pub fn from_geometry(
        source_mm: &Point3<f64>,
        detector_origin_mm: &Point3<f64>,
        u_axis_mm: &Vector3<f64>,
        v_axis_mm: &Vector3<f64>,
    ) -> Result<Self> {
        ensure_finite("geometry.source_mm", source_mm.coords.as_slice())?;
        ensure_finite(
            "geometry.detector_origin_mm",
            detector_origin_mm.coords.as_slice(),
        )?;
        ensure_finite("geometry.u_axis_mm", u_axis_mm.as_slice())?;
        ensure_finite("geometry.v_axis_mm", v_axis_mm.as_slice())?;
        let (nu, nv) = (u_axis_mm.norm(), v_axis_mm.norm());
        if nu == 0.0 {
            return Err(Error::invalid("geometry.u_axis_mm", "must not be zero"));
        }
        if nv == 0.0 {
            return Err(Error::invalid("geometry.v_axis_mm", "must not be zero"));
        }
        let normal = u_axis_mm.cross(v_axis_mm);
        if normal.norm() < 1e-9 * nu * nv {
            return Err(Error::degenerate(
                "geometry",
                "u_axis_mm and v_axis_mm are parallel",
            ));
        }
        let to_det = detector_origin_mm - source_mm;
        let dist = (to_det.dot(&normal) / normal.norm()).abs();
        if dist < 1e-6 {
            return Err(Error::degenerate(
                "geometry.source_mm",
                "the source lies on the detector plane",
            ));
        }
        let a = Matrix3::from_columns(&[*u_axis_mm, *v_axis_mm, to_det]);
        let a_inv = a
            .try_inverse()
            .ok_or_else(|| Error::degenerate("geometry", "singular detector frame"))?;
        let t = -(a_inv * source_mm.coords);
        let mut p = Matrix3x4::zeros();
        p.fixed_view_mut::<3, 3>(0, 0).copy_from(&a_inv);
        p.set_column(3, &t);
        Self::from_matrix(&p)
    }

    /// Explicit detector geometry (contract form 2) of this projection, with
    /// the detector plane at `detector_depth_mm` from the source along the
    /// viewing axis.
    ///
    /// A projection fixes only the ratio of the source to detector distance
    /// to the pixel spacing; every depth gives the same projection, with
    /// pixel steps proportional to the depth. With [`super::Intrinsics`]
    /// `fu`, the `u` step is `detector_depth_mm / fu` mm, so the depth for a
    /// known column spacing `s` mm is `fu s`. `Projection::from_geometry` of
    /// the result gives back this projection.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `detector_depth_mm` unless it is finite and
    /// `> 0`.
    pub fn detector_geometry(&self, detector_depth_mm: f64) -> Result<super::DetectorGeometry> {
        crate::error::ensure_positive("detector_depth_mm", detector_depth_mm)?;
        // Pixel (u, v) on the plane w = D sits at S + D M^-1 [u, v, 1]^T.
        let a = self.m_inv * detector_depth_mm;
        Ok(super::DetectorGeometry {
            source_mm: self.source,
            detector_origin_mm: self.source + a.column(2),
            u_axis_mm: a.column(0).into_owned(),
            v_axis_mm: a.column(1).into_owned(),
        })
    }

    /// The normalised 3x4 matrix (third row's first three entries of unit
    /// norm, `w > 0` in front of the source).
    #[must_use]
    pub fn matrix(&self) -> &Matrix3x4<f64> {
        &self.p
    }

    /// The X-ray source (camera centre), world mm.
    #[must_use]
    pub fn source_mm(&self) -> Point3<f64> {
        self.source
    }

    /// The unit principal (viewing) axis: from the source towards the
    /// detector, perpendicular to the detector plane.
    #[must_use]
    pub fn viewing_direction(&self) -> Unit<Vector3<f64>> {
        Unit::new_normalize(self.p.fixed_view::<1, 3>(2, 0).transpose())
    }

    /// Depth of a world point along the viewing axis, mm (`w` of the
    /// normalised matrix); positive in front of the source.
    #[must_use]
    pub fn depth_mm(&self, x: &Point3<f64>) -> f64 {
        let h = self.p * x.to_homogeneous();
        h.z
    }

    /// Projects a world point (mm) to pixels, or `None` when it is not in
    /// front of the source (`w <= MIN_DEPTH_MM`) or not finite.
    #[must_use]
    pub fn try_project(&self, x: &Point3<f64>) -> Option<Point2<f64>> {
        let h = self.p * Vector4::new(x.x, x.y, x.z, 1.0);
        if !(h.z > MIN_DEPTH_MM) {
            return None;
        }
        let uv = Point2::new(h.x / h.z, h.y / h.z);
        (uv.x.is_finite() && uv.y.is_finite()).then_some(uv)
    }

    /// Projects a world point (mm) to pixels.
    ///
    /// # Errors
    /// [`Error::Degenerate`] when the point is on or behind the source plane.
    pub fn project(&self, x: &Point3<f64>) -> Result<Point2<f64>> {
        self.try_project(x).ok_or_else(|| {
            Error::degenerate("point", "lies behind the X-ray source or on its plane")
        })
    }

    /// The world ray from the source through pixel `(u, v)`.
    #[must_use]
    pub fn back_project(&self, uv: &Point2<f64>) -> Ray {
        let d = self.m_inv * Vector3::new(uv.x, uv.y, 1.0);
        Ray {
            origin: self.source,
            dir: Unit::new_normalize(d),
        }
    }

    /// The world point on the ray through `uv` at depth `w` (mm along the
    /// viewing axis); inverse of [`Projection::project`].
    #[must_use]
    pub fn back_project_at_depth(&self, uv: &Point2<f64>, depth_mm: f64) -> Point3<f64> {
        let d = self.m_inv * Vector3::new(uv.x, uv.y, 1.0);
        // With the normalised matrix, the ray point source + s d has depth s.
        self.source + d * depth_mm
    }

    /// Jacobian of the projection at `x`: d(u, v)/d(X, Y, Z), px per mm.
    #[must_use]
    pub fn jacobian(&self, x: &Point3<f64>) -> nalgebra::Matrix2x3<f64> {
        let h = self.p * x.to_homogeneous();
        let w = h.z;
        let r0 = self.p.fixed_view::<1, 3>(0, 0);
        let r1 = self.p.fixed_view::<1, 3>(1, 0);
        let r2 = self.p.fixed_view::<1, 3>(2, 0);
        let ju = (r0 - r2 * (h.x / w)) / w;
        let jv = (r1 - r2 * (h.y / w)) / w;
        nalgebra::Matrix2x3::from_rows(&[ju, jv])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    fn simple() -> Projection {
        Projection::from_geometry(
            &Point3::new(0.0, 0.0, 600.0),
            &Point3::new(-150.0, -150.0, -400.0),
            &Vector3::new(0.3, 0.0, 0.0),
            &Vector3::new(0.0, 0.3, 0.0),
        )
        .unwrap()
    }

    #[test]
    fn projects_through_pixel_positions() {
        let p = simple();
        // A detector pixel projects onto itself.
        let d = Point3::new(-150.0 + 0.3 * 10.0, -150.0 + 0.3 * 20.0, -400.0);
        let uv = p.project(&d).unwrap();
        assert_relative_eq!(uv.x, 10.0, epsilon = 1e-9);
        assert_relative_eq!(uv.y, 20.0, epsilon = 1e-9);
        assert_relative_eq!(p.depth_mm(&d), 1000.0, epsilon = 1e-9);
        assert_relative_eq!(
            p.viewing_direction().into_inner(),
            Vector3::new(0.0, 0.0, -1.0),
            epsilon = 1e-12
        );
    }

    #[test]
    fn refuses_points_behind_source() {
        let p = simple();
        assert!(p.project(&Point3::new(0.0, 0.0, 700.0)).is_err());
        assert!(p.try_project(&Point3::new(0.0, 0.0, 600.0)).is_none());
    }

    #[test]
    fn back_projection_round_trip() {
        let p = simple();
        let x = Point3::new(12.0, -7.0, 33.0);
        let uv = p.project(&x).unwrap();
        let y = p.back_project_at_depth(&uv, p.depth_mm(&x));
        assert_relative_eq!(x, y, epsilon = 1e-9);
        let r = p.back_project(&uv);
        let t = (x - r.origin).norm();
        assert_relative_eq!(r.at(t), x, epsilon = 1e-9);
    }

    #[test]
    fn jacobian_matches_finite_differences() {
        let p = simple();
        let x = Point3::new(12.0, -7.0, 33.0);
        let j = p.jacobian(&x);
        let h = 1e-5;
        for k in 0..3 {
            let mut xp = x;
            xp[k] += h;
            let mut xm = x;
            xm[k] -= h;
            let d = (p.project(&xp).unwrap() - p.project(&xm).unwrap()) / (2.0 * h);
            assert_relative_eq!(j[(0, k)], d.x, epsilon = 1e-6);
            assert_relative_eq!(j[(1, k)], d.y, epsilon = 1e-6);
        }
    }

    #[test]
    fn degenerate_geometry_is_an_error() {
        let on_plane = Projection::from_geometry(
            &Point3::new(0.0, 0.0, -400.0),
            &Point3::new(-150.0, -150.0, -400.0),
            &Vector3::new(0.3, 0.0, 0.0),
            &Vector3::new(0.0, 0.3, 0.0),
        );
        assert!(matches!(on_plane, Err(Error::Degenerate { .. })));
        let parallel = Projection::from_geometry(
            &Point3::new(0.0, 0.0, 600.0),
            &Point3::new(-150.0, -150.0, -400.0),
            &Vector3::new(0.3, 0.0, 0.0),
            &Vector3::new(0.6, 0.0, 0.0),
        );
        assert!(parallel.is_err());
        assert!(Projection::from_matrix(&Matrix3x4::zeros()).is_err());
        let mut nan = *simple().matrix();
        nan[(0, 0)] = f64::NAN;
        assert!(Projection::from_matrix(&nan).is_err());
    }
}

//! Least-squares fits: sphere, line and 2D circle.
//!
//! Every fit starts from a closed-form (algebraic) solution and, where the
//! algebraic solution is biased, refines it by minimising the *geometric*
//! residual (the Euclidean distance of each point to the shape) with a
//! damped Gauss-Newton (Levenberg-Marquardt) iteration.
//!
//! Entry points: [`fit_sphere`], [`fit_line`], [`fit_circle_2d`], [`Axis`].

use nalgebra::{
    Isometry3, Matrix3, Matrix4, Point2, Point3, SymmetricEigen, Unit, Vector3, Vector4,
};

use crate::error::{ensure_finite, Error, Result};
use crate::geometry::Sphere;

/// Relative size of the smallest principal spread, below which a point set
/// counts as coplanar (sphere fit) or collinear (circle fit).
const FLATNESS_TOLERANCE: f64 = 1e-9;

/// Largest number of Levenberg-Marquardt iterations.
const MAX_ITERATIONS: usize = 100;

/// An oriented straight line, world mm.
///
/// `point` is any point of the line; `direction` is its unit direction (the
/// orientation matters: e.g. a neck axis points from the neck into the head).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Axis {
    /// A point on the line, mm.
    pub point: Point3<f64>,
    /// Unit direction.
    pub direction: Unit<Vector3<f64>>,
}

impl Axis {
    /// A checked axis through `point` along `direction` (normalised here).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `axis.point` or `axis.direction` for
    /// non-finite values or a direction shorter than 1e-12.
    ///
    /// # Example
    /// ```
    /// use avnplan::geometry::Axis;
    /// use nalgebra::{Point3, Vector3};
    /// let a = Axis::new(Point3::new(1.0, 0.0, 0.0), Vector3::new(0.0, 0.0, 2.0))?;
    /// approx::assert_relative_eq!(a.distance_mm(&Point3::new(4.0, 4.0, 7.0)), 5.0, epsilon = 1e-12);
    /// approx::assert_relative_eq!(a.coordinate_mm(&Point3::new(4.0, 4.0, 7.0)), 7.0, epsilon = 1e-12);
    /// # Ok::<(), avnplan::Error>(())
    /// ```
    pub fn new(point: Point3<f64>, direction: Vector3<f64>) -> Result<Self> {
        ensure_finite("axis.point", point.coords.as_slice())?;
        ensure_finite("axis.direction", direction.as_slice())?;
        let direction = Unit::try_new(direction, 1e-12)
            .ok_or_else(|| Error::invalid("axis.direction", "must not be zero"))?;
        Ok(Self { point, direction })
    }

    /// Signed coordinate of the orthogonal projection of `p` along the axis,
    /// mm, measured from `point` (positive in `direction`).
    #[must_use]
    pub fn coordinate_mm(&self, p: &Point3<f64>) -> f64 {
        (p - self.point).dot(&self.direction)
    }

    /// The point of the axis at coordinate `t_mm` (see [`Axis::coordinate_mm`]).
    #[must_use]
    pub fn at(&self, t_mm: f64) -> Point3<f64> {
        self.point + self.direction.into_inner() * t_mm
    }

    /// Orthogonal projection of `p` onto the line.
    #[must_use]
    pub fn closest_point(&self, p: &Point3<f64>) -> Point3<f64> {
        self.at(self.coordinate_mm(p))
    }

    /// Distance from `p` to the (infinite) line, mm.
    #[must_use]
    pub fn distance_mm(&self, p: &Point3<f64>) -> f64 {
        (p - self.closest_point(p)).norm()
    }

    /// The same line with the opposite direction.
    #[must_use]
    pub fn reversed(&self) -> Self {
        Self {
            point: self.point,
            direction: -self.direction,
        }
    }

    /// The axis moved by a rigid map (`world_from_old`).
    #[must_use]
    pub fn transformed(&self, world_from_old: &Isometry3<f64>) -> Self {
        Self {
            point: world_from_old * self.point,
            direction: world_from_old * self.direction,
        }
    }

    /// Angle between the two directions, radians in `[0, pi]`.
    #[must_use]
    pub fn angle_to_rad(&self, other: &Axis) -> f64 {
        self.direction.dot(&other.direction).clamp(-1.0, 1.0).acos()
    }
}

fn check_points3(what: &str, points: &[Point3<f64>], required: usize) -> Result<()> {
    if points.len() < required {
        return Err(Error::too_few(what, required, points.len()));
    }
    for (i, p) in points.iter().enumerate() {
        ensure_finite(&format!("{what}[{i}]"), p.coords.as_slice())?;
    }
    Ok(())
}

/// Mean and covariance (divided by n) of 3D points.
fn mean_and_covariance(points: &[Point3<f64>]) -> (Point3<f64>, Matrix3<f64>) {
    let n = points.len() as f64;
    let mean = points.iter().fold(Vector3::zeros(), |s, p| s + p.coords) / n;
    let cov = points.iter().fold(Matrix3::zeros(), |s, p| {
        let d = p.coords - mean;
        s + d * d.transpose()
    }) / n;
    (Point3::from(mean), cov)
}

/// Eigen-decomposition with eigenvalues sorted in decreasing order.
pub(crate) fn sorted_eigen(m: &Matrix3<f64>) -> (Vector3<f64>, Matrix3<f64>) {
    let e = SymmetricEigen::new(*m);
    let mut idx = [0usize, 1, 2];
    idx.sort_by(|&a, &b| e.eigenvalues[b].total_cmp(&e.eigenvalues[a]));
    let vals = Vector3::new(
        e.eigenvalues[idx[0]],
        e.eigenvalues[idx[1]],
        e.eigenvalues[idx[2]],
    );
    let vecs = Matrix3::from_columns(&[
        e.eigenvectors.column(idx[0]).into_owned(),
        e.eigenvectors.column(idx[1]).into_owned(),
        e.eigenvectors.column(idx[2]).into_owned(),
    ]);
    (vals, vecs)
}

/// Fits a sphere to 3D points by least squares on the geometric distance.
///
/// Start: the algebraic (Kasa-type) fit `|p|^2 = 2 c . p + k`, solved on
/// centred coordinates; refinement: Levenberg-Marquardt on the residuals
/// `r_i = |p_i - c| - r`. Returns the sphere and the RMS of the residuals, mm.
///
/// # Units
/// Input and output in mm.
///
/// # Errors
/// * [`Error::TooFew`] (`sphere_fit.points`) for fewer than 4 points;
/// * [`Error::Invalid`] for a non-finite point;
/// * [`Error::Degenerate`] when the points are (numerically) coplanar or
///   collinear: a sphere is then not determined;
/// * [`Error::NotConverged`] if the refinement leaves the fit non-finite.
///
/// # Example
/// ```
/// use avnplan::geometry::fit_sphere;
/// use nalgebra::Point3;
/// let c = Point3::new(10.0, -5.0, 3.0);
/// let pts: Vec<_> = [[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [0.6, 0.8, 0.0]]
///     .iter()
///     .map(|d| c + nalgebra::Vector3::new(d[0], d[1], d[2]) * 24.0)
///     .collect();
/// let (s, rms_mm) = fit_sphere(&pts)?;
/// approx::assert_relative_eq!(s.radius_mm, 24.0, epsilon = 1e-9);
/// approx::assert_relative_eq!(s.center, c, epsilon = 1e-9);
/// assert!(rms_mm < 1e-9);
/// # Ok::<(), avnplan::Error>(())
/// ```
pub fn fit_sphere(points: &[Point3<f64>]) -> Result<(Sphere, f64)> {
    const WHAT: &str = "sphere_fit.points";
    check_points3(WHAT, points, 4)?;
    let (mean, cov) = mean_and_covariance(points);
    let (vals, _) = sorted_eigen(&cov);
    if !greater(vals[2], FLATNESS_TOLERANCE * vals[0]) || vals[0] <= 0.0 {
        return Err(Error::degenerate(
            WHAT,
            "the points are coplanar or collinear: the sphere is not determined",
        ));
    }
    // Scale to unit spread for conditioning.
    let scale = vals[0].sqrt();
    let q: Vec<Vector3<f64>> = points.iter().map(|p| (p - mean) / scale).collect();
    // Algebraic: |q|^2 = 2 c.q + k  ->  [2q, 1] [c; k] = |q|^2.
    let mut ata = Matrix4::<f64>::zeros();
    let mut atb = Vector4::<f64>::zeros();
    for v in &q {
        let row = Vector4::new(2.0 * v.x, 2.0 * v.y, 2.0 * v.z, 1.0);
        ata += row * row.transpose();
        atb += row * v.norm_squared();
    }
    let sol = ata.cholesky().map(|c| c.solve(&atb)).ok_or_else(|| {
        Error::degenerate(WHAT, "algebraic sphere fit is singular (coplanar points)")
    })?;
    let mut c = Vector3::new(sol[0], sol[1], sol[2]);
    let mut r = (sol[3] + c.norm_squared()).max(0.0).sqrt();
    // Levenberg-Marquardt on the geometric residual.
    let cost = |c: &Vector3<f64>, r: f64| -> f64 {
        q.iter().map(|v| ((v - c).norm() - r).powi(2)).sum::<f64>()
    };
    let mut f = cost(&c, r);
    let mut lambda = 1e-3;
    for _ in 0..MAX_ITERATIONS {
        let mut jtj = Matrix4::<f64>::zeros();
        let mut jtr = Vector4::<f64>::zeros();
        for v in &q {
            let d = v - c;
            let n = d.norm();
            if n == 0.0 {
                continue;
            }
            let res = n - r;
            let j = Vector4::new(-d.x / n, -d.y / n, -d.z / n, -1.0);
            jtj += j * j.transpose();
            jtr += j * res;
        }
        let mut improved = false;
        for _ in 0..20 {
            let mut a = jtj;
            for i in 0..4 {
                a[(i, i)] += lambda * jtj[(i, i)].max(1e-12);
            }
            let Some(step) = a.cholesky().map(|ch| ch.solve(&(-jtr))) else {
                lambda *= 10.0;
                continue;
            };
            let c2 = c + step.xyz();
            let r2 = r + step[3];
            let f2 = cost(&c2, r2);
            if f2.is_finite() && f2 <= f {
                let small = step.norm() < 1e-14 * (1.0 + c.norm() + r.abs());
                c = c2;
                r = r2;
                let df = f - f2;
                f = f2;
                lambda = (lambda * 0.3).max(1e-12);
                improved = !(small || df <= 1e-16 * f.max(1e-300));
                break;
            }
            lambda *= 10.0;
        }
        if !improved {
            break;
        }
    }
    let center = mean + c * scale;
    let radius = r.abs() * scale;
    let rms = (f / q.len() as f64).sqrt() * scale;
    if !(center.coords.iter().all(|x| x.is_finite()) && radius.is_finite() && rms.is_finite())
        || radius <= 0.0
    {
        return Err(Error::NotConverged {
            what: "sphere_fit".into(),
            reason: format!("centre {center:?}, radius {radius} mm"),
        });
    }
    Ok((Sphere::new(center, radius)?, rms))
}

/// Fits a line to 3D points by principal component analysis (total least
/// squares: minimises the sum of squared orthogonal distances).
///
/// The returned [`Axis`] passes through the centroid; its direction is the
/// principal axis, oriented so that the last point lies ahead of the first
/// (`(last - first) . direction >= 0`), which makes the orientation follow
/// the order of the input (e.g. cross-section centroids listed distal to
/// proximal give a distal-to-proximal axis).
///
/// # Errors
/// [`Error::TooFew`] (`line_fit.points`) for fewer than 2 points,
/// [`Error::Invalid`] for non-finite points, [`Error::Degenerate`] when all
/// points coincide.
///
/// # Example
/// ```
/// use avnplan::geometry::fit_line;
/// use nalgebra::{Point3, Vector3};
/// let pts: Vec<_> = (0..5).map(|i| Point3::new(1.0, 2.0, 3.0) + Vector3::new(0.0, 3.0, 4.0) * i as f64).collect();
/// let a = fit_line(&pts)?;
/// approx::assert_relative_eq!(a.direction.into_inner(), Vector3::new(0.0, 0.6, 0.8), epsilon = 1e-12);
/// approx::assert_relative_eq!(a.distance_mm(&Point3::new(1.0, 2.0, 3.0)), 0.0, epsilon = 1e-9);
/// # Ok::<(), avnplan::Error>(())
/// ```
pub fn fit_line(points: &[Point3<f64>]) -> Result<Axis> {
    const WHAT: &str = "line_fit.points";
    check_points3(WHAT, points, 2)?;
    let (mean, cov) = mean_and_covariance(points);
    let (vals, vecs) = sorted_eigen(&cov);
    if !greater(vals[0], 0.0) {
        return Err(Error::degenerate(WHAT, "all points coincide"));
    }
    let mut d: Vector3<f64> = vecs.column(0).into_owned();
    let span = points[points.len() - 1] - points[0];
    if span.dot(&d) < 0.0 {
        d = -d;
    }
    Axis::new(mean, d)
}

/// Fits a circle to 2D points: algebraic (Kasa) start, then Gauss-Newton /
/// Levenberg-Marquardt on the geometric residual `|p_i - c| - r`.
///
/// Returns `(centre, radius, rms)` in the units of the input.
///
/// # Errors
/// [`Error::TooFew`] (`circle_fit.points`) for fewer than 3 points,
/// [`Error::Invalid`] for non-finite points, [`Error::Degenerate`] for
/// collinear points, [`Error::NotConverged`] if the fit becomes non-finite.
///
/// # Example
/// ```
/// use avnplan::geometry::fit_circle_2d;
/// use nalgebra::Point2;
/// let pts: Vec<_> = (0..7)
///     .map(|i| { let a = i as f64 * 0.5; Point2::new(3.0 + 10.0 * a.cos(), -2.0 + 10.0 * a.sin()) })
///     .collect();
/// let (c, r, rms) = fit_circle_2d(&pts)?;
/// approx::assert_relative_eq!(c, Point2::new(3.0, -2.0), epsilon = 1e-9);
/// approx::assert_relative_eq!(r, 10.0, epsilon = 1e-9);
/// assert!(rms < 1e-9);
/// # Ok::<(), avnplan::Error>(())
/// ```
pub fn fit_circle_2d(points: &[Point2<f64>]) -> Result<(Point2<f64>, f64, f64)> {
    use nalgebra::{Matrix2, Matrix3 as M3, Vector2, Vector3 as V3};
    const WHAT: &str = "circle_fit.points";
    if points.len() < 3 {
        return Err(Error::too_few(WHAT, 3, points.len()));
    }
    for (i, p) in points.iter().enumerate() {
        ensure_finite(&format!("{WHAT}[{i}]"), p.coords.as_slice())?;
    }
    let n = points.len() as f64;
    let mean = points.iter().fold(Vector2::zeros(), |s, p| s + p.coords) / n;
    let cov = points.iter().fold(Matrix2::zeros(), |s, p| {
        let d = p.coords - mean;
        s + d * d.transpose()
    }) / n;
    let ev = cov.symmetric_eigenvalues();
    let (lo, hi) = (ev.min(), ev.max());
    if !greater(hi, 0.0) || !greater(lo, FLATNESS_TOLERANCE * hi) {
        return Err(Error::degenerate(WHAT, "the points are collinear"));
    }
    let scale = hi.sqrt();
    let q: Vec<Vector2<f64>> = points.iter().map(|p| (p.coords - mean) / scale).collect();
    let mut ata = M3::<f64>::zeros();
    let mut atb = V3::<f64>::zeros();
    for v in &q {
        let row = V3::new(2.0 * v.x, 2.0 * v.y, 1.0);
        ata += row * row.transpose();
        atb += row * v.norm_squared();
    }
    let sol = ata
        .cholesky()
        .map(|c| c.solve(&atb))
        .ok_or_else(|| Error::degenerate(WHAT, "algebraic circle fit is singular"))?;
    let mut c = Vector2::new(sol[0], sol[1]);
    let mut r = (sol[2] + c.norm_squared()).max(0.0).sqrt();
    let cost = |c: &Vector2<f64>, r: f64| -> f64 {
        q.iter().map(|v| ((v - c).norm() - r).powi(2)).sum::<f64>()
    };
    let mut f = cost(&c, r);
    let mut lambda = 1e-3;
    for _ in 0..MAX_ITERATIONS {
        let mut jtj = M3::<f64>::zeros();
        let mut jtr = V3::<f64>::zeros();
        for v in &q {
            let d = v - c;
            let nn = d.norm();
            if nn == 0.0 {
                continue;
            }
            let j = V3::new(-d.x / nn, -d.y / nn, -1.0);
            jtj += j * j.transpose();
            jtr += j * (nn - r);
        }
        let mut improved = false;
        for _ in 0..20 {
            let mut a = jtj;
            for i in 0..3 {
                a[(i, i)] += lambda * jtj[(i, i)].max(1e-12);
            }
            let Some(step) = a.cholesky().map(|ch| ch.solve(&(-jtr))) else {
                lambda *= 10.0;
                continue;
            };
            let c2 = c + Vector2::new(step[0], step[1]);
            let r2 = r + step[2];
            let f2 = cost(&c2, r2);
            if f2.is_finite() && f2 <= f {
                let small = step.norm() < 1e-14 * (1.0 + c.norm() + r.abs());
                let df = f - f2;
                c = c2;
                r = r2;
                f = f2;
                lambda = (lambda * 0.3).max(1e-12);
                improved = !(small || df <= 1e-16 * f.max(1e-300));
                break;
            }
            lambda *= 10.0;
        }
        if !improved {
            break;
        }
    }
    let center = Point2::from(mean + c * scale);
    let radius = r.abs() * scale;
    let rms = (f / n).sqrt() * scale;
    if !(center.x.is_finite() && center.y.is_finite() && radius.is_finite() && rms.is_finite())
        || radius <= 0.0
    {
        return Err(Error::NotConverged {
            what: "circle_fit".into(),
            reason: format!("centre {center:?}, radius {radius}"),
        });
    }
    Ok((center, radius, rms))
}

/// `a > b`, false when either is NaN (negated, it also catches NaN).
fn greater(a: f64, b: f64) -> bool {
    a > b
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn sphere_points(c: Point3<f64>, r: f64, n: usize, cap: f64, noise: f64) -> Vec<Point3<f64>> {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        (0..n)
            .map(|_| {
                // Directions within `cap` radians of +z.
                let z: f64 = rng.random_range(cap.cos()..1.0);
                let phi: f64 = rng.random_range(0.0..std::f64::consts::TAU);
                let s = (1.0 - z * z).sqrt();
                let e: f64 = rng.random_range(-noise..=noise);
                c + Vector3::new(s * phi.cos(), s * phi.sin(), z) * (r + e)
            })
            .collect()
    }

    #[test]
    fn sphere_partial_cap_exact() {
        // A 60-degree cap only: the algebraic start is fine, the geometric refine exact.
        let c = Point3::new(143.7, 243.3, -432.5);
        let pts = sphere_points(c, 23.0, 200, 1.0, 0.0);
        let (s, rms) = fit_sphere(&pts).unwrap();
        assert_relative_eq!(s.center, c, epsilon = 1e-8);
        assert_relative_eq!(s.radius_mm, 23.0, epsilon = 1e-8);
        assert!(rms < 1e-8);
    }

    #[test]
    fn sphere_noisy_is_geometric() {
        // Uniform +-0.5 mm noise on a hemisphere: radius within 0.1 mm, rms ~ 0.29 mm.
        let c = Point3::new(0.0, 0.0, 0.0);
        let pts = sphere_points(c, 23.0, 2000, std::f64::consts::FRAC_PI_2, 0.5);
        let (s, rms) = fit_sphere(&pts).unwrap();
        assert!((s.radius_mm - 23.0).abs() < 0.1, "{s:?}");
        assert!((s.center - c).norm() < 0.1);
        assert!((rms - 0.5 / 3f64.sqrt()).abs() < 0.03, "{rms}");
    }

    #[test]
    fn sphere_rejects_degenerate() {
        let plane: Vec<_> = (0..10)
            .map(|i| Point3::new((i as f64).cos(), (i as f64).sin(), 0.0))
            .collect();
        assert!(matches!(fit_sphere(&plane), Err(Error::Degenerate { .. })));
        assert!(matches!(
            fit_sphere(&plane[..3]),
            Err(Error::TooFew { required: 4, .. })
        ));
        let mut bad = sphere_points(Point3::origin(), 1.0, 10, 1.0, 0.0);
        bad[3].x = f64::NAN;
        assert!(matches!(fit_sphere(&bad), Err(Error::Invalid { .. })));
    }

    #[test]
    fn line_orientation_follows_order() {
        let pts: Vec<_> = (0..4).map(|i| Point3::new(0.0, 0.0, -(i as f64))).collect();
        let a = fit_line(&pts).unwrap();
        assert_relative_eq!(a.direction.z, -1.0, epsilon = 1e-12);
        assert!(fit_line(&[Point3::origin(), Point3::origin()]).is_err());
        assert!(fit_line(&[Point3::origin()]).is_err());
    }

    #[test]
    fn circle_degenerate_and_arc() {
        let line: Vec<_> = (0..5)
            .map(|i| Point2::new(i as f64, 2.0 * i as f64))
            .collect();
        assert!(matches!(
            fit_circle_2d(&line),
            Err(Error::Degenerate { .. })
        ));
        // A 40-degree arc is enough at zero noise.
        let pts: Vec<_> = (0..9)
            .map(|i| {
                let a = 0.3 + i as f64 * 0.7 / 8.0;
                Point2::new(5.0 + 20.0 * a.cos(), 1.0 + 20.0 * a.sin())
            })
            .collect();
        let (c, r, _) = fit_circle_2d(&pts).unwrap();
        assert_relative_eq!(c, Point2::new(5.0, 1.0), epsilon = 1e-7);
        assert_relative_eq!(r, 20.0, epsilon = 1e-7);
    }

    #[test]
    fn axis_helpers() {
        let a = Axis::new(Point3::origin(), Vector3::new(1.0, 1.0, 0.0)).unwrap();
        assert_relative_eq!(
            a.angle_to_rad(&a.reversed()),
            std::f64::consts::PI,
            epsilon = 1e-7
        );
        assert!(Axis::new(Point3::origin(), Vector3::zeros()).is_err());
        let iso = Isometry3::new(Vector3::new(1.0, 2.0, 3.0), Vector3::new(0.1, 0.2, 0.3));
        let b = a.transformed(&iso);
        let p = Point3::new(3.0, -1.0, 2.0);
        assert_relative_eq!(
            a.distance_mm(&p),
            b.distance_mm(&(iso * p)),
            epsilon = 1e-12
        );
    }
}

//! Image distortion of image-intensifier C-arms: a polynomial dewarping model.
//!
//! Image intensifiers bend straight lines (pincushion from the curved input
//! screen, S-shaped distortion from the earth's magnetic field), so pixels
//! measured on their images are first *dewarped* (undistorted) and only then
//! used with a [`super::Projection`]. Flat-panel detectors have no such
//! distortion: a view without a model is simply the identity.
//!
//! # The model (contract `distortion` field)
//!
//! A view's JSON may carry
//!
//! ```text
//! "distortion": { "model": "polynomial", "degree": d,
//!                 "center_px": [cu, cv], "scale_px": s,
//!                 "coeffs_u": [...], "coeffs_v": [...] }
//! ```
//!
//! which maps a **distorted** pixel `(u, v)` (as measured on the image) to
//! the **undistorted** pixel `(u', v')` (the pinhole projection):
//!
//! ```text
//!   x = (u - cu) / s          y = (v - cv) / s          (normalised, ~[-1, 1])
//!   u' = cu + s * sum_k coeffs_u[k] * x^i(k) * y^j(k)
//!   v' = cv + s * sum_k coeffs_v[k] * x^i(k) * y^j(k)
//! ```
//!
//! * `model` — must be `"polynomial"`.
//! * `degree` — total degree `d`, 1 to 5 ([`MAX_DEGREE`]).
//! * `center_px` — centre of normalisation, pixels (the fit uses the image
//!   centre `((W-1)/2, (H-1)/2)`).
//! * `scale_px` — normalisation length, pixels, `> 0` (the fit uses
//!   `max(W, H) / 2`).
//! * `coeffs_u`, `coeffs_v` — `(d+1)(d+2)/2` coefficients each, in graded
//!   order: total degree `n = 0, 1, ..., d`, and within one degree the power
//!   of `x` falling from `n` to 0: `1, x, y, x^2, x y, y^2, x^3, x^2 y, ...`
//!   (monomial `k` is `x^i y^j` with `i + j = n`). They are dimensionless.
//!   The identity is `coeffs_u = [0, 1, 0, ...]`, `coeffs_v = [0, 0, 1, ...]`.
//!
//! The inverse (undistorted to distorted, needed to draw on the raw image)
//! is computed by Newton iteration ([`PolynomialDistortion::distort`]).
//!
//! # Fitting
//!
//! [`PolynomialDistortion::fit`] takes a grid phantom's points as measured
//! (distorted) and where they belong (undistorted, pixels) and solves the
//! linear least-squares problem for both coefficient vectors, reporting the
//! residual RMS in pixels.

use nalgebra::{DMatrix, DVector, Matrix2, Point2, Vector2};
use serde::{Deserialize, Serialize};

use crate::error::{ensure_finite, ensure_positive, Error, Result};

/// Highest polynomial degree accepted.
pub const MAX_DEGREE: u32 = 5;

/// Number of monomials of total degree `<= degree` in two variables.
#[must_use]
pub fn term_count(degree: u32) -> usize {
    let d = degree as usize;
    (d + 1) * (d + 2) / 2
}

/// Wire form of a distortion model, as carried by a case file's
/// `"distortion"` field (see the module docs for every field's meaning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistortionParams {
    /// Model name; only `"polynomial"` is defined.
    pub model: String,
    /// Total polynomial degree, 1 to [`MAX_DEGREE`].
    pub degree: u32,
    /// Normalisation centre, pixels.
    pub center_px: [f64; 2],
    /// Normalisation length, pixels, `> 0`.
    pub scale_px: f64,
    /// Coefficients of `u'` in graded monomial order.
    pub coeffs_u: Vec<f64>,
    /// Coefficients of `v'` in graded monomial order.
    pub coeffs_v: Vec<f64>,
}

/// A validated polynomial dewarping model (module docs).
///
/// # Example
/// ```
/// use avnplan::imaging::PolynomialDistortion;
/// use nalgebra::Point2;
/// use approx::assert_relative_eq;
/// // A grid seen with mild pincushion distortion about the image centre.
/// let c = Point2::new(511.5, 511.5);
/// let warp = |p: Point2<f64>| { let d = p - c; c + d * (1.0 + 2e-7 * d.norm_squared()) };
/// let undistorted: Vec<Point2<f64>> = (0..15)
///     .flat_map(|i| (0..15).map(move |j| Point2::new(40.0 + 67.0 * i as f64, 40.0 + 67.0 * j as f64)))
///     .collect();
/// let distorted: Vec<_> = undistorted.iter().map(|&p| warp(p)).collect();
/// let fit = PolynomialDistortion::fit(&distorted, &undistorted, 5, [1024, 1024]).unwrap();
/// assert!(fit.rms_px < 0.05);
/// let q = fit.model.undistort(&warp(Point2::new(100.0, 900.0)));
/// assert_relative_eq!(q, Point2::new(100.0, 900.0), epsilon = 0.1);
/// let back = fit.model.distort(&q).unwrap();
/// assert_relative_eq!(fit.model.undistort(&back), q, epsilon = 1e-8);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PolynomialDistortion {
    degree: u32,
    center_px: Point2<f64>,
    scale_px: f64,
    coeffs_u: Vec<f64>,
    coeffs_v: Vec<f64>,
}

/// The result of [`PolynomialDistortion::fit`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DistortionFit {
    /// The fitted model.
    pub model: PolynomialDistortion,
    /// Root mean square of the per-point distance between the dewarped
    /// measured point and its known undistorted position, pixels.
    pub rms_px: f64,
    /// Largest such distance, pixels.
    pub max_px: f64,
    /// Per-point residual `known - dewarped`, pixels, in input order.
    pub residuals_px: Vec<Vector2<f64>>,
}

/// Powers `(i, j)` of monomial `k` in graded order.
fn monomials(degree: u32) -> impl Iterator<Item = (i32, i32)> {
    (0..=degree as i32).flat_map(|n| (0..=n).rev().map(move |i| (i, n - i)))
}

impl PolynomialDistortion {
    /// The identity model of the given degree (coefficients of `x` in `u'`
    /// and `y` in `v'` equal 1, all others 0).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a degree outside 1 to [`MAX_DEGREE`], a
    /// non-finite centre or a non-positive scale.
    pub fn identity(degree: u32, center_px: Point2<f64>, scale_px: f64) -> Result<Self> {
        let n = term_count(degree);
        let mut coeffs_u = vec![0.0; n];
        let mut coeffs_v = vec![0.0; n];
        if n >= 3 {
            coeffs_u[1] = 1.0;
            coeffs_v[2] = 1.0;
        }
        Self::try_from(DistortionParams {
            model: "polynomial".into(),
            degree,
            center_px: [center_px.x, center_px.y],
            scale_px,
            coeffs_u,
            coeffs_v,
        })
    }

    /// Polynomial degree.
    #[must_use]
    pub fn degree(&self) -> u32 {
        self.degree
    }

    /// The wire form of this model.
    #[must_use]
    pub fn params(&self) -> DistortionParams {
        DistortionParams {
            model: "polynomial".into(),
            degree: self.degree,
            center_px: [self.center_px.x, self.center_px.y],
            scale_px: self.scale_px,
            coeffs_u: self.coeffs_u.clone(),
            coeffs_v: self.coeffs_v.clone(),
        }
    }

    fn normalise(&self, p: &Point2<f64>) -> (f64, f64) {
        (
            (p.x - self.center_px.x) / self.scale_px,
            (p.y - self.center_px.y) / self.scale_px,
        )
    }

    /// The polynomial values `(U, V)` and their Jacobian in normalised units.
    fn eval(&self, x: f64, y: f64) -> (Vector2<f64>, Matrix2<f64>) {
        let mut val = Vector2::zeros();
        let mut jac = Matrix2::zeros();
        for (k, (i, j)) in monomials(self.degree).enumerate() {
            let m = x.powi(i) * y.powi(j);
            let dx = if i > 0 {
                f64::from(i) * x.powi(i - 1) * y.powi(j)
            } else {
                0.0
            };
            let dy = if j > 0 {
                f64::from(j) * x.powi(i) * y.powi(j - 1)
            } else {
                0.0
            };
            let (cu, cv) = (self.coeffs_u[k], self.coeffs_v[k]);
            val += Vector2::new(cu * m, cv * m);
            jac[(0, 0)] += cu * dx;
            jac[(0, 1)] += cu * dy;
            jac[(1, 0)] += cv * dx;
            jac[(1, 1)] += cv * dy;
        }
        (val, jac)
    }

    /// Dewarps a measured (distorted) pixel to the undistorted pixel.
    ///
    /// Non-finite input gives a non-finite output; validate pixels first.
    #[must_use]
    pub fn undistort(&self, distorted_px: &Point2<f64>) -> Point2<f64> {
        let (x, y) = self.normalise(distorted_px);
        let (v, _) = self.eval(x, y);
        self.center_px + v * self.scale_px
    }

    /// The distorted pixel that dewarps to `undistorted_px` (the inverse of
    /// [`PolynomialDistortion::undistort`]), by damped Newton iteration from
    /// `undistorted_px` itself, to 1e-10 px.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a non-finite pixel; [`Error::NotConverged`]
    /// when the iteration stalls (the model folds over near that pixel).
    pub fn distort(&self, undistorted_px: &Point2<f64>) -> Result<Point2<f64>> {
        ensure_finite("px", undistorted_px.coords.as_slice())?;
        let (tx, ty) = self.normalise(undistorted_px);
        let target = Vector2::new(tx, ty);
        let mut p = target;
        let (v, _) = self.eval(p.x, p.y);
        let mut err = (v - target).norm();
        let tol = 1e-10 / self.scale_px;
        for _ in 0..100 {
            if err <= tol {
                return Ok(self.center_px + p * self.scale_px);
            }
            let (v, j) = self.eval(p.x, p.y);
            let Some(step) = j.try_inverse().map(|ji| ji * (target - v)) else {
                break;
            };
            let mut lambda = 1.0;
            loop {
                let q = p + step * lambda;
                let (vq, _) = self.eval(q.x, q.y);
                let e = (vq - target).norm();
                if e < err || lambda < 1e-6 {
                    p = q;
                    err = e;
                    break;
                }
                lambda *= 0.5;
            }
            if !err.is_finite() {
                break;
            }
        }
        if err <= tol {
            return Ok(self.center_px + p * self.scale_px);
        }
        Err(Error::NotConverged {
            what: "distortion inverse".into(),
            reason: format!(
                "residual {:.3e} px after Newton iteration",
                err * self.scale_px
            ),
        })
    }

    /// Fits a model of the given degree that maps `distorted_px` (measured)
    /// to `undistorted_px` (known), by linear least squares; the centre is
    /// the image centre `((W-1)/2, (H-1)/2)` and the scale `max(W, H) / 2`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad degree, image size, count mismatch or
    /// non-finite point (`distorted_px[i]`, `undistorted_px[i]`);
    /// [`Error::TooFew`] for fewer points than coefficients;
    /// [`Error::Degenerate`] when the points do not constrain the polynomial
    /// (e.g. all on one line).
    pub fn fit(
        distorted_px: &[Point2<f64>],
        undistorted_px: &[Point2<f64>],
        degree: u32,
        image_size_px: [u32; 2],
    ) -> Result<DistortionFit> {
        if !(1..=MAX_DEGREE).contains(&degree) {
            return Err(Error::invalid(
                "degree",
                format!("must be between 1 and {MAX_DEGREE}"),
            ));
        }
        if image_size_px[0] == 0 || image_size_px[1] == 0 {
            return Err(Error::invalid("image_size_px", "must be >= 1"));
        }
        if distorted_px.len() != undistorted_px.len() {
            return Err(Error::invalid(
                "undistorted_px",
                format!(
                    "has {} points but distorted_px has {}",
                    undistorted_px.len(),
                    distorted_px.len()
                ),
            ));
        }
        let nt = term_count(degree);
        if distorted_px.len() < nt {
            return Err(Error::too_few("distorted_px", nt, distorted_px.len()));
        }
        for (i, (d, u)) in distorted_px.iter().zip(undistorted_px).enumerate() {
            ensure_finite(&format!("distorted_px[{i}]"), d.coords.as_slice())?;
            ensure_finite(&format!("undistorted_px[{i}]"), u.coords.as_slice())?;
        }
        let [w, h] = image_size_px.map(f64::from);
        let center = Point2::new((w - 1.0) / 2.0, (h - 1.0) / 2.0);
        let scale = w.max(h) / 2.0;
        let n = distorted_px.len();
        let mut a = DMatrix::<f64>::zeros(n, nt);
        let mut bu = DVector::<f64>::zeros(n);
        let mut bv = DVector::<f64>::zeros(n);
        for (r, (d, u)) in distorted_px.iter().zip(undistorted_px).enumerate() {
            let (x, y) = ((d.x - center.x) / scale, (d.y - center.y) / scale);
            for (k, (i, j)) in monomials(degree).enumerate() {
                a[(r, k)] = x.powi(i) * y.powi(j);
            }
            bu[r] = (u.x - center.x) / scale;
            bv[r] = (u.y - center.y) / scale;
        }
        let svd = a.svd(true, true);
        let smax = svd.singular_values.max();
        let smin = svd.singular_values.min();
        if !(smax > 0.0) || smin < 1e-9 * smax {
            return Err(Error::degenerate(
                "distorted_px",
                format!("the points do not constrain a degree-{degree} polynomial"),
            ));
        }
        let solve = |b: &DVector<f64>| svd.solve(b, 0.0).ok();
        let (Some(cu), Some(cv)) = (solve(&bu), solve(&bv)) else {
            return Err(Error::degenerate("distorted_px", "least squares failed"));
        };
        let model = Self::try_from(DistortionParams {
            model: "polynomial".into(),
            degree,
            center_px: [center.x, center.y],
            scale_px: scale,
            coeffs_u: cu.iter().copied().collect(),
            coeffs_v: cv.iter().copied().collect(),
        })?;
        let residuals_px: Vec<Vector2<f64>> = distorted_px
            .iter()
            .zip(undistorted_px)
            .map(|(d, u)| u - model.undistort(d))
            .collect();
        let rms_px = (residuals_px.iter().map(|r| r.norm_squared()).sum::<f64>() / n as f64).sqrt();
        let max_px = residuals_px.iter().map(|r| r.norm()).fold(0.0, f64::max);
        Ok(DistortionFit {
            model,
            rms_px,
            max_px,
            residuals_px,
        })
    }
}

impl TryFrom<DistortionParams> for PolynomialDistortion {
    type Error = Error;

    /// Validates the wire form: model name, degree, sizes, finiteness.
    fn try_from(p: DistortionParams) -> Result<Self> {
        if p.model != "polynomial" {
            return Err(Error::invalid(
                "model",
                "unknown distortion model (expected \"polynomial\")",
            ));
        }
        if !(1..=MAX_DEGREE).contains(&p.degree) {
            return Err(Error::invalid(
                "degree",
                format!("must be between 1 and {MAX_DEGREE}"),
            ));
        }
        ensure_finite("center_px", &p.center_px)?;
        ensure_positive("scale_px", p.scale_px)?;
        let n = term_count(p.degree);
        for (name, c) in [("coeffs_u", &p.coeffs_u), ("coeffs_v", &p.coeffs_v)] {
            if c.len() != n {
                return Err(Error::invalid(
                    name,
                    format!(
                        "must have {n} coefficients for degree {}, got {}",
                        p.degree,
                        c.len()
                    ),
                ));
            }
            ensure_finite(name, c)?;
        }
        Ok(Self {
            degree: p.degree,
            center_px: Point2::new(p.center_px[0], p.center_px[1]),
            scale_px: p.scale_px,
            coeffs_u: p.coeffs_u,
            coeffs_v: p.coeffs_v,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    fn grid() -> Vec<Point2<f64>> {
        (0..12)
            .flat_map(|i| {
                (0..12).map(move |j| {
                    Point2::new(30.0 + 87.0 * f64::from(i), 25.0 + 88.0 * f64::from(j))
                })
            })
            .collect()
    }

    /// Pincushion plus an S-shaped twist, a few pixels at the edge.
    fn warp(p: &Point2<f64>) -> Point2<f64> {
        let c = Point2::new(511.5, 511.5);
        let d = p - c;
        let r2 = d.norm_squared() / 512.0f64.powi(2);
        let twist = 0.01 * r2;
        let rot = Matrix2::new(twist.cos(), -twist.sin(), twist.sin(), twist.cos());
        c + rot * d * (1.0 + 0.02 * r2)
    }

    #[test]
    fn monomial_order() {
        let m: Vec<_> = monomials(2).collect();
        assert_eq!(m, vec![(0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2)]);
        assert_eq!(term_count(5), 21);
    }

    #[test]
    fn identity_is_identity() {
        let id = PolynomialDistortion::identity(3, Point2::new(100.0, 200.0), 50.0).unwrap();
        let p = Point2::new(123.4, 567.8);
        assert_relative_eq!(id.undistort(&p), p, epsilon = 1e-12);
        assert_relative_eq!(id.distort(&p).unwrap(), p, epsilon = 1e-12);
    }

    #[test]
    fn exact_polynomial_is_recovered() {
        // A degree-2 map is fitted exactly by degree 2 and above.
        let und = grid();
        let m = PolynomialDistortion::try_from(DistortionParams {
            model: "polynomial".into(),
            degree: 2,
            center_px: [511.5, 511.5],
            scale_px: 512.0,
            coeffs_u: vec![0.01, 1.02, 0.003, 0.01, -0.02, 0.005],
            coeffs_v: vec![-0.02, 0.004, 0.99, 0.0, 0.015, -0.01],
        })
        .unwrap();
        // distorted = inverse of m at the grid points.
        let dist: Vec<_> = und.iter().map(|u| m.distort(u).unwrap()).collect();
        for deg in 2..=5 {
            let f = PolynomialDistortion::fit(&dist, &und, deg, [1024, 1024]).unwrap();
            assert!(f.rms_px < 1e-8, "degree {deg}: {}", f.rms_px);
        }
    }

    #[test]
    fn residual_falls_with_degree() {
        let und = grid();
        let dist: Vec<_> = und.iter().map(warp).collect();
        let mut last = f64::INFINITY;
        for deg in 1..=5 {
            let f = PolynomialDistortion::fit(&dist, &und, deg, [1024, 1024]).unwrap();
            assert!(f.rms_px <= last + 1e-12, "degree {deg}");
            last = f.rms_px;
            // Round trip through the inverse.
            for u in und.iter().step_by(7) {
                let d = f.model.distort(u).unwrap();
                assert_relative_eq!(f.model.undistort(&d), *u, epsilon = 1e-8);
            }
        }
        assert!(last < 0.05, "degree 5 rms {last}");
    }

    #[test]
    fn bad_input_is_an_error() {
        let und = grid();
        let dist: Vec<_> = und.iter().map(warp).collect();
        assert!(PolynomialDistortion::fit(&dist, &und, 0, [1024, 1024]).is_err());
        assert!(PolynomialDistortion::fit(&dist, &und, 6, [1024, 1024]).is_err());
        assert!(PolynomialDistortion::fit(&dist[..5], &und[..5], 2, [1024, 1024]).is_err());
        let line: Vec<_> = (0..30).map(|i| Point2::new(f64::from(i), 3.0)).collect();
        let e = PolynomialDistortion::fit(&line, &line, 2, [1024, 1024]).unwrap_err();
        assert!(matches!(e, Error::Degenerate { .. }), "{e}");
        let mut bad = dist.clone();
        bad[3].x = f64::NAN;
        let e = PolynomialDistortion::fit(&bad, &und, 2, [1024, 1024]).unwrap_err();
        assert!(e.to_string().starts_with("distorted_px[3]"), "{e}");
        let mut p = PolynomialDistortion::identity(2, Point2::origin(), 1.0)
            .unwrap()
            .params();
        p.coeffs_u.pop();
        let e = PolynomialDistortion::try_from(p.clone()).unwrap_err();
        assert!(e.to_string().starts_with("coeffs_u"), "{e}");
        p.model = "radial".into();
        assert!(PolynomialDistortion::try_from(p).is_err());
    }

    #[test]
    fn serde_round_trip_and_unknown_fields() {
        let m = PolynomialDistortion::identity(1, Point2::new(1.0, 2.0), 3.0).unwrap();
        let s = serde_json::to_string(&m.params()).unwrap();
        assert_eq!(
            s,
            r#"{"model":"polynomial","degree":1,"center_px":[1.0,2.0],"scale_px":3.0,"coeffs_u":[0.0,1.0,0.0],"coeffs_v":[0.0,0.0,1.0]}"#
        );
        let back: DistortionParams = serde_json::from_str(&s).unwrap();
        assert_eq!(PolynomialDistortion::try_from(back).unwrap(), m);
        let typo = s.replace("scale_px", "scale");
        assert!(serde_json::from_str::<DistortionParams>(&typo).is_err());
    }
}

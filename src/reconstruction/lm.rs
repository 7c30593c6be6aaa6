//! A small dense Levenberg-Marquardt solver shared by the fits of this module.
//!
//! Residuals are weighted to pixels by the callers, so the cost is a sum of
//! squared pixel errors and `sigma^2 (J^T J)^-1` is the covariance of the
//! parameters for an annotation noise of `sigma` px (Hartley & Zisserman,
//! *Multiple View Geometry*, 2nd ed., §5.2).

use nalgebra::{DMatrix, DVector};

use crate::error::{Error, Result};

/// Outcome of a least-squares solve.
pub(crate) struct LmResult {
    /// Parameters at the minimum.
    pub x: DVector<f64>,
    /// Residuals at the minimum.
    pub r: DVector<f64>,
    /// Jacobian at the minimum.
    pub j: DMatrix<f64>,
}

/// Central-difference Jacobian of `f` at `x` (step relative to `|x|`).
pub(crate) fn numeric_jacobian<F>(f: &F, x: &DVector<f64>, m: usize) -> Option<DMatrix<f64>>
where
    F: Fn(&DVector<f64>) -> Option<DVector<f64>>,
{
    let n = x.len();
    let mut j = DMatrix::zeros(m, n);
    for k in 0..n {
        let h = 1e-6 * (1.0 + x[k].abs());
        let mut xp = x.clone();
        xp[k] += h;
        let mut xm = x.clone();
        xm[k] -= h;
        let rp = f(&xp)?;
        let rm = f(&xm)?;
        if rp.len() != m || rm.len() != m {
            return None;
        }
        j.set_column(k, &((rp - rm) / (2.0 * h)));
    }
    Some(j)
}

/// Minimises `|f(x)|^2` from `x0` by Levenberg-Marquardt with a numeric
/// Jacobian. `f` returns `None` where the model is undefined (e.g. a point
/// behind a source); such steps are rejected.
pub(crate) fn levenberg_marquardt<F>(what: &str, f: F, x0: DVector<f64>) -> Result<LmResult>
where
    F: Fn(&DVector<f64>) -> Option<DVector<f64>>,
{
    let mut x = x0;
    let mut r = f(&x).ok_or_else(|| {
        Error::degenerate(what, "the starting estimate is outside the model's domain")
    })?;
    let m = r.len();
    let mut cost = r.norm_squared();
    let mut lambda = 1e-3;
    let mut j = numeric_jacobian(&f, &x, m)
        .ok_or_else(|| Error::degenerate(what, "Jacobian undefined at the start"))?;
    for _ in 0..200 {
        let jtj = j.transpose() * &j;
        let g = j.transpose() * &r;
        let mut improved = false;
        for _ in 0..12 {
            let mut a = jtj.clone();
            for k in 0..a.nrows() {
                a[(k, k)] += lambda * (jtj[(k, k)].max(1e-12));
            }
            let Some(step) = a.cholesky().map(|c| c.solve(&(-&g))) else {
                lambda *= 10.0;
                continue;
            };
            let xn = &x + &step;
            match f(&xn) {
                Some(rn) if rn.len() == m && rn.iter().all(|v| v.is_finite()) => {
                    let cn = rn.norm_squared();
                    if cn <= cost {
                        let rel = (cost - cn) / cost.max(1e-300);
                        let small_step = step.norm() <= 1e-12 * (1.0 + x.norm());
                        x = xn;
                        r = rn;
                        cost = cn;
                        lambda = (lambda * 0.3).max(1e-12);
                        improved = true;
                        if rel < 1e-14 || small_step || cost < 1e-24 {
                            let j = numeric_jacobian(&f, &x, m).unwrap_or(j);
                            return finish(what, x, r, j);
                        }
                        break;
                    }
                    lambda *= 10.0;
                }
                _ => lambda *= 10.0,
            }
        }
        if !improved {
            break;
        }
        j = match numeric_jacobian(&f, &x, m) {
            Some(jn) => jn,
            None => break,
        };
    }
    finish(what, x, r, j)
}

fn finish(what: &str, x: DVector<f64>, r: DVector<f64>, j: DMatrix<f64>) -> Result<LmResult> {
    if x.iter().chain(r.iter()).all(|v| v.is_finite()) {
        Ok(LmResult { x, r, j })
    } else {
        Err(Error::NotConverged {
            what: what.into(),
            reason: "the estimate became non-finite".into(),
        })
    }
}

/// `sigma^2 (J^T J)^-1`, or `None` when `J^T J` is singular.
pub(crate) fn covariance(j: &DMatrix<f64>, sigma: f64) -> Option<DMatrix<f64>> {
    let jtj = j.transpose() * j;
    let inv = jtj.try_inverse()?;
    Some(inv * (sigma * sigma))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_an_exponential() {
        let ts: Vec<f64> = (0..20).map(|i| i as f64 * 0.1).collect();
        let f = |x: &DVector<f64>| {
            Some(DVector::from_iterator(
                ts.len(),
                ts.iter().map(|t| x[0] * (x[1] * t).exp() - 2.0 * (-0.5 * t).exp()),
            ))
        };
        let res = levenberg_marquardt("test", f, DVector::from_vec(vec![1.0, 0.0])).unwrap();
        assert!((res.x[0] - 2.0).abs() < 1e-7);
        assert!((res.x[1] + 0.5).abs() < 1e-7);
        assert!(covariance(&res.j, 1.0).is_some());
    }
}

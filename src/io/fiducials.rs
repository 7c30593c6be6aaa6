//! Wire types of `avnplan calibrate`: the fiducials file
//! (`avnplan.fiducials/1`, input) and the calibration file
//! (`avnplan.calibration/1`, output), as `CONTRACT.md` specifies.
//!
//! ```text
//! { "schema": "avnplan.fiducials/1", "image_size_px": [w, h],
//!   "pixel_spacing_mm": [row, column],            // optional (crate addition)
//!   "points": [ {"world_mm": [x, y, z], "px": [u, v]}, ... ] }   // >= 6, not coplanar
//! ```
//!
//! gives
//!
//! ```text
//! { "schema": "avnplan.calibration/1",
//!   "projection": [[3x4]],          // third row's first three entries of unit norm,
//!                                   // w > 0 for the fiducials
//!   "geometry": { "source_mm", "detector_origin_mm", "u_axis_mm", "v_axis_mm" },
//!   "focal_px": [fu, fv], "principal_point_px": [u0, v0], "skew": s,
//!   "mirrored": bool,               // crate addition, see imaging::Pose
//!   "source_mm": [x, y, z], "rms_px": r,
//!   "residuals_px": [d0, d1, ...] } // per-point reprojection distance, input order
//! ```
//!
//! A projection fixes only the ratio of the source-to-detector distance to
//! the pixel spacing, so the `geometry` form needs a scale: with
//! `pixel_spacing_mm` `[sr, sc]` the detector plane is put at the depth
//! `sqrt(fu sc * fv sr)` mm from the source (the pixel steps then have about
//! the given lengths); without it, at `sqrt(fu fv)` mm, i.e. nominal 1 mm
//! pixels. Either geometry gives exactly the `projection`.

use nalgebra::{Point2, Point3};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::imaging::{calibrate, Calibration};

/// The schema string of a fiducials file.
pub const FIDUCIALS_SCHEMA: &str = "avnplan.fiducials/1";
/// The schema string of a calibration file.
pub const CALIBRATION_SCHEMA: &str = "avnplan.calibration/1";

/// One fiducial: its world position and where it was seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiducialPoint {
    /// World position, mm.
    pub world_mm: [f64; 3],
    /// Measured (dewarped) image position, pixels.
    pub px: [f64; 2],
}

/// Input of `avnplan calibrate` (`avnplan.fiducials/1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiducialsFile {
    /// Must be [`FIDUCIALS_SCHEMA`].
    pub schema: String,
    /// Image width and height, pixels.
    pub image_size_px: [u32; 2],
    /// Optional imager pixel spacing `[row, column]`, mm, used only to scale
    /// the output `geometry` (module docs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixel_spacing_mm: Option<[f64; 2]>,
    /// The fiducials (at least 6, not coplanar).
    pub points: Vec<FiducialPoint>,
}

/// Contract form 2 geometry as written in files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeometryWire {
    /// X-ray source, world mm.
    pub source_mm: [f64; 3],
    /// Centre of pixel (0, 0), world mm.
    pub detector_origin_mm: [f64; 3],
    /// World step of +1 pixel in `u`, mm.
    pub u_axis_mm: [f64; 3],
    /// World step of +1 pixel in `v`, mm.
    pub v_axis_mm: [f64; 3],
}

/// Output of `avnplan calibrate` (`avnplan.calibration/1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationFile {
    /// [`CALIBRATION_SCHEMA`].
    pub schema: String,
    /// The 3x4 projection, row-major, third row's first three entries of
    /// unit norm, `w > 0` for the fiducials.
    pub projection: [[f64; 4]; 3],
    /// The same projection as explicit geometry (module docs for its scale).
    pub geometry: GeometryWire,
    /// Focal lengths `[fu, fv]`, pixels (> 0).
    pub focal_px: [f64; 2],
    /// Principal point, pixels.
    pub principal_point_px: [f64; 2],
    /// Skew, pixels.
    pub skew: f64,
    /// Whether the image is the mirror of the pinhole view (the DICOM display
    /// convention); see `imaging::Pose`.
    pub mirrored: bool,
    /// X-ray source, world mm.
    pub source_mm: [f64; 3],
    /// Root mean square of the per-point reprojection distance, pixels.
    pub rms_px: f64,
    /// Per-point reprojection distance, pixels, in input order.
    pub residuals_px: Vec<f64>,
}

/// Parses a fiducials file's text: rejects a byte-order mark, unknown and
/// duplicate fields and a wrong schema, naming the field path.
///
/// # Errors
/// [`Error::Json`] with the field path (e.g. `points[3].px`) and what is
/// wrong.
pub fn parse_fiducials(text: &str) -> Result<FiducialsFile> {
    if text.starts_with('\u{feff}') {
        return Err(Error::Json {
            field: ".".into(),
            reason: "byte-order mark not allowed".into(),
        });
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    let f: FiducialsFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        Error::Json {
            field: path,
            reason: e.into_inner().to_string(),
        }
    })?;
    if f.schema != FIDUCIALS_SCHEMA {
        return Err(Error::Json {
            field: "schema".into(),
            reason: format!("must be \"{FIDUCIALS_SCHEMA}\""),
        });
    }
    Ok(f)
}

/// Maps an error of [`calibrate`] (fields `world_mm[i]`, `px[i]`) to the file's
/// field paths (`points[i].world_mm`, `points[i].px`).
fn remap(e: Error) -> Error {
    let fix = |f: String| -> String {
        for key in ["world_mm", "px"] {
            if let Some(rest) = f.strip_prefix(key) {
                if let Some(idx) = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                    return format!("points[{idx}].{key}");
                }
                if rest.is_empty() {
                    return "points".into();
                }
            }
        }
        f
    };
    // Rewrites `world_mm[i]` inside a message to `points[i].world_mm`.
    let fix_text = |s: String| -> String {
        let mut out = String::with_capacity(s.len() + 8);
        let mut rest = s.as_str();
        while let Some(pos) = rest.find("world_mm[") {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + "world_mm[".len()..];
            let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
            if !digits.is_empty() && after[digits.len()..].starts_with(']') {
                out.push_str(&format!("points[{digits}].world_mm"));
                rest = &after[digits.len() + 1..];
            } else {
                out.push_str("world_mm[");
                rest = after;
            }
        }
        out.push_str(rest);
        out
    };
    match e {
        Error::Invalid { field, reason } => Error::Invalid {
            field: fix(field),
            reason: fix_text(reason),
        },
        Error::Degenerate { what, reason } => Error::Degenerate {
            what: fix(what),
            reason: fix_text(reason),
        },
        Error::TooFew {
            what,
            required,
            actual,
        } => Error::TooFew {
            what: fix(what),
            required,
            actual,
        },
        other => other,
    }
}

/// Calibrates the view described by a fiducials file (the body of
/// `avnplan calibrate`).
///
/// # Errors
/// [`Error::Invalid`], [`Error::TooFew`] or [`Error::Degenerate`] naming the
/// file's field (`schema`, `image_size_px`, `pixel_spacing_mm[i]`, `points`,
/// `points[3].px`, ...), as [`calibrate`] explains.
///
/// # Example
/// ```
/// use avnplan::io::fiducials::{calibrate_file, parse_fiducials};
/// // Eight corners of a cube seen by a camera 600 mm away along +z.
/// let mut pts = Vec::new();
/// for i in 0..8 {
///     let (x, y, z) = ((i & 1) as f64 * 80.0 - 40.0, ((i >> 1) & 1) as f64 * 80.0 - 40.0,
///                      (i >> 2) as f64 * 80.0 - 40.0);
///     let w = z + 600.0;
///     let (u, v) = (3000.0 * x / w + 512.0, 3000.0 * y / w + 512.0);
///     pts.push(format!(r#"{{"world_mm": [{x}, {y}, {z}], "px": [{u}, {v}]}}"#));
/// }
/// let text = format!(r#"{{"schema": "avnplan.fiducials/1", "image_size_px": [1024, 1024],
///                       "points": [{}]}}"#, pts.join(","));
/// let out = calibrate_file(&parse_fiducials(&text).unwrap()).unwrap();
/// approx::assert_relative_eq!(out.source_mm[2], -600.0, epsilon = 1e-6);
/// approx::assert_relative_eq!(out.focal_px[0], 3000.0, epsilon = 1e-6);
/// assert!(out.rms_px < 1e-9);
/// ```
pub fn calibrate_file(f: &FiducialsFile) -> Result<CalibrationFile> {
    if f.schema != FIDUCIALS_SCHEMA {
        return Err(Error::invalid(
            "schema",
            format!("must be \"{FIDUCIALS_SCHEMA}\""),
        ));
    }
    if let Some(s) = f.pixel_spacing_mm {
        crate::error::ensure_positive("pixel_spacing_mm[0]", s[0])?;
        crate::error::ensure_positive("pixel_spacing_mm[1]", s[1])?;
    }
    let world: Vec<Point3<f64>> = f.points.iter().map(|p| Point3::from(p.world_mm)).collect();
    let px: Vec<Point2<f64>> = f.points.iter().map(|p| Point2::from(p.px)).collect();
    let cal = calibrate(&world, &px, f.image_size_px).map_err(remap)?;
    to_file(&cal, f.pixel_spacing_mm)
}

/// The calibration file of a [`Calibration`]; `pixel_spacing_mm` scales the
/// geometry (module docs).
///
/// # Errors
/// [`Error::Invalid`] if a number to be written is not finite (a bug guard:
/// files never carry NaN).
pub fn to_file(cal: &Calibration, pixel_spacing_mm: Option<[f64; 2]>) -> Result<CalibrationFile> {
    let p = &cal.projection;
    let (k, pose) = p.decompose();
    let [fu, fv] = k.focal_px;
    let depth = match pixel_spacing_mm {
        Some([sr, sc]) => (fu * sc * fv * sr).sqrt(),
        None => (fu * fv).sqrt(),
    };
    let g = p.detector_geometry(depth)?;
    let m = p.matrix();
    let projection = [0, 1, 2].map(|r| [0, 1, 2, 3].map(|c| m[(r, c)]));
    let v3 = |v: nalgebra::Vector3<f64>| [v.x, v.y, v.z];
    let out = CalibrationFile {
        schema: CALIBRATION_SCHEMA.into(),
        projection,
        geometry: GeometryWire {
            source_mm: v3(g.source_mm.coords),
            detector_origin_mm: v3(g.detector_origin_mm.coords),
            u_axis_mm: v3(g.u_axis_mm),
            v_axis_mm: v3(g.v_axis_mm),
        },
        focal_px: k.focal_px,
        principal_point_px: [k.principal_point_px.x, k.principal_point_px.y],
        skew: k.skew,
        mirrored: pose.mirrored,
        source_mm: v3(p.source_mm().coords),
        rms_px: cal.rms_px,
        residuals_px: cal.residual_distances_px(),
    };
    let all_finite = out.projection.iter().flatten().all(|v| v.is_finite())
        && [out.rms_px, out.skew, fu, fv, depth]
            .iter()
            .chain(&out.residuals_px)
            .all(|v| v.is_finite());
    if !all_finite {
        return Err(Error::invalid("calibration", "result is not finite"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(points: &str) -> String {
        format!(
            r#"{{"schema": "avnplan.fiducials/1", "image_size_px": [1024, 1024], "points": [{points}]}}"#
        )
    }

    fn cube_points(bad: Option<(usize, &str)>) -> String {
        (0..27)
            .map(|i| {
                let (x, y, z) = (
                    f64::from(i % 3) * 40.0 - 40.0,
                    f64::from((i / 3) % 3) * 40.0 - 40.0,
                    f64::from(i / 9) * 40.0 - 40.0 + 0.1 * f64::from(i),
                );
                let w = z + 650.0;
                let (u, v) = (2800.0 * x / w + 500.0, 2900.0 * y / w + 520.0);
                match bad {
                    Some((j, field)) if j == i as usize => field.to_string(),
                    _ => format!(r#"{{"world_mm": [{x}, {y}, {z}], "px": [{u}, {v}]}}"#),
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn good_file_calibrates() {
        let f = parse_fiducials(&text(&cube_points(None))).unwrap();
        let out = calibrate_file(&f).unwrap();
        assert_eq!(out.schema, CALIBRATION_SCHEMA);
        assert!((out.focal_px[0] - 2800.0).abs() < 1e-6);
        assert!((out.focal_px[1] - 2900.0).abs() < 1e-6);
        assert!(!out.mirrored);
        let n3: f64 = out.projection[2][..3].iter().map(|v| v * v).sum();
        assert!((n3 - 1.0).abs() < 1e-12);
        assert_eq!(out.residuals_px.len(), 27);
        // The geometry reproduces the projection.
        let g = &out.geometry;
        let p = crate::imaging::Projection::from_geometry(
            &g.source_mm.into(),
            &g.detector_origin_mm.into(),
            &g.u_axis_mm.into(),
            &g.v_axis_mm.into(),
        )
        .unwrap();
        for r in 0..3 {
            for c in 0..4 {
                let a = out.projection[r][c];
                assert!((p.matrix()[(r, c)] - a).abs() <= 1e-9 * (1.0 + a.abs()));
            }
        }
        // Nominal 1 mm pixels without a spacing.
        let du: f64 = g.u_axis_mm.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((du - (2900.0f64 / 2800.0).sqrt()).abs() < 1e-6, "{du}");
        let json = serde_json::to_string(&out).unwrap();
        assert!(json.contains("\"rms_px\""));
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_fiducials(&text(&cube_points(Some((
            3,
            r#"{"world_mm": [1,2,3], "px": [1]}"#,
        )))))
        .unwrap_err();
        assert!(e.to_string().starts_with("points[3].px"), "{e}");
        let e = parse_fiducials(&text(&cube_points(Some((
            5,
            r#"{"world_mm": [1,2,3], "px": [1, 2], "extra": 1}"#,
        )))))
        .unwrap_err();
        assert!(e.to_string().contains("points[5]"), "{e}");
        assert!(e.to_string().contains("extra"), "{e}");
        let e = parse_fiducials(&text(&cube_points(None)).replace("fiducials/1", "fiducials/2"))
            .unwrap_err();
        assert!(e.to_string().starts_with("schema"), "{e}");
        let e = parse_fiducials(&format!("\u{feff}{}", text(&cube_points(None)))).unwrap_err();
        assert!(e.to_string().contains("byte-order"), "{e}");
        let dup = text(&cube_points(None)).replacen(
            "\"image_size_px\"",
            "\"image_size_px\": [1,1], \"image_size_px\"",
            1,
        );
        assert!(parse_fiducials(&dup).is_err());
        // Semantic errors after parsing.
        let mut f = parse_fiducials(&text(&cube_points(None))).unwrap();
        f.points[4].world_mm = f.points[1].world_mm;
        let e = calibrate_file(&f).unwrap_err();
        assert_eq!(
            e.to_string(),
            "points[4].world_mm: degenerate geometry: duplicates points[1].world_mm"
        );
        let mut f = parse_fiducials(&text(&cube_points(None))).unwrap();
        f.points.truncate(4);
        let e = calibrate_file(&f).unwrap_err();
        assert_eq!(e.to_string(), "points: need at least 6, got 4");
        let mut f = parse_fiducials(&text(&cube_points(None))).unwrap();
        f.points.truncate(9);
        for p in &mut f.points {
            p.world_mm[2] = 7.0;
        }
        let e = calibrate_file(&f).unwrap_err();
        assert!(e.to_string().starts_with("points: degenerate"), "{e}");
        let mut f = parse_fiducials(&text(&cube_points(None))).unwrap();
        f.pixel_spacing_mm = Some([0.3, -1.0]);
        let e = calibrate_file(&f).unwrap_err();
        assert!(e.to_string().starts_with("pixel_spacing_mm[1]"), "{e}");
        let mut f = parse_fiducials(&text(&cube_points(None))).unwrap();
        f.image_size_px = [0, 5];
        let e = calibrate_file(&f).unwrap_err();
        assert!(e.to_string().starts_with("image_size_px"), "{e}");
    }
}

//! C-arm positioner geometry in the DICOM XA convention (contract form 3).
//!
//! # The convention (checked against DICOM PS3.3 C.8.7.5)
//!
//! PS3.3 C.8.7.5.1.2 defines the angles with respect to the patient (here
//! the world frame, patient LPS: x left, y posterior, z superior):
//!
//! > "The Positioner Primary Angle is defined in the transaxial plane at the
//! > isocenter with zero degrees in the direction perpendicular to the
//! > patient's chest and + 90 degrees at the patient left hand side (LAO) and
//! > -90 at the patient right hand side (RAO)." "The Positioner Secondary
//! > Angle is defined in the Sagittal Plane at the isocenter with zero
//! > degrees in the direction perpendicular to the patient's chest. +90
//! > degrees corresponds to the cranial direction." "At a 0 angle for both
//! > Primary Angle (0018,1510) and Secondary Angle (0018,1511), the patient
//! > faces the Image Intensifier or digital detector."
//!
//! and Table C.8-30 says the primary angle is the "Position of the X-Ray
//! Image Intensifier about the patient from the RAO to LAO direction": the
//! angles place the **detector**. The primary angle is "like longitude" and
//! the secondary "like latitude", with the patient's long axis as the pole:
//!
//! * primary = secondary = 0: the detector is anterior to the patient
//!   (`-y`), the source posterior, the beam travels posterior to anterior;
//! * the primary angle `a` turns the detector about the patient's long axis
//!   (`z`), positive towards the patient's left (LAO): at LAO 90 the
//!   detector is at `+x`;
//! * the secondary angle `b` then tilts it towards the head (CRA) positive,
//!   about the C-arm's turned axis `R_z(a) x`: at CRA 90 the detector is at
//!   `+z`. (Equivalently: first `b` about the fixed `x` axis, then `a` about
//!   `z`.)
//!
//! The unit vector from the isocentre towards the detector is
//!
//! ```text
//! d = R_z(a) R_x(-b) (0, -1, 0) = (sin(a) cos(b), -cos(a) cos(b), sin(b))
//! ```
//!
//! The source is at `iso - SOD d`, the detector centre (the principal point)
//! at `iso + (SID - SOD) d`.
//!
//! # Image orientation
//!
//! XA images are displayed patient-oriented (heads-up, PS3.17 FFF.2.1.3.1.2)
//! and viewed as from the detector looking towards the source (the Enhanced
//! XA positioner frame, C.8.19.6.13.1.2: rows run "from left to right of the
//! detector plane looking towards the source"). At 0/0 the viewer faces the
//! patient's chest: `u` (columns, right) points to the patient's left (`+x`)
//! and `v` (rows, down) to the patient's feet (`-z`). The pixel axes turn
//! with the detector by the same rotation `R = R_z(a) R_x(-b)`:
//!
//! ```text
//! u = R (1, 0, 0)  = (cos a, sin a, 0)                  (stays horizontal)
//! v = R (0, 0, -1) = (sin a sin b, -cos a sin b, -cos b)
//! ```
//!
//! Numbers (SID 1000, SOD 600, isocentre at the origin), pinned by the test
//! `dicom_convention_is_pinned`: 0/0 source `(0, 600, 0)`, detector centre
//! `(0, -400, 0)`, `u = +x`, `v = -z`; LAO 90 source `(-600, 0, 0)`, detector
//! `(400, 0, 0)`, `u = +y`, `v = -z`; CRA 30 source `(0, 519.6, -300)`,
//! detector `(0, -346.4, 200)`, `u = +x`, `v = (0, -0.5, -0.866)`.
//!
//! The displayed image is the mirror image of what a camera at the source
//! would see (`u x v = -d`), so the projection matrix's left 3x3 block has a
//! negative determinant; [`Projection::decompose`] reports this as
//! `mirrored = true` (see [`super::Pose`]).

use nalgebra::{Point2, Point3, Unit, Vector3};

use super::Projection;
use crate::error::{ensure_finite, ensure_positive, Error, Result};

/// Contract form 2: explicit detector geometry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorGeometry {
    /// X-ray source (focal spot), world mm.
    pub source_mm: Point3<f64>,
    /// Centre of pixel (0, 0), world mm.
    pub detector_origin_mm: Point3<f64>,
    /// World step of +1 pixel in `u`, mm.
    pub u_axis_mm: Vector3<f64>,
    /// World step of +1 pixel in `v`, mm.
    pub v_axis_mm: Vector3<f64>,
}

impl DetectorGeometry {
    /// The projection of this geometry.
    ///
    /// # Errors
    /// As [`Projection::from_geometry`].
    pub fn projection(&self) -> Result<Projection> {
        Projection::from_geometry(
            &self.source_mm,
            &self.detector_origin_mm,
            &self.u_axis_mm,
            &self.v_axis_mm,
        )
    }
}

/// C-arm positioner parameters (contract form 3, DICOM XA).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CArm {
    /// Source to detector distance, mm (DICOM 0018,1110).
    pub sid_mm: f64,
    /// Source to isocentre distance, mm (DICOM 0018,1111 for XA).
    pub sod_mm: f64,
    /// Positioner primary angle, radians, + towards LAO (0018,1510).
    pub primary_angle_rad: f64,
    /// Positioner secondary angle, radians, + towards CRA (0018,1511).
    pub secondary_angle_rad: f64,
    /// Imager pixel spacing at the detector, mm, `[row, column]` (0018,1164).
    pub pixel_spacing_mm: [f64; 2],
    /// Isocentre, world mm.
    pub isocenter_mm: Point3<f64>,
    /// Principal point (where the central ray meets the detector), pixels;
    /// `None` for the image centre `((W-1)/2, (H-1)/2)`.
    pub principal_point_px: Option<Point2<f64>>,
    /// Image width and height, pixels.
    pub image_size_px: [u32; 2],
}

/// Unit vector from the isocentre towards the detector for the given
/// positioner angles (radians); see the module docs.
#[must_use]
pub fn detector_direction(primary_rad: f64, secondary_rad: f64) -> Unit<Vector3<f64>> {
    let (sa, ca) = primary_rad.sin_cos();
    let (sb, cb) = secondary_rad.sin_cos();
    Unit::new_normalize(Vector3::new(sa * cb, -ca * cb, sb))
}

/// The positioner angles `(primary, secondary)`, radians, that put the
/// detector in direction `d` from the isocentre (inverse of
/// [`detector_direction`]); secondary in `[-pi/2, pi/2]`, primary in
/// `(-pi, pi]`.
#[must_use]
pub fn angles_for_detector_direction(d: &Unit<Vector3<f64>>) -> (f64, f64) {
    let secondary = d.z.clamp(-1.0, 1.0).asin();
    let primary = if d.x.hypot(d.y) < 1e-12 {
        0.0
    } else {
        d.x.atan2(-d.y)
    };
    (primary, secondary)
}

impl CArm {
    /// Checks ranges: distances and spacings > 0, `sod_mm < sid_mm`, finite
    /// angles and isocentre, image size >= 1.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field.
    pub fn validate(&self) -> Result<()> {
        ensure_positive("sid_mm", self.sid_mm)?;
        ensure_positive("sod_mm", self.sod_mm)?;
        if self.sod_mm >= self.sid_mm {
            return Err(Error::invalid("sod_mm", "must be < sid_mm"));
        }
        ensure_finite("primary_angle_deg", &[self.primary_angle_rad])?;
        ensure_finite("secondary_angle_deg", &[self.secondary_angle_rad])?;
        ensure_positive("pixel_spacing_mm[0]", self.pixel_spacing_mm[0])?;
        ensure_positive("pixel_spacing_mm[1]", self.pixel_spacing_mm[1])?;
        ensure_finite("isocenter_mm", self.isocenter_mm.coords.as_slice())?;
        if let Some(pp) = self.principal_point_px {
            ensure_finite("principal_point_px", pp.coords.as_slice())?;
        }
        if self.image_size_px[0] == 0 || self.image_size_px[1] == 0 {
            return Err(Error::invalid("image_size_px", "must be >= 1"));
        }
        Ok(())
    }

    /// The principal point, pixels (the image centre unless given).
    #[must_use]
    pub fn principal_point(&self) -> Point2<f64> {
        self.principal_point_px.unwrap_or_else(|| {
            Point2::new(
                (f64::from(self.image_size_px[0]) - 1.0) / 2.0,
                (f64::from(self.image_size_px[1]) - 1.0) / 2.0,
            )
        })
    }

    /// The explicit detector geometry (contract form 2) of this positioner.
    ///
    /// # Errors
    /// As [`CArm::validate`].
    pub fn geometry(&self) -> Result<DetectorGeometry> {
        self.validate()?;
        let a = self.primary_angle_rad;
        let b = self.secondary_angle_rad;
        let d = detector_direction(a, b).into_inner();
        let (sa, ca) = a.sin_cos();
        let (sb, cb) = b.sin_cos();
        let u = Vector3::new(ca, sa, 0.0);
        let v = Vector3::new(sa * sb, -ca * sb, -cb);
        let source = self.isocenter_mm - d * self.sod_mm;
        let center = self.isocenter_mm + d * (self.sid_mm - self.sod_mm);
        let u_step = u * self.pixel_spacing_mm[1];
        let v_step = v * self.pixel_spacing_mm[0];
        let pp = self.principal_point();
        Ok(DetectorGeometry {
            source_mm: source,
            detector_origin_mm: center - u_step * pp.x - v_step * pp.y,
            u_axis_mm: u_step,
            v_axis_mm: v_step,
        })
    }

    /// The projection of this positioner.
    ///
    /// # Errors
    /// As [`CArm::validate`].
    pub fn projection(&self) -> Result<Projection> {
        self.geometry()?.projection()
    }

    /// Magnification at the isocentre, `SID / SOD` (DICOM 0018,1114).
    #[must_use]
    pub fn magnification(&self) -> f64 {
        self.sid_mm / self.sod_mm
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    fn carm(primary_deg: f64, secondary_deg: f64) -> CArm {
        CArm {
            sid_mm: 1000.0,
            sod_mm: 600.0,
            primary_angle_rad: primary_deg.to_radians(),
            secondary_angle_rad: secondary_deg.to_radians(),
            pixel_spacing_mm: [0.3, 0.3],
            isocenter_mm: Point3::origin(),
            principal_point_px: None,
            image_size_px: [1024, 1024],
        }
    }

    #[test]
    fn ap_view_convention() {
        // 0/0: source 600 mm posterior (+y), detector 400 mm anterior (-y).
        let g = carm(0.0, 0.0).geometry().unwrap();
        assert_relative_eq!(g.source_mm, Point3::new(0.0, 600.0, 0.0), epsilon = 1e-9);
        let p = carm(0.0, 0.0).projection().unwrap();
        // The isocentre projects to the image centre.
        let c = p.project(&Point3::origin()).unwrap();
        assert_relative_eq!(c, Point2::new(511.5, 511.5), epsilon = 1e-9);
        // Patient's left (+x) is to the image right, superior (+z) is up.
        let l = p.project(&Point3::new(10.0, 0.0, 0.0)).unwrap();
        assert!(l.x > c.x);
        let s = p.project(&Point3::new(0.0, 0.0, 10.0)).unwrap();
        assert!(s.y < c.y);
        // Magnification 1000/600 at the isocentre with 0.3 mm pixels.
        assert_relative_eq!(l.x - c.x, 10.0 * 1000.0 / 600.0 / 0.3, epsilon = 1e-9);
    }

    #[test]
    fn lao_90_and_cra_30() {
        let g = carm(90.0, 0.0).geometry().unwrap();
        // LAO 90: detector at the patient's left, source at the right.
        assert_relative_eq!(g.source_mm, Point3::new(-600.0, 0.0, 0.0), epsilon = 1e-9);
        let g = carm(0.0, 30.0).geometry().unwrap();
        // CRA 30: detector tilted towards the head, source towards the feet.
        let d = detector_direction(0.0, 30f64.to_radians());
        assert_relative_eq!(d.z, 0.5, epsilon = 1e-12);
        assert!(g.source_mm.z < 0.0);
        let (a, b) = angles_for_detector_direction(&d);
        assert_relative_eq!(a, 0.0, epsilon = 1e-12);
        assert_relative_eq!(b, 30f64.to_radians(), epsilon = 1e-12);
    }

    #[test]
    fn rejects_bad_distances() {
        let mut c = carm(0.0, 0.0);
        c.sod_mm = 1000.0;
        assert!(c.projection().is_err());
        c.sod_mm = -1.0;
        assert!(c.projection().is_err());
    }
}

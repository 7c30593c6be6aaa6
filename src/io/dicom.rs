//! Reading C-arm views from DICOM files (contract form 4, `avnplan
//! dicom-info`), and writing minimal X-ray angiographic (XA) files.
//!
//! # What is read
//!
//! [`DicomView::open`] reads one DICOM Part 10 file (preamble, file meta
//! group, data set; 1 GiB at most) with the `dicom-object` crate and keeps:
//!
//! * SOP Class UID (0008,0016), Transfer Syntax UID (0002,0010), Modality
//!   (0008,0060), Rows (0028,0010), Columns (0028,0011), Number of Frames
//!   (0028,0008, 1 when absent);
//! * the geometry, exactly these five tags ([`GEOMETRY_TAGS`]), as if they
//!   had been written in contract form 3 ([`crate::imaging::CArm`]):
//!
//! | tag | keyword | form 3 field |
//! |---|---|---|
//! | (0018,1110) | DistanceSourceToDetector | `sid_mm` |
//! | (0018,1111) | DistanceSourceToPatient | `sod_mm` (XA/RF: source to isocentre) |
//! | (0018,1510) | PositionerPrimaryAngle | `primary_angle_deg` (+ LAO) |
//! | (0018,1511) | PositionerSecondaryAngle | `secondary_angle_deg` (+ CRA) |
//! | (0018,1164) | ImagerPixelSpacing | `pixel_spacing_mm` `[row, column]` |
//!
//! Pixel Spacing (0028,0030) is never used: it may already be calibrated to
//! the patient plane (domain.md, DICOM tags). The principal point is the
//! image centre `((Columns-1)/2, (Rows-1)/2)` unless the case gives one; the
//! isocentre is the world origin unless the case gives one (the file has no
//! tag for either).
//!
//! The geometry is **complete** when all five tags are present with finite
//! numbers, the Modality is `XA` or `RF` (for DX/CR, Distance Source to
//! Patient is measured to the table, not to the isocentre: PS3.3 C.8.11.7),
//! the values make a valid C-arm (`0 < SOD < SID`, spacings > 0), and, for
//! frames after the first, the file has no non-zero Positioner Primary or
//! Secondary Angle Increment (0018,1520/1521: a rotational run whose frames
//! have other angles than the ones the tags give). Enhanced XA files that
//! keep the positioner only in their functional groups count as missing the
//! tags. Otherwise [`DicomView::carm`] is an error naming the missing tags
//! and what is wrong; a view can still be built from such a file when the
//! case supplies its own calibration (form 1 or 2 beside `dicom`).
//!
//! # Pixels
//!
//! Pixel data is checked when the file is opened: Bits Allocated 8, 16 or
//! 32, Samples per Pixel 1 or 3, and native (uncompressed) pixel data of
//! exactly `Rows x Columns x SamplesPerPixel x BitsAllocated/8 x frames`
//! bytes (one padding byte allowed). Uncompressed (implicit/explicit VR,
//! little or big endian), deflated and RLE Lossless transfer syntaxes are
//! decoded (`dicom-pixeldata`, no native codecs); any other compressed
//! transfer syntax (JPEG, JPEG-LS, JPEG 2000, ...) is named and refused
//! when the pixels are needed ([`DicomView::require_pixels`]).
//!
//! [`DicomView::image`] turns one frame into an 8-bit [`GrayImage`] for the
//! overlays: the modality LUT (Rescale Slope/Intercept) is applied, then
//! the first Window Center/Width (linear, PS3.3 C.11.2.1.2.1) or, without
//! one, a min-max stretch; MONOCHROME1 is inverted so that bone is bright;
//! RGB becomes luminance `0.299 R + 0.587 G + 0.114 B`. Other photometric
//! interpretations (palette, YBR) are refused by name.
//!
//! # Writing
//!
//! [`write_xa_dicom`] writes a single- or multi-frame XA file (explicit VR
//! little endian, 8-bit MONOCHROME2) whose five geometry tags hold a
//! [`CArm`]; reading it back gives the same C-arm (exactly, for values
//! whose shortest decimal form fits the 16 characters of a DICOM decimal
//! string; to 1e-12 relative otherwise).

use std::path::{Path, PathBuf};

use dicom_core::value::Value as DicomValue;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use nalgebra::{Point2, Point3};

use super::case::{CArmWire, CaseFile, CASE_SCHEMA};
use super::dicom_info::{DicomInfoFile, DICOM_INFO_SCHEMA};
use super::json::read_json_with_schema;
use crate::error::{Error, Result};
use crate::imaging::{CArm, DistortionParams, PolynomialDistortion};
use crate::render::GrayImage;

/// Largest DICOM file read, bytes (the contract's 1 GiB per input file).
pub const MAX_DICOM_FILE_BYTES: u64 = 1 << 30;

/// The geometry tags, in the order of contract form 3: keyword, tag, and
/// the tag written as `(gggg,eeee)`.
pub const GEOMETRY_TAGS: [(&str, Tag, &str); 5] = [
    (
        "DistanceSourceToDetector",
        tags::DISTANCE_SOURCE_TO_DETECTOR,
        "(0018,1110)",
    ),
    (
        "DistanceSourceToPatient",
        tags::DISTANCE_SOURCE_TO_PATIENT,
        "(0018,1111)",
    ),
    (
        "PositionerPrimaryAngle",
        tags::POSITIONER_PRIMARY_ANGLE,
        "(0018,1510)",
    ),
    (
        "PositionerSecondaryAngle",
        tags::POSITIONER_SECONDARY_ANGLE,
        "(0018,1511)",
    ),
    (
        "ImagerPixelSpacing",
        tags::IMAGER_PIXEL_SPACING,
        "(0018,1164)",
    ),
];

/// Modalities whose Distance Source to Patient is the distance to the
/// isocentre (PS3.3 C.8.7.5 / C.8.19).
pub const POSITIONER_MODALITIES: [&str; 2] = ["XA", "RF"];

/// The geometry values read from one file (each `None` when the tag is
/// absent, empty or not a finite number).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DicomGeometry {
    /// Distance Source to Detector (0018,1110), mm.
    pub sid_mm: Option<f64>,
    /// Distance Source to Patient (0018,1111), mm.
    pub sod_mm: Option<f64>,
    /// Positioner Primary Angle (0018,1510), degrees, + LAO.
    pub primary_angle_deg: Option<f64>,
    /// Positioner Secondary Angle (0018,1511), degrees, + CRA.
    pub secondary_angle_deg: Option<f64>,
    /// Imager Pixel Spacing (0018,1164), mm, `[row, column]`.
    pub imager_pixel_spacing_mm: Option<[f64; 2]>,
}

/// One DICOM file opened as a view: header, geometry and (undecoded)
/// pixel data. See the module docs for what is read and checked.
///
/// # Example
/// ```
/// use avnplan::imaging::CArm;
/// use avnplan::io::dicom::{write_xa_dicom, DicomView};
/// use avnplan::render::GrayImage;
/// use nalgebra::Point3;
/// let carm = CArm {
///     sid_mm: 1000.0, sod_mm: 600.0, primary_angle_rad: 30f64.to_radians(),
///     secondary_angle_rad: -10f64.to_radians(), pixel_spacing_mm: [0.3, 0.3],
///     isocenter_mm: Point3::origin(), principal_point_px: None, image_size_px: [64, 48],
/// };
/// let path = std::env::temp_dir().join("avnplan_doc_dicom_view.dcm");
/// // Top half 0, bottom half 200: no window in the file, so min-max stretched.
/// let pixels = (0..64 * 48).map(|i| if i < 64 * 24 { 0 } else { 200 }).collect();
/// let image = GrayImage::new(64, 48, pixels).unwrap();
/// write_xa_dicom(&path, &carm, &[image]).unwrap();
/// let view = DicomView::open(&path).unwrap();
/// assert!(view.missing.is_empty());
/// let back = view.carm(Point3::origin(), None).unwrap();
/// approx::assert_relative_eq!(back.primary_angle_rad, carm.primary_angle_rad, epsilon = 1e-12);
/// let shown = view.image(0).unwrap();
/// assert_eq!((shown.pixels()[0], shown.pixels()[64 * 48 - 1]), (0, 255));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct DicomView {
    /// The file as opened.
    pub file: PathBuf,
    /// SOP Class UID (0008,0016); empty when absent.
    pub sop_class_uid: String,
    /// Transfer Syntax UID (0002,0010).
    pub transfer_syntax_uid: String,
    /// The transfer syntax's name, when known.
    pub transfer_syntax_name: Option<String>,
    /// Modality (0008,0060), when present.
    pub modality: Option<String>,
    /// Rows (0028,0010): image height, pixels.
    pub rows: u32,
    /// Columns (0028,0011): image width, pixels.
    pub columns: u32,
    /// Number of Frames (0028,0008), 1 when absent.
    pub frames: u32,
    /// The geometry tags' values.
    pub geometry: DicomGeometry,
    /// Keywords of the geometry tags that were read.
    pub tags_used: Vec<String>,
    /// Keywords of the geometry tags that are absent or unreadable.
    pub missing: Vec<String>,
    /// Why the geometry is unusable although no tag is missing (modality,
    /// invalid values, per-frame angle increments), or notes for the user.
    pub warnings: Vec<String>,
    /// `None` when the pixels can be decoded, else why not (e.g. the
    /// compressed transfer syntax, named).
    pub pixel_problem: Option<String>,
    angle_increments: bool,
    obj: DefaultDicomObject,
}

fn dicom_err(what: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Dicom {
        what: what.into(),
        reason: reason.into(),
    }
}

/// The element's value as one trimmed string, `None` when absent or empty.
fn text(obj: &DefaultDicomObject, tag: Tag) -> Option<String> {
    let e = obj.element_opt(tag).ok()??;
    let s = e.to_str().ok()?;
    let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!s.is_empty()).then(|| s.to_string())
}

/// All numeric values of the element; `Ok(None)` when absent or empty,
/// `Err(())` when present but not finite numbers.
fn numbers(obj: &DefaultDicomObject, tag: Tag) -> std::result::Result<Option<Vec<f64>>, ()> {
    let Ok(Some(e)) = obj.element_opt(tag) else {
        return Ok(None);
    };
    if e.value().multiplicity() == 0 || e.to_str().is_ok_and(|s| s.trim().is_empty()) {
        return Ok(None);
    }
    match e.to_multi_float64() {
        Ok(v) if !v.is_empty() && v.iter().all(|x| x.is_finite()) => Ok(Some(v)),
        Ok(v) if v.is_empty() => Ok(None),
        _ => Err(()),
    }
}

fn unsigned(obj: &DefaultDicomObject, tag: Tag, name: &str) -> Result<Option<u32>> {
    let Ok(Some(e)) = obj.element_opt(tag) else {
        return Ok(None);
    };
    if e.value().multiplicity() == 0 || e.to_str().is_ok_and(|s| s.trim().is_empty()) {
        return Ok(None);
    }
    match e.to_int::<i64>() {
        Ok(v) if v >= 0 && v <= i64::from(u32::MAX) => Ok(Some(v as u32)),
        _ => Err(dicom_err(
            name,
            "is not a whole number in the range of an unsigned 32-bit value",
        )),
    }
}

impl DicomView {
    /// Opens and checks one DICOM file (module docs). Geometry that is
    /// incomplete is *not* an error here (see [`DicomView::missing`]);
    /// compressed pixel data that cannot be decoded is not either (see
    /// [`DicomView::pixel_problem`]).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; [`Error::LimitExceeded`]
    /// above [`MAX_DICOM_FILE_BYTES`]; [`Error::Dicom`] (naming the tag)
    /// when the file is not DICOM, has no Rows, Columns or Pixel Data, has
    /// an unsupported Bits Allocated or Samples per Pixel, or native pixel
    /// data whose length does not match Rows, Columns, frames and bits.
    pub fn open(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
            ));
        }
        if meta.len() > MAX_DICOM_FILE_BYTES {
            return Err(Error::LimitExceeded {
                what: "DICOM file bytes".into(),
                limit: MAX_DICOM_FILE_BYTES as usize,
                actual: usize::try_from(meta.len()).unwrap_or(usize::MAX),
            });
        }
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        check_structure(std::io::BufReader::new(f))?;
        let obj = OpenFileOptions::new().open_file(path).map_err(|e| {
            let msg: String = e.to_string().chars().take(120).collect();
            dicom_err(".", format!("cannot be read as a DICOM file: {msg}"))
        })?;
        Self::from_object(obj, path.to_path_buf())
    }

    /// [`DicomView::open`] on the bytes of a DICOM file held in memory (a
    /// DICOM Part 10 file, with or without its 128-byte preamble), e.g.
    /// received over a network or from an archive. [`DicomView::file`] is
    /// empty. The same checks and limits apply (module docs, "Limits").
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] above [`MAX_DICOM_FILE_BYTES`], for a
    /// deflated data set above [`MAX_DICOM_INFLATED_BYTES`] once inflated,
    /// or nesting deeper than [`MAX_DICOM_NESTING`]; [`Error::Dicom`] as
    /// for [`DicomView::open`], and when a declared length runs past the
    /// end of the data.
    ///
    /// # Example
    /// ```
    /// use avnplan::imaging::CArm;
    /// use avnplan::io::dicom::{write_xa_dicom, DicomView};
    /// use avnplan::render::GrayImage;
    /// use nalgebra::Point3;
    /// let carm = CArm {
    ///     sid_mm: 1100.0, sod_mm: 700.0, primary_angle_rad: 0.0,
    ///     secondary_angle_rad: 0.0, pixel_spacing_mm: [0.2, 0.2],
    ///     isocenter_mm: Point3::origin(), principal_point_px: None, image_size_px: [8, 4],
    /// };
    /// let path = std::env::temp_dir().join("avnplan_doc_dicom_from_bytes.dcm");
    /// write_xa_dicom(&path, &carm, &[GrayImage::new(8, 4, vec![7; 32]).unwrap()]).unwrap();
    /// let bytes = std::fs::read(&path).unwrap();
    /// let view = DicomView::from_bytes(&bytes).unwrap();
    /// approx::assert_relative_eq!(view.carm(Point3::origin(), None).unwrap().sid_mm, 1100.0);
    /// // Cut short: a typed error, never a panic.
    /// assert!(DicomView::from_bytes(&bytes[..bytes.len() / 2]).is_err());
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() as u64 > MAX_DICOM_FILE_BYTES {
            return Err(Error::LimitExceeded {
                what: "DICOM file bytes".into(),
                limit: MAX_DICOM_FILE_BYTES as usize,
                actual: bytes.len(),
            });
        }
        check_structure(bytes)?;
        let preamble = if has_preamble(bytes) {
            ReadPreamble::Always
        } else {
            ReadPreamble::Never
        };
        let obj = OpenFileOptions::new()
            .read_preamble(preamble)
            .from_reader(bytes)
            .map_err(|e| {
                let msg: String = e.to_string().chars().take(120).collect();
                dicom_err(".", format!("cannot be read as a DICOM file: {msg}"))
            })?;
        Self::from_object(obj, PathBuf::new())
    }

    /// The checks of [`DicomView::open`] on a parsed object.
    fn from_object(obj: DefaultDicomObject, file: PathBuf) -> Result<Self> {
        let transfer_syntax_uid = obj
            .meta()
            .transfer_syntax()
            .trim_end_matches(['\0', ' '])
            .to_string();
        let ts = TransferSyntaxRegistry.get(&transfer_syntax_uid);
        let transfer_syntax_name = ts.map(|t| t.name().to_string());
        let sop_class_uid = text(&obj, tags::SOP_CLASS_UID).unwrap_or_else(|| {
            obj.meta()
                .media_storage_sop_class_uid()
                .trim_end_matches(['\0', ' '])
                .to_string()
        });
        let modality = text(&obj, tags::MODALITY);
        let rows = unsigned(&obj, tags::ROWS, "Rows")?
            .filter(|&r| r >= 1)
            .ok_or_else(|| dicom_err("Rows", "missing or 0 (0028,0010): not an image"))?;
        let columns = unsigned(&obj, tags::COLUMNS, "Columns")?
            .filter(|&c| c >= 1)
            .ok_or_else(|| dicom_err("Columns", "missing or 0 (0028,0011): not an image"))?;
        let frames = match unsigned(&obj, tags::NUMBER_OF_FRAMES, "NumberOfFrames")? {
            None => 1,
            Some(0) => return Err(dicom_err("NumberOfFrames", "must be >= 1")),
            Some(n) => n,
        };
        let spp = unsigned(&obj, tags::SAMPLES_PER_PIXEL, "SamplesPerPixel")?.unwrap_or(1);
        if spp != 1 && spp != 3 {
            return Err(dicom_err(
                "SamplesPerPixel",
                format!("{spp} is not supported (1 or 3)"),
            ));
        }
        let bits = unsigned(&obj, tags::BITS_ALLOCATED, "BitsAllocated")?
            .ok_or_else(|| dicom_err("BitsAllocated", "missing (0028,0100)"))?;
        if ![8, 16, 32].contains(&bits) {
            return Err(dicom_err(
                "BitsAllocated",
                format!("{bits} is not supported (8, 16 or 32)"),
            ));
        }
        let pixel = obj
            .element_opt(tags::PIXEL_DATA)
            .ok()
            .flatten()
            .ok_or_else(|| dicom_err("PixelData", "missing (7FE0,0010): no image"))?;
        let mut pixel_problem = None;
        match pixel.value() {
            DicomValue::Primitive(p) => {
                let expected = u64::from(rows)
                    * u64::from(columns)
                    * u64::from(spp)
                    * u64::from(bits / 8)
                    * u64::from(frames);
                let actual = p.to_bytes().len() as u64;
                if actual < expected || actual > expected + 1 {
                    return Err(dicom_err(
                        "PixelData",
                        format!(
                            "has {actual} bytes, but Rows x Columns x SamplesPerPixel x BitsAllocated/8 x NumberOfFrames = {rows} x {columns} x {spp} x {} x {frames} = {expected}",
                            bits / 8
                        ),
                    ));
                }
            }
            DicomValue::PixelSequence(_) => {
                let decodable = ts.is_some_and(|t| t.can_decode_all());
                if !decodable {
                    pixel_problem = Some(format!(
                        "compressed transfer syntax {} ({transfer_syntax_uid}) cannot be decoded by avnplan (uncompressed, deflated and RLE Lossless only)",
                        transfer_syntax_name.as_deref().unwrap_or("unknown")
                    ));
                }
            }
            DicomValue::Sequence(_) => {
                return Err(dicom_err("PixelData", "is a sequence, not pixel data"));
            }
        }

        let mut geometry = DicomGeometry::default();
        let mut tags_used = Vec::new();
        let mut missing = Vec::new();
        let mut warnings = Vec::new();
        for (k, (name, tag, code)) in GEOMETRY_TAGS.iter().enumerate() {
            match numbers(&obj, *tag) {
                Ok(None) => missing.push((*name).to_string()),
                Err(()) => {
                    missing.push((*name).to_string());
                    warnings.push(format!("{name} {code} is not a finite number"));
                }
                Ok(Some(v)) => {
                    let ok = if k == 4 { v.len() == 2 } else { v.len() == 1 };
                    if !ok {
                        missing.push((*name).to_string());
                        warnings.push(format!(
                            "{name} {code} has {} values, expected {}",
                            v.len(),
                            if k == 4 { 2 } else { 1 }
                        ));
                        continue;
                    }
                    tags_used.push((*name).to_string());
                    match k {
                        0 => geometry.sid_mm = Some(v[0]),
                        1 => geometry.sod_mm = Some(v[0]),
                        2 => geometry.primary_angle_deg = Some(v[0]),
                        3 => geometry.secondary_angle_deg = Some(v[0]),
                        _ => geometry.imager_pixel_spacing_mm = Some([v[0], v[1]]),
                    }
                }
            }
        }
        let angle_increments = [
            tags::POSITIONER_PRIMARY_ANGLE_INCREMENT,
            tags::POSITIONER_SECONDARY_ANGLE_INCREMENT,
        ]
        .iter()
        .any(|t| match numbers(&obj, *t) {
            Ok(Some(v)) => v.iter().any(|x| *x != 0.0),
            Ok(None) => false,
            Err(()) => true,
        });
        let mut view = Self {
            file,
            sop_class_uid,
            transfer_syntax_uid,
            transfer_syntax_name,
            modality,
            rows,
            columns,
            frames,
            geometry,
            tags_used,
            missing,
            warnings: Vec::new(),
            pixel_problem,
            angle_increments,
            obj,
        };
        if view.missing.is_empty() {
            if let Err(e) = view.geometry_check(0) {
                warnings.push(e);
            }
        }
        if let Some(p) = &view.pixel_problem {
            warnings.push(format!("pixels: {p}"));
        }
        view.warnings = warnings;
        Ok(view)
    }

    /// Image width and height, pixels: `[Columns, Rows]`.
    #[must_use]
    pub fn image_size_px(&self) -> [u32; 2] {
        [self.columns, self.rows]
    }

    /// Why the complete tags still do not make a usable geometry for
    /// `frame`, if they do not.
    fn geometry_check(&self, frame: u32) -> std::result::Result<(), String> {
        match self.modality.as_deref() {
            Some(m) if POSITIONER_MODALITIES.contains(&m) => {}
            m => {
                return Err(format!(
                    "Modality {} is not XA or RF: its DistanceSourceToPatient is not the distance to an isocentre",
                    m.unwrap_or("(absent)")
                ))
            }
        }
        if frame > 0 && self.angle_increments {
            return Err(
                "the positioner angles change from frame to frame (PositionerPrimary/SecondaryAngleIncrement), which is not supported for frames after the first"
                    .into(),
            );
        }
        let c = self.carm_unchecked(Point3::origin(), None);
        c.validate().map_err(|e| {
            let s = e.to_string();
            let s = s
                .replace("sid_mm", "DistanceSourceToDetector")
                .replace("sod_mm", "DistanceSourceToPatient")
                .replace("pixel_spacing_mm", "ImagerPixelSpacing")
                .replace("primary_angle_deg", "PositionerPrimaryAngle")
                .replace("secondary_angle_deg", "PositionerSecondaryAngle");
            format!("invalid geometry: {s}")
        })
    }

    fn carm_unchecked(&self, iso: Point3<f64>, pp: Option<Point2<f64>>) -> CArm {
        let g = &self.geometry;
        CArm {
            sid_mm: g.sid_mm.unwrap_or(f64::NAN),
            sod_mm: g.sod_mm.unwrap_or(f64::NAN),
            primary_angle_rad: g.primary_angle_deg.unwrap_or(f64::NAN).to_radians(),
            secondary_angle_rad: g.secondary_angle_deg.unwrap_or(f64::NAN).to_radians(),
            pixel_spacing_mm: g.imager_pixel_spacing_mm.unwrap_or([f64::NAN; 2]),
            isocenter_mm: iso,
            principal_point_px: pp,
            image_size_px: self.image_size_px(),
        }
    }

    /// The C-arm of frame 0 as contract form 3 (isocentre at the origin,
    /// principal point at the image centre), when the geometry is complete.
    #[must_use]
    pub fn carm_wire(&self) -> Option<CArmWire> {
        self.carm(Point3::origin(), None)
            .ok()
            .map(|c| CArmWire::from_carm(&c))
    }

    /// The C-arm read from the tags (form 3), with the isocentre and
    /// principal point the case gives (the file has no tag for them).
    ///
    /// # Errors
    /// [`Error::Dicom`] naming the missing tags (keyword and `(gggg,eeee)`)
    /// or what else makes the geometry unusable (module docs).
    pub fn carm(
        &self,
        isocenter_mm: Point3<f64>,
        principal_point_px: Option<Point2<f64>>,
    ) -> Result<CArm> {
        self.carm_for_frame(0, isocenter_mm, principal_point_px)
    }

    /// [`DicomView::carm`] for frame `frame` (0-based).
    ///
    /// # Errors
    /// As [`DicomView::carm`]; [`Error::Dicom`] on `NumberOfFrames` when the
    /// frame does not exist.
    pub fn carm_for_frame(
        &self,
        frame: u32,
        isocenter_mm: Point3<f64>,
        principal_point_px: Option<Point2<f64>>,
    ) -> Result<CArm> {
        self.check_frame(frame)?;
        if !self.missing.is_empty() {
            let list: Vec<String> = self
                .missing
                .iter()
                .map(|m| {
                    let code = GEOMETRY_TAGS
                        .iter()
                        .find(|(k, _, _)| k == m)
                        .map_or("", |(_, _, c)| c);
                    format!("{m} {code}")
                })
                .collect();
            return Err(dicom_err(
                "geometry",
                format!(
                    "incomplete, missing {}; give projection or geometry beside dicom",
                    list.join(", ")
                ),
            ));
        }
        self.geometry_check(frame)
            .map_err(|reason| dicom_err("geometry", reason))?;
        let c = self.carm_unchecked(isocenter_mm, principal_point_px);
        c.validate()?;
        Ok(c)
    }

    fn check_frame(&self, frame: u32) -> Result<()> {
        if frame >= self.frames {
            return Err(dicom_err(
                "NumberOfFrames",
                format!(
                    "frame {frame} does not exist: the file has {} frame(s) (0-based)",
                    self.frames
                ),
            ));
        }
        Ok(())
    }

    /// Fails when the pixel data cannot be decoded (compressed transfer
    /// syntax, named).
    ///
    /// # Errors
    /// [`Error::Dicom`] on `PixelData`.
    pub fn require_pixels(&self) -> Result<()> {
        match &self.pixel_problem {
            Some(p) => Err(dicom_err("PixelData", p.clone())),
            None => Ok(()),
        }
    }

    /// One frame (0-based) as an 8-bit grayscale image for the overlays
    /// (module docs: modality LUT, first window or min-max, MONOCHROME1
    /// inverted, RGB as luminance).
    ///
    /// # Errors
    /// [`Error::Dicom`] for a missing frame, undecodable or inconsistent
    /// pixel data, or an unsupported photometric interpretation.
    pub fn image(&self, frame: u32) -> Result<GrayImage> {
        self.check_frame(frame)?;
        self.require_pixels()?;
        self.check_decode_size(frame)?;
        let px_err = |e: dicom_pixeldata::Error| {
            let msg: String = e.to_string().chars().take(120).collect();
            dicom_err("PixelData", format!("cannot be decoded: {msg}"))
        };
        let dp = self.obj.decode_pixel_data_frame(frame).map_err(px_err)?;
        let (w, h) = (self.columns as usize, self.rows as usize);
        let spp = usize::from(dp.samples_per_pixel());
        let need = w * h * spp * usize::from(dp.bits_allocated()).div_ceil(8);
        if dp.data().len() < need {
            return Err(dicom_err(
                "PixelData",
                format!(
                    "frame {frame} decodes to {} bytes, Rows x Columns needs {need}",
                    dp.data().len()
                ),
            ));
        }
        let pi = dp.photometric_interpretation().as_str().to_string();
        let gray: Vec<f64> = match (pi.as_str(), spp) {
            ("MONOCHROME1" | "MONOCHROME2", 1) => {
                dp.to_vec_frame::<f64>(0).map_err(px_err)?
            }
            ("RGB", 3) => {
                let opts = dicom_pixeldata::ConvertOptions::new()
                    .with_modality_lut(dicom_pixeldata::ModalityLutOption::None);
                let v: Vec<f64> = dp.to_vec_frame_with_options(0, &opts).map_err(px_err)?;
                v.chunks_exact(3)
                    .map(|c| 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2])
                    .collect()
            }
            _ => {
                return Err(dicom_err(
                    "PhotometricInterpretation",
                    format!("{pi} with {spp} sample(s) per pixel cannot be shown (MONOCHROME1, MONOCHROME2 or RGB)"),
                ))
            }
        };
        if gray.len() < w * h {
            return Err(dicom_err(
                "PixelData",
                format!(
                    "frame {frame} has {} samples, Rows x Columns = {}",
                    gray.len(),
                    w * h
                ),
            ));
        }
        let gray = &gray[..w * h];
        let window = if pi.starts_with("MONOCHROME") {
            dp.window()
                .ok()
                .flatten()
                .and_then(|ws| ws.first().copied())
        } else {
            None
        };
        let map = window_map(gray, window.map(|wl| (wl.center, wl.width)));
        let invert = pi == "MONOCHROME1";
        let pixels: Vec<u8> = gray
            .iter()
            .map(|&x| {
                let g = map(x);
                if invert {
                    255 - g
                } else {
                    g
                }
            })
            .collect();
        GrayImage::new(self.columns, self.rows, pixels)
    }

    /// Refuses to decode a frame larger than [`MAX_DICOM_FRAME_PIXELS`], or
    /// compressed (RLE) pixel data whose declared frame size is more than
    /// [`MAX_RLE_EXPANSION`] times the compressed bytes the file holds:
    /// the decoder allocates the declared size before decoding.
    fn check_decode_size(&self, frame: u32) -> Result<()> {
        let frame_px = u64::from(self.rows) * u64::from(self.columns);
        if frame_px > MAX_DICOM_FRAME_PIXELS {
            return Err(Error::LimitExceeded {
                what: "DICOM Rows x Columns (pixels per frame)".into(),
                limit: MAX_DICOM_FRAME_PIXELS as usize,
                actual: usize::try_from(frame_px).unwrap_or(usize::MAX),
            });
        }
        let Ok(Some(e)) = self.obj.element_opt(tags::PIXEL_DATA) else {
            return Ok(());
        };
        if let DicomValue::PixelSequence(seq) = e.value() {
            let stored: u64 = seq.fragments().iter().map(|f| f.len() as u64).sum();
            let spp = unsigned(&self.obj, tags::SAMPLES_PER_PIXEL, "SamplesPerPixel")?.unwrap_or(1);
            let bits = unsigned(&self.obj, tags::BITS_ALLOCATED, "BitsAllocated")?.unwrap_or(8);
            let need = frame_px * u64::from(spp) * u64::from(bits.div_ceil(8));
            if need > MAX_RLE_EXPANSION * stored {
                return Err(dicom_err(
                    "PixelData",
                    format!(
                        "a frame of {need} bytes cannot be encoded in the {stored} compressed bytes the file holds"
                    ),
                ));
            }
            if self.transfer_syntax_uid == uids::RLE_LOSSLESS {
                if let Some(fragment) = seq.fragments().get(frame as usize) {
                    check_rle_fragment(fragment, frame_px, spp * bits.div_ceil(8)).map_err(
                        |reason| dicom_err("PixelData", format!("frame {frame}: {reason}")),
                    )?;
                }
            }
        }
        Ok(())
    }

    /// The `missing` list of the report: the absent geometry tags, or, when
    /// none is absent but the geometry is still unusable, the keyword that
    /// makes it so (`Modality`, or the tag with an invalid value).
    fn info_missing(&self) -> Vec<String> {
        if !self.missing.is_empty() {
            return self.missing.clone();
        }
        match self.geometry_check(0) {
            Ok(()) => Vec::new(),
            Err(reason) => {
                // The modality message names the tags it would need, so
                // it is recognised first.
                let key = if reason.starts_with("Modality") {
                    "Modality"
                } else {
                    // The tag the message names first is the one at fault.
                    GEOMETRY_TAGS
                        .iter()
                        .map(|(k, _, _)| *k)
                        .filter_map(|k| reason.find(k).map(|at| (at, k)))
                        .min()
                        .map_or("PositionerPrimaryAngleIncrement", |(_, k)| k)
                };
                vec![key.to_string()]
            }
        }
    }

    /// The `avnplan.dicom-info/1` report of this file; `file` is the name
    /// to print (as given on the command line).
    #[must_use]
    pub fn info(&self, file: &str) -> DicomInfoFile {
        DicomInfoFile {
            schema: DICOM_INFO_SCHEMA.to_string(),
            file: file.to_string(),
            sop_class_uid: self.sop_class_uid.clone(),
            transfer_syntax_uid: self.transfer_syntax_uid.clone(),
            rows: self.rows,
            columns: self.columns,
            frames: self.frames,
            carm: self.carm_wire(),
            tags_used: self.tags_used.clone(),
            missing: self.info_missing(),
        }
    }
}

/// Largest frame decoded into an image by [`DicomView::image`], pixels
/// (`Rows x Columns`): 2^24, a 4096 x 4096 detector. Larger frames are
/// still opened (header, geometry, report) but not decoded.
pub const MAX_DICOM_FRAME_PIXELS: u64 = 1 << 24;

/// Largest ratio of a decoded frame's bytes to the compressed pixel data
/// bytes of the file (RLE Lossless expands at most 64-fold: a 2-byte
/// replicate run gives 128 bytes).
pub const MAX_RLE_EXPANSION: u64 = 64;

/// Largest data set of a deflated transfer syntax once inflated, bytes
/// (the limit of a file, [`MAX_DICOM_FILE_BYTES`]).
pub const MAX_DICOM_INFLATED_BYTES: u64 = MAX_DICOM_FILE_BYTES;

/// Deepest nesting of sequences and items (a sequence, its item, a nested
/// sequence ... count one level each) in a DICOM file.
pub const MAX_DICOM_NESTING: usize = 64;

/// Checks one RLE Lossless frame (PS3.5 Annex G) before it is decoded: a
/// 64-byte header with 1 to 15 segments, at least one per byte of a pixel
/// (`segments_needed`), each segment's range inside the fragment and each
/// needed segment decoding (PackBits, as the decoder reads it) to at least
/// `pixels` bytes. The decoder (`dicom-transfer-syntax-registry` 0.10)
/// indexes past its buffers on fragments that break these rules.
fn check_rle_fragment(
    fragment: &[u8],
    pixels: u64,
    segments_needed: u32,
) -> std::result::Result<(), String> {
    if fragment.len() < 64 {
        return Err(format!(
            "RLE fragment of {} bytes is shorter than its 64-byte header",
            fragment.len()
        ));
    }
    let word = |i: usize| {
        u32::from_le_bytes([
            fragment[4 * i],
            fragment[4 * i + 1],
            fragment[4 * i + 2],
            fragment[4 * i + 3],
        ])
    };
    let n = word(0);
    if !(1..=15).contains(&n) || n < segments_needed {
        return Err(format!(
            "RLE header gives {n} segments, {segments_needed} to 15 needed"
        ));
    }
    let n = n as usize;
    let mut offsets: Vec<usize> = (1..=n).map(|i| word(i) as usize).collect();
    offsets.push(fragment.len());
    for ii in 0..segments_needed as usize {
        let seg = fragment
            .get(offsets[ii]..offsets[ii + 1])
            .ok_or_else(|| format!("RLE segment {ii} lies outside its fragment"))?;
        // PackBits, counting output bytes as the decoder produces them.
        let (mut i, mut out) = (0usize, 0u64);
        while i < seg.len() && out < pixels {
            let h = seg[i] as i8;
            i += 1;
            if h >= 0 {
                let k = (h as usize + 1).min(seg.len() - i);
                out += k as u64;
                i += h as usize + 1;
            } else if h != -128 {
                if i >= seg.len() {
                    return Err(format!("RLE segment {ii} ends inside a run"));
                }
                out += (1 - isize::from(h)) as u64;
                i += 1;
            }
        }
        if out < pixels {
            return Err(format!(
                "RLE segment {ii} decodes to {out} bytes, Rows x Columns = {pixels}"
            ));
        }
    }
    Ok(())
}

/// Whether the bytes start with the 128-byte preamble, as `dicom-object`
/// decides when opening a file: `DICM` at byte 128, or no `DICM` at byte
/// 0 (then the preamble is skipped and the magic checked after it).
fn has_preamble(head: &[u8]) -> bool {
    let at_128 = head.len() >= 132 && &head[128..132] == b"DICM";
    at_128 || !(head.len() >= 4 && &head[0..4] == b"DICM")
}

/// A reader that counts the bytes read through it.
struct Counted<R> {
    inner: R,
    n: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.set(self.n.get() + k as u64);
        Ok(k)
    }
}

/// Walks every element header of a DICOM file without reading a value
/// (`dicom-parser`'s lazy reader, the same header logic as the reader
/// `dicom-object` uses) and checks that each declared length is backed by
/// bytes that are really there, that a deflated data set inflates to at
/// most [`MAX_DICOM_INFLATED_BYTES`] and that sequences nest at most
/// [`MAX_DICOM_NESTING`] deep. `dicom-object` allocates a value's declared
/// length (up to 4 GiB) before reading it, and builds nested sequences by
/// recursion: this check keeps a file of a few bytes from asking for
/// gigabytes or overflowing the stack.
fn check_structure<R: std::io::Read>(mut src: R) -> Result<()> {
    use dicom_core::header::{HasLength, Header};
    use std::io::Read;
    let read_err = |what: &str, e: String| {
        let msg: String = e.chars().take(120).collect();
        dicom_err(
            ".",
            format!("cannot be read as a DICOM file: {what}: {msg}"),
        )
    };
    // The first 132 bytes decide the preamble.
    let mut head = Vec::with_capacity(132);
    (&mut src)
        .take(132)
        .read_to_end(&mut head)
        .map_err(|e| read_err("header", e.to_string()))?;
    let skip = if has_preamble(&head) { 128 } else { 0 };
    if head.len() < skip + 4 || &head[skip..skip + 4] != b"DICM" {
        return Err(dicom_err(
            ".",
            "cannot be read as a DICOM file: no DICM magic code (at byte 128 or 0)",
        ));
    }
    let rest = head.get(skip + 4..).unwrap_or(&[]).to_vec();
    let mut src = std::io::Cursor::new(rest).chain(src);
    // File meta group: explicit VR little endian, as dicom-object reads it.
    use dicom_encoding::decode::Decode;
    let dec = dicom_encoding::decode::file_header_decoder();
    let truncated = |tag: Tag, len: u32| {
        dicom_err(
            ".",
            format!(
                "cannot be read as a DICOM file: element {tag} declares {len} bytes, more than the file holds"
            ),
        )
    };
    let skip_exact = |src: &mut dyn Read, tag: Tag, len: u32| -> Result<Vec<u8>> {
        // Values of up to 1 KiB are kept (the transfer syntax UID).
        let mut keep = Vec::new();
        let n = if len <= 1024 {
            src.take(u64::from(len))
                .read_to_end(&mut keep)
                .map_err(|e| read_err("meta", e.to_string()))? as u64
        } else {
            std::io::copy(&mut src.take(u64::from(len)), &mut std::io::sink())
                .map_err(|e| read_err("meta", e.to_string()))?
        };
        if n != u64::from(len) {
            return Err(truncated(tag, len));
        }
        Ok(keep)
    };
    let (h, _) = dec
        .decode_header(&mut src)
        .map_err(|e| read_err("meta", e.to_string()))?;
    if h.tag() != Tag(0x0002, 0x0000) || h.length().get() != Some(4) {
        // dicom-object refuses this without allocating.
        return Ok(());
    }
    let mut gl = [0u8; 4];
    src.read_exact(&mut gl)
        .map_err(|e| read_err("meta", e.to_string()))?;
    let group_length = u32::from_le_bytes(gl);
    let mut total = 0u32;
    let mut ts_uid = String::new();
    while total < group_length {
        let (h, hb) = dec
            .decode_header(&mut src)
            .map_err(|e| read_err("meta", e.to_string()))?;
        let Some(len) = h.length().get() else {
            return Ok(());
        };
        let v = skip_exact(&mut src, h.tag(), len)?;
        if h.tag() == tags::TRANSFER_SYNTAX_UID {
            ts_uid = String::from_utf8_lossy(&v)
                .trim_end_matches(['\0', ' '])
                .to_string();
        }
        total = total.saturating_add(hb as u32).saturating_add(len);
    }
    // The data set, in its transfer syntax (dicom-object refuses unknown
    // ones and those it cannot read without touching the data set).
    let Some(ts) = TransferSyntaxRegistry.get(&ts_uid) else {
        return Ok(());
    };
    let stream: Box<dyn Read + '_> = match ts.codec() {
        dicom_encoding::transfer_syntax::Codec::Dataset(Some(adapter)) => {
            adapter.adapt_reader(Box::new(src))
        }
        dicom_encoding::transfer_syntax::Codec::Dataset(None) => return Ok(()),
        _ => Box::new(src),
    };
    let count = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let counted = Counted {
        inner: stream.take(MAX_DICOM_INFLATED_BYTES + 1),
        n: count.clone(),
    };
    let parser = dicom_parser::DynStatefulDecoder::new_with(
        counted,
        ts,
        dicom_encoding::text::SpecificCharacterSet::default(),
        0,
    )
    .map_err(|e| read_err("data set", e.to_string()))?;
    let mut reader = dicom_parser::dataset::lazy_read::LazyDataSetReader::new(parser);
    let mut depth = 0usize;
    let mut last_tag = Tag(0x7FE0, 0x0010);
    while let Some(token) = reader.advance() {
        use dicom_parser::dataset::LazyDataToken as T;
        use dicom_parser::StatefulDecode;
        let token = token.map_err(|e| read_err("data set", e.to_string()))?;
        let value_len = match token {
            T::SequenceStart { .. } | T::PixelSequenceStart | T::ItemStart { .. } => {
                depth += 1;
                if depth > MAX_DICOM_NESTING {
                    return Err(Error::LimitExceeded {
                        what: "DICOM sequence nesting".into(),
                        limit: MAX_DICOM_NESTING,
                        actual: depth,
                    });
                }
                None
            }
            T::SequenceEnd | T::ItemEnd => {
                depth = depth.saturating_sub(1);
                None
            }
            T::ElementHeader(h) => {
                last_tag = h.tag();
                None
            }
            T::LazyValue { header, decoder } => {
                last_tag = header.tag();
                let len = header.length().get().unwrap_or(0);
                let before = count.get();
                decoder
                    .skip_bytes(len)
                    .map_err(|e| read_err("data set", e.to_string()))?;
                Some((len, before))
            }
            T::LazyItemValue { len, decoder } => {
                let before = count.get();
                decoder
                    .skip_bytes(len)
                    .map_err(|e| read_err("data set", e.to_string()))?;
                Some((len, before))
            }
            _ => None,
        };
        if let Some((len, before)) = value_len {
            if count.get() - before != u64::from(len) {
                return Err(truncated(last_tag, len));
            }
        }
        if count.get() > MAX_DICOM_INFLATED_BYTES {
            return Err(Error::LimitExceeded {
                what: "DICOM data set bytes (inflated)".into(),
                limit: MAX_DICOM_INFLATED_BYTES as usize,
                actual: usize::try_from(count.get()).unwrap_or(usize::MAX),
            });
        }
    }
    Ok(())
}

/// The 8-bit mapping of the samples: the DICOM linear window when given
/// with width >= 1, else min-max.
fn window_map(samples: &[f64], window: Option<(f64, f64)>) -> impl Fn(f64) -> u8 {
    let (lo, hi) = match window {
        Some((c, w)) if c.is_finite() && w.is_finite() && w >= 1.0 => {
            // PS3.3 C.11.2.1.2.1: y = ((x - (c - 0.5)) / (w - 1) + 0.5) in [0, 1].
            let lo = c - 0.5 - (w - 1.0) / 2.0;
            (lo, lo + (w - 1.0))
        }
        _ => {
            let lo = samples
                .iter()
                .copied()
                .filter(|x| x.is_finite())
                .fold(f64::INFINITY, f64::min);
            let hi = samples
                .iter()
                .copied()
                .filter(|x| x.is_finite())
                .fold(f64::NEG_INFINITY, f64::max);
            (lo, hi)
        }
    };
    move |x: f64| {
        if !(x.is_finite() && lo.is_finite() && hi.is_finite()) || hi <= lo {
            return if x.is_finite() && lo.is_finite() && x > lo {
                255
            } else {
                0
            };
        }
        let t = ((x - lo) / (hi - lo)).clamp(0.0, 1.0);
        (t * 255.0).round() as u8
    }
}

/// The shortest decimal string of `v` that fits a DICOM decimal string
/// (DS, 16 characters).
///
/// # Errors
/// [`Error::Invalid`] naming `field` for a non-finite value.
fn ds(field: &str, v: f64) -> Result<String> {
    if !v.is_finite() {
        return Err(Error::invalid(field, "must be finite"));
    }
    let s = format!("{v}");
    if s.len() <= 16 {
        return Ok(s);
    }
    // The closest of the fixed and exponent forms that fit.
    (0..=15usize)
        .flat_map(|d| [format!("{v:.d$}"), format!("{v:.d$e}")])
        .filter(|s| s.len() <= 16)
        .filter_map(|s| s.parse::<f64>().ok().map(|x| ((x - v).abs(), s)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, s)| s)
        .ok_or_else(|| Error::invalid(field, "cannot be written as a DICOM decimal string"))
}

/// A deterministic UID under the `2.25` root (UUID-derived UIDs, PS3.5
/// B.2) from the bytes of `data`.
fn uid_from(data: &[u8]) -> String {
    // Two independent 64-bit FNV-1a hashes make a 128-bit number.
    let fnv = |seed: u64| {
        data.iter().fold(seed, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let n = (u128::from(fnv(0xcbf2_9ce4_8422_2325)) << 64) | u128::from(fnv(0x84222325cbf29ce4));
    format!("2.25.{n}")
}

/// Writes an X-Ray Angiographic Image (single or multi-frame, 8-bit
/// MONOCHROME2, explicit VR little endian) whose geometry tags hold `carm`
/// (module docs). The isocentre is not written (the file has no tag for
/// it; a case gives it beside `dicom`).
///
/// # Errors
/// [`Error::Invalid`] when `carm` is invalid, has a principal point (no
/// XA tag holds one), when `frames` is empty or a frame's size differs
/// from `carm.image_size_px`; [`Error::Io`] when the file cannot be
/// written.
pub fn write_xa_dicom(path: &Path, carm: &CArm, frames: &[GrayImage]) -> Result<()> {
    carm.validate()?;
    if carm.principal_point_px.is_some() {
        return Err(Error::invalid(
            "principal_point_px",
            "DICOM XA has no tag for the principal point: give it in the case file",
        ));
    }
    if frames.is_empty() {
        return Err(Error::too_few("frames", 1, 0));
    }
    let [w, h] = carm.image_size_px;
    if w > u32::from(u16::MAX) || h > u32::from(u16::MAX) {
        return Err(Error::invalid("image_size_px", "must be at most 65535"));
    }
    let mut pixels = Vec::with_capacity(frames.len() * w as usize * h as usize);
    for (i, f) in frames.iter().enumerate() {
        if f.width() != w || f.height() != h {
            return Err(Error::invalid(
                format!("frames[{i}]"),
                format!(
                    "is {}x{} pixels, the C-arm's image is {w}x{h}",
                    f.width(),
                    f.height()
                ),
            ));
        }
        pixels.extend_from_slice(f.pixels());
    }
    if pixels.len() % 2 == 1 {
        pixels.push(0);
    }
    let values = [
        ds("sid_mm", carm.sid_mm)?,
        ds("sod_mm", carm.sod_mm)?,
        ds("primary_angle_deg", carm.primary_angle_rad.to_degrees())?,
        ds("secondary_angle_deg", carm.secondary_angle_rad.to_degrees())?,
        format!(
            "{}\\{}",
            ds("pixel_spacing_mm[0]", carm.pixel_spacing_mm[0])?,
            ds("pixel_spacing_mm[1]", carm.pixel_spacing_mm[1])?
        ),
    ];
    let sop_instance = uid_from(format!("{values:?}{w}x{h}x{}", frames.len()).as_bytes());
    let mut obj = InMemDicomObject::new_empty();
    let s = |tag: Tag, vr: VR, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
    obj.put(s(
        tags::SOP_CLASS_UID,
        VR::UI,
        uids::X_RAY_ANGIOGRAPHIC_IMAGE_STORAGE,
    ));
    obj.put(s(tags::SOP_INSTANCE_UID, VR::UI, &sop_instance));
    obj.put(s(tags::MODALITY, VR::CS, "XA"));
    obj.put(s(
        tags::IMAGE_TYPE,
        VR::CS,
        "ORIGINAL\\PRIMARY\\SINGLE PLANE",
    ));
    obj.put(s(tags::PATIENT_POSITION, VR::CS, "HFS"));
    for ((_, tag, _), v) in GEOMETRY_TAGS.iter().zip(&values) {
        obj.put(s(*tag, VR::DS, v));
    }
    let us = |tag: Tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
    obj.put(us(tags::SAMPLES_PER_PIXEL, 1));
    obj.put(s(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"));
    if frames.len() > 1 {
        obj.put(s(tags::NUMBER_OF_FRAMES, VR::IS, &frames.len().to_string()));
    }
    obj.put(us(tags::ROWS, h as u16));
    obj.put(us(tags::COLUMNS, w as u16));
    obj.put(us(tags::BITS_ALLOCATED, 8));
    obj.put(us(tags::BITS_STORED, 8));
    obj.put(us(tags::HIGH_BIT, 7));
    obj.put(us(tags::PIXEL_REPRESENTATION, 0));
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(pixels),
    ));
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .implementation_class_uid("2.25.1"),
        )
        .map_err(|e| Error::invalid("dicom", e.to_string()))?;
    file.write_to_file(path).map_err(|e| {
        Error::io(
            path,
            std::io::Error::other(e.to_string().chars().take(120).collect::<String>()),
        )
    })
}

/// Dewarps an image taken through a distortion: output pixel `(u, v)`
/// (undistorted frame) takes the bilinear sample of `image` at
/// `distortion.distort((u, v))`; pixels whose source lies outside the image
/// or cannot be found are black.
#[must_use]
pub fn dewarp_image(image: &GrayImage, distortion: &PolynomialDistortion) -> GrayImage {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let src = image.pixels();
    let sample = |x: f64, y: f64| -> u8 {
        if !(x >= 0.0 && y >= 0.0 && x <= (w - 1) as f64 && y <= (h - 1) as f64) {
            return 0;
        }
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
        let (fx, fy) = (x - x0 as f64, y - y0 as f64);
        let p = |i: usize, j: usize| f64::from(src[j * w + i]);
        let v = (1.0 - fy) * ((1.0 - fx) * p(x0, y0) + fx * p(x1, y0))
            + fy * ((1.0 - fx) * p(x0, y1) + fx * p(x1, y1));
        v.round().clamp(0.0, 255.0) as u8
    };
    let mut out = vec![0u8; w * h];
    for (j, row) in out.chunks_exact_mut(w).enumerate() {
        for (i, o) in row.iter_mut().enumerate() {
            if let Ok(d) = distortion.distort(&Point2::new(i as f64, j as f64)) {
                *o = sample(d.x, d.y);
            }
        }
    }
    GrayImage::new(image.width(), image.height(), out).unwrap_or_else(|_| image.clone())
}

/// The radiograph of each view of a case file, for the overlays: the
/// chosen frame of the view's DICOM file (dewarped when the view has a
/// `distortion`, so that it lines up with the undistorted annotations and
/// projections), `None` for views without `dicom`. Same order as the
/// case's views.
///
/// # Errors
/// As [`super::case::load_case`] for the case file and
/// [`DicomView::image`] for the DICOM files, each naming the view's field.
pub fn case_view_images(case_path: &Path) -> Result<Vec<Option<GrayImage>>> {
    let file: CaseFile = read_json_with_schema(case_path, CASE_SCHEMA)?;
    let base = case_path.parent().unwrap_or(Path::new("."));
    file.views
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let Some(d) = &v.dicom else {
                return Ok(None);
            };
            let f = format!("views[{i}].dicom");
            let p = if Path::new(d).is_absolute() {
                PathBuf::from(d)
            } else {
                base.join(d)
            };
            let frame = v
                .frame
                .map_or(0, |n| u32::try_from(n.0).unwrap_or(u32::MAX));
            let dv = DicomView::open(&p).map_err(|e| e.in_field(&f))?;
            let img = dv.image(frame).map_err(|e| e.in_field(&f))?;
            Ok(Some(match &v.distortion {
                Some(dw) => {
                    let m = PolynomialDistortion::try_from(DistortionParams {
                        model: dw.model.clone(),
                        degree: dw.degree,
                        center_px: dw.center_px,
                        scale_px: dw.scale_px,
                        coeffs_u: dw.coeffs_u.clone(),
                        coeffs_v: dw.coeffs_v.clone(),
                    })
                    .map_err(|e| e.in_field(&format!("views[{i}].distortion")))?;
                    dewarp_image(&img, &m)
                }
                None => img,
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    fn carm() -> CArm {
        CArm {
            sid_mm: 1000.0,
            sod_mm: 600.0,
            primary_angle_rad: 25f64.to_radians(),
            secondary_angle_rad: -12.5f64.to_radians(),
            pixel_spacing_mm: [0.308, 0.309],
            isocenter_mm: Point3::origin(),
            principal_point_px: None,
            image_size_px: [40, 30],
        }
    }

    #[test]
    fn ds_fits_sixteen_characters() {
        assert_eq!(ds("x", 1000.0).unwrap(), "1000");
        assert_eq!(ds("x", 0.308).unwrap(), "0.308");
        let s = ds("x", 1.0 / 3.0).unwrap();
        assert!(s.len() <= 16, "{s}");
        assert_relative_eq!(s.parse::<f64>().unwrap(), 1.0 / 3.0, max_relative = 1e-12);
        let s = ds("x", -123_456.789_012_345_6).unwrap();
        assert!(s.len() <= 16, "{s}");
        assert_relative_eq!(
            s.parse::<f64>().unwrap(),
            -123_456.789_012_345_6,
            max_relative = 1e-12
        );
        assert!(ds("x", f64::NAN).is_err());
    }

    #[test]
    fn window_map_follows_the_standard() {
        // c = 100, w = 21: x <= 89.5 -> 0, x > 109.5 -> 255, linear between.
        let m = window_map(&[], Some((100.0, 21.0)));
        assert_eq!(m(80.0), 0);
        assert_eq!(m(89.5), 0);
        assert_eq!(m(120.0), 255);
        assert_eq!(m(99.5), 128);
        let m = window_map(&[10.0, 20.0, 30.0], None);
        assert_eq!((m(10.0), m(20.0), m(30.0)), (0, 128, 255));
        // Flat image: no division by zero.
        let m = window_map(&[5.0, 5.0], None);
        assert_eq!(m(5.0), 0);
    }

    #[test]
    fn uid_is_deterministic_and_valid() {
        let a = uid_from(b"abc");
        assert_eq!(a, uid_from(b"abc"));
        assert_ne!(a, uid_from(b"abd"));
        assert!(a.len() <= 64 && a.chars().all(|c| c.is_ascii_digit() || c == '.'));
    }

    #[test]
    fn write_then_read_is_exact() {
        let dir = std::env::temp_dir().join("avnplan_unit_dicom");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rt.dcm");
        let c = carm();
        let px: Vec<u8> = (0..40 * 30).map(|i| (i % 251) as u8).collect();
        let img = GrayImage::new(40, 30, px.clone()).unwrap();
        write_xa_dicom(&path, &c, &[img.clone(), img]).unwrap();
        let v = DicomView::open(&path).unwrap();
        assert_eq!((v.rows, v.columns, v.frames), (30, 40, 2));
        assert_eq!(v.tags_used.len(), 5);
        assert!(
            v.missing.is_empty() && v.warnings.is_empty(),
            "{:?}",
            v.warnings
        );
        assert_eq!(v.geometry.sid_mm, Some(1000.0));
        assert_eq!(v.geometry.primary_angle_deg, Some(25.0));
        assert_eq!(v.geometry.secondary_angle_deg, Some(-12.5));
        assert_eq!(v.geometry.imager_pixel_spacing_mm, Some([0.308, 0.309]));
        let back = v.carm(Point3::origin(), None).unwrap();
        assert_relative_eq!(back.primary_angle_rad, c.primary_angle_rad, epsilon = 1e-15);
        // 8-bit data spanning 0..250: min-max keeps the values within rounding.
        let im = v.image(1).unwrap();
        assert_eq!(im.pixels().len(), 1200);
        for (a, b) in im.pixels().iter().zip(&px) {
            assert!((i32::from(*a) - i32::from(*b) * 255 / 250).abs() <= 1);
        }
        assert!(v.image(2).is_err());
    }

    /// The bytes of a written two-frame 40 x 30 file.
    fn written() -> Vec<u8> {
        let dir = std::env::temp_dir().join("avnplan_unit_dicom");
        std::fs::create_dir_all(&dir).unwrap();
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let k = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("bytes_{}_{k}.dcm", std::process::id()));
        let px: Vec<u8> = (0..40 * 30).map(|i| (i % 251) as u8).collect();
        let img = GrayImage::new(40, 30, px).unwrap();
        write_xa_dicom(&path, &carm(), &[img.clone(), img]).unwrap();
        std::fs::read(&path).unwrap()
    }

    fn find(hay: &[u8], needle: &[u8]) -> usize {
        hay.windows(needle.len())
            .position(|w| w == needle)
            .expect("pattern in the file")
    }

    /// Byte offset where the data set starts (after the file meta group).
    fn dataset_start(b: &[u8]) -> usize {
        let gl = u32::from_le_bytes(b[140..144].try_into().unwrap()) as usize;
        144 + gl
    }

    #[test]
    fn from_bytes_reads_what_open_reads() {
        let b = written();
        let v = DicomView::from_bytes(&b).unwrap();
        assert!(v.file.as_os_str().is_empty());
        assert_eq!((v.rows, v.columns, v.frames), (30, 40, 2));
        assert!(v.missing.is_empty() && v.warnings.is_empty());
        let c = v.carm(Point3::origin(), None).unwrap();
        assert_relative_eq!(
            c.secondary_angle_rad,
            carm().secondary_angle_rad,
            epsilon = 1e-15
        );
        assert_eq!(v.image(1).unwrap().pixels().len(), 1200);
        // Without the 128-byte preamble (starts at DICM) too.
        let w = DicomView::from_bytes(&b[128..]).unwrap();
        assert_eq!(w.geometry, v.geometry);
        assert_eq!(w.image(0).unwrap().pixels(), v.image(0).unwrap().pixels());
    }

    #[test]
    fn from_bytes_refuses_garbage_and_every_truncation() {
        assert!(matches!(
            DicomView::from_bytes(&[]),
            Err(Error::Dicom { .. })
        ));
        assert!(DicomView::from_bytes(&[0u8; 300]).is_err());
        let b = written();
        for cut in (0..b.len()).step_by(7) {
            assert!(DicomView::from_bytes(&b[..cut]).is_err(), "cut at {cut}");
        }
    }

    /// A Pixel Data element declaring almost 4 GiB in a 1.4 kB file: a
    /// typed error before anything that size is allocated.
    #[test]
    fn declared_length_past_the_end_is_refused() {
        let mut b = written();
        let at = find(&b, &[0xE0, 0x7F, 0x10, 0x00, b'O', b'B']);
        b[at + 8..at + 12].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        match DicomView::from_bytes(&b) {
            Err(Error::Dicom { reason, .. }) => {
                assert!(reason.contains("declares"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        // The same file on disk: `open` checks it the same way.
        let path =
            std::env::temp_dir().join(format!("avnplan_unit_huge_{}.dcm", std::process::id()));
        std::fs::write(&path, &b).unwrap();
        assert!(matches!(DicomView::open(&path), Err(Error::Dicom { .. })));
    }

    #[test]
    fn deep_sequence_nesting_is_a_limit() {
        let b = written();
        let mut d = b[..dataset_start(&b)].to_vec();
        for _ in 0..(MAX_DICOM_NESTING + 10) {
            // (0008,1115) SQ, undefined length, then an item of undefined length.
            d.extend_from_slice(&[
                0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
            ]);
            d.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        }
        match DicomView::from_bytes(&d) {
            Err(Error::LimitExceeded { limit, .. }) => assert_eq!(limit, MAX_DICOM_NESTING),
            other => panic!("{other:?}"),
        }
    }

    /// The file made RLE Lossless with one 8-byte fragment: opened, but a
    /// frame of 1200 bytes cannot come out of 8 compressed bytes, and a
    /// 5000 x 5000 frame is above the decoding limit.
    #[test]
    fn compressed_frames_are_bounded_by_their_data() {
        let b = written();
        let ts = find(&b, b"1.2.840.10008.1.2.1");
        let px = find(&b, &[0xE0, 0x7F, 0x10, 0x00, b'O', b'B']);
        let mut r = b[..px].to_vec();
        r[ts..ts + 19].copy_from_slice(b"1.2.840.10008.1.2.5");
        r.extend_from_slice(&[
            0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        r.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]);
        r.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        r.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        r.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        let v = DicomView::from_bytes(&r).unwrap();
        assert!(v.pixel_problem.is_none());
        match v.image(0) {
            Err(Error::Dicom { reason, .. }) => {
                assert!(reason.contains("cannot be encoded"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let rows = find(&r, &[0x28, 0x00, 0x10, 0x00, b'U', b'S', 2, 0]);
        r[rows + 8..rows + 10].copy_from_slice(&5000u16.to_le_bytes());
        let cols = find(&r, &[0x28, 0x00, 0x11, 0x00, b'U', b'S', 2, 0]);
        r[cols + 8..cols + 10].copy_from_slice(&5000u16.to_le_bytes());
        let v = DicomView::from_bytes(&r).unwrap();
        assert!(matches!(v.image(0), Err(Error::LimitExceeded { .. })));
        assert!(v.info("x").rows == 5000);
    }

    /// Fuzz crash (dicom, session 3): an RLE header announcing more
    /// segments than its fragment holds made the decoder slice past the
    /// fragment (a panic in `dicom-transfer-syntax-registry`). Input:
    /// `fuzz/regressions/dicom/rle_header_segments_past_fragment`.
    #[test]
    fn rle_fragments_that_break_their_header_are_errors() {
        let mut ok = vec![0u8; 64];
        ok[0] = 1;
        ok[4] = 64;
        ok.extend_from_slice(&[(256 - 47) as u8, 9]); // 48 bytes of 9
        assert!(check_rle_fragment(&ok, 48, 1).is_ok());
        assert!(check_rle_fragment(&ok, 49, 1)
            .unwrap_err()
            .contains("decodes to 48"));
        assert!(check_rle_fragment(&ok, 48, 2).is_err());
        assert!(check_rle_fragment(&ok[..40], 48, 1).is_err());
        let mut many = ok.clone();
        many[0..4].copy_from_slice(&0x0001_0001u32.to_le_bytes());
        assert!(check_rle_fragment(&many, 48, 1).is_err());
        let mut outside = ok.clone();
        outside[4..8].copy_from_slice(&500u32.to_le_bytes());
        assert!(check_rle_fragment(&outside, 48, 1).is_err());
        let mut cut_run = ok.clone();
        cut_run.pop();
        assert!(check_rle_fragment(&cut_run, 48, 1).is_err());
        // The fuzzer's file, and one with a decodable frame, through the view.
        let crash = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fuzz/regressions/dicom/rle_header_segments_past_fragment"),
        )
        .unwrap();
        if let Ok(v) = DicomView::from_bytes(&crash) {
            assert!(v.image(0).is_err());
        }
        let b = written();
        let ts = find(&b, b"1.2.840.10008.1.2.1");
        let px = find(&b, &[0xE0, 0x7F, 0x10, 0x00, b'O', b'B']);
        let mut r = b[..px].to_vec();
        r[ts..ts + 19].copy_from_slice(b"1.2.840.10008.1.2.5");
        r.extend_from_slice(&[
            0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        r.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]);
        let mut frag = vec![0u8; 64];
        frag[0] = 1;
        frag[4] = 64;
        for _ in 0..10 {
            frag.extend_from_slice(&[(256 - 119) as u8, 9]); // 120 bytes of 9
        }
        for _ in 0..2 {
            r.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
            r.extend_from_slice(&(frag.len() as u32).to_le_bytes());
            r.extend_from_slice(&frag);
        }
        r.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        let v = DicomView::from_bytes(&r).unwrap();
        let im = v.image(1).unwrap();
        assert_eq!(im.pixels().len(), 1200);
    }
}

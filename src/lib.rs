//! # avnplan
//!
//! Needle trajectory planning for fluoroscopy-guided treatment of femoral
//! head avascular necrosis (AVN): calibrated C-arm views in, a 3D model of
//! the proximal femur and the lesion, and straight needle paths that reach
//! the lesion while keeping a safe distance from the cortex and the
//! articular surface, out.
//!
//! Data flows one way: views -> model -> plan -> pictures and JSON.
//!
//! | module | what it holds |
//! |---|---|
//! | [`geometry`] | frame-free shapes: meshes, spheres, ellipsoids, fits, the [`geometry::BoneSurface`] queries |
//! | [`imaging`] | one C-arm view: [`imaging::Projection`], DICOM XA positioner geometry, calibration, distortion |
//! | [`anatomy`] | the hip model: head sphere and head-neck frame, neck, shaft, lesion, bone |
//! | [`reconstruction`] | 2D annotations of several views -> 3D model with uncertainty |
//! | [`planning`] | constraints, candidates, evaluation (the hot path), ranking, coverage -> plan |
//! | [`guidance`] | intra-operative check of a seen needle against the plan; C-arm check views |
//! | [`io`] | contract v1 wire types (JSON) and mesh files |
//! | [`phantom`] | seeded synthetic cases with known truth |
//! | [`render`] | SVG/PNG overlays |
//! | [`registration`] | 2D/3D registration of a CT/MRI femur mesh to the views |
//! | [`pipeline`] | the whole job: case -> model -> plan -> files and pictures |
//! | [`uncertainty`] | Monte Carlo of annotation noise through reconstruction: breach probability per trajectory |
//!
//! # Conventions
//!
//! * **Units.** Lengths in millimetres (`_mm`), image coordinates in pixels
//!   (`_px`). Angles are radians in the Rust API (`_rad`) and degrees in files
//!   (`_deg`).
//! * **World frame.** One right-handed frame in mm per case. With C-arm angles
//!   it is patient LPS (x to the patient's Left, y Posterior, z Superior).
//! * **Pixel frame.** `u` to the right (column), `v` down (row); `(0, 0)` is
//!   the *centre* of the top-left pixel.
//! * **Projection.** `[u w, v w, w]^T = P [X, Y, Z, 1]^T` with `w > 0` for
//!   points in front of the source; [`imaging::Projection`] keeps `P` scaled
//!   so that `w` is the depth in mm along the viewing axis.
//! * **Transforms** are named `a_from_b`: they map coordinates in frame `b`
//!   to frame `a`, so `world_from_head * head_from_x` reads right to left.
//!   Values in a frame other than the world carry its name (`tip_head`).
//!
//! The contract for files and the command line is `CONTRACT.md` (version 1);
//! the crate's additions are listed in [`io`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod anatomy;
pub mod case;
pub mod error;
pub mod geometry;
pub mod guidance;
pub mod imaging;
pub mod io;
pub mod phantom;
pub mod pipeline;
pub mod planning;
pub mod reconstruction;
pub mod registration;
pub mod render;
pub mod uncertainty;

pub use case::{Case, Constraints, Side};
pub use error::{Error, Result};

/// The README's API tour, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

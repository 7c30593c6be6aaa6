//! Intra-operative guidance: a needle seen in two or more views against the
//! plan, and the C-arm positions that check a planned needle.
//!
//! Entry points:
//!
//! * [`check_needle`] — reconstruct the needle from its images
//!   ([`crate::reconstruction::reconstruct_needle`]), compare it with the
//!   nearest planned trajectory, decide `breach` and the safe advance
//!   exactly as the contract's `avnplan check` defines them, and phrase the
//!   advice in the views ([`NeedleCheck`], [`ViewAdvice`]);
//! * [`needle_state`] — the safety state of a needle on its line (entry,
//!   signed clearance, breach, broken rules, safe advance) against any
//!   bone surface, e.g. the true one of a phantom ([`NeedleState`]);
//! * [`check_views`] — for a planned trajectory, the C-arm angles that show
//!   the needle at full length and the neck's anterior and posterosuperior
//!   walls edge-on beside it ([`CheckView`]).
//!
//! The definitions and formulas are in the docs of [`state`], [`check`] and
//! [`views`].

pub mod check;
pub mod state;
pub mod views;

pub use check::{
    check_needle, CheckContext, NeedleCheck, NeedleObservation, PlannedPath, ViewAdvice,
    ON_LINE_ANGLE_DEG, ON_LINE_MISS_MM,
};
pub use state::{needle_state, NeedleState, ADVANCE_TOLERANCE_MM, OUTSIDE_SAMPLE_MM};
pub use views::{check_views, CheckView, CheckViewKind, WALL_SEARCH_MM, WALL_STEP_MM};

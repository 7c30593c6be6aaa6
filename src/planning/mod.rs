//! Trajectory planning: constraints, candidates, evaluation (the hot path),
//! ranking, coverage.
//!
//! Entry points: [`plan`] / [`plan_with`] (a [`crate::anatomy::HipModel`]
//! and a [`crate::Case`] in, a [`Plan`] out), [`Rules::check`] (the safety
//! decision for one candidate), [`RejectReason`].
//!
//! The search: entries on a grid over the entry zone on the lateral cortex
//! ([`candidates`]), tips on a grid in the lesion, every pair decided
//! exactly against rules 1-6 of the contract's safety definition
//! ([`evaluate`]), in parallel over entries; the safe pairs are ranked by
//! [`score`] with an exact branch and bound (the score's clearance term
//! saturates at 4 mm, which bounds every candidate's score without a bone
//! query; see the `plan` docs), so the best [`PlanOptions::exact_ranked`]
//! are the grid's exact top by score, and the best is refined locally.
//! With `passes > 1`, a greedy maximum-coverage fan through one entry
//! ([`coverage`]).

pub mod candidates;
pub mod coverage;
pub mod evaluate;
mod plan;

pub use candidates::{EntryZone, EntryZoneRule};
pub use evaluate::{Entry, RejectReason, Rules};
pub use plan::MAX_ENTRY_RAYS;
pub use plan::MAX_TIP_NODES_PER_CANDIDATE;
pub use plan::{
    plan, plan_with, score, vessel_zone, Plan, PlanOptions, PlanStatus, Trajectory, TrajectoryView,
};
mod field;

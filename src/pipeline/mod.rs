//! The whole pipeline: one round of (reward data from the current generator → reward model →
//! GRPO against it) in [`round`], rounds of it in [`cycle`], and the [`demo`] (prepare + train +
//! one round, with a report).

pub mod cycle;
pub mod demo;
pub mod round;
pub mod select;

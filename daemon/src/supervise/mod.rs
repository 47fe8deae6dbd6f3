//! Supervision: one task watches every session's ttys and processes, measures their
//! activity, warns and ends idle sessions, and follows leaders and clock steps.

pub mod activity;
pub mod clock_steps;
pub mod idle;
pub mod leaders;
pub mod supervisor;
pub mod terminate;
pub mod timers;
pub mod tty_input;
pub mod warning;

//! TCP: a sans-IO core (work in progress, issue 3).

pub mod isn;
pub mod seq;
pub mod state;

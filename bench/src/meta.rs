//! Where and when a run was made: shown above every table and chart.

use serde::Serialize;

/// Where and when.
#[derive(Clone, Debug, Serialize)]
pub struct Meta {
    pub date: String,
    pub mode: String,
    pub wall_seconds: f64,
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub asterisk: String,
    pub commit: String,
}

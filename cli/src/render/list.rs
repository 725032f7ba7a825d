//! `list rollouts`: upstream pads each value to about its header's width (`%-10s` ...) before the tabwriter
//! aligns the columns, so every row ends in the AVAILABLE column's own padding.

use jiff::Timestamp;

use super::table;
use crate::info::RolloutInfo;

const HEADER: &str = "NAME\tSTRATEGY\tSTATUS\tSTEP\tSET-WEIGHT\tREADY\tDESIRED\tUP-TO-DATE\tAVAILABLE";

/// The table, or an empty string when there is no rollout. `stamp` is the time printed in the TIMESTAMP column.
pub fn table(infos: &[RolloutInfo], all_namespaces: bool, stamp: Option<Timestamp>) -> String {
    if infos.is_empty() {
        return String::new();
    }
    let mut lines = vec![header_cells(all_namespaces, stamp.is_some())];
    lines.extend(infos.iter().map(|info| row(info, all_namespaces, stamp)));
    table::align(&lines)
}

/// The header's cells, separated by tabs.
fn header_cells(all_namespaces: bool, timestamps: bool) -> String {
    let mut header = HEADER.to_string();
    if all_namespaces {
        header = format!("NAMESPACE\t{header}");
    }
    if timestamps {
        header = format!("TIMESTAMP\t{header}");
    }
    header
}

/// The header line alone (what `list --watch` prints before any rollout exists).
pub fn header(all_namespaces: bool, timestamps: bool) -> String {
    table::align(&[header_cells(all_namespaces, timestamps)])
}

/// One row, cells separated by tabs.
pub fn row(info: &RolloutInfo, all_namespaces: bool, stamp: Option<Timestamp>) -> String {
    let or_dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    let strategy = if info.strategy.is_empty() {
        "unknown"
    } else {
        info.strategy.as_str()
    };
    let (step, set_weight) = if info.strategy == "Canary" {
        (or_dash(&info.step), or_dash(&info.set_weight))
    } else {
        ("-".to_string(), "-".to_string())
    };
    let ready = format!("{}/{}", info.ready, info.current);
    let mut line = format!(
        "{:<10}\t{:<9}\t{:<12}\t{:<4}\t{:<10}\t{:<5}\t{:<7}\t{:<10}\t{:<9}",
        info.name, strategy, info.status, step, set_weight, ready, info.desired, info.updated, info.available
    );
    if all_namespaces {
        line = format!("{:<9}\t{line}", info.namespace);
    }
    if let Some(stamp) = stamp {
        line = format!("{:<20}\t{line}", stamp.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    }
    line
}

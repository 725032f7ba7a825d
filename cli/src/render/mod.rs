//! Drawing the view model as text: the `get rollout` tree and the `list rollouts` table, with or without
//! colour (upstream's escape codes).

mod list;
mod paint;
mod table;
mod tree;

#[cfg(test)]
mod tests;

use jiff::Timestamp;

use crate::info::RolloutInfo;

/// The `get rollout` output: header and tree. With `colour`, icons, tags and run names carry upstream's ANSI
/// codes (callers pass `false` for `--no-color` and for `TERM=dumb`, as upstream prints no codes then).
pub fn tree(info: &RolloutInfo, now: Timestamp, colour: bool) -> String {
    tree::tree(info, now, paint::Painter { colour })
}

/// The `list rollouts` table (with a NAMESPACE column when `all_namespaces`, a TIMESTAMP column first when
/// `timestamps`). No rollouts give an empty string: upstream then prints "No resources found." on stderr.
pub fn list(infos: &[RolloutInfo], all_namespaces: bool, timestamps: bool) -> String {
    list::table(infos, all_namespaces, timestamps.then(Timestamp::now))
}

/// The `list rollouts` header alone: `list --watch` prints it when there is no rollout yet, as upstream.
pub fn list_header(all_namespaces: bool, timestamps: bool) -> String {
    list::header(all_namespaces, timestamps)
}

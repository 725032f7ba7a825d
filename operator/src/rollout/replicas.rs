//! Replica arithmetic of the canary strategy: how many pods the canary, the stable and the older ReplicaSets
//! should run after one reconcile.
//!
//! Everything here is a pure function of plain numbers (no client, no clock). The behaviour follows upstream
//! Argo Rollouts: `CalculateReplicaCountsForBasicCanary`, `CalculateReplicaCountsForTrafficRoutedCanary` and
//! their helpers in `utils/replicaset/canary.go`, `MaxSurge`/`MaxUnavailable` in
//! `utils/replicaset/replicaset.go`, and the old-ReplicaSet scale-down of `rollout/canary.go`.
//!
//! Upstream applies the results in a fixed order and ends the reconcile after the first ReplicaSet whose size
//! changes: stable first, then canary, then the older ReplicaSets ([`Split::next_stage`]).

use std::cmp::{max, min};

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Upstream's default maxSurge: the bare string "25", which the legacy parser reads as 25%.
pub const DEFAULT_MAX_SURGE: &str = "25";
/// Upstream's default maxUnavailable: the bare string "25", which the legacy parser reads as 25%.
pub const DEFAULT_MAX_UNAVAILABLE: &str = "25";
/// Total traffic weight the replica maths is expressed against (Istio: always 100).
pub const MAX_WEIGHT: i32 = 100;

// ---------------------------------------------------------------------------------------------
// maxSurge / maxUnavailable
// ---------------------------------------------------------------------------------------------

/// Resolves an int-or-percent against `total` like Kubernetes' legacy `GetValueFromIntOrPercent`.
///
/// An integer is an absolute count. A string has every `%` removed and the rest read as a percentage,
/// so `"25%"`, `"25"` and `"%25"` all mean 25% (upstream's own default is the bare `"25"`). Percentages
/// round up when `round_up`, else down. `None` when the string is not an integer.
pub fn scaled_int_or_percent(value: &IntOrString, total: i32, round_up: bool) -> Option<i32> {
    match value {
        IntOrString::Int(count) => Some(*count),
        IntOrString::String(text) => {
            let digits: String = text.chars().filter(|c| *c != '%').collect();
            let percent: i64 = digits.parse().ok()?;
            let product = percent.checked_mul(i64::from(total))?;
            let count = if round_up {
                ceil_div(product, 100)
            } else {
                floor_div(product, 100)
            };
            Some(saturate(count))
        }
    }
}

/// Resolves maxSurge (default 25%) against `replicas`, rounding a percentage up; 0 if unparsable.
#[cfg(test)]
pub fn resolve_surge(max_surge: Option<&IntOrString>, replicas: i32) -> i32 {
    let default = IntOrString::String(DEFAULT_MAX_SURGE.to_owned());
    scaled_int_or_percent(max_surge.unwrap_or(&default), replicas, true).unwrap_or(0)
}

/// Resolves maxUnavailable (default 25%) rounding down, capped at `replicas` (0 when `replicas` is 0).
///
/// This is the single-value resolution. Upstream additionally raises maxUnavailable to 1 when both
/// budgets resolve to 0; [`resolve_fenceposts`] and [`basic_canary`] apply that rule.
#[cfg(test)]
pub fn resolve_unavailable(max_unavailable: Option<&IntOrString>, replicas: i32) -> i32 {
    if replicas <= 0 {
        return 0;
    }
    let default = IntOrString::String(DEFAULT_MAX_UNAVAILABLE.to_owned());
    let unavailable =
        scaled_int_or_percent(max_unavailable.unwrap_or(&default), replicas, false).unwrap_or(0);
    min(unavailable, replicas)
}

/// The two rolling budgets of a canary rollout, as upstream's `MaxSurge` and `MaxUnavailable` return them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fenceposts {
    /// Pods allowed above spec.replicas.
    pub max_surge: i32,
    /// Pods allowed below spec.replicas (counting available pods).
    pub max_unavailable: i32,
}

/// Resolves both budgets together exactly like upstream's `resolveFenceposts` + `MaxSurge`/`MaxUnavailable`.
///
/// Both resolving to 0 (e.g. `"0%"`/`"0%"`, or 25% of 1 replica with maxSurge 0) makes maxUnavailable 1 so
/// the rollout can progress; maxUnavailable is then capped at `replicas`, and is 0 when `replicas` is 0. If
/// either string fails to parse, upstream gets an error and both budgets are 0.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    replicas: i32,
) -> Fenceposts {
    let surge_default = IntOrString::String(DEFAULT_MAX_SURGE.to_owned());
    let unavailable_default = IntOrString::String(DEFAULT_MAX_UNAVAILABLE.to_owned());
    let surge = scaled_int_or_percent(max_surge.unwrap_or(&surge_default), replicas, true);
    let unavailable = scaled_int_or_percent(max_unavailable.unwrap_or(&unavailable_default), replicas, false);
    let (Some(surge), Some(mut unavailable)) = (surge, unavailable) else {
        return Fenceposts::default();
    };
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    let unavailable = if replicas <= 0 {
        0
    } else {
        min(unavailable, replicas)
    };
    Fenceposts {
        max_surge: surge,
        max_unavailable: unavailable,
    }
}

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// Pods needed to carry `weight`% of `replicas`, rounded up (upstream `trafficWeightToReplicas`).
pub fn weight_replicas(weight: i32, replicas: i32) -> i32 {
    saturate(ceil_div(
        i64::from(weight) * i64::from(replicas),
        i64::from(MAX_WEIGHT),
    ))
}

/// Closest (canary, stable) counts for `weight` (upstream `approximateWeightedCanaryStableReplicaCounts`).
///
/// Candidates are ceil/floor of `replicas·weight/100` out of `replicas`, and, when `max_surge > 0`, out of
/// `replicas + 1`; the one whose canary share is nearest `weight` wins, the earliest on a tie (so exact
/// halves round the canary up). For weights 1–99 neither side is 0 unless there is one replica and no surge.
pub fn approximate_split(replicas: i32, weight: i32, max_surge: i32) -> (i32, i32) {
    if replicas == 0 {
        return (0, 0);
    }
    let total = i64::from(replicas);
    let product = total * i64::from(weight);
    let ceil = ceil_div(product, i64::from(MAX_WEIGHT));
    let floor = floor_div(product, i64::from(MAX_WEIGHT));
    let zero_allowed = weight == MAX_WEIGHT || weight == 0 || (replicas == 1 && max_surge == 0);

    // (canary, total) candidates, in upstream's order: the order decides ties.
    let mut candidates: Vec<(i64, i64)> = Vec::with_capacity(4);
    if ceil < total || zero_allowed {
        candidates.push((ceil, total));
    }
    if !exactly_half_way(weight, total) && (floor != 0 || zero_allowed) {
        candidates.push((floor, total));
    }
    if max_surge > 0 {
        candidates.push((ceil, total + 1));
        if !exactly_half_way(weight, total + 1) && (floor != 0 || zero_allowed) {
            candidates.push((floor, total + 1));
        }
    }
    if candidates.is_empty() {
        // Deliberate fix of an upstream gap: without surge, when the ceiling would leave no stable pod and
        // the floor lost the tie-break (e.g. 2 replicas at 75%, 10 at 95%), upstream has no candidate and
        // answers "all stable" (0 canary). The floor is the only answer with both sides non-zero.
        candidates.push((floor, total));
    }

    let mut best: Option<((i64, i64), f64)> = None;
    for candidate in candidates {
        let delta = weight_delta(weight, candidate);
        match best {
            Some((_, best_delta)) if delta >= best_delta => {}
            _ => best = Some((candidate, delta)),
        }
    }
    match best {
        Some(((canary, sum), _)) => (saturate(canary), saturate(sum - canary)),
        None => (0, replicas),
    }
}

/// Whether `total·weight/100` lands exactly half-way between two integers (computed in f64 as upstream does).
fn exactly_half_way(weight: i32, total: i64) -> bool {
    let share = (total as f64) * (f64::from(weight) / f64::from(MAX_WEIGHT));
    share.fract() == 0.5
}

/// Distance of a candidate's canary share from the desired weight (f64, as upstream computes it).
fn weight_delta(weight: i32, (canary, total): (i64, i64)) -> f64 {
    let actual = (canary * i64::from(MAX_WEIGHT)) as f64 / total as f64;
    (actual - f64::from(weight)).abs()
}

fn ceil_div(numerator: i64, denominator: i64) -> i64 {
    -floor_div(-numerator, denominator)
}

fn floor_div(numerator: i64, denominator: i64) -> i64 {
    numerator.div_euclid(denominator)
}

fn saturate(value: i64) -> i32 {
    i32::try_from(value).unwrap_or(if value < 0 { i32::MIN } else { i32::MAX })
}

// ---------------------------------------------------------------------------------------------
// Basic canary (no traffic router)
// ---------------------------------------------------------------------------------------------

/// One ReplicaSet as the split sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RsCount {
    /// spec.replicas.
    pub spec: i32,
    /// status.availableReplicas.
    pub available: i32,
}

/// Inputs of the basic (no traffic router) canary split.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BasicCanaryInput {
    /// Rollout spec.replicas (already defaulted to 1 when unset).
    pub replicas: i32,
    /// Desired canary weight: the setWeight in force, 0 when aborted, 100 past the steps or on promoteFull.
    pub weight: i32,
    /// Resolved maxSurge ([`resolve_surge`]).
    pub max_surge: i32,
    /// Resolved maxUnavailable ([`resolve_unavailable`]); taken as 1 when it and `max_surge` are both 0.
    pub max_unavailable: i32,
    /// The new (canary) ReplicaSet.
    pub canary: RsCount,
    /// The stable ReplicaSet if it exists and differs from the canary; `None` gives the canary everything.
    pub stable: Option<RsCount>,
    /// Every other ReplicaSet, newest revision first (the order upstream spends the scale-down budget in).
    pub others: Vec<RsCount>,
}

/// Desired spec.replicas per ReplicaSet after this reconcile.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Split {
    /// Desired spec.replicas of the canary ReplicaSet.
    pub canary: i32,
    /// Desired spec.replicas of the stable ReplicaSet (0 and meaningless when the input had no stable).
    pub stable: i32,
    /// Desired spec.replicas of each of `others`, in the input's order.
    pub others: Vec<i32>,
}

impl Split {
    /// Keeps only the change upstream makes per reconcile: stable, else canary, else the others.
    ///
    /// Every ReplicaSet not in that group keeps its current spec. Applying a whole [`Split`] at once is also
    /// safe (the surge ceiling and availability floor hold either way); this reproduces upstream's pacing.
    pub fn next_stage(&self, current: &BasicCanaryInput) -> Split {
        let mut staged = Split {
            canary: current.canary.spec,
            stable: current.stable.map_or(0, |rs| rs.spec),
            others: current.others.iter().map(|rs| rs.spec).collect(),
        };
        if current.stable.is_some_and(|rs| rs.spec != self.stable) {
            staged.stable = self.stable;
        } else if current.canary.spec != self.canary {
            staged.canary = self.canary;
        } else {
            staged.others = self.others.clone();
        }
        staged
    }
}

/// Basic canary split: upstream `CalculateReplicaCountsForBasicCanary` plus the old ReplicaSets' scale-down.
///
/// Canary and stable aim at [`approximate_split`]. Scale-up headroom is `replicas + max_surge − Σspec`, spent
/// on the stable first, then the canary. While any older ReplicaSet still has pods, canary and stable are
/// never scaled down; the older ones shrink instead (unready pods first, then within `Σavailable − (replicas
/// − max_unavailable)`, newest first). Otherwise the side being drained (stable when the canary grows, canary
/// when it shrinks) gives up pods within the availability budget, counting its spec rather than its available
/// pods, and the other side is trimmed back under the surge ceiling without losing availability.
pub fn basic_canary(input: &BasicCanaryInput) -> Split {
    let replicas = i64::from(input.replicas);
    let max_surge = i64::from(input.max_surge);
    let max_unavailable = effective_unavailable(input);
    let canary = Counts::of(input.canary);
    let stable = input.stable.map(Counts::of);

    let (mut want_canary, mut want_stable) = approximate_split(input.replicas, input.weight, input.max_surge);
    if stable.is_none() {
        // No distinct stable: the canary takes the whole rollout.
        want_canary = input.replicas;
        want_stable = 0;
    }
    let want_canary = i64::from(want_canary);
    let want_stable = i64::from(want_stable);

    let mut canary_out = canary.spec;
    let mut stable_out = stable.map_or(0, |rs| rs.spec);
    let ceiling = replicas + max_surge;
    let others_spec: i64 = input.others.iter().map(|rs| i64::from(rs.spec)).sum();
    let total_spec = others_spec + canary.spec + stable.map_or(0, |rs| rs.spec);

    // Scale up within the surge headroom: stable first, then canary.
    let mut headroom = ceiling - total_spec;
    if let Some(rs) = stable
        && rs.spec < want_stable
        && headroom > 0
    {
        let grow = min(headroom, want_stable - rs.spec);
        stable_out = rs.spec + grow;
        headroom -= grow;
    }
    if canary.spec < want_canary && headroom > 0 {
        canary_out = canary.spec + min(headroom, want_canary - canary.spec);
    }

    let others = scale_down_others(input, max_unavailable);

    if others_spec > 0 {
        // Older ReplicaSets are drained before canary or stable may shrink.
        return finish(canary_out, stable_out, others);
    }

    let min_available = replicas - max_unavailable;
    let growing = want_canary >= canary.spec;
    // The side being drained counts its spec (its pods may be unready), the other side its available pods.
    let countable = canary.scale_down_basis(!growing) + stable.map_or(0, |rs| rs.scale_down_basis(growing));
    if countable <= min_available {
        return finish(canary_out, stable_out, others);
    }
    let cut = countable - min_available;
    if !growing {
        canary_out = drain(canary, want_canary, cut, canary_out);
        (canary_out, stable_out) =
            keep_within_limits(canary, stable, canary_out, stable_out, ceiling, min_available);
    } else if let Some(rs) = stable {
        stable_out = drain(rs, want_stable, cut, stable_out);
        (stable_out, canary_out) =
            keep_within_limits(rs, Some(canary), stable_out, canary_out, ceiling, min_available);
    }
    finish(canary_out, stable_out, others)
}

/// maxUnavailable as upstream's `MaxUnavailable` has it: 1 when both budgets are 0, capped at replicas.
fn effective_unavailable(input: &BasicCanaryInput) -> i64 {
    if input.replicas <= 0 {
        return 0;
    }
    let unavailable = if input.max_surge == 0 && input.max_unavailable == 0 {
        1
    } else {
        input.max_unavailable
    };
    i64::from(min(unavailable, input.replicas))
}

fn finish(canary: i64, stable: i64, others: Vec<i32>) -> Split {
    Split {
        canary: saturate(canary),
        stable: saturate(stable),
        others,
    }
}

/// A ReplicaSet's numbers widened for arithmetic.
#[derive(Debug, Clone, Copy)]
struct Counts {
    spec: i64,
    available: i64,
}

impl Counts {
    fn of(rs: RsCount) -> Self {
        Counts {
            spec: i64::from(rs.spec),
            available: i64::from(rs.available),
        }
    }

    /// Pods this ReplicaSet contributes to the scale-down budget (upstream `GetReplicasForScaleDown`).
    ///
    /// Surplus available pods of a ReplicaSet already shrinking are not counted; a ReplicaSet being drained
    /// counts its spec so unready pods (e.g. crash-looping canaries) cannot stall the drain.
    fn scale_down_basis(self, ignore_availability: bool) -> i64 {
        if self.spec < self.available || ignore_availability {
            self.spec
        } else {
            self.available
        }
    }
}

/// Shrinks a drained ReplicaSet by up to `cut`, never below `want` (`calculateScaleDownReplicaCount`).
fn drain(rs: Counts, want: i64, cut: i64, current: i64) -> i64 {
    if rs.spec > want {
        max(want, rs.spec - cut)
    } else {
        current
    }
}

/// Pulls the pair back under the surge ceiling without breaking the availability floor
/// (upstream `adjustReplicaWithinLimits`). Returns (drained, adjusted).
fn keep_within_limits(
    drained: Counts,
    adjusted: Option<Counts>,
    mut drained_out: i64,
    mut adjusted_out: i64,
    ceiling: i64,
    min_available: i64,
) -> (i64, i64) {
    let Some(adjusted) = adjusted else {
        return (drained_out, adjusted_out);
    };
    let over = max(0, adjusted_out + drained_out - ceiling);
    adjusted_out -= over;
    let available = min(drained.available, drained_out) + min(adjusted.available, adjusted_out);
    // Give back, from the availability the trim took away, whatever the floor still needs.
    let lost = max(0, adjusted.available - adjusted_out);
    let short = max(0, min_available - available);
    adjusted_out += min(lost, short);
    // Whatever that pushes over the ceiling comes off the drained side.
    drained_out -= max(0, adjusted_out + drained_out - ceiling);
    (drained_out, adjusted_out)
}

/// Older ReplicaSets of a basic canary (upstream `scaleDownOldReplicaSetsForCanary`).
///
/// First every older ReplicaSet drops its unready pods (spec → available, oldest first); upstream stops that
/// pass, and the whole step, at a ReplicaSet reporting more available pods than its spec. Then the budget
/// `Σavailable(all ReplicaSets) − (replicas − max_unavailable)` is spent newest first, towards 0.
fn scale_down_others(input: &BasicCanaryInput, max_unavailable: i64) -> Vec<i32> {
    let mut specs: Vec<i64> = input.others.iter().map(|rs| i64::from(rs.spec)).collect();
    // Oldest first: the reverse of the input's newest-first order.
    for (index, rs) in input.others.iter().enumerate().rev() {
        if rs.spec == 0 || rs.spec == rs.available {
            continue;
        }
        if rs.available > rs.spec {
            return specs.into_iter().map(saturate).collect();
        }
        specs[index] = i64::from(rs.available);
    }

    let all_available: i64 = input.others.iter().map(|rs| i64::from(rs.available)).sum::<i64>()
        + i64::from(input.canary.available)
        + input.stable.map_or(0, |rs| i64::from(rs.available));
    let mut budget = all_available - (i64::from(input.replicas) - max_unavailable);
    for spec in &mut specs {
        if budget <= 0 {
            break;
        }
        if *spec == 0 {
            continue;
        }
        let target = if *spec > budget { *spec - budget } else { 0 };
        budget -= *spec - target;
        *spec = target;
    }
    specs.into_iter().map(saturate).collect()
}

// ---------------------------------------------------------------------------------------------
// Traffic-routed canary
// ---------------------------------------------------------------------------------------------

/// A setCanaryScale step: decouples the canary's size from the traffic weight (traffic routing only).
///
/// Upstream reads a step's fields in this order: matchTrafficWeight wins, then replicas, then weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanaryScale {
    /// `replicas: n`: exactly n canary pods (minPodsPerReplicaSet applies only with dynamicStableScale).
    Replicas(i32),
    /// `weight: w`: the canary runs ceil(w·replicas/100) pods (w may exceed 100).
    Weight(i32),
    /// `matchTrafficWeight: true`: back to sizing the canary from the traffic weight.
    MatchTrafficWeight,
}

/// Inputs of the traffic-routed canary split (the fields every caller has).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoutedCanaryInput {
    /// Rollout spec.replicas (already defaulted to 1 when unset).
    pub replicas: i32,
    /// Desired setWeight (upstream `GetCurrentSetWeight`): 0 while aborted, 100 past the last step.
    pub weight: i32,
    /// The latest setCanaryScale step at or before the current step, if any.
    pub set_canary_scale: Option<CanaryScale>,
    /// spec.strategy.canary.minPodsPerReplicaSet: floor for a non-zero canary/stable (capped at replicas).
    pub min_pods_per_replica_set: Option<i32>,
    /// spec.strategy.canary.dynamicStableScale.
    pub dynamic_stable_scale: bool,
    /// status.canary.weights.stable.weight as recorded by the previous reconcile (`None`: no weights yet).
    pub current_stable_weight: Option<i32>,
    /// status.abort.
    pub aborted: bool,
}

/// Desired spec.replicas of the canary and stable ReplicaSets under traffic routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoutedSplit {
    /// Desired spec.replicas of the canary ReplicaSet.
    pub canary: i32,
    /// Desired spec.replicas of the stable ReplicaSet.
    pub stable: i32,
}

/// Traffic-routed split (upstream `CalculateReplicaCountsForTrafficRoutedCanary`).
///
/// The canary gets ceil(weight·replicas/100) pods (or its setCanaryScale), floored at minPodsPerReplicaSet
/// when non-zero; maxSurge/maxUnavailable do not apply. Without dynamicStableScale the stable stays at
/// `replicas`. With it, the stable gets the larger of the desired stable weight and the weight it still
/// receives; on abort the canary keeps enough pods for the traffic it still receives.
pub fn routed_canary(input: &RoutedCanaryInput) -> RoutedSplit {
    let replicas = input.replicas;
    // An aborted canary drops its setCanaryScale; matchTrafficWeight is sizing from the weight.
    let scale = match input.set_canary_scale {
        _ if input.aborted => None,
        Some(CanaryScale::MatchTrafficWeight) | None => None,
        scale => scale,
    };
    let weight = match scale {
        Some(CanaryScale::Weight(weight)) => weight,
        Some(CanaryScale::Replicas(_)) => 0,
        _ => input.weight,
    };
    let mut canary = match scale {
        Some(CanaryScale::Replicas(count)) => count,
        _ => min_pods(input, weight_replicas(weight, replicas)),
    };
    if !input.dynamic_stable_scale {
        return RoutedSplit {
            canary,
            stable: replicas,
        };
    }
    // Dynamic stable scaling: the stable keeps pods for the larger of its desired and its current traffic.
    let mut stable = weight_replicas(MAX_WEIGHT - weight, replicas);
    if let Some(stable_weight) = input.current_stable_weight {
        stable = max(stable, weight_replicas(stable_weight, replicas));
        if input.aborted {
            canary = max(weight_replicas(MAX_WEIGHT - stable_weight, replicas), canary);
        }
    }
    RoutedSplit {
        canary: min_pods(input, canary),
        stable: min_pods(input, stable),
    }
}

/// Raises a non-zero count to minPodsPerReplicaSet capped at replicas (upstream `CheckMinPodsPerReplicaSet`).
fn min_pods(input: &RoutedCanaryInput, count: i32) -> i32 {
    match input.min_pods_per_replica_set {
        Some(floor) if count != 0 => max(count, min(floor, input.replicas)),
        _ => count,
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn int(value: i32) -> IntOrString {
        IntOrString::Int(value)
    }

    fn text(value: &str) -> IntOrString {
        IntOrString::String(value.to_owned())
    }

    fn rs(spec: i32, available: i32) -> RsCount {
        RsCount { spec, available }
    }

    // ----- maxSurge / maxUnavailable -----

    #[test]
    #[rustfmt::skip]
    fn fencepost_resolution_table() {
        let (i, t) = (|v| Some(int(v)), |v| Some(text(v)));
        // (name, maxSurge, maxUnavailable, replicas, expected surge, expected unavailable)
        type Budget = Option<IntOrString>;
        let rows: Vec<(&str, Budget, Budget, i32, i32, i32)> = vec![
            ("25% of 10: surge rounds up to 3, unavailable down to 2", t("25%"), t("25%"), 10, 3, 2),
            ("unset budgets default to 25%",                           None, None, 10, 3, 2),
            ("default of 4 replicas is exactly 1 and 1",               None, None, 4, 1, 1),
            ("integers are absolute counts",                           i(3), i(2), 10, 3, 2),
            ("a bare string is a percentage (legacy): 3% of 10",       t("3"), t("3"), 10, 1, 0),
            ("a percent sign anywhere is ignored",                     t("%50"), t("5%0"), 10, 5, 5),
            ("20% of 10 is exact",                                     t("20%"), t("20%"), 10, 2, 2),
            ("both 0% resolve maxUnavailable to 1",                    t("0%"), t("0%"), 10, 0, 1),
            ("25% of 1 with surge 0: unavailable 0 is raised to 1",    i(0), t("25%"), 1, 0, 1),
            ("a surge alone keeps unavailable 0",                      i(1), i(0), 10, 1, 0),
            ("unavailable capped at replicas",                         i(0), i(20), 10, 0, 10),
            ("zero replicas: unavailable 0, surge still resolved",     i(2), i(2), 0, 2, 0),
            ("50% of 1: surge 1, unavailable 0",                       t("50%"), t("50%"), 1, 1, 0),
            ("unparsable surge zeroes both",                           t("lots"), i(2), 10, 0, 0),
            ("unparsable unavailable zeroes both",                     i(2), t("x%"), 10, 0, 0),
        ];
        for (name, surge, unavailable, replicas, max_surge, max_unavailable) in rows {
            let got = resolve_fenceposts(surge.as_ref(), unavailable.as_ref(), replicas);
            assert_eq!(got, Fenceposts { max_surge, max_unavailable }, "{name}");
        }
    }

    #[test]
    fn single_value_resolution() {
        assert_eq!(resolve_surge(Some(&text("25%")), 10), 3);
        assert_eq!(resolve_unavailable(Some(&text("25%")), 10), 2);
        assert_eq!(resolve_surge(None, 10), 3);
        assert_eq!(resolve_unavailable(None, 10), 2);
        assert_eq!(
            resolve_surge(Some(&int(7)), 1),
            7,
            "an integer surge is not capped"
        );
        assert_eq!(
            resolve_unavailable(Some(&int(7)), 3),
            3,
            "unavailable is capped at replicas"
        );
        assert_eq!(resolve_unavailable(Some(&int(7)), 0), 0);
        assert_eq!(
            resolve_surge(Some(&text("1%")), 1),
            1,
            "any surge percentage of a pod rounds up"
        );
        assert_eq!(
            resolve_unavailable(Some(&text("99%")), 1),
            0,
            "unavailable percentages round down"
        );
        assert_eq!(resolve_surge(Some(&text("oops")), 10), 0);
        assert_eq!(scaled_int_or_percent(&text("+10%"), 50, true), Some(5));
        assert_eq!(
            scaled_int_or_percent(&text(" 10%"), 50, true),
            None,
            "no whitespace allowed"
        );
    }

    // ----- approximate split -----

    #[test]
    #[rustfmt::skip]
    fn approximate_split_table() {
        // (replicas, weight, maxSurge, canary, stable): upstream
        // TestApproximateWeightedNewStableReplicaCounts.
        let rows: [(i32, i32, i32, i32, i32); 55] = [
            (0, 0, 0, 0, 0), (0, 50, 0, 0, 0), (0, 100, 0, 0, 0),
            (0, 0, 1, 0, 0), (0, 50, 1, 0, 0), (0, 100, 1, 0, 0),
            (1, 0, 0, 0, 1), (1, 1, 0, 0, 1), (1, 49, 0, 0, 1), (1, 50, 0, 1, 0), (1, 99, 0, 1, 0),
            (1, 100, 0, 1, 0),
            (1, 0, 1, 0, 1), (1, 1, 1, 1, 1), (1, 49, 1, 1, 1), (1, 50, 1, 1, 1), (1, 99, 1, 1, 1),
            (1, 100, 1, 1, 0),
            (2, 0, 0, 0, 2), (2, 1, 0, 1, 1), (2, 50, 0, 1, 1), (2, 99, 0, 1, 1), (2, 100, 0, 2, 0),
            (2, 0, 1, 0, 2), (2, 1, 1, 1, 2), (2, 50, 1, 1, 1), (2, 99, 1, 2, 1), (2, 100, 1, 2, 0),
            (3, 10, 0, 1, 2), (3, 25, 0, 1, 2), (3, 33, 0, 1, 2), (3, 34, 0, 1, 2), (3, 49, 0, 1, 2),
            (3, 50, 0, 2, 1),
            (3, 10, 1, 1, 3), (3, 25, 1, 1, 3), (3, 33, 1, 1, 2), (3, 34, 1, 1, 2), (3, 49, 1, 2, 2),
            (3, 50, 1, 2, 2),
            (10, 0, 1, 0, 10),
            (10, 1, 0, 1, 9), (10, 14, 0, 1, 9), (10, 15, 0, 2, 8), (10, 16, 0, 2, 8), (10, 99, 0, 9, 1),
            (10, 100, 1, 10, 0), (10, 1, 1, 1, 10), (10, 18, 1, 2, 9), (10, 19, 1, 2, 9), (10, 20, 1, 2, 8),
            (10, 23, 1, 2, 8), (10, 24, 1, 3, 8), (10, 25, 1, 3, 8), (10, 99, 1, 10, 1),
        ];
        for (replicas, weight, surge, canary, stable) in rows {
            let got = approximate_split(replicas, weight, surge);
            assert_eq!(got, (canary, stable), "replicas {replicas} weight {weight} surge {surge}");
        }
    }

    #[test]
    fn tied_ceiling_without_surge_keeps_a_canary() {
        // Upstream finds no candidate here and returns 0 canary; Sluice takes the floor (see
        // approximate_split).
        for (replicas, weight, canary, stable) in
            [(2, 75, 1, 1), (5, 90, 4, 1), (10, 95, 9, 1), (50, 99, 49, 1)]
        {
            assert_eq!(
                approximate_split(replicas, weight, 0),
                (canary, stable),
                "r{replicas} w{weight}"
            );
        }
        assert_eq!(
            approximate_split(10, 95, 1),
            (10, 1),
            "with surge the ceiling over 11 is taken"
        );
    }

    #[test]
    fn weights_1_to_99_never_give_zero_canary_or_stable() {
        for replicas in 1..=50 {
            for surge in 0..=2 {
                for weight in 1..=99 {
                    let (canary, stable) = approximate_split(replicas, weight, surge);
                    if replicas == 1 && surge == 0 {
                        assert_eq!(canary + stable, 1, "one pod, no surge: all or nothing");
                        continue;
                    }
                    assert!(
                        canary >= 1 && stable >= 1,
                        "r{replicas} w{weight} s{surge}: {canary}/{stable}"
                    );
                    let sum = canary + stable;
                    assert!(
                        sum == replicas || (surge > 0 && sum == replicas + 1),
                        "r{replicas} w{weight}"
                    );
                }
            }
        }
    }

    #[test]
    fn weight_to_replicas_rounds_up() {
        // Upstream TestTrafficWeightToReplicas.
        for (replicas, weight, pods) in [
            (10, 0, 0),
            (10, 20, 2),
            (10, 25, 3),
            (10, 33, 4),
            (10, 99, 10),
            (10, 100, 10),
        ] {
            assert_eq!(weight_replicas(weight, replicas), pods, "{weight}% of {replicas}");
        }
        assert_eq!(
            weight_replicas(-20, 10),
            -2,
            "negative weights round towards zero like math.Ceil"
        );
    }

    // ----- basic canary -----

    struct BasicRow {
        name: &'static str,
        replicas: i32,
        weight: i32,
        surge: IntOrString,
        unavailable: IntOrString,
        stable: Option<(i32, i32)>,
        canary: (i32, i32),
        others: Vec<(i32, i32)>,
        want_canary: i32,
        want_stable: i32,
        want_others: Vec<i32>,
    }

    #[allow(clippy::too_many_arguments)]
    fn row(
        name: &'static str,
        replicas: i32,
        weight: i32,
        surge: IntOrString,
        unavailable: IntOrString,
        stable: Option<(i32, i32)>,
        canary: (i32, i32),
        want: (i32, i32),
    ) -> BasicRow {
        BasicRow {
            name,
            replicas,
            weight,
            surge,
            unavailable,
            stable,
            canary,
            others: Vec::new(),
            want_canary: want.0,
            want_stable: want.1,
            want_others: Vec::new(),
        }
    }

    impl BasicRow {
        fn with_others(mut self, others: Vec<(i32, i32)>, want: Vec<i32>) -> Self {
            self.others = others;
            self.want_others = want;
            self
        }

        fn input(&self) -> BasicCanaryInput {
            let fences = resolve_fenceposts(Some(&self.surge), Some(&self.unavailable), self.replicas);
            BasicCanaryInput {
                replicas: self.replicas,
                weight: self.weight,
                max_surge: fences.max_surge,
                max_unavailable: fences.max_unavailable,
                canary: rs(self.canary.0, self.canary.1),
                stable: self.stable.map(|(spec, available)| rs(spec, available)),
                others: self
                    .others
                    .iter()
                    .map(|(spec, available)| rs(*spec, *available))
                    .collect(),
            }
        }
    }

    #[rustfmt::skip]
    fn basic_rows() -> Vec<BasicRow> {
        let (i, t) = (int, text);
        // row(name, replicas, weight, maxSurge, maxUnavailable, stable (spec, available),
        //     canary (spec, available), expected (canary, stable))
        vec![
            // Worked examples of the reference §3.3 and of upstream's doc comment.
            row("ref: r10 w10 mu1 ms1 gives 1/9",
                10, 10, i(1), i(1), Some((10, 10)), (0, 0), (1, 9)),
            row("ref: r10 w30 mu0 ms3 gives 3/10",
                10, 30, i(3), i(0), Some((10, 10)), (0, 0), (3, 10)),
            row("ref: r10 w30 mu5 ms0 gives 0/7",
                10, 30, i(0), i(5), Some((10, 10)), (0, 0), (0, 7)),
            row("stale doc example r10 w5 mu1 ms1: 1 of 11 is nearer 5%, so 1/10",
                10, 5, i(1), i(1), Some((10, 10)), (0, 0), (1, 10)),
            row("ref: r1 w5 mu0 ms1 gives 1/1",
                1, 5, i(1), i(0), Some((1, 1)), (0, 0), (1, 1)),
            row("ref: r1 w95 mu0 ms1 gives 1/1",
                1, 95, i(1), i(0), Some((1, 1)), (0, 0), (1, 1)),
            // Upstream TestCalculateReplicaCountsForCanary (basic rows).
            row("surplus available pods of a shrinking RS are not counted",
                10, 100, i(3), i(0), Some((7, 8)), (6, 3), (6, 7)),
            row("surge int used to scale up canary",
                10, 20, i(2), i(0), Some((10, 10)), (0, 0), (2, 10)),
            row("surge percentage used to scale up canary",
                10, 20, t("20%"), i(0), Some((10, 10)), (0, 0), (2, 10)),
            row("extra stable replicas scaled down",
                10, 20, t("20%"), i(0), Some((10, 10)), (2, 2), (2, 8)),
            row("canary does not go past max surge",
                10, 30, i(2), i(0), Some((10, 10)), (0, 0), (2, 10)),
            row("unavailable int scales the stable down first",
                10, 20, i(0), i(2), Some((10, 10)), (0, 0), (0, 8)),
            row("unavailable percentage scales the stable down first",
                10, 20, i(0), t("20%"), Some((10, 10)), (0, 0), (0, 8)),
            row("stable does not go past max unavailable",
                10, 30, i(0), i(2), Some((10, 10)), (0, 0), (0, 8)),
            row("surge and unavailable used together",
                10, 50, i(2), i(1), Some((10, 10)), (0, 0), (2, 9)),
            row("weight 0 scales the canary to zero",
                10, 0, i(1), i(1), Some((10, 10)), (1, 1), (0, 10)),
            row("weight 100 scales the stable to zero",
                10, 100, i(1), i(1), Some((1, 1)), (10, 10), (10, 0)),
            row("one pod, weight 20, surge: canary not zero",
                1, 20, i(1), i(0), Some((1, 1)), (0, 0), (1, 1)),
            row("one pod, weight 90, surge: stable not zero",
                1, 90, i(1), i(0), Some((1, 1)), (0, 0), (1, 1)),
            row("one pod, weight 49, no surge: canary stays zero",
                1, 49, i(0), i(1), Some((1, 1)), (0, 0), (0, 1)),
            row("one pod, weight 51, no surge: the stable goes first",
                1, 51, i(0), i(1), Some((1, 1)), (0, 0), (0, 0)),
            row("one pod, weight 51, no surge: then the canary comes up",
                1, 51, i(0), i(1), Some((0, 0)), (0, 0), (1, 0)),
            row("canary and stable both drained when over",
                10, 30, i(0), i(3), Some((8, 5)), (4, 4), (3, 7)),
            row("stable drained and canary trimmed under the surge ceiling",
                10, 100, i(1), i(0), Some((10, 2)), (10, 8), (9, 2)),
            row("uneven weight does not round past a zero surge",
                10, 5, i(0), i(1), Some((10, 10)), (0, 0), (0, 9)),
            row("uneven weight, part 2: the canary fills the gap",
                10, 5, i(0), i(1), Some((9, 9)), (0, 0), (1, 9)),
            row("0%/0% budgets still progress via unavailable 1",
                10, 10, t("0%"), t("0%"), Some((10, 10)), (0, 0), (0, 9)),
            row("surge honoured while the stable is unavailable",
                4, 100, i(1), i(0), Some((4, 1)), (0, 0), (1, 4)),
            row("scale down to unavailable without exceeding surge",
                3, 99, i(0), i(2), Some((3, 3)), (0, 0), (0, 1)),
            row("scale down to unavailable, part 2: canary up",
                3, 99, i(0), i(2), Some((1, 1)), (0, 0), (2, 1)),
            row("unavailable honoured scaling down an unready stable",
                4, 100, i(1), i(0), Some((4, 1)), (1, 1), (1, 3)),
            row("abort part 1: the stable surges before the canary shrinks",
                4, 0, i(1), i(0), Some((0, 0)), (4, 4), (4, 1)),
            row("abort part 2: nothing moves until the stable is available",
                4, 0, i(1), i(0), Some((1, 0)), (4, 4), (4, 1)),
            row("abort part 3: the canary shrinks by one",
                4, 0, i(1), i(0), Some((1, 1)), (4, 4), (3, 1)),
            row("promoteFull (weight 100) ignores the step weight",
                4, 100, i(4), i(4), Some((4, 4)), (0, 0), (4, 0)),
            row("promoteFull still honours surge/unavailable",
                4, 100, i(3), i(0), Some((4, 4)), (0, 0), (3, 4)),
            // Older ReplicaSets: with_others((spec, available) newest first, expected specs).
            row("stable scaled up before the canary while an old RS drains",
                10, 30, i(1), i(0), Some((1, 1)), (0, 0), (1, 7))
                .with_others(vec![(3, 3)], vec![3]),
            row("old RS scaled down before canary or stable",
                10, 30, i(0), i(1), Some((8, 6)), (4, 2), (4, 8))
                .with_others(vec![(3, 3)], vec![1]),
            row("old RS unready pods dropped without budget",
                10, 30, i(0), i(1), Some((7, 7)), (3, 3), (3, 7))
                .with_others(vec![(4, 1)], vec![0]),
            row("old RS budget spent newest first",
                10, 0, i(0), i(1), Some((8, 8)), (0, 0), (0, 8))
                .with_others(vec![(1, 1), (3, 3)], vec![0, 1]),
            row("old RS reporting more available than spec stops the pass",
                10, 0, i(0), i(2), Some((8, 8)), (0, 0), (0, 8))
                .with_others(vec![(2, 1), (1, 3)], vec![2, 1]),
            row("old RS kept when no availability is spare",
                10, 0, i(0), i(1), Some((4, 4)), (0, 0), (0, 5))
                .with_others(vec![(5, 5)], vec![5]),
            // No distinct stable: everything goes to the new ReplicaSet.
            row("new deployment: no stable, new RS to replicas",
                10, 10, i(0), i(1), None, (10, 0), (10, 0)),
            row("no stable: the canary grows to replicas",
                10, 10, i(0), i(1), None, (9, 9), (10, 0)),
            row("no stable: a canary above replicas shrinks within budget",
                10, 10, t("25%"), t("25%"), None, (12, 12), (10, 0)),
            // Zero and one replica, and states already at their target.
            row("zero replicas scale everything down",
                0, 50, t("25%"), t("25%"), Some((2, 2)), (1, 1), (0, 0)),
            row("zero replicas, nothing running: nothing to do",
                0, 30, t("25%"), t("25%"), Some((0, 0)), (0, 0), (0, 0)),
            row("one pod, default budgets: surge a canary first",
                1, 50, t("25%"), t("25%"), Some((1, 1)), (0, 0), (1, 1)),
            row("no surge, 95% of 10: canary 9 (upstream would keep 0)",
                10, 95, i(0), i(1), Some((10, 10)), (0, 0), (0, 9)),
            row("no surge, 95% of 10, part 2: canary 9, stable 1",
                10, 95, i(0), i(1), Some((1, 1)), (8, 8), (9, 1)),
            row("already at target: unchanged",
                10, 30, i(1), i(1), Some((7, 7)), (3, 3), (3, 7)),
            row("weight 0 at rest: unchanged",
                5, 0, t("25%"), t("25%"), Some((5, 5)), (0, 0), (0, 5)),
        ]
    }

    #[test]
    fn basic_canary_table() {
        let rows = basic_rows();
        assert!(rows.len() >= 40, "table has {} rows", rows.len());
        for row in &rows {
            let got = basic_canary(&row.input());
            assert_eq!(
                (got.canary, got.stable, got.others.clone()),
                (row.want_canary, row.want_stable, row.want_others.clone()),
                "{}",
                row.name
            );
        }
    }

    #[test]
    fn both_zero_budgets_raise_unavailable_inside_basic_canary() {
        let input = BasicCanaryInput {
            replicas: 10,
            weight: 10,
            max_surge: 0,
            max_unavailable: 0,
            canary: rs(0, 0),
            stable: Some(rs(10, 10)),
            others: Vec::new(),
        };
        assert_eq!(
            basic_canary(&input),
            Split {
                canary: 0,
                stable: 9,
                others: Vec::new()
            }
        );
    }

    #[test]
    fn next_stage_applies_one_group_in_upstream_order() {
        let input = BasicCanaryInput {
            replicas: 10,
            weight: 30,
            max_surge: 1,
            max_unavailable: 0,
            canary: rs(0, 0),
            stable: Some(rs(1, 1)),
            others: vec![rs(3, 3)],
        };
        let split = basic_canary(&input);
        assert_eq!(
            split.next_stage(&input),
            Split {
                canary: 0,
                stable: 7,
                others: vec![3]
            },
            "stable first"
        );
        let after_stable = BasicCanaryInput {
            stable: Some(rs(7, 7)),
            ..input.clone()
        };
        let split = basic_canary(&after_stable);
        assert_eq!(
            split.next_stage(&after_stable),
            Split {
                canary: 1,
                stable: 7,
                others: vec![3]
            },
            "then canary"
        );
        let after_canary = BasicCanaryInput {
            canary: rs(1, 1),
            ..after_stable
        };
        let split = basic_canary(&after_canary);
        assert_eq!(
            split.next_stage(&after_canary),
            Split {
                canary: 1,
                stable: 7,
                others: vec![2]
            },
            "then others"
        );
        let split = Split {
            canary: 2,
            stable: 1,
            others: vec![0],
        };
        assert_eq!(
            split.next_stage(&input),
            Split {
                canary: 2,
                stable: 1,
                others: vec![3]
            },
            "others wait"
        );
    }

    // ----- invariant simulation -----

    /// Which way a simulated controller applies a split.
    #[derive(Clone, Copy, Debug)]
    enum Apply {
        AllAtOnce,
        Staged,
    }

    struct Sim {
        replicas: i32,
        surge: i32,
        unavailable: i32,
        state: BasicCanaryInput,
    }

    impl Sim {
        /// One reconcile with instantly-ready pods; checks the surge ceiling and the availability floor.
        fn step(&mut self, apply: Apply, context: &str) {
            let split = basic_canary(&self.state);
            let split = match apply {
                Apply::AllAtOnce => split,
                Apply::Staged => split.next_stage(&self.state),
            };
            let before = &self.state;
            let total = split.canary + split.stable + split.others.iter().sum::<i32>();
            assert!(
                total <= self.replicas + self.surge,
                "{context}: {total} pods over the surge ceiling"
            );
            // During the transition new pods are not ready yet and removed ones are gone.
            let mut ready = min(before.canary.available, split.canary)
                + before.stable.map_or(0, |rs| min(rs.available, split.stable));
            for (rs, spec) in before.others.iter().zip(&split.others) {
                ready += min(rs.available, *spec);
            }
            let floor = self.replicas - effective_unavailable(before) as i32;
            assert!(
                ready >= floor,
                "{context}: only {ready} ready pods, floor {floor}"
            );
            assert!(
                split.canary >= 0 && split.stable >= 0 && split.others.iter().all(|s| *s >= 0),
                "{context}"
            );
            self.state.canary = rs(split.canary, split.canary);
            if self.state.stable.is_some() {
                self.state.stable = Some(rs(split.stable, split.stable));
            }
            self.state.others = split.others.iter().map(|s| rs(*s, *s)).collect();
        }

        fn at(&self, canary: i32, stable: i32) -> bool {
            self.state.canary.spec == canary
                && self.state.stable.map_or(0, |rs| rs.spec) == stable
                && self.state.others.iter().all(|rs| rs.spec == 0)
        }

        /// Reconciles until the target is reached (and is a fixed point), within `limit` reconciles.
        fn converge(&mut self, apply: Apply, limit: usize, context: &str) {
            let (canary, stable) = approximate_split(self.replicas, self.state.weight, self.surge);
            let mut steps = 0;
            while !self.at(canary, stable) {
                assert!(
                    steps < limit,
                    "{context}: not at {canary}/{stable} after {limit}: {:?}",
                    self.state
                );
                self.step(apply, context);
                steps += 1;
            }
            self.step(apply, context);
            assert!(
                self.at(canary, stable),
                "{context}: target {canary}/{stable} is not a fixed point"
            );
        }
    }

    #[test]
    fn basic_canary_converges_within_budgets() {
        let settings: [(IntOrString, IntOrString); 8] = [
            (text("25%"), text("25%")),
            (int(1), int(0)),
            (int(0), int(1)),
            (int(1), int(1)),
            (int(3), int(0)),
            (int(0), int(3)),
            (text("0%"), text("0%")),
            (text("50%"), text("10%")),
        ];
        let mut runs = 0;
        for (surge, unavailable) in &settings {
            for replicas in 1..=20 {
                let fences = resolve_fenceposts(Some(surge), Some(unavailable), replicas);
                // One pod per budget moves per reconcile at worst, and a swap needs two reconciles per pod.
                let limit = max(30, 2 * replicas as usize + 2);
                for weight in 0..=100 {
                    for apply in [Apply::AllAtOnce, Apply::Staged] {
                        let context = format!("r{replicas} w{weight} {fences:?} {apply:?}");
                        let mut sim = Sim {
                            replicas,
                            surge: fences.max_surge,
                            unavailable: fences.max_unavailable,
                            state: BasicCanaryInput {
                                replicas,
                                weight,
                                max_surge: fences.max_surge,
                                max_unavailable: fences.max_unavailable,
                                canary: rs(0, 0),
                                stable: Some(rs(replicas, replicas)),
                                others: Vec::new(),
                            },
                        };
                        assert!(sim.unavailable >= 0);
                        sim.converge(apply, limit, &context);
                        // Abort: back to all stable.
                        sim.state.weight = 0;
                        sim.converge(apply, limit, &format!("{context} abort"));
                        runs += 1;

                        // Interrupted update: half of the pods still in an older ReplicaSet.
                        if replicas >= 2 {
                            let old = replicas / 2;
                            sim.state = BasicCanaryInput {
                                weight,
                                canary: rs(0, 0),
                                stable: Some(rs(replicas - old, replicas - old)),
                                others: vec![rs(old, old)],
                                ..sim.state.clone()
                            };
                            sim.converge(apply, limit + 4, &format!("{context} with old RS"));
                        }
                    }
                }
            }
        }
        assert_eq!(runs, 8 * 20 * 101 * 2);
    }

    // ----- traffic-routed canary -----

    struct RoutedRow {
        name: &'static str,
        input: RoutedCanaryInput,
        want: (i32, i32),
    }

    impl RoutedRow {
        fn new(name: &'static str, input: RoutedCanaryInput, want: (i32, i32)) -> Self {
            RoutedRow { name, input, want }
        }
    }

    /// A setCanaryScale step on one replica at weight 0.
    fn routed_scale(scale: CanaryScale) -> RoutedCanaryInput {
        RoutedCanaryInput {
            set_canary_scale: Some(scale),
            ..routed(1, 0)
        }
    }

    fn routed(replicas: i32, weight: i32) -> RoutedCanaryInput {
        RoutedCanaryInput {
            replicas,
            weight,
            ..RoutedCanaryInput::default()
        }
    }

    #[rustfmt::skip]
    fn routed_rows() -> Vec<RoutedRow> {
        let scale = |scale, replicas, weight| RoutedCanaryInput {
            set_canary_scale: Some(scale),
            ..routed(replicas, weight)
        };
        let min_pods = |floor, replicas, weight| RoutedCanaryInput {
            min_pods_per_replica_set: Some(floor),
            ..routed(replicas, weight)
        };
        let aborted_scale = |scale| RoutedCanaryInput { aborted: true, ..routed_scale(scale) };
        let dynamic = |replicas, weight, stable_weight, aborted| RoutedCanaryInput {
            dynamic_stable_scale: true,
            current_stable_weight: Some(stable_weight),
            aborted,
            ..routed(replicas, weight)
        };
        use CanaryScale::{MatchTrafficWeight, Replicas, Weight};
        vec![
            RoutedRow::new("canary = ceil(weight·replicas/100), stable stays at 100%",
                routed(10, 10), (1, 10)),
            RoutedRow::new("ceil rounds a fraction up",
                routed(10, 33), (4, 10)),
            RoutedRow::new("weight 0: no canary pods",
                routed(10, 0), (0, 10)),
            RoutedRow::new("weight 100: full canary and full stable",
                routed(10, 100), (10, 10)),
            RoutedRow::new("zero replicas",
                routed(0, 50), (0, 0)),
            RoutedRow::new("one replica at weight 1 still gets a canary pod",
                routed(1, 1), (1, 1)),
            RoutedRow::new("setCanaryScale.replicas ignores setWeight",
                scale(Replicas(9), 1, 100), (9, 1)),
            RoutedRow::new("setCanaryScale.weight may exceed 100",
                scale(Weight(200), 4, 100), (8, 4)),
            RoutedRow::new("matchTrafficWeight goes back to the setWeight",
                scale(MatchTrafficWeight, 10, 20), (2, 10)),
            RoutedRow::new("setCanaryScale.replicas is not floored by minPods (static stable)",
                RoutedCanaryInput { min_pods_per_replica_set: Some(3), ..scale(Replicas(1), 10, 50) },
                (1, 10)),
            RoutedRow::new("abort drops setCanaryScale.replicas",
                aborted_scale(Replicas(1)), (0, 1)),
            RoutedRow::new("abort drops setCanaryScale.weight",
                aborted_scale(Weight(50)), (0, 1)),
            RoutedRow::new("minPodsPerReplicaSet floors a starting canary",
                min_pods(2, 10, 5), (2, 10)),
            RoutedRow::new("minPodsPerReplicaSet is capped at replicas",
                min_pods(2, 1, 100), (1, 1)),
            RoutedRow::new("minPodsPerReplicaSet leaves a zero canary at zero",
                min_pods(2, 10, 0), (0, 10)),
            // dynamicStableScale (upstream TestCalculateReplicaCountsForCanaryTrafficRoutingDynamicScale).
            RoutedRow::new("dynamic: the stable shrinks with its traffic",
                dynamic(10, 10, 90, false), (1, 9)),
            RoutedRow::new("dynamic: the stable keeps pods for the traffic it still gets",
                dynamic(10, 20, 90, false), (2, 9)),
            RoutedRow::new("dynamic: without recorded weights the stable follows the desired weight",
                RoutedCanaryInput { current_stable_weight: None, ..dynamic(10, 30, 0, false) },
                (3, 7)),
            RoutedRow::new("dynamic: minPods floors both sides",
                RoutedCanaryInput { min_pods_per_replica_set: Some(3), ..dynamic(10, 90, 10, false) },
                (9, 3)),
            RoutedRow::new("dynamic: setCanaryScale.replicas is floored by minPods",
                RoutedCanaryInput {
                    min_pods_per_replica_set: Some(3),
                    set_canary_scale: Some(Replicas(1)),
                    ..dynamic(10, 50, 100, false)
                },
                (3, 10)),
            RoutedRow::new("dynamic abort: the canary is kept while it still has traffic",
                dynamic(10, 0, 80, true), (2, 10)),
            RoutedRow::new("dynamic abort: the canary shrinks as its traffic does",
                dynamic(10, 0, 90, true), (1, 10)),
            RoutedRow::new("dynamic abort: the canary keeps pods for 100 - stable weight",
                dynamic(10, 0, 70, true), (3, 10)),
            RoutedRow::new("dynamic abort: the stable is whole while the canary drains",
                dynamic(10, 0, 40, true), (6, 10)),
        ]
    }

    #[test]
    fn routed_canary_table() {
        for row in routed_rows() {
            let got = routed_canary(&row.input);
            assert_eq!((got.canary, got.stable), row.want, "{}", row.name);
        }
    }
}

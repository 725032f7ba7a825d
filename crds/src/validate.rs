//! Spec validation with upstream's InvalidSpec messages. A Rollout that fails gets the InvalidSpec condition
//! and no other action.

use crate::rollout::{
    AntiAffinity, BlueGreenStrategy, CanaryStep, CanaryStrategy, Rollout, RolloutTrafficRouting,
};

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::duration::parse_pause_duration;

/// The first reason the spec is invalid, in upstream's words, or None.
pub fn invalid_spec(ro: &Rollout) -> Option<String> {
    let spec = &ro.spec;
    if spec.template.is_none() && spec.workload_ref.is_none() {
        return Some("Rollout has missing field '.spec.template'".into());
    }
    if let Some(w) = &spec.workload_ref {
        for (field, value) in [("kind", &w.kind), ("name", &w.name)] {
            if value.as_deref().is_none_or(str::is_empty) {
                return Some(format!("Rollout has missing field '.spec.workloadRef.{field}'"));
            }
        }
    }
    let selector = match &spec.selector {
        None => return Some("Rollout has missing field '.spec.selector'".into()),
        Some(s) => s,
    };
    let match_labels = selector.match_labels.clone().unwrap_or_default();
    if match_labels.is_empty() && selector.match_expressions.as_ref().is_none_or(Vec::is_empty) {
        return Some("This rollout is selecting all pods. A non-empty selector is required.".into());
    }
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    // A workloadRef whose template could not be read has none to compare (its own condition says why).
    if spec.template.is_some()
        && match_labels
            .iter()
            .any(|(k, v)| template_labels.get(k) != Some(v))
    {
        return Some("The Rollout \"selector\" does not match the template \"labels\".".into());
    }
    if spec.replicas.is_some_and(|r| r < 0) {
        return Some("Rollout replicas must be greater than or equal to 0".into());
    }
    let strategy = &spec.strategy;
    if let Some(message) = strategy.anti_affinity().and_then(invalid_anti_affinity) {
        return Some(message);
    }
    match (&strategy.canary, &strategy.blue_green) {
        (Some(_), Some(_)) => Some("Multiple Strategies can not be listed".into()),
        (None, None) => {
            Some("Rollout has missing field '.spec.strategy.canary or .spec.strategy.blueGreen'".into())
        }
        (None, Some(bg)) => invalid_blue_green(bg, spec.revision_history_limit),
        (Some(canary), None) => invalid_canary(canary, spec.revision_history_limit),
    }
}

fn invalid_canary(canary: &CanaryStrategy, revision_history_limit: Option<i32>) -> Option<String> {
    if canary.max_surge.as_ref().is_some_and(is_zero) && canary.max_unavailable.as_ref().is_some_and(is_zero)
    {
        return Some("MaxSurge and MaxUnavailable both can not be zero".into());
    }
    let tr = canary.traffic_routing.as_ref();
    if let (Some(c), Some(s)) = (&canary.canary_service, &canary.stable_service)
        && c == s
    {
        return Some(
            "This rollout uses the same service for the stable and canary services, but two different services are required."
                .into(),
        );
    }
    if let Some(tr) = tr {
        let subset = tr.istio.as_ref().is_some_and(|i| i.destination_rule.is_some());
        if !subset && (canary.canary_service.is_none() || canary.stable_service.is_none()) {
            return Some("Canary service and Stable service must to be set to use Traffic Routing".into());
        }
        if let Some(nginx) = &tr.nginx {
            let single = nginx.stable_ingress.as_deref().is_some_and(|s| !s.is_empty());
            let multiple = nginx.stable_ingresses.as_ref().is_some_and(|s| !s.is_empty());
            match (single, multiple) {
                (true, true) => {
                    return Some(
                        "Either StableIngress or StableIngresses must be configured. Both are configured."
                            .into(),
                    );
                }
                (false, false) => {
                    return Some(
                        "Either StableIngress or StableIngresses must be configured. Neither are configured."
                            .into(),
                    );
                }
                _ => {}
            }
        }
        if let Some(istio) = &tr.istio
            && istio.virtual_service.is_none()
            && istio.virtual_services.as_ref().is_none_or(Vec::is_empty)
        {
            return Some(
                "Istio traffic routing needs spec.strategy.canary.trafficRouting.istio.virtualService(s)"
                    .into(),
            );
        }
    } else {
        if canary.scale_down_delay_seconds.is_some() {
            return Some("Canary scaleDownDelaySeconds can only be used with traffic routing".into());
        }
        if canary.dynamic_stable_scale == Some(true) {
            return Some("Canary dynamicStableScale can only be used with traffic routing".into());
        }
    }
    if canary.dynamic_stable_scale == Some(true) && canary.scale_down_delay_seconds.is_some() {
        return Some("Canary dynamicStableScale cannot be used with scaleDownDelaySeconds".into());
    }
    let managed: Vec<&str> = tr
        .and_then(|t| t.managed_routes.as_ref())
        .map(|m| m.iter().map(|r| r.name.as_str()).collect())
        .unwrap_or_default();
    for step in canary.steps.iter().flatten() {
        if let Some(msg) = invalid_step(step, tr, &managed) {
            return Some(msg);
        }
    }
    if let (Some(limit), Some(sdl)) = (revision_history_limit, canary.scale_down_delay_revision_limit)
        && limit < sdl
    {
        return Some(
            "This rollout's revision history limit can not be smaller than the rollout's scale down limit"
                .into(),
        );
    }
    None
}

fn invalid_anti_affinity(a: &AntiAffinity) -> Option<String> {
    let preferred = a.preferred_during_scheduling_ignored_during_execution.as_ref();
    let required = a.required_during_scheduling_ignored_during_execution.as_ref();
    if preferred.is_some() == required.is_some() {
        return Some("AntiAffinity must have exactly one strategy listed".into());
    }
    if preferred.is_some_and(|p| !(1..=100).contains(&p.weight)) {
        return Some("AntiAffinity weight must be between 1-100".into());
    }
    None
}

fn invalid_blue_green(bg: &BlueGreenStrategy, revision_history_limit: Option<i32>) -> Option<String> {
    if bg.active_service.is_empty() {
        return Some("Rollout has missing field '.spec.strategy.blueGreen.activeService'".into());
    }
    if bg.preview_service.as_deref() == Some(bg.active_service.as_str()) {
        return Some(
            "This rollout uses the same service for the active and preview services, but two different services are required."
                .into(),
        );
    }
    if bg.preview_replica_count.is_some_and(|c| c < 0) {
        return Some("previewReplicaCount must be greater than or equal to 0".into());
    }
    if let Some(limit) = bg.scale_down_delay_revision_limit
        && revision_history_limit.unwrap_or(10) < limit
    {
        return Some(
            "This rollout's revision history limit can not be smaller than the rollout's scale down limit"
                .into(),
        );
    }
    None
}

fn invalid_step(step: &CanaryStep, tr: Option<&RolloutTrafficRouting>, managed: &[&str]) -> Option<String> {
    let traffic_routing = tr.is_some();
    let set = [
        step.set_weight.is_some(),
        step.pause.is_some(),
        step.experiment.is_some(),
        step.analysis.is_some(),
        step.set_canary_scale.is_some(),
        step.set_header_route.is_some(),
        step.set_mirror_route.is_some(),
        step.plugin.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if set != 1 {
        return Some(
            "Step must have one of the following set: experiment, setWeight, setCanaryScale, plugin or pause"
                .into(),
        );
    }
    if let Some(w) = step.set_weight
        && !(0..=100).contains(&w)
    {
        return Some("SetWeight needs to be between 0 and 100".into());
    }
    if let Some(p) = &step.pause
        && let Some(d) = &p.duration
        && parse_pause_duration(d).is_none()
    {
        return Some("Duration needs to be greater than 0".into());
    }
    if step.set_canary_scale.is_some() && !traffic_routing {
        return Some("SetCanaryScale requires TrafficRouting to be set".into());
    }
    // As upstream: header routes need a router that has them (NGINX's canary Ingress has none; its
    // canary-by-header annotations are set through additionalIngressAnnotations), mirror routes Istio.
    let header_routers =
        tr.is_some_and(|t| t.istio.is_some() || t.alb.is_some() || t.apisix.is_some() || t.plugins.is_some());
    if step.set_header_route.is_some() && !header_routers {
        return Some("SetHeaderRoute requires TrafficRouting, supports Istio only".into());
    }
    if step.set_mirror_route.is_some() && !tr.is_some_and(|t| t.istio.is_some() || t.plugins.is_some()) {
        return Some("SetMirrorRoute requires TrafficRouting, supports Istio only".into());
    }
    if let Some(e) = &step.experiment {
        // A weight is a share of the router's traffic; without a router there is nothing to give it.
        if !traffic_routing && e.templates.iter().any(|t| t.weight.is_some()) {
            return Some("Experiment template weight cannot be set unless TrafficRouting is enabled".into());
        }
        if let Some(t) = e
            .templates
            .iter()
            .find(|t| t.spec_ref != "canary" && t.spec_ref != "stable")
        {
            return Some(format!(
                "Experiment template '{}': specRef must be canary or stable, got {:?}",
                t.name, t.spec_ref
            ));
        }
    }
    if step.set_header_route.is_some() || step.set_mirror_route.is_some() {
        let name = step
            .set_header_route
            .as_ref()
            .and_then(|h| h.name.clone())
            .or_else(|| step.set_mirror_route.as_ref().map(|m| m.name.clone()))
            .unwrap_or_default();
        if !managed.contains(&name.as_str()) {
            return Some(
                "Steps define a route that does not exist in spec.strategy.canary.trafficRouting.managedRoutes"
                    .into(),
            );
        }
    }
    None
}

/// The first feature the spec uses that Sluice does not run (valid upstream, so not InvalidSpec), naming the
/// field, or None.
pub fn unsupported(ro: &Rollout) -> Option<String> {
    if let Some(kind) = ro
        .spec
        .workload_ref
        .as_ref()
        .and_then(|w| w.kind.as_deref())
        .filter(|k| *k != "Deployment")
    {
        return Some(format!(
            "workloadRef kind {kind} (spec.workloadRef.kind) is not supported by Sluice yet; only Deployment is"
        ));
    }
    let canary = ro.spec.strategy.canary.as_ref()?;
    if let Some(tr) = &canary.traffic_routing {
        let others = [
            ("alb", tr.alb.is_some()),
            ("ambassador", tr.ambassador.is_some()),
            ("appMesh", tr.app_mesh.is_some()),
            ("traefik", tr.traefik.is_some()),
            ("apisix", tr.apisix.is_some()),
        ];
        if let Some((router, _)) = others.iter().find(|(_, used)| *used) {
            return Some(format!(
                "traffic router {router} (spec.strategy.canary.trafficRouting.{router}) is not supported by Sluice yet; {ROUTERS}"
            ));
        }
        // Step weights and the pods they need are reckoned in percent; another total would misweigh traffic.
        if let Some(total) = tr.max_traffic_weight.filter(|w| *w != 100) {
            return Some(format!(
                "trafficRouting.maxTrafficWeight {total} (spec.strategy.canary.trafficRouting.maxTrafficWeight) is not supported by Sluice yet; only 100 is"
            ));
        }
        if let Some(message) = tr.plugins.as_ref().and_then(unsupported_plugin) {
            return Some(message);
        }
    }
    for (i, step) in canary.steps.iter().flatten().enumerate() {
        if step.plugin.is_some() {
            return Some(format!(
                "step plugins (spec.strategy.canary.steps[{i}].plugin) are not supported by Sluice yet"
            ));
        }
    }
    None
}

/// The traffic routers Sluice runs, as messages name them.
const ROUTERS: &str = "only istio, nginx, smi and the argoproj-labs/gatewayAPI plugin are";

/// The traffic router plugin Sluice runs itself (the Gateway API plugin's name in `trafficRouting.plugins`).
pub const GATEWAY_API_PLUGIN: &str = "argoproj-labs/gatewayAPI";

/// Fields of the Gateway API plugin's config that Sluice does not read yet.
const GATEWAY_API_UNSUPPORTED: [&str; 6] = [
    "tlsRoute",
    "tlsRoutes",
    "httpRouteSelector",
    "grpcRouteSelector",
    "tcpRouteSelector",
    "tlsRouteSelector",
];

/// Why `trafficRouting.plugins` names something Sluice does not run: a plugin other than the Gateway API one
/// (Sluice runs no plugin binaries), or a field of the Gateway API config it does not read.
fn unsupported_plugin(plugins: &serde_json::Value) -> Option<String> {
    let Some(map) = plugins.as_object() else {
        return Some(
            "spec.strategy.canary.trafficRouting.plugins is not a map of plugin names to configs".into(),
        );
    };
    if let Some(name) = map.keys().find(|k| *k != GATEWAY_API_PLUGIN) {
        return Some(format!(
            "traffic router plugin {name} (spec.strategy.canary.trafficRouting.plugins) is not supported by Sluice yet; {ROUTERS}"
        ));
    }
    let config = map.get(GATEWAY_API_PLUGIN)?;
    GATEWAY_API_UNSUPPORTED
        .iter()
        .find(|f| config.get(**f).is_some())
        .map(|f| {
            format!(
                "{f} (spec.strategy.canary.trafficRouting.plugins[\"{GATEWAY_API_PLUGIN}\"].{f}) is not supported by Sluice yet"
            )
        })
}

/// `0`, `"0"` or `"0%"`.
fn is_zero(v: &IntOrString) -> bool {
    match v {
        IntOrString::Int(i) => *i == 0,
        IntOrString::String(s) => s
            .trim_end_matches('%')
            .trim()
            .parse::<f64>()
            .is_ok_and(|f| f == 0.0),
    }
}

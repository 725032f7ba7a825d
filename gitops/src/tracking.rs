//! Argo CD's annotation resource tracking (`AC:util/argo/resource_tracking.go`, `AC:controller/state.go
//! isSelfReferencedObj`): the `argocd.argoproj.io/tracking-id` value
//! `<app-instance>:<group>/<kind>:<namespace>/<name>`, how it is built for an object, and whether a live
//! object is managed by an Application. Pure: objects are `serde_json::Value`s.
//!
//! Rendering, as upstream's `BuildAppInstanceValue` does it: the group of a core kind is empty
//! (`my-app:/ConfigMap:prod/settings`), and an object without `metadata.namespace` (a cluster-scoped
//! one, or a namespaced one not yet defaulted) carries the Application's destination namespace, which may
//! itself be empty (`my-app:rbac.authorization.k8s.io/ClusterRole:/admin`). The installation id is not
//! part of the value: it is a separate annotation, [`ANNOTATION_INSTALLATION_ID`].

use std::{fmt, str::FromStr};

use serde_json::Value;

/// The tracking annotation (`common.AnnotationKeyAppInstance`).
pub const ANNOTATION_TRACKING_ID: &str = "argocd.argoproj.io/tracking-id";
/// Set next to the tracking id when the control plane has an `installationID` (`common.AnnotationInstallationID`).
pub const ANNOTATION_INSTALLATION_ID: &str = "argocd.argoproj.io/installation-id";
/// The label of the `label` and `annotation+label` tracking methods (`common.LabelKeyAppInstance`).
pub const LABEL_APP_INSTANCE: &str = "app.kubernetes.io/instance";
/// The field manager of Argo CD's server-side apply and server-side diff.
pub const FIELD_MANAGER: &str = "argocd-controller";
/// Upstream's error text for a value that does not parse (`ErrWrongResourceTrackingFormat`).
pub const WRONG_FORMAT: &str =
    "wrong resource tracking format, should be <application-name>:<group>/<kind>:<namespace>/<name>";

/// A tracking id that does not parse, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackingError {
    /// Fewer than three `:`-separated parts.
    #[error(
        "{WRONG_FORMAT}: {value:?} has no `:<group>/<kind>:<namespace>/<name>` after the application name"
    )]
    MissingParts {
        /// The whole value.
        value: String,
    },
    /// The middle part is not exactly `<group>/<kind>`.
    #[error("{WRONG_FORMAT}: {part:?} is not <group>/<kind> (exactly one '/')")]
    GroupKind {
        /// The offending part.
        part: String,
    },
    /// The last part is not exactly `<namespace>/<name>`.
    #[error("{WRONG_FORMAT}: {part:?} is not <namespace>/<name> (exactly one '/')")]
    NamespaceName {
        /// The offending part.
        part: String,
    },
    /// The application name, kind or name is empty; such a value can never name an object.
    #[error("{WRONG_FORMAT}: the {field} is empty in {value:?}")]
    Empty {
        /// `application name`, `kind` or `name`.
        field: &'static str,
        /// The whole value.
        value: String,
    },
}

/// A parsed `argocd.argoproj.io/tracking-id` value (upstream's `AppInstanceValue`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrackingId {
    /// The app instance name: the Application's name, or `<namespace>_<name>` (see [`instance_name`]).
    pub app: String,
    /// API group, empty for core kinds.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// The object's namespace, or the destination namespace for objects without one (may be empty).
    pub namespace: String,
    /// The object's name; may contain `:` (`system:aggregate-to-admin`).
    pub name: String,
}

impl TrackingId {
    /// Parses a value as upstream does: split on the first two `:` (so a name keeps its own colons), then
    /// each of the last two parts on its only `/`. Stricter than upstream in one way: an empty application
    /// name, kind or name is refused.
    pub fn parse(value: &str) -> Result<Self, TrackingError> {
        let mut parts = value.splitn(3, ':');
        let (Some(app), Some(group_kind), Some(ns_name)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(TrackingError::MissingParts {
                value: value.to_string(),
            });
        };
        let (group, kind) = split_once_exact(group_kind).ok_or_else(|| TrackingError::GroupKind {
            part: group_kind.to_string(),
        })?;
        let (namespace, name) = split_once_exact(ns_name).ok_or_else(|| TrackingError::NamespaceName {
            part: ns_name.to_string(),
        })?;
        for (field, v) in [("application name", app), ("kind", kind), ("name", name)] {
            if v.is_empty() {
                return Err(TrackingError::Empty {
                    field,
                    value: value.to_string(),
                });
            }
        }
        Ok(Self {
            app: app.to_string(),
            group: group.to_string(),
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }

    /// The id Argo CD writes on `obj` for app instance `app` (`UnstructuredToAppInstanceValue`): the
    /// object's namespace, or `default_namespace` (the destination namespace) when it has none.
    pub fn for_object(obj: &Value, app: &str, default_namespace: &str) -> Self {
        let namespace = match object_namespace(obj) {
            "" => default_namespace,
            ns => ns,
        };
        Self {
            app: app.to_string(),
            group: object_group(obj).to_string(),
            kind: str_at(obj, &["kind"]).to_string(),
            namespace: namespace.to_string(),
            name: str_at(obj, &["metadata", "name"]).to_string(),
        }
    }

    /// Whether this id names `obj` (`isSelfReferencedObj`): same group, kind and name, and the same
    /// namespace unless the object has none (cluster-scoped objects carry the destination namespace).
    /// False means the annotation was copied onto another object, which is then neither counted nor pruned.
    pub fn names(&self, obj: &Value) -> bool {
        let ns = object_namespace(obj);
        (ns.is_empty() || ns == self.namespace)
            && str_at(obj, &["metadata", "name"]) == self.name
            && object_group(obj) == self.group
            && str_at(obj, &["kind"]) == self.kind
    }
}

impl fmt::Display for TrackingId {
    /// `BuildAppInstanceValue`: `<app>:<group>/<kind>:<namespace>/<name>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}/{}:{}/{}",
            self.app, self.group, self.kind, self.namespace, self.name
        )
    }
}

impl FromStr for TrackingId {
    type Err = TrackingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The app instance name used in tracking (`Application.InstanceName`): the bare name for an Application in
/// the control-plane namespace (or with no namespace), else `<namespace>_<name>`.
pub fn instance_name(app_name: &str, app_namespace: &str, control_plane_namespace: &str) -> String {
    if app_namespace.is_empty() || app_namespace == control_plane_namespace {
        app_name.to_string()
    } else {
        format!("{app_namespace}_{app_name}")
    }
}

/// The object's tracking id: `None` without the annotation, `Some(Err)` when it does not parse.
pub fn tracking_id(obj: &Value) -> Option<Result<TrackingId, TrackingError>> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(ANNOTATION_TRACKING_ID))
        .and_then(Value::as_str)
        .map(TrackingId::parse)
}

/// Whether `obj` is managed by app instance `app` with annotation tracking and no installation id.
pub fn is_managed_by(obj: &Value, app: &str) -> bool {
    is_managed_by_installation(obj, app, "")
}

/// Whether `obj` is managed by app instance `app` of the installation `installation_id` (empty: none): the
/// object's installation-id annotation equals it (absent counts as empty, so an object stamped by another
/// installation is foreign), its tracking id parses, names `app` and names the object itself.
pub fn is_managed_by_installation(obj: &Value, app: &str, installation_id: &str) -> bool {
    let stamped = obj
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ANNOTATION_INSTALLATION_ID))
        .and_then(Value::as_str)
        .unwrap_or("");
    if stamped != installation_id {
        return false;
    }
    matches!(tracking_id(obj), Some(Ok(id)) if id.app == app && id.names(obj))
}

/// Writes the tracking annotation (and the installation id, or removes a stale one) as `SetAppInstance`
/// does with the `annotation` method. `obj` must be a JSON object; anything else is left alone.
pub fn set_tracking(obj: &mut Value, app: &str, default_namespace: &str, installation_id: &str) {
    let id = TrackingId::for_object(obj, app, default_namespace).to_string();
    let Some(meta) = obj.as_object_mut().map(|o| {
        o.entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()))
    }) else {
        return;
    };
    let Some(annotations) = meta
        .as_object_mut()
        .map(|m| {
            m.entry("annotations")
                .or_insert_with(|| Value::Object(Default::default()))
        })
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if installation_id.is_empty() {
        annotations.remove(ANNOTATION_INSTALLATION_ID);
    } else {
        annotations.insert(
            ANNOTATION_INSTALLATION_ID.into(),
            Value::String(installation_id.into()),
        );
    }
    annotations.insert(ANNOTATION_TRACKING_ID.into(), Value::String(id));
}

/// The API group of an object: the part of `apiVersion` before `/`, empty for `v1`.
pub fn object_group(obj: &Value) -> &str {
    str_at(obj, &["apiVersion"])
        .rsplit_once('/')
        .map_or("", |(group, _)| group)
}

fn object_namespace(obj: &Value) -> &str {
    str_at(obj, &["metadata", "namespace"])
}

fn str_at<'a>(obj: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .try_fold(obj, |v, k| v.get(k))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `a/b` with exactly one `/` (upstream: `strings.Split` must give two parts).
fn split_once_exact(part: &str) -> Option<(&str, &str)> {
    let (a, b) = part.split_once('/')?;
    (!b.contains('/')).then_some((a, b))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn id(app: &str, group: &str, kind: &str, namespace: &str, name: &str) -> TrackingId {
        TrackingId {
            app: app.into(),
            group: group.into(),
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    fn obj(
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        tracking: Option<&str>,
    ) -> Value {
        let mut o = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}});
        if let Some(ns) = namespace {
            o["metadata"]["namespace"] = json!(ns);
        }
        if let Some(t) = tracking {
            o["metadata"]["annotations"] = json!({ ANNOTATION_TRACKING_ID: t });
        }
        o
    }

    #[test]
    fn round_trip_format_then_parse() {
        let cases = [
            (
                "namespaced with group",
                id("guestbook", "apps", "Deployment", "prod", "web"),
            ),
            (
                "core group is empty",
                id("guestbook", "", "ConfigMap", "prod", "settings"),
            ),
            (
                "cluster scoped, empty namespace",
                id("guestbook", "rbac.authorization.k8s.io", "ClusterRole", "", "r"),
            ),
            (
                "name with colons",
                id(
                    "guestbook",
                    "rbac.authorization.k8s.io",
                    "ClusterRole",
                    "",
                    "system:agg:x",
                ),
            ),
            (
                "instance name ns_name",
                id("team_guestbook", "apps", "Deployment", "prod", "web"),
            ),
        ];
        for (case, want) in cases {
            let text = want.to_string();
            assert_eq!(TrackingId::parse(&text), Ok(want.clone()), "{case}: {text}");
            assert_eq!(
                text.parse::<TrackingId>().map(|t| t.to_string()),
                Ok(text.clone()),
                "{case}"
            );
        }
    }

    #[test]
    fn format_renders_exactly_as_upstream() {
        let cases = [
            (
                "apps group",
                id("app", "apps", "Deployment", "ns", "d"),
                "app:apps/Deployment:ns/d",
            ),
            (
                "core group",
                id("app", "", "Service", "ns", "s"),
                "app:/Service:ns/s",
            ),
            (
                "cluster scoped no dest ns",
                id("app", "", "Namespace", "", "ns1"),
                "app:/Namespace:/ns1",
            ),
        ];
        for (case, v, want) in cases {
            assert_eq!(v.to_string(), want, "{case}");
        }
    }

    #[test]
    fn parse_upstream_test_values() {
        assert_eq!(
            TrackingId::parse("app:<group>/<kind>:<namespace>/<name>"),
            Ok(id("app", "<group>", "<kind>", "<namespace>", "<name>"))
        );
        assert_eq!(
            TrackingId::parse("app:<group>/<kind>:<namespace>/<name>:<colon>"),
            Ok(id("app", "<group>", "<kind>", "<namespace>", "<name>:<colon>"))
        );
    }

    #[test]
    fn malformed_values_are_refused_with_a_reason() {
        type IsReason = fn(&TrackingError) -> bool;
        let cases: [(&str, &str, IsReason); 9] = [
            ("bare app name", "app", |e| {
                matches!(e, TrackingError::MissingParts { .. })
            }),
            ("old ';' format", "app;group/kind/ns", |e| {
                matches!(e, TrackingError::MissingParts { .. })
            }),
            ("only two parts", "app:apps/Deployment", |e| {
                matches!(e, TrackingError::MissingParts { .. })
            }),
            ("group/kind without slash", "app:Deployment:ns/d", |e| {
                matches!(e, TrackingError::GroupKind { .. })
            }),
            ("group/kind two slashes", "app:a/b/C:ns/d", |e| {
                matches!(e, TrackingError::GroupKind { .. })
            }),
            ("ns/name without slash", "app:apps/Deployment:d", |e| {
                matches!(e, TrackingError::NamespaceName { .. })
            }),
            ("ns/name two slashes", "app:apps/Deployment:a/b/c", |e| {
                matches!(e, TrackingError::NamespaceName { .. })
            }),
            ("empty app", ":apps/Deployment:ns/d", |e| {
                matches!(
                    e,
                    TrackingError::Empty {
                        field: "application name",
                        ..
                    }
                )
            }),
            ("empty kind", "app:apps/:ns/d", |e| {
                matches!(e, TrackingError::Empty { field: "kind", .. })
            }),
        ];
        for (case, value, is_reason) in cases {
            let err = TrackingId::parse(value).expect_err(case);
            assert!(is_reason(&err), "{case}: {err:?}");
            assert!(err.to_string().starts_with(WRONG_FORMAT), "{case}: {err}");
        }
        assert!(matches!(
            TrackingId::parse("app:apps/Deployment:ns/"),
            Err(TrackingError::Empty { field: "name", .. })
        ));
    }

    #[test]
    fn for_object_uses_object_namespace_or_destination() {
        let cases = [
            (
                "namespaced keeps own ns",
                obj("apps/v1", "Deployment", Some("a"), "d", None),
                "dest",
                "app:apps/Deployment:a/d",
            ),
            (
                "core group empty",
                obj("v1", "ConfigMap", Some("a"), "c", None),
                "dest",
                "app:/ConfigMap:a/c",
            ),
            (
                "no ns gets destination",
                obj("v1", "ConfigMap", None, "c", None),
                "dest",
                "app:/ConfigMap:dest/c",
            ),
            (
                "cluster scoped carries destination",
                obj("rbac.authorization.k8s.io/v1", "ClusterRole", None, "r", None),
                "dest",
                "app:rbac.authorization.k8s.io/ClusterRole:dest/r",
            ),
            (
                "cluster scoped, no destination",
                obj("rbac.authorization.k8s.io/v1", "ClusterRole", None, "r", None),
                "",
                "app:rbac.authorization.k8s.io/ClusterRole:/r",
            ),
        ];
        for (case, o, dest, want) in cases {
            assert_eq!(
                TrackingId::for_object(&o, "app", dest).to_string(),
                want,
                "{case}"
            );
        }
    }

    #[test]
    fn is_managed_by_rules() {
        let cases = [
            (
                "own id",
                obj(
                    "apps/v1",
                    "Deployment",
                    Some("ns"),
                    "d",
                    Some("app:apps/Deployment:ns/d"),
                ),
                true,
            ),
            (
                "other app",
                obj(
                    "apps/v1",
                    "Deployment",
                    Some("ns"),
                    "d",
                    Some("other:apps/Deployment:ns/d"),
                ),
                false,
            ),
            (
                "no annotation",
                obj("apps/v1", "Deployment", Some("ns"), "d", None),
                false,
            ),
            (
                "malformed",
                obj("apps/v1", "Deployment", Some("ns"), "d", Some("app")),
                false,
            ),
            (
                "copied: other name",
                obj(
                    "apps/v1",
                    "Deployment",
                    Some("ns"),
                    "copy",
                    Some("app:apps/Deployment:ns/d"),
                ),
                false,
            ),
            (
                "copied: other ns",
                obj(
                    "apps/v1",
                    "Deployment",
                    Some("ns2"),
                    "d",
                    Some("app:apps/Deployment:ns/d"),
                ),
                false,
            ),
            (
                "copied: other kind",
                obj(
                    "apps/v1",
                    "StatefulSet",
                    Some("ns"),
                    "d",
                    Some("app:apps/Deployment:ns/d"),
                ),
                false,
            ),
            (
                "copied: other group",
                obj(
                    "extensions/v1beta1",
                    "Deployment",
                    Some("ns"),
                    "d",
                    Some("app:apps/Deployment:ns/d"),
                ),
                false,
            ),
            (
                "core group",
                obj("v1", "ConfigMap", Some("ns"), "c", Some("app:/ConfigMap:ns/c")),
                true,
            ),
            (
                "cluster scoped with destination ns",
                obj(
                    "rbac.authorization.k8s.io/v1",
                    "ClusterRole",
                    None,
                    "r",
                    Some("app:rbac.authorization.k8s.io/ClusterRole:dest/r"),
                ),
                true,
            ),
            (
                "cluster scoped, empty ns",
                obj(
                    "rbac.authorization.k8s.io/v1",
                    "ClusterRole",
                    None,
                    "r",
                    Some("app:rbac.authorization.k8s.io/ClusterRole:/r"),
                ),
                true,
            ),
        ];
        for (case, o, want) in cases {
            assert_eq!(is_managed_by(&o, "app"), want, "{case}");
        }
    }

    #[test]
    fn installation_id_must_match() {
        let mut o = obj("v1", "ConfigMap", Some("ns"), "c", Some("app:/ConfigMap:ns/c"));
        assert!(is_managed_by_installation(&o, "app", ""), "none on either side");
        assert!(
            !is_managed_by_installation(&o, "app", "inst-1"),
            "we have one, the object none"
        );
        o["metadata"]["annotations"][ANNOTATION_INSTALLATION_ID] = json!("inst-1");
        assert!(
            is_managed_by_installation(&o, "app", "inst-1"),
            "same installation"
        );
        assert!(
            !is_managed_by_installation(&o, "app", "inst-2"),
            "other installation"
        );
        assert!(
            !is_managed_by(&o, "app"),
            "stamped object is foreign to an installation without id"
        );
    }

    #[test]
    fn set_tracking_writes_annotations() {
        let mut o = obj("apps/v1", "Deployment", None, "d", None);
        set_tracking(&mut o, "app", "dest", "inst");
        assert_eq!(
            o["metadata"]["annotations"][ANNOTATION_TRACKING_ID],
            json!("app:apps/Deployment:dest/d")
        );
        assert_eq!(
            o["metadata"]["annotations"][ANNOTATION_INSTALLATION_ID],
            json!("inst")
        );
        set_tracking(&mut o, "app", "dest", "");
        assert!(
            o["metadata"]["annotations"]
                .get(ANNOTATION_INSTALLATION_ID)
                .is_none(),
            "stale id removed"
        );
        o["metadata"]["namespace"] = json!("dest");
        assert!(is_managed_by(&o, "app"), "a written id names its object");
    }

    #[test]
    fn instance_name_rules() {
        let cases = [
            (
                "control-plane namespace",
                "guestbook",
                "argocd",
                "argocd",
                "guestbook",
            ),
            ("no namespace", "guestbook", "", "argocd", "guestbook"),
            ("other namespace", "guestbook", "team", "argocd", "team_guestbook"),
        ];
        for (case, name, ns, cp, want) in cases {
            assert_eq!(instance_name(name, ns, cp), want, "{case}");
        }
    }

    #[test]
    fn constants_are_argo_cds() {
        assert_eq!(ANNOTATION_TRACKING_ID, "argocd.argoproj.io/tracking-id");
        assert_eq!(ANNOTATION_INSTALLATION_ID, "argocd.argoproj.io/installation-id");
        assert_eq!(FIELD_MANAGER, "argocd-controller");
        assert_eq!(object_group(&json!({"apiVersion": "v1"})), "");
        assert_eq!(object_group(&json!({"apiVersion": "apps/v1"})), "apps");
    }
}

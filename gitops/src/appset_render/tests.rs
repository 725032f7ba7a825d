use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};
use sluice_crds::application::Application;
use sluice_crds::applicationset::ApplicationSetCondition;

use super::*;

fn params(value: Value) -> Params {
    match value {
        Value::Object(map) => map,
        other => panic!("params must be an object, got {other}"),
    }
}

/// Renders one string template.
fn render_str(template: &str, params: &Params, go: bool, options: &[&str]) -> Result<String, String> {
    let options: Vec<String> = options.iter().map(|o| o.to_string()).collect();
    match render(&json!(template), params, go, &options)? {
        Value::String(s) => Ok(s),
        other => panic!("rendered a string into {other}"),
    }
}

// ------------------------------------------------------------------------------------------------------
// fasttemplate
// ------------------------------------------------------------------------------------------------------

#[test]
fn fasttemplate_tags() {
    let p = params(json!({
        "path.basename": "app1",
        "cluster": "in-cluster",
        "quoted": "say \"hi\" \\ bye",
        "replicas": 3,
    }));
    let cases: &[(&str, &str)] = &[
        ("{{path.basename}}", "app1"),
        ("{{ path.basename }}-{{cluster}}", "app1-in-cluster"),
        ("{{unknown}}", "{{unknown}}"),
        ("x-{{ unknown }}-y", "x-{{ unknown }}-y"),
        ("{{}}", "{{}}"),
        ("{{   }}", "{{   }}"),
        ("{{ {{cluster}} }}", "{{ {{cluster}} }}"),
        ("{{replicas}}", "{{replicas}}"),
        ("{{quoted}}", "say \"hi\" \\ bye"),
        ("no tags", "no tags"),
        ("a {{\ncluster}}", "a {{\ncluster}}"),
        ("{{.cluster}}", "{{.cluster}}"),
    ];
    for (template, want) in cases {
        assert_eq!(
            render_str(template, &p, false, &[]).as_deref(),
            Ok(*want),
            "{template}"
        );
    }
}

#[test]
fn fasttemplate_unclosed_tag_is_an_error() {
    let p = params(json!({"a": "x"}));
    let err = render_str("{{a}} {{b", &p, false, &[]).unwrap_err();
    assert!(err.contains("cannot find end tag"), "{err}");
}

#[test]
fn fasttemplate_quotes_and_backslashes_stay_valid_json() {
    let p = params(json!({"v": "a\"b\\c\n'd'"}));
    let out = render(
        &json!({"spec": {"source": {"path": "dir/{{v}}"}}}),
        &p,
        false,
        &[],
    )
    .unwrap();
    let text = serde_json::to_string(&out).unwrap();
    let back: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(back["spec"]["source"]["path"], "dir/a\"b\\c\n'd'");
}

#[test]
fn render_walks_keys_keeps_non_strings_and_drops_nulls() {
    let p = params(json!({"key": "team", "value": "payments"}));
    let template = json!({
        "metadata": {"labels": {"{{key}}": "{{value}}"}, "annotations": null},
        "spec": {"revisionHistoryLimit": 3, "syncPolicy": {"automated": {"prune": true}}, "info": [{"name": "{{key}}"}]},
    });
    let out = render(&template, &p, false, &[]).unwrap();
    assert_eq!(
        out,
        json!({
            "metadata": {"labels": {"team": "payments"}},
            "spec": {"revisionHistoryLimit": 3, "syncPolicy": {"automated": {"prune": true}}, "info": [{"name": "team"}]},
        })
    );
}

#[test]
fn render_without_parameters_returns_the_template() {
    let template = json!({"metadata": {"name": "{{name}}", "x": null}});
    assert_eq!(render(&template, &Params::new(), true, &[]).unwrap(), template);
}

// ------------------------------------------------------------------------------------------------------
// goTemplate
// ------------------------------------------------------------------------------------------------------

fn go_params() -> Params {
    params(json!({
        "name": "Guest Book",
        "path": {"path": "apps/app1", "basename": "app1", "segments": ["apps", "app1"]},
        "values": {"env": "prod"},
        "replicas": 1000000,
        "ratio": 0.5,
        "list": ["a", "b", null, "c"],
        "cluster": "My_Cluster.Prod!",
        "flag": true,
        "empty": "",
    }))
}

#[test]
fn go_template_expressions() {
    let p = go_params();
    let cases: &[(&str, &str)] = &[
        ("{{.path.basename}}", "app1"),
        ("{{ .path.basename }}-{{ .values.env }}", "app1-prod"),
        ("{{ .name | upper }}", "GUEST BOOK"),
        ("{{ .name | lower | replace \" \" \"-\" }}", "guest-book"),
        ("{{ index .path.segments 1 }}", "app1"),
        (
            "{{ if eq .values.env \"prod\" }}big{{ else }}small{{ end }}",
            "big",
        ),
        ("{{ if .values.missing }}yes{{ else }}no{{ end }}", "no"),
        ("{{ default \"x\" .values.foo }}", "x"),
        ("{{ .values.foo | default \"y\" }}", "y"),
        ("{{ .empty | default \"z\" }}", "z"),
        ("{{ .values.env | default \"z\" }}", "prod"),
        ("{{ printf \"%s-%d\" .path.basename 3 }}", "app1-3"),
        ("{{ .replicas }}", "1000000"),
        ("{{ .ratio }}", "0.5"),
        ("{{ .flag }}", "true"),
        ("{{ range .path.segments }}[{{ . }}]{{ end }}", "[apps][app1]"),
        ("{{- \" padded \" | trim -}}", "padded"),
        ("{{ .values.missing }}", "<no value>"),
        ("{{ len .path.segments }}", "2"),
        ("plain text", "plain text"),
    ];
    for (template, want) in cases {
        assert_eq!(
            render_str(template, &p, true, &[]).as_deref(),
            Ok(*want),
            "{template}"
        );
    }
}

#[test]
fn go_template_sprig_functions() {
    let p = go_params();
    let cases: &[(&str, &str)] = &[
        ("{{ title \"hello wide-world\" }}", "Hello Wide-World"),
        ("{{ trimPrefix \"apps/\" .path.path }}", "app1"),
        ("{{ trimSuffix \"1\" .path.basename }}", "app"),
        ("{{ trimAll \"-\" \"--x--\" }}", "x"),
        ("{{ trunc 3 .path.basename }}", "app"),
        ("{{ trunc -2 .path.basename }}", "p1"),
        ("{{ trunc 10 .path.basename }}", "app1"),
        ("{{ quote .path.basename }}", "\"app1\""),
        ("{{ quote \"a\\\"b\\\\c\" }}", "\"a\\\"b\\\\c\""),
        ("{{ quote .values.missing }}", ""),
        ("{{ squote .path.basename }}", "'app1'"),
        ("{{ if contains \"pp\" .path.basename }}y{{ end }}", "y"),
        ("{{ if hasPrefix \"apps\" .path.path }}y{{ end }}", "y"),
        ("{{ if hasSuffix \"app1\" .path.path }}y{{ end }}", "y"),
        ("{{ join \",\" .list }}", "a,b,c"),
        ("{{ join \",\" (splitList \"/\" .path.path) }}", "apps,app1"),
        ("{{ (split \"/\" .path.path)._1 }}", "app1"),
        ("{{ toJson .values }}", "{\"env\":\"prod\"}"),
        ("{{ toJson \"<&>\" }}", "\"\\u003c\\u0026\\u003e\""),
        ("{{ toYaml .values }}", "env: prod"),
        ("{{ (fromYaml \"a: 1\").a }}", "1"),
        ("{{ (fromJson \"{\\\"a\\\": [1, 2]}\").a }}", "[1 2]"),
        ("{{ b64enc \"app1\" }}", "YXBwMQ=="),
        ("{{ b64dec \"YXBwMQ==\" }}", "app1"),
        (
            "{{ sha256sum \"a\" }}",
            "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",
        ),
        ("{{ ternary \"on\" \"off\" .flag }}", "on"),
        ("{{ coalesce .values.missing .empty \"third\" }}", "third"),
        ("{{ empty .empty }} {{ empty .path }}", "true false"),
        ("{{ toJson (dict \"a\" 1 \"b\") }}", "{\"a\":1,\"b\":\"\"}"),
        ("{{ toJson (list 1 \"x\") }}", "[1,\"x\"]"),
        ("{{ repeat 3 \"ab\" }}", "ababab"),
        ("{{ nospace \"a b\\tc\" }}", "abc"),
        ("{{ toString .replicas }}", "1000000"),
        ("{{ add1 }}", "ERR"),
    ];
    for (template, want) in cases {
        let got = render_str(template, &p, true, &[]);
        if *want == "ERR" {
            assert!(got.is_err(), "{template}: {got:?}");
        } else {
            assert_eq!(got.as_deref(), Ok(*want), "{template}");
        }
    }
}

#[test]
fn go_template_lists_dicts_numbers_regexps() {
    let p = go_params();
    let cases: &[(&str, &str)] = &[
        ("{{ .values | toYaml | nindent 2 }}", "\n  env: prod"),
        ("{{ indent 2 \"a\\nb\" }}", "  a\n  b"),
        ("{{ cat \"a\" .values.missing 1 }}", "a 1"),
        (
            "{{ first .path.segments }}/{{ last .path.segments }}",
            "apps/app1",
        ),
        (
            "{{ has \"app1\" .path.segments }} {{ has \"x\" .path.segments }}",
            "true false",
        ),
        (
            "{{ hasKey .values \"env\" }} {{ hasKey .values \"nope\" }}",
            "true false",
        ),
        ("{{ get .values \"env\" }}[{{ get .values \"nope\" }}]", "prod[]"),
        ("{{ join \",\" (keys .path) }}", "basename,path,segments"),
        ("{{ add 1 2 .replicas }}", "1000003"),
        ("{{ sub .replicas 1 }}", "999999"),
        ("{{ int \"42\" }} {{ int .ratio }}", "42 0"),
        (
            "{{ if regexMatch \"^app[0-9]+$\" .path.basename }}y{{ end }}",
            "y",
        ),
        ("{{ regexFind \"[0-9]+\" .path.path }}", "1"),
        ("{{ regexFindAll \"[a-z]\" \"abc\" 2 }}", "[a b]"),
        (
            "{{ regexReplaceAll \"(a)(p+)\" .path.basename \"${2}$1\" }}",
            "ppa1",
        ),
        (
            "{{ regexReplaceAllLiteral \"a\" .path.basename \"$1\" }}",
            "$1pp1",
        ),
        ("{{ regexSplit \"/\" .path.path -1 }}", "[apps app1]"),
        ("{{ regexSplit \"/\" .path.path 0 }}", "[]"),
        ("{{ regexMatch \"(\" \"x\" }}", "ERR"),
        ("{{ get .name \"x\" }}", "ERR"),
    ];
    for (template, want) in cases {
        let got = render_str(template, &p, true, &[]);
        if *want == "ERR" {
            assert!(got.is_err(), "{template}: {got:?}");
        } else {
            assert_eq!(got.as_deref(), Ok(*want), "{template}");
        }
    }
}

#[test]
fn go_template_yaml_helpers_as_upstream_tests_them() {
    let p = params(json!({
        "foo": {"bar": {"bool": true, "number": 2, "str": "Hello world"}},
        "value": "hello: world",
        "list": "- hello world\n- bonjour tout le monde",
        "broken": "non\n compliant\n yaml",
    }));
    let cases: &[(&str, Result<&str, &str>)] = &[
        (
            "{{ toYaml .foo | indent 2 }}",
            Ok("  bar:\n    bool: true\n    number: 2\n    str: Hello world"),
        ),
        ("{{ get (fromYaml .value) \"hello\" }}", Ok("world")),
        ("{{ fromYamlArray .list | last }}", Ok("bonjour tout le monde")),
        (
            "{{ get (fromYaml .broken) \"hello\" }}",
            Err("error calling fromYaml: cannot unmarshal a string"),
        ),
        (
            "{{ fromYamlArray .broken | last }}",
            Err("error calling fromYamlArray: cannot unmarshal a string"),
        ),
    ];
    for (template, want) in cases {
        let got = render_str(template, &p, true, &[]);
        match want {
            Ok(want) => assert_eq!(got.as_deref(), Ok(*want), "{template}"),
            Err(part) => assert!(got.as_ref().unwrap_err().contains(part), "{template}: {got:?}"),
        }
    }
}

#[test]
fn go_template_normalize_and_slugify() {
    let p = go_params();
    let cases: &[(&str, &str)] = &[
        ("{{ normalize .cluster }}", "my-cluster.prod"),
        ("{{ .cluster | normalize }}", "my-cluster.prod"),
        ("{{ normalize \"--Hello.World--\" }}", "hello.world"),
        ("{{ slugify .cluster }}", "my-cluster-prod"),
        ("{{ slugify \"Hello, World! Foo\" }}", "hello-world-foo"),
        ("{{ slugify 12 true \"alpha-beta-gamma-delta\" }}", "alpha-beta"),
        (
            "{{ slugify 12 false \"alpha-beta-gamma-delta\" }}",
            "alpha-beta-g",
        ),
        ("{{ slugify 5 \"abcdefghij\" }}", "abcde"),
        ("{{ slugify 0 \"abc-def\" }}", "abc-def"),
    ];
    for (template, want) in cases {
        assert_eq!(
            render_str(template, &p, true, &[]).as_deref(),
            Ok(*want),
            "{template}"
        );
    }
}

#[test]
fn normalize_and_slugify_functions() {
    assert_eq!(normalize("Über_Cluster"), "ber-cluster");
    assert_eq!(normalize(&"a".repeat(300)).len(), 253);
    assert_eq!(normalize("..x.."), "x");
    assert_eq!(slugify("a.b..c", 50, true), "a-b-c");
    assert_eq!(slugify("abc", 0, false), "");
    assert_eq!(slugify(&"abc-".repeat(30), 50, true).len(), 47);
}

#[test]
fn go_template_missing_key_options() {
    let p = go_params();
    let cases: &[(&str, &[&str], Result<&str, &str>)] = &[
        ("{{ .foo }}", &[], Ok("<no value>")),
        ("{{ .foo }}", &["missingkey=default"], Ok("<no value>")),
        ("{{ .foo }}", &["missingkey=invalid"], Ok("<no value>")),
        ("{{ .foo }}", &["missingkey=zero"], Ok("<no value>")),
        (
            "{{ .foo }}",
            &["missingkey=error"],
            Err("map has no entry for key \"foo\""),
        ),
        (
            "a\n{{ .path.nope }}",
            &["missingkey=error"],
            Err("template: :2:8: executing \"\" at <.path.nope>"),
        ),
        ("{{ .path.basename }}", &["missingkey=error"], Ok("app1")),
        (
            "{{ .foo }}",
            &["missingkey=bogus"],
            Err("invalid goTemplateOptions entry \"missingkey=bogus\""),
        ),
        ("{{ .foo }}", &["strict"], Err("unrecognized option")),
    ];
    for (template, options, want) in cases {
        let got = render_str(template, &p, true, options);
        match want {
            Ok(want) => assert_eq!(got.as_deref(), Ok(*want), "{template} {options:?}"),
            Err(part) => {
                let err = got.unwrap_err();
                assert!(err.contains(part), "{template} {options:?}: {err}");
            }
        }
    }
    let err = render_str("{{ .foo }}", &p, true, &["missingkey=error"]).unwrap_err();
    assert!(
        err.starts_with("failed to execute go template {{ .foo }}: "),
        "{err}"
    );
}

#[test]
fn go_template_errors_name_the_template() {
    let p = go_params();
    let cases: &[(&str, &str)] = &[
        (
            "{{ .name",
            "failed to parse template {{ .name: template: 1:9: unclosed action",
        ),
        ("{{ nofunc .name }}", "nofunc"),
        (
            "{{functiondoesnotexist}}",
            "failed to parse template {{functiondoesnotexist}}: template: :1: function \"functiondoesnotexist\" not defined",
        ),
        (
            "{{ if false }}\n{{ nofunc }}{{ end }}",
            "template: :2: function \"nofunc\" not defined",
        ),
        (
            "{{ define \"x\" }}{{ nofunc }}{{ end }}",
            "function \"nofunc\" not defined",
        ),
        (
            "{{ .name | upper | (nofunc) }}",
            "function \"nofunc\" not defined",
        ),
        (
            "{{ upper .replicas }}",
            "wrong type for value; expected string; got int",
        ),
        ("{{ upper .values.missing }}", "invalid value; expected string"),
        (
            "{{ index .path.segments 5 }}",
            "failed to execute go template {{ index .path.segments 5 }}",
        ),
        ("{{ ternary 1 2 \"x\" }}", "expected bool"),
    ];
    for (template, part) in cases {
        let err = render_str(template, &p, true, &[]).unwrap_err();
        assert!(err.contains(part), "{template}: {err}");
    }
}

#[test]
fn go_template_limits_for_user_input() {
    let p = go_params();
    let err = render_str("{{ range 200000 }}x{{ end }}", &p, true, &[]).unwrap_err();
    assert!(err.contains("range iteration budget"), "{err}");
    let err = render_str("{{ repeat 100000000 \"ab\" }}", &p, true, &[]).unwrap_err();
    assert!(err.contains("would exceed"), "{err}");
    assert_eq!(
        render_str("{{ range 3 }}x{{ end }}", &p, true, &[]).as_deref(),
        Ok("xxx")
    );
}

/// Pseudo-random templates from the pieces template syntax is made of: rendering never panics, text without
/// `{{` is kept in both modes, and fasttemplate never writes more tags than it was given.
#[test]
fn random_templates_never_panic() {
    const PIECES: [&str; 16] = [
        "{{", "}}", ".", "path", "name", " ", "|", "\"", "\n", "-", "(", ")", "upper", "$x := ", "end", "{{-",
    ];
    let fast = params(json!({"name": "n", "path": "p"}));
    let go = go_params();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..3000 {
        let mut template = String::new();
        for _ in 0..(state % 12) {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            template.push_str(PIECES[(state >> 33) as usize % PIECES.len()]);
        }
        let fast_out = render_str(&template, &fast, false, &[]);
        let go_out = render_str(&template, &go, true, &["missingkey=error"]);
        if !template.contains("{{") {
            assert_eq!(fast_out.as_deref(), Ok(template.as_str()));
            assert_eq!(go_out.as_deref(), Ok(template.as_str()));
        }
        if let Ok(out) = fast_out {
            assert!(
                out.matches("{{").count() <= template.matches("{{").count(),
                "{template:?}"
            );
        }
    }
}

// ------------------------------------------------------------------------------------------------------
// application and templatePatch
// ------------------------------------------------------------------------------------------------------

fn appset_template() -> Value {
    json!({
        "metadata": {"name": "{{.name}}-guestbook", "namespace": "elsewhere", "labels": {"env": "{{.env}}"}},
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://git.example/apps.git", "targetRevision": "HEAD", "path": "guestbook/{{.env}}"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "{{.name}}"},
        },
    })
}

fn render_app(patch: Option<&str>, p: &Params) -> Result<Application, String> {
    application("guestbook", "argocd", &appset_template(), patch, p, true, &[])
}

#[test]
fn application_renders_and_takes_the_appset_namespace() {
    let p = params(json!({"name": "east", "env": "prod"}));
    let app = render_app(None, &p).unwrap();
    assert_eq!(app.metadata.name.as_deref(), Some("east-guestbook"));
    assert_eq!(app.metadata.namespace.as_deref(), Some("argocd"));
    assert_eq!(app.metadata.labels.unwrap()["env"], "prod");
    let source = app.spec.source.unwrap();
    assert_eq!(source.path.as_deref(), Some("guestbook/prod"));
    assert_eq!(app.spec.destination.namespace.as_deref(), Some("east"));
    assert!(
        app.metadata.finalizers.is_none(),
        "the resources finalizer is the plan's"
    );
}

#[test]
fn application_errors() {
    let p = params(json!({"name": "", "env": "prod"}));
    let empty = application(
        "guestbook",
        "argocd",
        &json!({"metadata": {"name": "{{.name}}"}, "spec": appset_template()["spec"]}),
        None,
        &p,
        true,
        &[],
    )
    .unwrap_err();
    assert!(empty.contains("empty name"), "{empty}");
    let bad = application(
        "guestbook",
        "argocd",
        &json!({"metadata": {"name": "x"}}),
        None,
        &p,
        true,
        &[],
    )
    .unwrap_err();
    assert!(
        bad.contains("ApplicationSet guestbook") && bad.contains("spec"),
        "{bad}"
    );
}

#[test]
fn template_patch_yaml_and_json() {
    let yaml = r#"
metadata:
  annotations:
    owner: "{{ .name }}"
spec:
  source:
    helm:
      valueFiles:
        - values.{{ .env }}.yaml
        - values.big.yaml
  syncPolicy:
    automated:
      prune: true
"#;
    let json_patch = r#"{"metadata": {"annotations": {"owner": "{{ .name }}"}}, "spec": {"source": {"helm": {"valueFiles": ["values.{{ .env }}.yaml", "values.big.yaml"]}}, "syncPolicy": {"automated": {"prune": true}}}}"#;
    let p = params(json!({"name": "east", "env": "prod"}));
    for patch in [yaml, json_patch] {
        let app = render_app(Some(patch), &p).unwrap();
        assert_eq!(app.metadata.annotations.as_ref().unwrap()["owner"], "east");
        let source = app.spec.source.as_ref().unwrap();
        let files = source.helm.as_ref().unwrap().value_files.clone().unwrap();
        assert_eq!(files, vec!["values.prod.yaml", "values.big.yaml"]);
        assert_eq!(
            source.path.as_deref(),
            Some("guestbook/prod"),
            "merged, not replaced"
        );
        let automated = app.spec.sync_policy.as_ref().unwrap().automated.as_ref().unwrap();
        assert_eq!(automated.prune, Some(true));
    }
}

#[test]
fn template_patch_semantics() {
    let p = params(json!({"name": "east", "env": "prod"}));
    let cases: &[(&str, &str)] = &[
        ("spec:\n  project: other\n", "project"),
        ("metadata:\n  finalizers: [a, b]\n", "finalizers"),
        ("{{ if eq .env \"dev\" }}spec:\n  project: x{{ end }}", "empty"),
        ("metadata:\n  labels:\n    env: null\n", "delete"),
    ];
    for (patch, case) in cases {
        let app = render_app(Some(patch), &p).unwrap();
        match *case {
            "project" => assert_eq!(app.spec.project, "default", "a patch cannot change the project"),
            "finalizers" => assert_eq!(app.metadata.finalizers.unwrap(), vec!["a", "b"]),
            "empty" => assert_eq!(app, render_app(None, &p).unwrap()),
            "delete" => assert!(app.metadata.labels.unwrap_or_default().is_empty()),
            _ => unreachable!(),
        }
    }
    let template = json!({"metadata": {"name": "x", "finalizers": ["a"]}, "spec": appset_template()["spec"]});
    let app = application(
        "s",
        "argocd",
        &template,
        Some("metadata:\n  finalizers: [b, a]"),
        &p,
        true,
        &[],
    )
    .unwrap();
    assert_eq!(
        app.metadata.finalizers.unwrap(),
        vec!["a", "b"],
        "finalizers merge as a set"
    );
}

#[test]
fn template_patch_errors() {
    let p = params(json!({"name": "east", "env": "prod"}));
    let cases: &[(&str, &str)] = &[
        ("hello world", "invalid templatePatch \"hello world\""),
        ("{ not json", "error while converting template to json"),
        (
            "{{ .name",
            "error replacing values in templatePatch: failed to parse template",
        ),
        ("spec:\n  revisionHistoryLimit: lots\n", "is not an Application"),
    ];
    for (patch, part) in cases {
        let err = render_app(Some(patch), &p).unwrap_err();
        assert!(err.contains(part), "{patch}: {err}");
    }
}

// ------------------------------------------------------------------------------------------------------
// plan
// ------------------------------------------------------------------------------------------------------

fn app(name: &str, path: &str) -> Application {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://git.example/apps.git", "path": path},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": name},
        },
    }))
    .unwrap()
}

/// What the API server holds after a create: the written object plus server fields and status.
fn stored(mut app: Application) -> Application {
    app.metadata.resource_version = Some("42".into());
    app.metadata.uid = Some("uid-1".into());
    app.status = Some(Default::default());
    app
}

fn policy(sync: ApplicationsSync) -> Policy {
    Policy {
        application_set: "guestbook".into(),
        sync,
        ..Policy::default()
    }
}

fn summary(actions: &[AppAction]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            AppAction::Create(app) => format!("create {}", app.metadata.name.as_deref().unwrap()),
            AppAction::Update { name, .. } => format!("update {name}"),
            AppAction::Delete { name, keep_resources } => format!("delete {name} keep={keep_resources}"),
        })
        .collect()
}

#[test]
fn plan_follows_the_sync_policy() {
    let desired = [app("a", "new"), app("b", "changed")];
    let existing = [stored(app("b", "old")), stored(app("c", "gone"))];
    let cases: &[(ApplicationsSync, &[&str])] = &[
        (
            ApplicationsSync::Sync,
            &["create a", "update b", "delete c keep=false"],
        ),
        (ApplicationsSync::CreateUpdate, &["create a", "update b"]),
        (
            ApplicationsSync::CreateDelete,
            &["create a", "delete c keep=false"],
        ),
        (ApplicationsSync::CreateOnly, &["create a"]),
    ];
    for (sync, want) in cases {
        let actions = plan(&desired, &existing, policy(*sync)).unwrap();
        assert_eq!(summary(&actions), *want, "{}", sync.as_str());
    }
}

#[test]
fn plan_adds_the_resources_finalizer_unless_resources_are_preserved() {
    type Finalizers = Option<Vec<&'static str>>;
    const BACKGROUND: &str = "resources-finalizer.argocd.argoproj.io/background";
    let cases: &[(bool, Finalizers, Finalizers)] = &[
        (false, None, Some(vec![RESOURCES_FINALIZER])),
        (true, None, None),
        (false, Some(vec!["custom"]), Some(vec!["custom"])),
        (false, Some(vec![]), Some(vec![RESOURCES_FINALIZER])),
        (false, Some(vec![BACKGROUND]), Some(vec![BACKGROUND])),
        (true, Some(vec![BACKGROUND]), Some(vec![BACKGROUND])),
    ];
    for (preserve, template, want) in cases {
        let mut desired = app("a", "p");
        desired.metadata.finalizers = template
            .as_ref()
            .map(|f| f.iter().map(|s| s.to_string()).collect());
        let mut pol = policy(ApplicationsSync::Sync);
        pol.preserve_resources_on_deletion = *preserve;
        let actions = plan(&[desired], &[stored(app("old", "p"))], pol).unwrap();
        let AppAction::Create(created) = &actions[0] else {
            panic!("{actions:?}")
        };
        let want: Option<Vec<String>> = want.as_ref().map(|f| f.iter().map(|s| s.to_string()).collect());
        assert_eq!(created.metadata.finalizers, want, "preserve={preserve}");
        assert_eq!(
            actions[1],
            AppAction::Delete {
                name: "old".into(),
                keep_resources: *preserve
            }
        );
    }
}

#[test]
fn plan_steady_state_writes_nothing() {
    let desired = [app("a", "p"), app("b", "q")];
    let pol = policy(ApplicationsSync::Sync);
    let first = plan(&desired, &[], pol.clone()).unwrap();
    let existing: Vec<Application> = first
        .into_iter()
        .map(|a| match a {
            AppAction::Create(app) => stored(app),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(plan(&desired, &existing, pol.clone()).unwrap(), vec![]);

    // An update, once stored, is steady too.
    let changed = [app("a", "p2"), app("b", "q")];
    let actions = plan(&changed, &existing, pol.clone()).unwrap();
    let AppAction::Update { app: updated, .. } = &actions[0] else {
        panic!("{actions:?}")
    };
    assert_eq!(
        updated.metadata.resource_version.as_deref(),
        Some("42"),
        "the live metadata is kept"
    );
    assert!(updated.status.is_some(), "the live status is kept");
    let existing = [updated.clone(), existing[1].clone()];
    assert_eq!(plan(&changed, &existing, pol).unwrap(), vec![]);
}

#[test]
fn plan_normalizes_specs_before_comparing() {
    let mut desired = app("a", "p");
    desired.spec.project = String::new();
    desired.spec.sync_policy = Some(Default::default());
    desired.spec.source.as_mut().unwrap().helm = Some(Default::default());
    let mut live = stored(app("a", "p"));
    live.metadata.finalizers = Some(vec![RESOURCES_FINALIZER.into()]);
    live.metadata.annotations = Some(Default::default());
    assert_eq!(
        plan(&[desired], &[live], policy(ApplicationsSync::Sync)).unwrap(),
        vec![]
    );
}

#[test]
fn plan_preserves_annotations_labels_and_hook_finalizers() {
    let mut desired = app("a", "p");
    desired.metadata.annotations = Some([("team".to_string(), "new".to_string())].into());
    desired.metadata.labels = Some([("env".to_string(), "prod".to_string())].into());
    let mut live = stored(app("a", "p"));
    live.metadata.annotations = Some(
        [
            (ANNOTATION_REFRESH, "hard"),
            (ANNOTATION_NOTIFIED, "{}"),
            ("team", "old"),
            ("keep-me", "1"),
            ("drop-me", "2"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into(),
    );
    live.metadata.labels = Some(
        [("pinned", "yes"), ("stray", "x")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
    );
    live.metadata.finalizers = Some(vec![
        RESOURCES_FINALIZER.to_string(),
        format!("{POST_DELETE_FINALIZER}/cleanup"),
        "someone-else".to_string(),
    ]);
    let mut pol = policy(ApplicationsSync::Sync);
    pol.preserved_annotations = vec!["keep-me".into(), "team".into()];
    pol.preserved_labels = vec!["pinned".into()];
    let actions = plan(&[desired], &[live], pol).unwrap();
    let [AppAction::Update { name, app }] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    assert_eq!(name, "a");
    let annotations = app.metadata.annotations.clone().unwrap();
    let keys: Vec<&str> = annotations.keys().map(String::as_str).collect();
    assert_eq!(keys, [ANNOTATION_REFRESH, "keep-me", ANNOTATION_NOTIFIED, "team"]);
    assert_eq!(
        annotations["team"], "old",
        "a preserved annotation keeps its live value"
    );
    let labels = app.metadata.labels.clone().unwrap();
    assert_eq!(labels.keys().collect::<Vec<_>>(), ["env", "pinned"]);
    let finalizers = app.metadata.finalizers.clone().unwrap();
    assert_eq!(
        finalizers,
        vec![
            RESOURCES_FINALIZER.to_string(),
            format!("{POST_DELETE_FINALIZER}/cleanup")
        ]
    );
}

#[test]
fn plan_rejects_duplicate_names() {
    let cases: &[(&[&str], Option<&str>)] = &[
        (&["a", "b"], None),
        (
            &["a", "a"],
            Some("ApplicationSet guestbook contains applications with duplicate name: a"),
        ),
        (
            &["a", "b", "a", "b"],
            Some("ApplicationSet guestbook contains applications with duplicate name: a (and 1 more)"),
        ),
    ];
    for (names, want) in cases {
        let desired: Vec<Application> = names.iter().map(|n| app(n, "p")).collect();
        let got = plan(&desired, &[], policy(ApplicationsSync::Sync));
        match want {
            None => assert!(got.is_ok(), "{names:?}"),
            Some(message) => assert_eq!(got.unwrap_err(), *message),
        }
    }
}

#[test]
fn applications_sync_parses_by_name() {
    let cases: &[(&str, Option<ApplicationsSync>)] = &[
        ("create-only", Some(ApplicationsSync::CreateOnly)),
        ("create-update", Some(ApplicationsSync::CreateUpdate)),
        ("create-delete", Some(ApplicationsSync::CreateDelete)),
        ("sync", Some(ApplicationsSync::Sync)),
        ("", Some(ApplicationsSync::Sync)),
        ("Sync", None),
        ("delete-all", None),
    ];
    for (name, want) in cases {
        let got = name.parse::<ApplicationsSync>();
        match want {
            Some(policy) => {
                assert_eq!(got.as_ref(), Ok(policy), "{name}");
                if !name.is_empty() {
                    assert_eq!(policy.as_str(), *name);
                }
            }
            None => assert!(got.unwrap_err().contains("is not supported"), "{name}"),
        }
    }
}

#[test]
fn resources_finalizer_variants() {
    let cases = [
        (RESOURCES_FINALIZER, true),
        ("resources-finalizer.argocd.argoproj.io/foreground", true),
        ("resources-finalizer.argocd.argoproj.io/background", true),
        ("resources-finalizer.argocd.argoproj.iox", false),
        ("post-delete-finalizer.argocd.argoproj.io", false),
    ];
    for (finalizer, want) in cases {
        assert_eq!(is_resources_finalizer(finalizer), want, "{finalizer}");
    }
}

// ------------------------------------------------------------------------------------------------------
// conditions
// ------------------------------------------------------------------------------------------------------

fn at(second: i64) -> Time {
    Time(jiff::Timestamp::from_second(1_767_225_600 + second).unwrap())
}

type Row = (String, String, String, String, Option<i64>);

fn brief(conditions: &[ApplicationSetCondition]) -> Vec<Row> {
    conditions
        .iter()
        .map(|c| {
            (
                c.type_.clone(),
                c.status.clone(),
                c.reason.clone(),
                c.message.clone(),
                c.last_transition_time
                    .as_ref()
                    .map(|t| t.0.as_second() - 1_767_225_600),
            )
        })
        .collect()
}

fn row(t: &str, s: &str, r: &str, m: &str, second: i64) -> Row {
    (t.into(), s.into(), r.into(), m.into(), Some(second))
}

#[test]
fn conditions_flip_and_keep_transition_times() {
    let ok = "All applications have been generated successfully";
    let params_ok = "Successfully generated parameters for all Applications";
    let t1 = conditions(&Outcome::UpToDate, &[], &at(1));
    assert_eq!(
        brief(&t1),
        [
            row("ErrorOccurred", "False", "ApplicationSetUpToDate", ok, 1),
            row("ParametersGenerated", "True", "ParametersGenerated", params_ok, 1),
            row("ResourcesUpToDate", "True", "ApplicationSetUpToDate", ok, 1),
        ]
    );
    assert_eq!(
        conditions(&Outcome::UpToDate, &t1, &at(2)),
        t1,
        "an unchanged outcome changes nothing"
    );

    let render_error = Outcome::Failed {
        reason: Reason::RenderTemplateParamsError,
        message: "failed to execute go template".into(),
    };
    let t3 = conditions(&render_error, &t1, &at(3));
    let failed = "failed to execute go template";
    assert_eq!(
        brief(&t3),
        [
            row("ErrorOccurred", "True", "RenderTemplateParamsError", failed, 3),
            row("ParametersGenerated", "False", "ErrorOccurred", failed, 3),
            row(
                "ResourcesUpToDate",
                "False",
                "RenderTemplateParamsError",
                failed,
                3
            ),
        ]
    );

    let create_error = Outcome::Failed {
        reason: Reason::CreateApplicationError,
        message: "forbidden".into(),
    };
    let t4 = conditions(&create_error, &t3, &at(4));
    assert_eq!(
        brief(&t4),
        [
            row("ErrorOccurred", "True", "CreateApplicationError", "forbidden", 3),
            row("ParametersGenerated", "True", "ParametersGenerated", params_ok, 4),
            row(
                "ResourcesUpToDate",
                "False",
                "CreateApplicationError",
                "forbidden",
                3
            ),
        ]
    );

    let t5 = conditions(&Outcome::UpToDate, &t4, &at(5));
    assert_eq!(
        brief(&t5),
        [
            row("ErrorOccurred", "False", "ApplicationSetUpToDate", ok, 5),
            row("ParametersGenerated", "True", "ParametersGenerated", params_ok, 4),
            row("ResourcesUpToDate", "True", "ApplicationSetUpToDate", ok, 5),
        ]
    );
}

#[test]
fn conditions_report_reasons_and_keep_other_types() {
    let rollout = ApplicationSetCondition {
        type_: "RolloutProgressing".into(),
        message: "step 1".into(),
        last_transition_time: Some(at(0)),
        status: "True".into(),
        reason: "ApplicationSetModified".into(),
    };
    let cases = [
        (
            Reason::ApplicationParamsGenerationError,
            "ApplicationGenerationFromParamsError",
            "False",
        ),
        (
            Reason::RenderTemplateParamsError,
            "RenderTemplateParamsError",
            "False",
        ),
        (
            Reason::ApplicationValidationError,
            "ApplicationValidationError",
            "True",
        ),
        (Reason::CreateApplicationError, "CreateApplicationError", "True"),
        (Reason::UpdateApplicationError, "UpdateApplicationError", "True"),
        (Reason::DeleteApplicationError, "DeleteApplicationError", "True"),
        (Reason::RefreshApplicationError, "RefreshApplicationError", "True"),
        (Reason::SyncApplicationError, "SyncApplicationError", "True"),
    ];
    for (reason, written, parameters) in cases {
        let outcome = Outcome::Failed {
            reason,
            message: "boom".into(),
        };
        let out = conditions(&outcome, std::slice::from_ref(&rollout), &at(1));
        assert_eq!(out.len(), 4);
        assert_eq!(
            (out[0].type_.as_str(), out[0].reason.as_str()),
            ("ErrorOccurred", written)
        );
        assert_eq!(out[1].status, parameters, "{reason:?}: ParametersGenerated");
        assert_eq!(out[2].status, "False", "{reason:?}: ResourcesUpToDate");
        assert_eq!(out[3], rollout);
    }
}

#[test]
fn a_failed_delete_is_an_error_unlike_upstream_which_reports_it_up_to_date() {
    let outcome = Outcome::Failed {
        reason: Reason::DeleteApplicationError,
        message: "deleting x: forbidden".into(),
    };
    let out = conditions(&outcome, &[], &at(1));
    assert_eq!(
        (out[0].status.as_str(), out[0].message.as_str()),
        ("True", "deleting x: forbidden")
    );
    assert_eq!(out[2].status, "False");
}

#[test]
fn condition_serializes_as_upstream() {
    let c = &conditions(&Outcome::UpToDate, &[], &at(0))[0];
    assert_eq!(
        serde_json::to_value(c).unwrap(),
        json!({
            "type": "ErrorOccurred",
            "message": "All applications have been generated successfully",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
            "status": "False",
            "reason": "ApplicationSetUpToDate",
        })
    );
}

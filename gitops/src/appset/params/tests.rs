use serde_json::json;

use super::*;

#[test]
fn floats_print_as_go_prints_them_with_percent_v() {
    let cases = [
        (3.0, "3"),
        (1.5, "1.5"),
        (-2.25, "-2.25"),
        (100000.0, "100000"),
        (123456.0, "123456"),
        (1000000.0, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (0.000123, "0.000123"),
        (1e21, "1e+21"),
        (0.0, "0"),
        (8080.0, "8080"),
    ];
    for (f, want) in cases {
        assert_eq!(go_float(f), want, "{f}");
    }
}

#[test]
fn values_print_as_go_prints_decoded_json() {
    let cases = [
        (json!(null), "<nil>"),
        (json!(true), "true"),
        (json!("s"), "s"),
        (json!(7), "7"),
        (json!([1, "a"]), "[1 a]"),
        (json!({"b": 1, "a": "x"}), "map[a:x b:1]"),
    ];
    for (v, want) in cases {
        assert_eq!(go_value_string(&v), want, "{v}");
    }
}

#[test]
fn flatten_joins_keys_and_indices_with_dots() {
    let params = match json!({"a": {"b": {"c": "d"}, "list": [1, {"x": true}]}, "e": null, "empty": {}, "none": []})
    {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    };
    let flat = flatten(&params);
    let want: BTreeMap<String, String> = [
        ("a.b.c", "d"),
        ("a.list.0", "1"),
        ("a.list.1.x", "true"),
        ("e", "<nil>"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(flat, want);
}

#[test]
fn names_are_sanitized_as_dns_names() {
    let cases = [
        ("My_Cluster", "my-cluster"),
        ("-a.b-", "a.b"),
        ("prod/eu west", "prod-eu-west"),
        ("Ünïcode", "-n-code"),
        ("ok", "ok"),
    ];
    for (name, want) in cases {
        assert_eq!(sanitize_name(name), want.trim_matches('-'), "{name}");
    }
    assert_eq!(sanitize_name(&"a".repeat(300)).len(), 253);
}

#[test]
fn base_and_dir_follow_go_path() {
    for (path, base, dir) in [
        ("apps/guestbook", "guestbook", "apps"),
        ("config.json", "config.json", "."),
        ("a/b/c.yaml", "c.yaml", "a/b"),
        ("", ".", "."),
    ] {
        assert_eq!(go_base(path), base, "base of {path}");
        assert_eq!(go_dir(path), dir, "dir of {path}");
    }
}

#[test]
fn yaml_is_read_as_json_with_string_keys() {
    assert_eq!(yaml_to_json("").unwrap(), json!(null));
    assert_eq!(
        yaml_to_json("a: 1\n2: x\ntrue: y\n").unwrap(),
        json!({"a": 1, "2": "x", "true": "y"})
    );
    assert_eq!(
        yaml_to_json("a: 1\n---\nb: 2\n").unwrap(),
        json!({"a": 1}),
        "only the first document"
    );
    assert_eq!(yaml_to_json(r#"{"j": [1.5]}"#).unwrap(), json!({"j": [1.5]}));
    assert!(yaml_to_json("? [a]\n: b\n").unwrap_err().contains("not a scalar"));
    assert!(yaml_to_json("a: [").is_err());
}

#[test]
fn pseudo_random_yaml_never_panics() {
    let pieces = [
        "a", ":", " ", "\n", "-", "[", "]", "{", "}", "'", "\"", "&x", "*x", "!!", "1e9", "~", "? ", "\t",
        "#",
    ];
    let mut state: u64 = 11;
    for _ in 0..3000 {
        let text: String = (0..12)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                pieces[usize::try_from(state >> 33).unwrap_or(0) % pieces.len()]
            })
            .collect();
        let _ = yaml_to_json(&text);
    }
}

//! The built `kubectl-sluice` against live Rollouts walked by the operator: every command's effect on the
//! objects, what it prints and how it exits, and its errors (a missing Rollout, a command of the wrong
//! strategy, a cluster that does not answer).

use std::{io::Write, process::Stdio};

use sluice_crds::rollout::Rollout;
use sluice_e2e::{
    argo_state::argo_paused_canary,
    gohash::{Build, Oracle},
    harness::{Operator, TestNamespace, install_crds, namespace_with_operator, plugin_binary},
    plugin::{Plugin, Run, Watching},
    rollouts::{canary_rollout_yaml, healthy, istio_strategy, phase, services_and_vs, step, wait_rollout},
};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_sluice-e2e");

async fn setup(test: &str) -> (TestNamespace, Operator, Plugin) {
    let (ns, op) = namespace_with_operator(SUPERVISOR, test, &[]).await;
    let plugin = Plugin::new(
        &plugin_binary().expect("plugin built"),
        &ns.info.kubeconfig,
        &ns.name,
    );
    (ns, op, plugin)
}

/// An Istio canary `name` of `replicas` at `<name>:v1` with `steps`, applied and first deployed (Healthy).
async fn healthy_canary(ns: &TestNamespace, name: &str, replicas: i32, steps: &str) {
    ns.apply(&services_and_vs(name)).unwrap();
    let strategy = istio_strategy(name, steps);
    ns.apply(&canary_rollout_yaml(
        name,
        replicas,
        &format!("{name}:v1"),
        &strategy,
    ))
    .unwrap();
    wait_rollout(ns, name, "first deploy Healthy", 60, healthy).await;
}

/// Waits until the Rollout is Paused at step `index`.
async fn paused_at(ns: &TestNamespace, name: &str, index: i32, what: &str) -> Rollout {
    wait_rollout(ns, name, what, 60, |r| step(r) == index && phase(r).0 == "Paused").await
}

fn image(ro: &Rollout) -> String {
    ro.spec
        .template
        .as_ref()
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

async fn get(ns: &TestNamespace, name: &str) -> Rollout {
    ns.api::<Rollout>().get(name).await.expect("rollout")
}

/// `get rollout` printed every one of `wants`.
fn assert_shows<S: AsRef<str>>(tree: &str, wants: &[S]) {
    for want in wants {
        let want = want.as_ref();
        assert!(tree.contains(want), "get rollout lacks {want:?}:\n{tree}");
    }
}

fn assert_fails(run: &Run, stderr: &str) {
    assert_eq!(
        run.code, 1,
        "exit code; stdout {:?} stderr {:?}",
        run.stdout, run.stderr
    );
    assert_eq!(run.stderr.trim_end(), stderr, "stdout: {}", run.stdout);
}

/// A canary paused at its first step, walked by the plugin's commands only.
#[tokio::test]
async fn canary_is_driven_by_the_plugin_from_set_image_to_undo() {
    let (ns, _op, sluice) = setup("plugin-canary").await;
    healthy_canary(
        &ns,
        "shop",
        3,
        "      - setWeight: 30\n      - pause: {}\n      - setWeight: 60\n      - pause: {}\n",
    )
    .await;
    assert_eq!(
        sluice.ok(&["status", "shop", "--watch=false"]).unwrap(),
        "Healthy\n"
    );
    assert_eq!(
        sluice.ok(&["status", "shop"]).unwrap(),
        "Healthy\n",
        "a watch ends at once on Healthy"
    );

    let out = sluice.ok(&["set", "image", "shop", "app=shop:v2"]).unwrap();
    assert_eq!(out, "rollout \"shop\" image updated\n");
    paused_at(&ns, "shop", 1, "the first pause").await;

    let tree = sluice.ok(&["get", "rollout", "shop", "--no-color"]).unwrap();
    assert_shows(
        &tree,
        &[
            "Name:            shop\n",
            "Status:          ॥ Paused\n",
            "Message:         CanaryPauseStep\n",
            "Strategy:        Canary\n",
            "  Step:          1/4\n",
            "  SetWeight:     30\n",
            "  ActualWeight:  30\n",
            "shop:v1 (stable)",
            "shop:v2 (canary)",
            "# revision:2",
            "# revision:1",
            "ReplicaSet",
            "□ shop-",
        ],
    );
    assert!(
        !tree.contains('\x1b'),
        "--no-color prints no escape codes:\n{tree}"
    );
    let coloured = sluice.run(&["get", "rollout", "shop"]).unwrap();
    assert!(
        coloured.stdout.contains("\x1b["),
        "colour by default:\n{}",
        coloured.stdout
    );

    let list = sluice.ok(&["list", "rollouts"]).unwrap();
    let header: Vec<&str> = list.lines().next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "STRATEGY",
            "STATUS",
            "STEP",
            "SET-WEIGHT",
            "READY",
            "DESIRED",
            "UP-TO-DATE",
            "AVAILABLE"
        ]
    );
    let row: Vec<&str> = list.lines().nth(1).unwrap_or("").split_whitespace().collect();
    assert_eq!(row[..5], ["shop", "Canary", "Paused", "1/4", "30"], "{list}");

    assert_eq!(
        sluice.ok(&["status", "shop", "--watch=false"]).unwrap(),
        "Paused - CanaryPauseStep\n"
    );
    let timed_out = sluice.run(&["status", "shop", "--timeout", "1s"]).unwrap();
    assert_eq!(timed_out.stdout, "Paused - CanaryPauseStep\n");
    assert_fails(&timed_out, "Error: Rollout status watch exceeded timeout");

    assert_eq!(
        sluice.ok(&["promote", "shop"]).unwrap(),
        "rollout 'shop' promoted\n"
    );
    paused_at(&ns, "shop", 3, "the second pause").await;

    assert_eq!(sluice.ok(&["pause", "shop"]).unwrap(), "rollout 'shop' paused\n");
    assert_eq!(get(&ns, "shop").await.spec.paused, Some(true));
    assert_eq!(
        sluice.ok(&["resume", "shop"]).unwrap(),
        "rollout 'shop' resumed\n"
    );
    assert_eq!(get(&ns, "shop").await.spec.paused, Some(false));

    assert_eq!(sluice.ok(&["abort", "shop"]).unwrap(), "rollout 'shop' aborted\n");
    let ro = wait_rollout(&ns, "shop", "Degraded after abort", 30, |r| {
        phase(r).0 == "Degraded"
    })
    .await;
    let message = phase(&ro).1;
    let degraded = sluice.run(&["status", "shop"]).unwrap();
    assert_eq!(degraded.stdout, format!("Degraded - {message}\n"));
    assert_fails(
        &degraded,
        &format!("Error: The rollout is in a degraded state with message: {message}"),
    );

    assert_eq!(
        sluice.ok(&["retry", "rollout", "shop"]).unwrap(),
        "rollout 'shop' retried\n"
    );
    paused_at(&ns, "shop", 1, "the first pause after retry").await;
    assert_eq!(
        sluice.ok(&["promote", "shop", "--full"]).unwrap(),
        "rollout 'shop' fully promoted\n"
    );
    let ro = wait_rollout(&ns, "shop", "Healthy on v2", 90, healthy).await;
    assert_eq!(image(&ro), "shop:v2");

    let out = sluice.ok(&["restart", "shop"]).unwrap();
    assert_eq!(out, "rollout 'shop' restarts in 0s\n");
    assert!(get(&ns, "shop").await.spec.restart_at.is_some(), "restartAt set");

    assert_eq!(sluice.ok(&["undo", "shop"]).unwrap(), "rollout 'shop' undo\n");
    assert_eq!(
        image(&get(&ns, "shop").await),
        "shop:v1",
        "undo restores the previous revision's template"
    );
    // v1 is no longer the stable revision, so going back to it is a release like any other: its steps run.
    wait_rollout(&ns, "shop", "v1 released again, at the first pause", 60, |r| {
        step(r) == 1 && phase(r).0 == "Paused" && image(r) == "shop:v1"
    })
    .await;
    // The tree lists an image once its ReplicaSet's status counts the pod, which may lag the Rollout's pause
    // by a moment: read it until it does.
    let both = |t: &str| t.contains("shop:v1 (canary)") && t.contains("shop:v2 (stable)");
    let mut tree = String::new();
    for _ in 0..50 {
        tree = sluice.ok(&["get", "rollout", "shop", "--no-color"]).unwrap();
        if both(&tree) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        tree.contains("# revision:3"),
        "undo makes the old template the newest revision:\n{tree}"
    );
    assert!(both(&tree), "{tree}");
}

/// `get --watch` piped: plain text, one tree per change, and an exit at `--timeout-seconds`.
#[tokio::test]
async fn get_watch_prints_plain_trees_when_piped_and_list_watch_prints_changed_rows() {
    let (ns, _op, sluice) = setup("plugin-watch").await;
    healthy_canary(&ns, "cart", 2, "      - setWeight: 50\n      - pause: {}\n").await;

    let watch = sluice
        .command(&["get", "rollout", "cart", "--watch", "--timeout-seconds", "8"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let list = Watching::spawn(sluice.command(&["list", "rollouts", "--watch"])).unwrap();
    list.wait_for("the first rows", 30, |t| t.contains("Healthy"))
        .await
        .unwrap();
    sluice.ok(&["set", "image", "cart", "app=cart:v2"]).unwrap();
    paused_at(&ns, "cart", 1, "the pause").await;

    let out = tokio::task::spawn_blocking(move || watch.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "exits at the timeout: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains('\x1b'), "no escape codes when piped:\n{text}");
    let trees = text.matches("Name:            cart\n").count();
    assert!(
        trees >= 2,
        "a tree for the first state and at least one change, got {trees}:\n{text}"
    );
    assert!(text.contains("Status:          ✔ Healthy\n"), "{text}");
    assert!(text.contains("Status:          ॥ Paused\n"), "{text}");

    // SIGINT, as Ctrl-C sends: the list watch ends cleanly, having printed the row of each change.
    list.wait_for("the paused row", 30, |t| t.contains("Paused"))
        .await
        .unwrap();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &list.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let (code, text) = list.finish().await.unwrap();
    assert_eq!(code, 0, "Ctrl-C ends the watch with 0:\n{text}");
    assert!(text.lines().next().unwrap_or("").starts_with("NAME"), "{text}");
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert!(rows.iter().any(|r| r.contains("Healthy")), "{text}");
    assert!(
        rows.iter().any(|r| r.contains("Paused") && r.contains("1/2")),
        "{text}"
    );
}

/// `get --watch` on a terminal (a pseudo-terminal from `script`): each tree is drawn over the last one, the
/// cursor is hidden meanwhile, and Ctrl-C (the terminal's ^C) ends it with the cursor shown again.
#[tokio::test]
async fn get_watch_redraws_in_place_on_a_terminal_and_ctrl_c_leaves_it_clean() {
    let (ns, _op, sluice) = setup("plugin-tty").await;
    ns.apply(&canary_rollout_yaml(
        "tty",
        1,
        "tty:v1",
        "      steps: [{setWeight: 50}, {pause: {}}]\n",
    ))
    .unwrap();
    wait_rollout(&ns, "tty", "first deploy Healthy", 60, healthy).await;
    // `exec`: the shell `script` starts (dash when SHELL is unset) must not stay between the terminal and the
    // plugin, or the ^C ends the shell with 130 while the plugin itself exits cleanly.
    let cmd = format!(
        "exec {} --kubeconfig {} -n {} get rollout tty --watch",
        sluice.binary.display(),
        sluice.kubeconfig.display(),
        ns.name
    );
    let mut script = std::process::Command::new("script");
    script.args(["-qfec", &cmd, "/dev/null"]).env("TERM", "xterm");
    let mut term = Watching::spawn(script).unwrap();
    term.wait_for("the first frame", 30, |t| t.contains("Healthy"))
        .await
        .unwrap();
    sluice.ok(&["set", "image", "tty", "app=tty:v2"]).unwrap();
    wait_rollout(&ns, "tty", "the pause", 60, |r| phase(r).0 == "Paused").await;
    let paused = |t: &str| t.rsplit("\x1b[H\x1b[2J").next().unwrap_or("").contains("Paused");
    term.wait_for("the paused frame", 30, paused).await.unwrap();
    term.type_in(b"\x03").unwrap();
    let (code, text) = term.finish().await.unwrap();
    assert!(
        text.starts_with("\x1b[?25l"),
        "the cursor is hidden first: {text:?}"
    );
    assert!(
        text.trim_end().ends_with("\x1b[?25h"),
        "the cursor is shown again at the end: {text:?}"
    );
    let frames = text.matches("\x1b[H\x1b[2J").count();
    assert!(
        frames >= 2,
        "each change clears and redraws, got {frames} frames: {text:?}"
    );
    let last = text.rsplit("\x1b[H\x1b[2J").next().unwrap_or("");
    assert!(
        last.contains("Paused"),
        "the last frame shows the pause: {last:?}"
    );
    assert!(last.contains("\x1b[32m"), "colour on a terminal: {last:?}");
    assert_eq!(code, 0, "Ctrl-C ends the watch cleanly: {text:?}");
}

/// Blue-green: promote leaves the pause; skipping steps is refused with upstream's message.
#[tokio::test]
async fn blue_green_promote_and_the_wrong_strategy_for_a_command() {
    let (ns, _op, sluice) = setup("plugin-bluegreen").await;
    let manifest = "apiVersion: v1
kind: Service
metadata: {name: web-active}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-preview}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: 'web:v1'}]}
  strategy:
    blueGreen: {activeService: web-active, previewService: web-preview, autoPromotionEnabled: false}
";
    ns.apply(manifest).unwrap();
    wait_rollout(&ns, "web", "first deploy Healthy", 60, healthy).await;
    sluice.ok(&["set", "image", "web", "app=web:v2"]).unwrap();
    wait_rollout(&ns, "web", "BlueGreenPause", 60, |r| {
        phase(r) == ("Paused".into(), "BlueGreenPause".into())
    })
    .await;

    let tree = sluice.ok(&["get", "rollout", "web", "--no-color"]).unwrap();
    assert_shows(
        &tree,
        &[
            "Strategy:        BlueGreen\n",
            "web:v1 (stable, active)",
            "web:v2 (preview)",
        ],
    );
    assert!(
        !tree.contains("  Step:"),
        "no canary fields on a blue-green:\n{tree}"
    );

    for flag in ["--skip-current-step", "-a"] {
        let refused = sluice.run(&["promote", "web", flag]).unwrap();
        assert_fails(
            &refused,
            "Error: Cannot skip steps of a bluegreen rollout. Run without a flags",
        );
    }
    assert_eq!(
        phase(&get(&ns, "web").await).0,
        "Paused",
        "a refused promote changes nothing"
    );

    assert_eq!(
        sluice.ok(&["promote", "web"]).unwrap(),
        "rollout 'web' promoted\n"
    );
    let ro = wait_rollout(&ns, "web", "Healthy on v2", 60, healthy).await;
    assert_eq!(image(&ro), "web:v2");
    assert_eq!(
        sluice.ok(&["status", "web", "--watch=false"]).unwrap(),
        "Healthy\n"
    );
}

/// A Rollout exactly as Argo Rollouts left it (its ReplicaSets, Services, weights and status, hashes by
/// Argo's own Go code), with no controller running: the plugin reads and promotes it as its own.
#[tokio::test]
async fn objects_written_by_argo_rollouts_are_read_and_promoted_the_same() {
    let ns = TestNamespace::new(SUPERVISOR, "plugin-argo")
        .await
        .expect("namespace");
    install_crds(&ns.info, &ns.client).await.expect("CRDs");
    let mut oracle = Oracle::start(Build::ControlPlane).expect("the hash oracle");
    let hashes = argo_paused_canary(&ns, &mut oracle, "argo").await.unwrap();
    let sluice = Plugin::new(
        &plugin_binary().expect("plugin built"),
        &ns.info.kubeconfig,
        &ns.name,
    );

    let tree = sluice.ok(&["get", "rollout", "argo", "--no-color"]).unwrap();
    assert_shows(
        &tree,
        &[
            "Status:          ॥ Paused\n".to_string(),
            "  Step:          3/7\n".into(),
            "  SetWeight:     40\n".into(),
            "argo:v1 (stable)".into(),
            "argo:v2 (canary)".into(),
            format!("⧉ argo-{}", hashes.stable),
            format!("⧉ argo-{}", hashes.new),
        ],
    );
    assert_eq!(
        sluice.ok(&["status", "argo", "--watch=false"]).unwrap(),
        "Paused - CanaryPauseStep\n"
    );
    let list = sluice.ok(&["list", "rollouts"]).unwrap();
    assert!(
        list.lines().nth(1).is_some_and(|row| row
            .split_whitespace()
            .take(5)
            .eq(["argo", "Canary", "Paused", "3/7", "40"])),
        "{list}"
    );

    assert_eq!(
        sluice.ok(&["promote", "argo"]).unwrap(),
        "rollout 'argo' promoted\n"
    );
    let st = get(&ns, "argo").await.status.unwrap_or_default();
    assert_eq!(
        st.pause_conditions, None,
        "promote cleared Argo's pause conditions"
    );
    assert_eq!(
        st.current_step_index,
        Some(3),
        "the controller, not the plugin, moves the step"
    );
}

/// Missing objects and bad input: upstream's messages, exit 1, nothing written.
#[tokio::test]
async fn a_missing_rollout_and_a_bad_manifest_are_clear_errors() {
    let (ns, _op, sluice) = setup("plugin-errors").await;
    let missing = "rollout.argoproj.io \"nope\" not found";
    assert_fails(
        &sluice.run(&["get", "rollout", "nope"]).unwrap(),
        &format!("Error: {missing}"),
    );
    assert_fails(
        &sluice.run(&["status", "nope"]).unwrap(),
        &format!("Error: {missing}"),
    );
    let plural = "Error: rollouts.argoproj.io \"nope\" not found";
    for args in [
        &["promote", "nope"][..],
        &["abort", "nope"],
        &["retry", "rollout", "nope"],
        &["pause", "nope"],
        &["resume", "nope"],
        &["restart", "nope"],
        &["set", "image", "nope", "app=x:1"],
        &["undo", "nope"],
    ] {
        assert_fails(&sluice.run(args).unwrap(), plural);
    }
    let empty = sluice.run(&["list", "rollouts"]).unwrap();
    assert_eq!(
        (empty.code, empty.stdout.as_str(), empty.stderr.as_str()),
        (0, "", "No resources found.\n")
    );

    let dir = std::env::temp_dir().join(format!("sluice-lint-{}", ns.name));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.yaml");
    let bad = dir.join("bad.yaml");
    let rollout = canary_rollout_yaml("x", 1, "x:1", "      steps: [{setWeight: 10}]\n");
    std::fs::write(&good, &rollout).unwrap();
    std::fs::File::create(&bad)
        .unwrap()
        .write_all(
            rollout
                .replace("setWeight: 10", "setWeight: 10, pauze: {}")
                .as_bytes(),
        )
        .unwrap();
    let linted = sluice.run(&["lint", "-f", good.to_str().unwrap()]).unwrap();
    assert_eq!(
        (linted.code, linted.stdout.as_str()),
        (0, ""),
        "{}",
        linted.stderr
    );
    let linted = sluice.run(&["lint", "-f", bad.to_str().unwrap()]).unwrap();
    assert_fails(
        &linted,
        "Error: The Rollout \"x\" is invalid: unknown field \"spec.strategy.canary.steps[0].pauze\"",
    );
    let _ = std::fs::remove_dir_all(dir);
    assert!(
        ns.api::<Rollout>().get_opt("x").await.unwrap().is_none(),
        "lint never writes"
    );
}

/// A kubeconfig whose server does not answer: every command fails fast with a connection error.
#[tokio::test]
async fn an_unreachable_cluster_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("sluice-unreachable-{}", std::process::id()));
    let sluice = Plugin::unreachable(&plugin_binary().expect("plugin built"), &dir).unwrap();
    for args in [
        &["get", "rollout", "web"][..],
        &["list", "rollouts"],
        &["status", "web"],
        &["promote", "web"],
        &["abort", "web"],
    ] {
        let run = sluice.run(args).unwrap();
        assert_eq!(run.code, 1, "{args:?}: {run:?}");
        assert!(
            run.stderr.starts_with("Error: unable to connect to the server: "),
            "{args:?}: {:?}",
            run.stderr
        );
        assert_eq!(run.stderr.lines().count(), 1, "one line: {:?}", run.stderr);
    }
    let _ = std::fs::remove_dir_all(dir);
}

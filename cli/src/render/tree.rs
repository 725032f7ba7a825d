//! `get rollout`: the header block (`%-17s%v` lines) and the NAME/KIND/STATUS/AGE/INFO tree.

use jiff::Timestamp;

use super::{paint::Painter, table};
use crate::info::{
    AnalysisRunInfo, ExperimentInfo, Icon, ImageInfo, JobInfo, ReplicaSetInfo, RevisionInfo, RolloutInfo,
    build::duration::age,
};

/// Tags that colour a ReplicaSet's name and INFO column; anything else (the delay) is printed as is.
const TAGS: [&str; 6] = ["stable", "canary", "active", "preview", "ping", "pong"];

/// The whole `get rollout` output.
pub fn tree(info: &RolloutInfo, now: Timestamp, p: Painter) -> String {
    let mut out = header(info, p);
    out.push('\n');
    let mut rows = Rows {
        p,
        now,
        lines: vec![row("NAME", "KIND", "STATUS", "AGE", "INFO")],
    };
    rows.rollout(info);
    out.push_str(&table::align(&rows.lines));
    out
}

/// One header line: the label padded to 17 columns, then the value.
fn field(out: &mut String, label: &str, value: &str) {
    out.push_str(&format!("{label:<17}{value}\n"));
}

fn header(info: &RolloutInfo, p: Painter) -> String {
    let mut out = String::new();
    field(&mut out, "Name:", &info.name);
    field(&mut out, "Namespace:", &info.namespace);
    field(
        &mut out,
        "Status:",
        &format!("{} {}", p.word(info.icon.glyph()), info.status),
    );
    if !info.message.is_empty() {
        field(&mut out, "Message:", &info.message);
    }
    field(&mut out, "Strategy:", &info.strategy);
    if info.strategy == "Canary" {
        field(&mut out, "  Step:", &info.step);
        field(&mut out, "  SetWeight:", &info.set_weight);
        field(&mut out, "  ActualWeight:", &info.actual_weight);
    }
    for (i, image) in info.images.iter().enumerate() {
        field(
            &mut out,
            if i == 0 { "Images:" } else { "" },
            &image_text(image, p),
        );
    }
    out.push_str("Replicas:\n");
    field(&mut out, "  Desired:", &info.desired.to_string());
    field(&mut out, "  Current:", &info.current.to_string());
    field(&mut out, "  Updated:", &info.updated.to_string());
    field(&mut out, "  Ready:", &info.ready.to_string());
    field(&mut out, "  Available:", &info.available.to_string());
    out
}

/// "image (stable, canary)" with each tag coloured.
fn image_text(image: &ImageInfo, p: Painter) -> String {
    if image.tags.is_empty() {
        return image.image.clone();
    }
    let tags: Vec<String> = image.tags.iter().map(|t| p.word(t)).collect();
    format!("{} ({})", image.image, tags.join(", "))
}

fn row(name: &str, kind: &str, status: &str, age: &str, info: &str) -> String {
    format!("{name}\t{kind}\t{status}\t{age}\t{info}")
}

/// The tree prefixes of a child (`├──`/`└──`) and of its own children (`│  `/`   `).
fn prefixes(last: bool, sub: &str) -> (String, String) {
    if last {
        (format!("{sub}└──"), format!("{sub}   "))
    } else {
        (format!("{sub}├──"), format!("{sub}│  "))
    }
}

/// The tree's lines, cells separated by tabs.
struct Rows {
    p: Painter,
    now: Timestamp,
    lines: Vec<String>,
}

impl Rows {
    fn status(&self, icon: Icon, status: &str) -> String {
        format!("{} {status}", self.p.word(icon.glyph()))
    }

    fn age(&self, created: Option<Timestamp>) -> String {
        age(created, self.now)
    }

    fn rollout(&mut self, info: &RolloutInfo) {
        let status = self.status(info.icon, &info.status);
        let age = self.age(info.created);
        self.lines
            .push(row(&format!("⟳ {}", info.name), "Rollout", &status, &age, ""));
        for (i, rev) in info.revisions.iter().enumerate() {
            let (prefix, sub) = prefixes(i + 1 == info.revisions.len(), "");
            self.revision(rev, &prefix, &sub);
        }
    }

    fn revision(&mut self, rev: &RevisionInfo, prefix: &str, sub: &str) {
        self.lines.push(row(
            &format!("{prefix}# revision:{}", rev.revision),
            "",
            " ",
            "",
            "",
        ));
        let total = rev.replica_sets.len() + rev.experiments.len() + rev.analysis_runs.len();
        let mut n = 0;
        let mut next = || {
            n += 1;
            prefixes(n == total, sub)
        };
        for rs in &rev.replica_sets {
            let (p, s) = next();
            self.replica_set(rs, &p, &s);
        }
        for exp in &rev.experiments {
            let (p, s) = next();
            self.experiment(exp, &p, &s);
        }
        for run in &rev.analysis_runs {
            let (p, s) = next();
            self.analysis_run(run, &p, &s);
        }
    }

    fn replica_set(&mut self, rs: &ReplicaSetInfo, prefix: &str, sub: &str) {
        let mut name = rs.name.clone();
        let mut info = Vec::new();
        for item in &rs.info {
            if TAGS.contains(&item.as_str()) {
                name = self.p.as_word(&name, item);
                info.push(self.p.word(item));
            } else {
                info.push(item.clone());
            }
        }
        let status = self.status(rs.icon, &rs.status);
        let age = self.age(rs.created);
        self.lines.push(row(
            &format!("{prefix}⧉ {name}"),
            "ReplicaSet",
            &status,
            &age,
            &info.join(","),
        ));
        for (i, pod) in rs.pods.iter().enumerate() {
            let (pod_prefix, _) = prefixes(i + 1 == rs.pods.len(), sub);
            let status = self.status(pod.icon, &pod.status);
            let age = self.age(pod.created);
            self.lines.push(row(
                &format!("{pod_prefix}□ {}", pod.name),
                "Pod",
                &status,
                &age,
                &pod.info,
            ));
        }
    }

    fn experiment(&mut self, exp: &ExperimentInfo, prefix: &str, sub: &str) {
        let name = self.p.as_word(&exp.name, &exp.status);
        let status = self.status(exp.icon, &exp.status);
        let age = self.age(exp.created);
        self.lines
            .push(row(&format!("{prefix}Σ {name}"), "Experiment", &status, &age, ""));
        let total = exp.replica_sets.len() + exp.analysis_runs.len();
        let mut n = 0;
        for rs in &exp.replica_sets {
            n += 1;
            let (p, s) = prefixes(n == total, sub);
            self.replica_set(rs, &p, &s);
        }
        for run in &exp.analysis_runs {
            n += 1;
            let (p, s) = prefixes(n == total, sub);
            self.analysis_run(run, &p, &s);
        }
    }

    fn analysis_run(&mut self, run: &AnalysisRunInfo, prefix: &str, sub: &str) {
        let name = self.p.as_word(&run.name, &run.status);
        let counts = [
            (Icon::Ok, run.successful),
            (Icon::Bad, run.failed),
            (Icon::Unknown, run.inconclusive),
            (Icon::Warning, run.error),
        ];
        let info: Vec<String> = counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(icon, n)| format!("{} {n}", self.p.word(icon.glyph())))
            .collect();
        let status = self.status(run.icon, &run.status);
        let age = self.age(run.created);
        self.lines.push(row(
            &format!("{prefix}α {name}"),
            "AnalysisRun",
            &status,
            &age,
            &info.join(","),
        ));
        for (i, job) in run.jobs.iter().enumerate() {
            let (job_prefix, _) = prefixes(i + 1 == run.jobs.len(), sub);
            self.job(job, &job_prefix);
        }
    }

    fn job(&mut self, job: &JobInfo, prefix: &str) {
        let name = self.p.as_word(&job.name, &job.status);
        let status = self.status(job.icon, &job.status);
        let age = self.age(job.created);
        self.lines
            .push(row(&format!("{prefix}⊞ {name}"), "Job", &status, &age, ""));
    }
}

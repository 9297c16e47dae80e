//! A network namespace for the differential tests: veth pairs `v<i>`/`p<i>` to give endpoints
//! interfaces, removed with the namespace when dropped.

use std::process::Command;

pub struct Netns(pub String);

impl Netns {
    /// `<prefix><pid>` with `pairs` veth pairs, set up when `up`.
    pub fn new(prefix: &str, pairs: usize, up: bool) -> Netns {
        let name = format!("{prefix}{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(&["ip", "netns", "add", &name]);
        for i in 0..pairs {
            let (v, p) = (format!("v{i}"), format!("p{i}"));
            run(&[
                "ip", "-n", &name, "link", "add", &v, "type", "veth", "peer", "name", &p,
            ]);
            if up {
                for dev in [&v, &p] {
                    run(&["ip", "-n", &name, "link", "set", dev, "up"]);
                }
            }
        }
        Netns(name)
    }
}

/// Moves the calling thread into the namespace called `name`.
pub fn enter(name: &str) {
    let file = std::fs::File::open(format!("/run/netns/{name}")).unwrap();
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
        .expect("enter the test namespace");
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

fn run(argv: &[&str]) {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

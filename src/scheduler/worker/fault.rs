//! Fault injection for tests of worker supervision: `REELSMITH_TEST_FAULT` makes a worker
//! misbehave when it starts a matching task, the way native code or a driver can.
//!
//! `REELSMITH_TEST_FAULT=<kind>:<stage>[@<project>][,…]`, where kind is `segv` (raise SIGSEGV),
//! `abort`, `exit` (exit status 3), `oom` (allocate and touch memory until allocation fails or
//! the kernel kills the worker) or `hang` (stop answering, ignoring cancellation); `stage` is a
//! node name such as `assemble:en` or `plan`, and `project` limits it to one project. Read by
//! workers only; production runs never set it.

use super::Order;

pub const ENV: &str = "REELSMITH_TEST_FAULT";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Segv,
    Abort,
    Exit,
    Oom,
    Hang,
}

/// The fault `spec` (the variable's value) asks for on `order`, if any.
pub fn matching(spec: &str, order: &Order, project: &str) -> Option<Fault> {
    spec.split(',').find_map(|item| {
        let (kind, target) = item.trim().split_once(':')?;
        let order_project = project;
        let (stage, project) = match target.split_once('@') {
            Some((s, p)) => (s, Some(p)),
            None => (target, None),
        };
        if stage != order.node.name() || project.is_some_and(|p| p != order_project) {
            return None;
        }
        match kind {
            "segv" => Some(Fault::Segv),
            "abort" => Some(Fault::Abort),
            "exit" => Some(Fault::Exit),
            "oom" => Some(Fault::Oom),
            "hang" => Some(Fault::Hang),
            _ => None,
        }
    })
}

/// Misbehaves as the environment asks for `order` (returns when nothing matches).
pub fn inject(order: &Order, project: &str) {
    let Ok(spec) = std::env::var(ENV) else {
        return;
    };
    let Some(fault) = matching(&spec, order, project) else {
        return;
    };
    eprintln!("test fault: {fault:?} in {}", order.node.name());
    match fault {
        // SAFETY: raising a signal in our own process; the point is to die of it. The Rust
        // runtime's SIGSEGV handler (stack-overflow detection) would let a raised signal
        // return, so the default action is restored first, as for a real fault.
        Fault::Segv => unsafe {
            libc::signal(libc::SIGSEGV, libc::SIG_DFL);
            libc::raise(libc::SIGSEGV);
        },
        Fault::Abort => std::process::abort(),
        Fault::Exit => std::process::exit(3),
        Fault::Oom => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                // Touch every page so the memory is really resident.
                hoard.push(vec![1u8; 64 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        Fault::Hang => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
    }
}

//! No content at rest: the process's memory (prompts, completions, keys) never lands in a
//! core file. At start the core size limit goes to zero, soft and hard (it cannot be raised
//! again), and on Linux the process is marked not dumpable (`PR_SET_DUMPABLE` 0: no core
//! dump, no ptrace attach by other processes of the same user, `/proc/PID/mem` closed).

/// What [`disable`] did; each step is `Err` with the OS's reason where it was refused.
#[derive(Debug)]
#[must_use = "log what was done"]
pub struct CoreDumps {
    /// `RLIMIT_CORE` set to 0 (soft and hard).
    pub limit: std::io::Result<()>,
    /// `PR_SET_DUMPABLE` set to 0.
    pub not_dumpable: std::io::Result<()>,
}

/// Disables core dumps for this process (see the module documentation).
pub fn disable() -> CoreDumps {
    let zero = rustix::process::Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    let limit = rustix::process::setrlimit(rustix::process::Resource::Core, zero)
        .map_err(std::io::Error::from);
    #[cfg(target_os = "linux")]
    let not_dumpable =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
            .map_err(std::io::Error::from);
    #[cfg(not(target_os = "linux"))]
    let not_dumpable = Err(std::io::Error::from(std::io::ErrorKind::Unsupported));
    CoreDumps {
        limit,
        not_dumpable,
    }
}

impl CoreDumps {
    /// Logs the outcome once: info when both steps held, a warning naming each refusal.
    pub fn log(&self) {
        match (&self.limit, &self.not_dumpable) {
            (Ok(()), Ok(())) => {
                tracing::info!(rlimit_core = 0, dumpable = false, "core dumps disabled")
            }
            (limit, dumpable) => tracing::warn!(
                rlimit_core = %outcome(limit),
                not_dumpable = %outcome(dumpable),
                "core dumps could not be fully disabled"
            ),
        }
    }
}

fn outcome(r: &std::io::Result<()>) -> String {
    match r {
        Ok(()) => "set".to_owned(),
        Err(e) => format!("refused: {e}"),
    }
}
